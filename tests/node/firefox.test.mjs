// Three ways in one class: Debian's Firefox ESR (no OpenH264 plugin: VP8, VP9 and AV1 only),
// Debian's Chromium and the desktop engine's headless participant. Everyone must decode
// everyone's video (not blank) and hear their audio; chat and roster agree.
//
// Runs inside the lab namespace (tests/node/in-lab-namespace.sh: loopback and a closed veth
// pair with a default route, since Firefox gathers no candidates without one). Needs
// CLASSROOM_SIGNALING_BIN, CLASSROOM_BIN and CLASSROOM_LAB_ADDRESS; CLASSROOM_DESKTOP_CODECS
// sets the desktop's video codec preference (default h264,vp8: H.264 first).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer from "puppeteer-core";

const SERVER_BIN = process.env.CLASSROOM_SIGNALING_BIN;
const DESKTOP_BIN = process.env.CLASSROOM_BIN;
const LAB_ADDRESS = process.env.CLASSROOM_LAB_ADDRESS;
const DESKTOP_CODECS = process.env.CLASSROOM_DESKTOP_CODECS ?? "h264,vp8";
const PORT = 3001;
const SESSION = "three-way";
const work = mkdtempSync(join(tmpdir(), "classroom-firefox-"));

let server, desktop, chromium, firefox, chromePage, firefoxPage;
const desktopLines = [];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what, condition, timeoutMs = 40_000) {
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

const desktopStats = () => desktopLines.findLast((l) => l.type === "stats") ?? null;
const desktopRemote = (userId) => desktopStats()?.remotes?.find((r) => r.userId === userId) ?? null;

/** What a page receives from `userId`: frames decoded, audio energy, and whether the picture has content. */
function pageReceives(page, userId) {
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

before(async () => {
  assert.ok(SERVER_BIN && DESKTOP_BIN && LAB_ADDRESS, "run through tests/node/in-lab-namespace.sh with the binaries set");
  server = spawn(SERVER_BIN, ["serve", "--dev", "--listen", `127.0.0.1:${PORT}`, "--database", join(work, "db.sqlite"), "--ice-server", "stun:127.0.0.1:3478"], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((resolve, reject) => {
    createInterface({ input: server.stdout }).on("line", (line) => line.includes("listening on") && resolve());
    server.on("exit", (code) => reject(new Error(`server exited ${code}`)));
  });

  desktop = spawn(DESKTOP_BIN, ["--headless", "--server", `http://127.0.0.1:${PORT}`, "--session", SESSION, "--user", "desk", "--name", "Desk Top", "--bind-ip", LAB_ADDRESS, "--camera", "640x360@15", "--screen", "none", "--video-codecs", DESKTOP_CODECS, "--stats-interval-ms", "500"], { stdio: ["pipe", "pipe", "inherit"], env: { ...process.env, RUST_LOG: "error" } });
  createInterface({ input: desktop.stdout }).on("line", (line) => {
    try { desktopLines.push(JSON.parse(line)); } catch { /* not JSON */ }
  });
  await waitFor("the desktop to join", () => desktopStats()?.joined);

  chromium = await puppeteer.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    pipe: true,
    userDataDir: join(work, "chromium"),
    args: ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--no-sandbox", "--disable-gpu",
      "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
      "--autoplay-policy=no-user-gesture-required"],
  });
  chromePage = await chromium.newPage();
  await chromePage.goto(`http://127.0.0.1:${PORT}/?session=${SESSION}&user=chrome&name=Chrome%20Student`);

  firefox = await puppeteer.launch({
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
  firefoxPage = await firefox.newPage();
  firefoxPage.on("pageerror", (error) => console.error("firefox page error:", error.message));
  await firefoxPage.goto(`http://127.0.0.1:${PORT}/?session=${SESSION}&user=fox&name=Fox%20Student`);
});

after(async () => {
  await firefox?.close().catch(() => {});
  await chromium?.close().catch(() => {});
  desktop?.kill("SIGKILL");
  server?.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
});

test("the desktop decodes Firefox's video (VP8) and Chromium's, and hears both", async () => {
  for (const user of ["fox", "chrome"]) {
    await waitFor(`the desktop to decode and hear ${user}`, () => {
      const r = desktopRemote(user);
      return r?.video?.camera?.framesDecoded > 30 && r.video.camera.lumaSpread > 3 && r.audio?.levelDbfs > -60;
    });
  }
  assert.equal(desktopRemote("fox").video.camera.codec, "vp8", "Firefox has no H.264 here: the link uses VP8");
});

test("Firefox decodes the desktop's and Chromium's video and hears them", async () => {
  for (const user of ["desk", "chrome"]) {
    const got = await waitFor(`Firefox to receive ${user}`, async () => {
      const r = await pageReceives(firefoxPage, user);
      return r && r.framesDecoded > 30 && r.audioEnergy > 0 && r.notBlank ? r : null;
    });
    assert.ok(got.framesDecoded > 30);
  }
  const fromDesk = await pageReceives(firefoxPage, "desk");
  assert.match(fromDesk.codec ?? "", /VP8/i, `the desktop sends Firefox VP8, got ${fromDesk.codec}`);
});

test("Chromium decodes the desktop's and Firefox's video and hears them", async () => {
  for (const user of ["desk", "fox"]) {
    await waitFor(`Chromium to receive ${user}`, async () => {
      const r = await pageReceives(chromePage, user);
      return r && r.framesDecoded > 30 && r.audioEnergy > 0 && r.notBlank ? r : null;
    });
  }
});

test("chat and roster agree across the three", async () => {
  await firefoxPage.evaluate(() => window.classroom.sendChat("hello from firefox"));
  await waitFor("the desktop to get Firefox's message", () =>
    desktopLines.some((l) => l.type === "event" && l.detail.event === "chat-received" && l.detail.message === "hello from firefox"));
  await waitFor("Chromium to get Firefox's message", () =>
    chromePage.evaluate(() => window.classroom.state.chat.some((m) => m.message === "hello from firefox" && m.userName === "Fox Student")));
  const names = (list) => list.map((p) => `${p.userId}:${p.userName}`).sort();
  assert.deepEqual(names(desktopStats().participants), ["chrome:Chrome Student", "fox:Fox Student"]);
  const inFirefox = await firefoxPage.evaluate(() => [...window.classroom.state.participants.values()]);
  assert.deepEqual(names(inFirefox), ["chrome:Chrome Student", "desk:Desk Top"]);
});
