// Firefox ESR as a class participant, run inside a lab namespace (`ip netns exec NS node
// firefox-peer.mjs URL PEER ORIGIN`): puppeteer reaches Firefox over a local websocket, so the
// driver must live in the namespace with it. It joins the page at URL and prints, each
// second, one JSON line of what it receives from PEER (see nat-lab.mjs `received`).

import puppeteer from "puppeteer-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { received } from "./nat-lab.mjs";

const [url, peer, origin] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "classroom-firefox-peer-"));
const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath: "/usr/bin/firefox-esr",
  headless: true,
  userDataDir: profile,
  extraPrefsFirefox: {
    "media.navigator.streams.fake": true,
    "media.navigator.permission.disabled": true,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    "media.gmp-gmpopenh264.enabled": false,
    "media.gmp-manager.url": "",
    "app.update.enabled": false,
    "datareporting.policy.dataSubmissionEnabled": false,
    // The lab serves the page over plain HTTP from a lab address.
    "media.devices.insecure.enabled": true,
    "media.getusermedia.insecure.enabled": true,
    "dom.securecontext.allowlist": new URL(origin).hostname,
  },
});
const stop = async () => {
  await browser.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  process.exit(0);
};
process.on("SIGTERM", stop);
process.stdin.on("end", stop);
process.stdin.resume();
const page = await browser.newPage();
await page.goto(url);
await page.click("#enter");
for (;;) {
  const r = await received(page, peer).catch((e) => ({ error: e.message }));
  process.stdout.write(`${JSON.stringify(r)}\n`);
  await new Promise((resolve) => setTimeout(resolve, 1000));
}
