// The three-way lab: our signaling server, the desktop's headless participant, Debian's
// Chromium and Debian's Firefox ESR (no OpenH264 plugin), all in one class. Used by
// firefox.test.mjs and three-way.bench.mjs, inside tests/node/in-lab-namespace.sh.

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer from "puppeteer-core";

export const PORT = 3001;
export const SESSION = "three-way";
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function waitFor(what, condition, timeoutMs = 40_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await condition();
      if (last) return last;
    } catch (error) {
      last = String(error);
    }
    await sleep(300);
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)?.slice(0, 1500)}`);
}

/** What a page receives from `userId`: frames decoded, audio energy, codec, and whether the picture is blank. */
export function pageReceives(page, userId) {
  return page.evaluate(async (userId) => {
    const entry = window.classroom.state.peers.get(userId);
    if (!entry) return null;
    let framesDecoded = 0, audioEnergy = 0, codec = null;
    const report = await entry.pc.getStats();
    const codecs = new Map();
    for (const s of report.values()) if (s.type === "codec") codecs.set(s.id, s.mimeType);
    for (const s of report.values()) {
      if (s.type !== "inbound-rtp") continue;
      if (s.kind === "video") { framesDecoded += s.framesDecoded ?? 0; codec = codecs.get(s.codecId) ?? codec; }
      if (s.kind === "audio") audioEnergy += s.totalAudioEnergy ?? 0;
    }
    // Brightness and its spread over the remote camera, from a canvas grab: a blank (black)
    // picture has neither. (Firefox's fake camera is a flat colour that cycles: bright, flat.)
    const video = document.querySelector(`figure[data-user="${CSS.escape(userId)}"][data-source="camera"] video`);
    let spread = 0, mean = 0;
    if (video && video.videoWidth) {
      const canvas = document.createElement("canvas");
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(video, 0, 0);
      const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      let sum = 0, squares = 0, n = 0;
      for (let i = 1; i < pixels.length; i += 4 * 97) { sum += pixels[i]; squares += pixels[i] * pixels[i]; n++; }
      mean = sum / n;
      spread = Math.sqrt(Math.max(0, squares / n - mean ** 2));
    }
    return { framesDecoded, audioEnergy, codec, spread, mean, notBlank: mean > 24 || spread > 10 };
  }, userId);
}


/** Starts everything; `close()` stops it. */
export async function startThreeWay({ desktopCodecs = "h264,vp8", desktopCamera = "640x360@15" } = {}) {
  const SERVER_BIN = process.env.CLASSROOM_SIGNALING_BIN;
  const DESKTOP_BIN = process.env.CLASSROOM_BIN;
  const LAB_ADDRESS = process.env.CLASSROOM_LAB_ADDRESS;
  if (!SERVER_BIN || !DESKTOP_BIN || !LAB_ADDRESS)
    throw new Error("run through tests/node/in-lab-namespace.sh with CLASSROOM_SIGNALING_BIN and CLASSROOM_BIN set");
  const work = mkdtempSync(join(tmpdir(), "classroom-three-way-"));
  const lab = { work, desktopLines: [] };
  lab.server = spawn(SERVER_BIN, ["serve", "--dev", "--listen", `127.0.0.1:${PORT}`, "--database", join(work, "db.sqlite"), "--ice-server", "stun:127.0.0.1:3478"], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((resolve, reject) => {
    createInterface({ input: lab.server.stdout }).on("line", (line) => line.includes("listening on") && resolve());
    lab.server.on("exit", (code) => reject(new Error(`server exited ${code}`)));
  });
  lab.desktop = spawn(DESKTOP_BIN, ["--headless", "--server", `http://127.0.0.1:${PORT}`, "--session", SESSION, "--user", "desk", "--name", "Desk Top", "--bind-ip", LAB_ADDRESS, "--camera", desktopCamera, "--screen", "none", "--video-codecs", desktopCodecs, "--stats-interval-ms", "500"], { stdio: ["pipe", "pipe", "inherit"], env: { ...process.env, RUST_LOG: "error" } });
  createInterface({ input: lab.desktop.stdout }).on("line", (line) => {
    try { lab.desktopLines.push(JSON.parse(line)); } catch { /* not JSON */ }
  });
  lab.desktopStats = () => lab.desktopLines.findLast((l) => l.type === "stats") ?? null;
  lab.desktopRemote = (userId) => lab.desktopStats()?.remotes?.find((r) => r.userId === userId) ?? null;
  await waitFor("the desktop to join", () => lab.desktopStats()?.joined);
  lab.chromium = await puppeteer.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    pipe: true,
    userDataDir: join(work, "chromium"),
    args: ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--no-sandbox", "--disable-gpu",
      "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
      "--autoplay-policy=no-user-gesture-required"],
  });
  lab.chromePage = await lab.chromium.newPage();
  await lab.chromePage.goto(`http://127.0.0.1:${PORT}/?session=${SESSION}&user=chrome&name=Chrome%20Student`);
  await lab.chromePage.click("#enter");

  lab.firefox = await puppeteer.launch({
    browser: "firefox",
    executablePath: "/usr/bin/firefox-esr",
    headless: true,
    userDataDir: join(work, "firefox"),
    extraPrefsFirefox: {
      "media.navigator.streams.fake": true,
      "media.navigator.permission.disabled": true,
      "media.autoplay.default": 0,
      "media.autoplay.blocking_policy": 0,
      // Offline, as at a school behind a firewall: no OpenH264 plugin download.
      "media.gmp-gmpopenh264.enabled": false,
      "media.gmp-manager.url": "",
      "app.update.enabled": false,
      "datareporting.policy.dataSubmissionEnabled": false,
    },
  });
  lab.firefoxPage = await lab.firefox.newPage();
  lab.firefoxPage.on("pageerror", (error) => console.error("firefox page error:", error.message));
  await lab.firefoxPage.goto(`http://127.0.0.1:${PORT}/?session=${SESSION}&user=fox&name=Fox%20Student`);
  await lab.firefoxPage.click("#enter");
  lab.close = async () => {
    await lab.firefox?.close().catch(() => {});
    await lab.chromium?.close().catch(() => {});
    lab.desktop?.kill("SIGKILL");
    lab.server?.kill("SIGKILL");
    rmSync(work, { recursive: true, force: true });
  };
  return lab;
}
