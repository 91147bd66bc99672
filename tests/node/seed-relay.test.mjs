// The desktop in a class on the browser version's own server: the plain relay of
// reference-server.mjs (the seed's fields only: no protocolVersion, handRaised, joinedAt, leave
// reason, ICE servers or chat history), with the browser version's own client (seed-page/) in
// Debian's Chromium and two headless desktop participants. In order:
//   1. Chromium is there first; a desktop joins second and offers to it.
//   2. A second desktop joins: the three see and hear each other.
//   3. Chromium leaves; a new Chromium participant joins after the desktops and offers to them.
//   4. Chat both ways; the rosters follow mute and camera, joins and leaves.
// Everything runs in a network namespace of its own (loopback only).
//
// Needs: root (ip netns), /usr/bin/chromium, CLASSROOM_BIN.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { NetnsLab } from "./netns-lab.mjs";
import { waitFor, pageReceives } from "./three-way-lab.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const DESKTOP_BIN = process.env.CLASSROOM_BIN;
const PORT = 3001;
const SESSION = "seed-class";

let lab;
let page;
const desktops = {};

const pageUrl = (user, name) =>
  `http://127.0.0.1:${PORT}/?session=${SESSION}&user=${user}&name=${encodeURIComponent(name)}`;

function startDesktop(user, name) {
  desktops[user] = lab.startDesktop(DESKTOP_BIN, [
    "--server", `http://127.0.0.1:${PORT}`, "--session", SESSION, "--user", user, "--name", name,
    "--bind-ip", "127.0.0.1", "--camera", "320x180@15", "--screen", "none", "--stats-interval-ms", "500",
  ]);
  return desktops[user];
}

/** The desktop decodes `user`'s camera (not blank) and hears its microphone. */
function decodesAndHears(desktop, user, minFrames = 30) {
  const r = desktop.remote(user);
  return r?.video?.camera?.framesDecoded > minFrames && r.video.camera.lumaSpread > 3 && r.audio?.levelDbfs > -60 ? r : null;
}

/** The page decodes `user`'s video (not blank) and receives its audio. */
async function pageDecodesAndHears(user) {
  const r = await pageReceives(page, user);
  return r && r.framesDecoded > 30 && r.audioEnergy > 0 && r.notBlank ? r : null;
}

const pageRoster = () => page.evaluate(() => [...window.classroom.state.participants.values()]);

before(async () => {
  assert.ok(DESKTOP_BIN, "set CLASSROOM_BIN");
  lab = new NetnsLab("seed");
  await lab.startServer("node", [join(here, "reference-server.mjs"), "--port", String(PORT)]);
  const browser = await lab.launchChromium();
  page = await browser.newPage();
  page.on("pageerror", (error) => console.error("page error:", error.message));
  await page.goto(pageUrl("web", "Web Student"));
  await waitFor("the page to join", () => page.evaluate(() => window.classroom?.state.joined));
});

after(async () => lab?.close());

test("a desktop joining second sees and hears Chromium, and Chromium it", async () => {
  const desk = startDesktop("desk1", "Desk One");
  await waitFor("the desktop to join", () => desk.stats()?.joined);
  const stats = desk.stats();
  assert.deepEqual(stats.server, { kind: "browser-relay", protocolVersion: 0, extensions: false });
  const remote = await waitFor("desk1 to decode and hear the browser", () => decodesAndHears(desk, "web"));
  assert.equal(remote.video.camera.decodeErrors, 0);
  await waitFor("the browser to decode and hear desk1", () => pageDecodesAndHears("desk1"));
  const web = desk.participant("web");
  assert.equal(web.userName, "Web Student");
  assert.equal(web.isInstructor, false);
  assert.equal(web.audioEnabled, true);
  assert.equal(web.videoEnabled, true);
  assert.equal(web.handRaised, false, "the relay sends no handRaised: false by default");
  assert.equal(web.connection, "connected");
});

test("a second desktop joins: the two desktops and Chromium see and hear each other", async () => {
  const desk2 = startDesktop("desk2", "Desk Two");
  await waitFor("desk2 to decode and hear the browser", () => decodesAndHears(desk2, "web"));
  await waitFor("desk2 to decode and hear desk1", () => decodesAndHears(desk2, "desk1"));
  await waitFor("desk1 to decode and hear desk2", () => decodesAndHears(desktops.desk1, "desk2"));
  await waitFor("the browser to decode and hear desk2", () => pageDecodesAndHears("desk2"));
  const names = (list) => list.map((p) => `${p.userId}:${p.userName}`).sort();
  assert.deepEqual(names(desktops.desk1.stats().participants), ["desk2:Desk Two", "web:Web Student"]);
  assert.deepEqual(names(desk2.stats().participants), ["desk1:Desk One", "web:Web Student"]);
  assert.deepEqual(names(await pageRoster()), ["desk1:Desk One", "desk2:Desk Two"]);
});

test("when Chromium joins after the desktops, it offers to them and media flows both ways", async () => {
  await page.evaluate(() => window.classroom.leave());
  for (const desk of Object.values(desktops)) {
    await waitFor("the desktops to see the browser leave (user-left without a reason)", () => !desk.participant("web"));
  }
  await page.goto(pageUrl("late", "Late Student"));
  await waitFor("the new page to join", () => page.evaluate(() => window.classroom?.state.joined));
  for (const [user, desk] of Object.entries(desktops)) {
    await waitFor(`${user} to decode and hear the late browser`, () => decodesAndHears(desk, "late"));
    await waitFor(`the late browser to decode and hear ${user}`, () => pageDecodesAndHears(user));
    assert.equal(desk.participant("late")?.userName, "Late Student");
    assert.ok(desk.hadEvent("participant-joined", (d) => d.user_id === "late"), "the join was announced");
  }
});

test("chat goes both ways and the rosters follow mute, camera and leaving", async () => {
  await page.evaluate(() => window.classroom.sendChat("hello from the browser"));
  desktops.desk1.send("chat hello from the desktop");
  for (const desk of Object.values(desktops)) {
    await waitFor("the browser's message at each desktop", () =>
      desk.hadEvent("chat-received", (d) => d.message === "hello from the browser" && d.from === "Late Student"));
  }
  await waitFor("the desktop's message in the page", () =>
    page.evaluate(() => window.classroom.state.chat.some((m) => m.message === "hello from the desktop" && m.userName === "Desk One")));
  await waitFor("the desktop's message at the other desktop", () =>
    desktops.desk2.hadEvent("chat-received", (d) => d.message === "hello from the desktop"));

  await page.evaluate(() => window.classroom.setMicrophone(false));
  await page.evaluate(() => window.classroom.setCamera(false));
  for (const desk of Object.values(desktops)) {
    await waitFor("the browser's mute and camera-off at each desktop", () => {
      const late = desk.participant("late");
      return late && late.audioEnabled === false && late.videoEnabled === false;
    });
  }
  desktops.desk1.send("mute");
  await waitFor("desk1's mute in the page", async () =>
    (await pageRoster()).some((p) => p.userId === "desk1" && p.audioEnabled === false));
  await waitFor("desk1's mute at desk2", () => desktops.desk2.participant("desk1")?.audioEnabled === false);

  await desktops.desk2.leave();
  await waitFor("the page to see desk2 leave", async () => !(await pageRoster()).some((p) => p.userId === "desk2"));
  await waitFor("desk1 to see desk2 leave", () => !desktops.desk1.participant("desk2"));
  assert.ok(desktops.desk1.hadEvent("participant-left", (d) => d.user_id === "desk2" && d.user_name === "Desk Two"));
});
