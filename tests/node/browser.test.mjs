// A browser participant and a desktop participant in the same class: Debian's Chromium
// (headless, fake camera and microphone, driven by puppeteer-core; never a downloaded browser)
// on the page our signaling server serves, and the desktop engine's headless participant.
// Everything runs in a network namespace of its own (loopback only).
//
// Needs: root (ip netns), /usr/bin/chromium, CLASSROOM_SIGNALING_BIN and CLASSROOM_BIN.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdtempSync, writeFileSync, chmodSync, rmSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import puppeteer from "puppeteer-core";
import { sleep, waitFor } from "./three-way-lab.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const SERVER_BIN = process.env.CLASSROOM_SIGNALING_BIN;
const DESKTOP_BIN = process.env.CLASSROOM_BIN;
const CHROMIUM = process.env.CLASSROOM_CHROMIUM ?? "/usr/bin/chromium";
const PORT = 3001;
const SESSION = "browser-class";
const ns = `classroom-browser-${process.pid}`;
const work = mkdtempSync(join(tmpdir(), "classroom-browser-"));

let server;
let desktop;
let browser;
let page;
const desktopLines = [];

function inNamespace(program, args) {
  return spawn("ip", ["netns", "exec", ns, program, ...args], {
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "error" },
  });
}

function desktopStats() {
  for (let i = desktopLines.length - 1; i >= 0; i--) if (desktopLines[i].type === "stats") return desktopLines[i];
  return null;
}

function desktopRemote(userId) {
  return desktopStats()?.remotes?.find((r) => r.userId === userId) ?? null;
}

function desktopSend(line) {
  desktop.stdin.write(`${line}\n`);
}

/** Reads the frame stamp (src/media/stamp.rs) from a video element, in the page. */
async function readStampIn(selector) {
  return page.evaluate((selector) => {
    const video = document.querySelector(selector);
    if (!video || !video.videoWidth) return null;
    const [w, h] = [video.videoWidth, video.videoHeight];
    const canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(video, 0, 0, w, h);
    const pixels = ctx.getImageData(0, 0, w, h).data;
    const COLUMNS = 40, ROWS = 2;
    const side = Math.max(4, Math.floor(w / COLUMNS) & ~1);
    if (side * COLUMNS > w || side * ROWS > h) return null;
    const bytes = new Uint8Array(10);
    const lo = Math.floor(side / 4), hi = side - Math.floor(side / 4);
    for (let bit = 0; bit < COLUMNS * ROWS; bit++) {
      const bx = (bit % COLUMNS) * side, by = Math.floor(bit / COLUMNS) * side;
      let sum = 0, n = 0;
      for (let y = by + lo; y < by + hi; y++)
        for (let x = bx + lo; x < bx + hi; x++) { sum += pixels[(y * w + x) * 4 + 1]; n++; }
      if (sum / n > 128) bytes[bit >> 3] |= 0x80 >> (bit % 8);
    }
    let crc = 0;
    for (let i = 0; i < 9; i++) {
      crc ^= bytes[i];
      for (let b = 0; b < 8; b++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
    }
    if (crc !== bytes[9]) return null;
    const counter = ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
    let micros = 0;
    for (let i = 4; i < 9; i++) micros = micros * 256 + bytes[i];
    return { counter, micros, width: w, height: h };
  }, selector);
}

/** Inbound RTP stats of the page's connection to `userId`, by kind and transceiver order. */
async function pageInbound(userId) {
  return page.evaluate(async (userId) => {
    const entry = window.classroom.state.peers.get(userId);
    if (!entry) return null;
    const out = { video: [], audio: [] };
    for (const transceiver of entry.pc.getTransceivers()) {
      const kind = transceiver.receiver.track.kind;
      const report = await transceiver.receiver.getStats();
      for (const s of report.values()) {
        if (s.type === "inbound-rtp") out[kind].push({ framesDecoded: s.framesDecoded ?? 0, totalAudioEnergy: s.totalAudioEnergy ?? 0, audioLevel: s.audioLevel ?? 0, frameWidth: s.frameWidth ?? 0 });
      }
    }
    return out;
  }, userId);
}

before(async () => {
  assert.ok(SERVER_BIN && DESKTOP_BIN, "set CLASSROOM_SIGNALING_BIN and CLASSROOM_BIN");
  execFileSync("ip", ["netns", "add", ns]);
  execFileSync("ip", ["netns", "exec", ns, "ip", "link", "set", "lo", "up"]);

  server = inNamespace(SERVER_BIN, ["serve", "--dev", "--listen", `127.0.0.1:${PORT}`, "--database", join(work, "db.sqlite"), "--ice-server", "stun:127.0.0.1:3478"]);
  await new Promise((resolve, reject) => {
    const lines = createInterface({ input: server.stdout });
    lines.on("line", (line) => line.includes("listening on") && resolve());
    server.on("exit", (code) => reject(new Error(`server exited ${code}`)));
  });

  desktop = inNamespace(DESKTOP_BIN, ["--headless", "--server", `http://127.0.0.1:${PORT}`, "--session", SESSION, "--user", "desk", "--name", "Desk Top", "--instructor", "--bind-ip", "127.0.0.1", "--camera", "640x360@15", "--screen", "synthetic:640x360@5", "--stats-interval-ms", "500"]);
  createInterface({ input: desktop.stdout }).on("line", (line) => {
    try { desktopLines.push(JSON.parse(line)); } catch { /* not JSON */ }
  });
  await waitFor("the desktop participant to join", () => desktopStats()?.joined);

  // Chromium inside the namespace: a wrapper keeps puppeteer's pipe to it.
  const wrapper = join(work, "chromium-in-namespace.sh");
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns} ${CHROMIUM} "$@"\n`);
  chmodSync(wrapper, 0o755);
  browser = await puppeteer.launch({
    executablePath: wrapper,
    headless: true,
    pipe: true,
    userDataDir: join(work, "profile"),
    args: [
      "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--no-sandbox",
      "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--allow-loopback-in-peer-connection",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
  page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 720 });
  page.on("pageerror", (error) => console.error("page error:", error.message));
  await page.goto(`http://127.0.0.1:${PORT}/?session=${SESSION}&user=web&name=Web%20Student`);
  // Nothing starts before the click.
  assert.equal(await page.evaluate(() => window.classroom.state.local.stream), null, "media opened without a click");
  await page.click("#enter");
});

