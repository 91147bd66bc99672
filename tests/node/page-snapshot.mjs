// Screenshots of the page compared against stored images, as the app's snapshot tests do
// (tests/snapshots/, kittest). The images are decoded and compared inside Chromium (a canvas),
// so no image library is needed. A pixel differs when one of its channels is off by more than
// CHANNEL_TOLERANCE; an image matches when at most `maxDiffering` of its pixels differ (video
// pictures are re-encoded on every run, so their edges never come out byte-identical).
//
// UPDATE_SNAPSHOTS=1 writes the new images in place of the stored ones. A missing stored image
// fails the test (it is never written silently). On a mismatch the new image and a difference
// image (differing pixels red) are written beside the stored one as NAME.new.png and
// NAME.diff.png, for a look.

import { existsSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const SNAPSHOT_DIR = join(here, "../snapshots");
const CHANNEL_TOLERANCE = 48;

/** Compares a screenshot of `page` with tests/snapshots/NAME.png, using `scratch` (a page of the
 * same browser on about:blank) to decode and compare. Resolves to the figures; throws with them
 * on a mismatch. */
export async function matchSnapshot(page, scratch, name, { maxDiffering = 0.01 } = {}) {
  const shot = Buffer.from(await page.screenshot({ type: "png" }));
  const stored = join(SNAPSHOT_DIR, `${name}.png`);
  const fresh = join(SNAPSHOT_DIR, `${name}.new.png`);
  const diffFile = join(SNAPSHOT_DIR, `${name}.diff.png`);
  if (process.env.UPDATE_SNAPSHOTS === "1") {
    writeFileSync(stored, shot);
    rmSync(fresh, { force: true });
    rmSync(diffFile, { force: true });
    return { name, updated: true };
  }
  if (!existsSync(stored)) {
    writeFileSync(fresh, shot);
    throw new Error(`no stored snapshot ${stored} (the new one is ${fresh}; UPDATE_SNAPSHOTS=1 stores it)`);
  }
  const figures = await scratch.evaluate(async (a, b, tolerance) => {
    const decode = async (base64) => {
      const image = new Image();
      image.src = `data:image/png;base64,${base64}`;
      await image.decode();
      const canvas = document.createElement("canvas");
      canvas.width = image.width;
      canvas.height = image.height;
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(image, 0, 0);
      return ctx.getImageData(0, 0, image.width, image.height);
    };
    const [want, got] = [await decode(a), await decode(b)];
    if (want.width !== got.width || want.height !== got.height) {
      return { sizeWanted: `${want.width}x${want.height}`, sizeGot: `${got.width}x${got.height}` };
    }
    const diff = new ImageData(got.width, got.height);
    let differing = 0;
    for (let i = 0; i < got.data.length; i += 4) {
      let off = false;
      for (let c = 0; c < 3; c++) if (Math.abs(want.data[i + c] - got.data[i + c]) > tolerance) off = true;
      const grey = got.data[i] * 0.3 + got.data[i + 1] * 0.59 + got.data[i + 2] * 0.11;
      diff.data.set(off ? [255, 0, 0, 255] : [grey / 3, grey / 3, grey / 3, 255], i);
      if (off) differing++;
    }
    const canvas = document.createElement("canvas");
    canvas.width = got.width;
    canvas.height = got.height;
    canvas.getContext("2d").putImageData(diff, 0, 0);
    return { pixels: got.width * got.height, differing, diff: canvas.toDataURL("image/png").split(",")[1] };
  }, readFileSync(stored).toString("base64"), shot.toString("base64"), CHANNEL_TOLERANCE);
  if (figures.sizeWanted) {
    writeFileSync(fresh, shot);
    throw new Error(`${name}: the screenshot is ${figures.sizeGot}, the stored one ${figures.sizeWanted} (new: ${fresh})`);
  }
  const share = figures.differing / figures.pixels;
  const result = { name, differing: figures.differing, share: Number(share.toFixed(5)) };
  if (share > maxDiffering) {
    writeFileSync(fresh, shot);
    writeFileSync(diffFile, Buffer.from(figures.diff, "base64"));
    throw new Error(`${name}: ${figures.differing} pixels differ (${(share * 100).toFixed(2)} %, at most ${(maxDiffering * 100).toFixed(2)} %); see ${fresh} and ${diffFile}`);
  }
  rmSync(fresh, { force: true });
  rmSync(diffFile, { force: true });
  return result;
}