after(async () => {
  await browser?.close().catch(() => {});
  desktop?.kill("SIGKILL");
  server?.kill("SIGKILL");
  try { execFileSync("ip", ["netns", "delete", ns]); } catch { /* gone */ }
  rmSync(work, { recursive: true, force: true });
});

test("the page's socket.io client is the locked npm package's build", () => {
  const served = readFileSync(join(here, "../../signaling-server/web/socket.io.min.js"));
  const locked = readFileSync(join(here, "node_modules/socket.io-client/dist/socket.io.min.js"));
  assert.ok(served.equals(locked), "signaling-server/web/socket.io.min.js differs from node_modules: copy it again");
});

test("the desktop decodes Chromium's H.264 camera and hears its microphone", async () => {
  const remote = await waitFor("desktop to decode the browser's video and audio", () => {
    const r = desktopRemote("web");
    return r && r.video?.camera?.framesDecoded > 30 && r.audio?.levelDbfs > -60 ? r : null;
  }, 40_000);
  assert.ok(remote.video.camera.width >= 320, `picture size ${remote.video.camera.width}`);
  assert.ok(remote.video.camera.lumaSpread > 10, `the picture is blank (luma spread ${remote.video.camera.lumaSpread})`);
  assert.equal(remote.video.camera.decodeErrors, 0);
});

test("Chromium decodes the desktop's video, whose frame stamps it can read, and hears its audio", async () => {
  const selector = 'figure[data-user="desk"][data-source="camera"] video';
  const first = await waitFor("a stamp in the desktop's video, in Chromium", () => readStampIn(selector));
  await sleep(1000);
  const second = await waitFor("a later stamp", () => readStampIn(selector));
  assert.ok(second.counter > first.counter, `stamps advance: ${first.counter} → ${second.counter}`);
  assert.equal(first.width, 640);
  const stats = await waitFor("inbound stats", async () => {
    const s = await pageInbound("desk");
    return s && s.video[0]?.framesDecoded > 10 && s.audio[0]?.totalAudioEnergy > 0 ? s : null;
  });
  assert.ok(stats.video[0].framesDecoded > 10);
});

test("chat goes both ways, with system messages, and both rosters are right", async () => {
  await page.evaluate(() => window.classroom.sendChat("hello from the browser"));
  desktopSend("chat hello from the desktop");
  await waitFor("the desktop's message in the page", () =>
    page.evaluate(() => window.classroom.state.chat.some((m) => m.message === "hello from the desktop" && m.userName === "Desk Top")));
  const chat = await page.evaluate(() => window.classroom.state.chat);
  assert.ok(chat.some((m) => m.type === "system"), "system messages in the page's chat");
  await waitFor("the browser's message at the desktop", () =>
    desktopLines.some((l) => l.type === "event" && l.detail.event === "chat-received" && l.detail.message === "hello from the browser"));
  // Rosters: names, roles, media states.
  const web = desktopStats().participants.find((p) => p.userId === "web");
  assert.equal(web.userName, "Web Student");
  assert.equal(web.isInstructor, false);
  assert.equal(web.connection, "connected");
  const desk = await page.evaluate(() => window.classroom.state.participants.get("desk"));
  assert.equal(desk.userName, "Desk Top");
  assert.equal(desk.isInstructor, true);
  await page.evaluate(() => window.classroom.setMicrophone(false));
  await waitFor("the browser's mute at the desktop", () => desktopStats()?.participants.find((p) => p.userId === "web")?.audioEnabled === false);
  await page.evaluate(() => window.classroom.setMicrophone(true));
});

test("a desktop screen share appears in Chromium as a screen", async () => {
  desktopSend("share-on");
  const selector = 'figure[data-user="desk"][data-source="screen"] video';
  const stamp = await waitFor("the desktop's screen, stamped, in Chromium", () => readStampIn(selector));
  assert.equal(stamp.width, 640);
  await waitFor("the roster to show the share", () =>
    page.evaluate(() => window.classroom.state.participants.get("desk")?.screenSharing === true));
  const layout = await page.evaluate(() => ({
    stage: document.getElementById("videos").classList.contains("has-stage"),
    first: document.querySelector("#videos figure")?.dataset.key,
  }));
  assert.deepEqual(layout, { stage: true, first: "desk:screen" }, "the share is the stage, first");
  if (process.env.CLASSROOM_PAGE_SCREENSHOT) await page.screenshot({ path: process.env.CLASSROOM_PAGE_SCREENSHOT });
  desktopSend("share-off");
  await waitFor("the stage gone", () => page.evaluate(() => !document.getElementById("videos").classList.contains("has-stage")));
});

test("tiles carry mic, hand and network marks, the speaker is highlighted, and the controls have shortcuts", async () => {
  const deskTile = () => page.evaluate(() => {
    const figure = document.querySelector('figure[data-user="desk"][data-source="camera"]');
    return figure && { mic: figure.dataset.mic, hand: figure.dataset.hand, speaking: figure.dataset.speaking, caption: figure.querySelector("figcaption").textContent };
  });
  await waitFor("the desktop heard as the active speaker", async () => (await deskTile())?.speaking === "true", 15_000);
  // On loopback the connection is good; our own tile has no network mark.
  await waitFor("a good network mark on the desktop's tile", () =>
    page.evaluate(() => document.querySelector('figure[data-user="desk"][data-source="camera"]')?.dataset.network === "good"));
  assert.equal(await page.evaluate(() => document.querySelector('figure[data-user="web"][data-source="camera"]')?.dataset.network ?? null), null);
  desktopSend("mute");
  desktopSend("hand-up");
  const marked = await waitFor("the desktop's tile marked muted with its hand up", async () => {
    const t = await deskTile();
    return t?.mic === "off" && t.hand === "up" ? t : null;
  });
  assert.ok(marked.caption.startsWith("🔇 ✋ "), marked.caption);
  await waitFor("a muted desktop is not the speaker", async () => (await deskTile())?.speaking === "false");
  desktopSend("unmute");
  desktopSend("hand-down");
  await waitFor("the marks gone", async () => (await deskTile())?.mic === "on");
  // Alt+M mutes and unmutes the page, Alt+H raises its hand: the desktop sees both.
  await page.keyboard.down("Alt");
  await page.keyboard.press("KeyM");
  await page.keyboard.press("KeyH");
  await page.keyboard.up("Alt");
  await waitFor("the shortcuts at the desktop", () => {
    const web = desktopStats()?.participants.find((p) => p.userId === "web");
    return web?.audioEnabled === false && web.handRaised === true;
  });
  await page.keyboard.down("Alt");
  await page.keyboard.press("KeyM");
  await page.keyboard.press("KeyH");
  await page.keyboard.up("Alt");
  await waitFor("back at the desktop", () => {
    const web = desktopStats()?.participants.find((p) => p.userId === "web");
    return web?.audioEnabled === true && web.handRaised === false;
  });
});

test("tiles follow the roster: a desktop whose camera cannot open is a name tile, marked camera off, and its share is a stage only while it shares", async () => {
  const screenTile = (user) => page.evaluate((user) => document.querySelector(`figure[data-user="${user}"][data-source="screen"]`) !== null, user);
  await waitFor("desk's screen tile gone once desk stopped sharing", async () => !(await screenTile("desk")));
  // The scenario of the issue: an instructor on a machine without a camera (camera 9 is not there).
  const nocam = inNamespace(DESKTOP_BIN, ["--headless", "--server", `http://127.0.0.1:${PORT}`, "--session", SESSION, "--user", "nocam", "--name", "No Cam", "--instructor", "--bind-ip", "127.0.0.1", "--camera", "device:9", "--screen", "synthetic:640x360@5", "--stats-interval-ms", "500"]);
  try {
    const tileOf = () => page.evaluate(() => {
      const figure = document.querySelector('figure[data-user="nocam"][data-source="camera"]');
      return figure && { showing: figure.dataset.showing, initials: figure.querySelector(".name-tile").textContent };
    });
    const camera = await waitFor("the instructor's name tile", async () => {
      const t = await tileOf();
      return t?.showing === "name" && t.initials === "NC" ? t : null;
    }, 30_000);
    assert.equal(camera.initials, "NC");
    await waitFor("the participants panel to say the instructor's camera is off", () =>
      page.evaluate(() => document.querySelector('#participants li[data-user="nocam"]')?.textContent.includes("camera off")));
    assert.equal(await screenTile("nocam"), false, "no screen tile while nobody shares");
    // Connected, and still a name tile: no black picture for a camera that never opened.
    await waitFor("the connection to the instructor", () =>
      page.evaluate(() => window.classroom.state.peers.get("nocam")?.pc.connectionState === "connected"), 30_000);
    await sleep(1000);
    assert.equal((await tileOf()).showing, "name");
    nocam.stdin.write("share-on\n");
    const started = Date.now();
    await waitFor("the stage for the instructor's share", () => screenTile("nocam"), 5_000);
    const took = Date.now() - started;
    assert.ok(took <= 1000, `the stage came after ${took} ms`);
    nocam.stdin.write("share-off\n");
    await waitFor("the stage gone once the share stops", async () => !(await screenTile("nocam")), 5_000);
  } finally {
    nocam.kill("SIGKILL");
  }
  await waitFor("the instructor gone from the page", () =>
    page.evaluate(() => !window.classroom.state.participants.has("nocam")), 30_000);
});

test("a Chromium screen share appears on the desktop as a screen", async () => {
  await page.evaluate(() => window.classroom.setScreenShare(true));
  await waitFor("the desktop to decode the browser's screen", () => desktopRemote("web")?.video?.screen?.framesDecoded > 10, 30_000);
  // The screen came on the third transceiver, not mixed into the camera's pictures.
  const remote = desktopRemote("web");
  assert.notEqual(remote.video.screen.width, remote.video.camera.width, "camera and screen are told apart");
  await waitFor("the desktop's roster to show the share", () =>
    desktopStats()?.participants.find((p) => p.userId === "web")?.screenSharing === true);
  await page.evaluate(() => window.classroom.setScreenShare(false));
});

test("names and chat carrying HTML and script are shown as text in the page, and run nothing", async () => {
  const name = '<img src=x onerror="window.__pwned=1">';
  const chat = '<script>window.__pwned=2</script><b onmouseover="window.__pwned=3">bold</b>';
  const intruder = inNamespace(process.execPath, [join(here, "peer-process.mjs"), `http://127.0.0.1:${PORT}`, SESSION, "mallory", name, "websocket", chat]);
  try {
    await waitFor("the HTML chat message in the page", () =>
      page.evaluate((chat) => window.classroom.state.chat.some((m) => m.message === chat), chat));
    const shown = await page.evaluate(() => ({
      chat: document.getElementById("chat").textContent,
      people: document.getElementById("participants").textContent,
      injected: document.querySelectorAll("#chat img, #chat script, #chat b, #participants img").length,
      pwned: window.__pwned ?? null,
    }));
    assert.equal(shown.pwned, null, "script from a name or a message ran");
    assert.equal(shown.injected, 0, "markup from a name or a message became elements");
    assert.ok(shown.chat.includes(chat), "the message is shown, as text");
    assert.ok(shown.people.includes(name), "the name is shown, as text");
  } finally {
    intruder.kill("SIGKILL");
  }
});

test("Chromium leaves and rejoins; the desktop recovers", async () => {
  await page.evaluate(() => window.classroom.leave());
  await waitFor("the desktop to see the browser leave", () => !desktopStats()?.participants.some((p) => p.userId === "web"));
  await page.evaluate(() => window.classroom.rejoin());
  await waitFor("the desktop to see the browser again", () =>
    desktopStats()?.participants.some((p) => p.userId === "web" && p.connection === "connected"), 30_000);
  const before = desktopRemote("web")?.video?.camera?.framesDecoded ?? 0;
  await waitFor("video from the rejoined browser", () => (desktopRemote("web")?.video?.camera?.framesDecoded ?? 0) > before + 20, 30_000);
});
