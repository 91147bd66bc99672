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
import { startThreeWay, waitFor, pageReceives } from "./three-way-lab.mjs";

let lab;

before(async () => {
  lab = await startThreeWay({ desktopCodecs: process.env.CLASSROOM_DESKTOP_CODECS ?? "h264,vp8" });
});

after(async () => lab?.close());

test("the desktop decodes Firefox's video (VP8) and Chromium's, and hears both", async () => {
  for (const user of ["fox", "chrome"]) {
    await waitFor(`the desktop to decode and hear ${user}`, () => {
      const r = lab.desktopRemote(user);
      return r?.video?.camera?.framesDecoded > 30 && r.video.camera.lumaSpread > 3 && r.audio?.levelDbfs > -60;
    });
  }
  assert.equal(lab.desktopRemote("fox").video.camera.codec, "vp8", "Firefox has no H.264 here: the link uses VP8");
});

test("Firefox decodes the desktop's and Chromium's video and hears them", async () => {
  for (const user of ["desk", "chrome"]) {
    const got = await waitFor(`Firefox to receive ${user}`, async () => {
      const r = await pageReceives(lab.firefoxPage, user);
      return r && r.framesDecoded > 30 && r.audioEnergy > 0 && r.notBlank ? r : null;
    });
    assert.ok(got.framesDecoded > 30);
  }
  const fromDesk = await pageReceives(lab.firefoxPage, "desk");
  assert.match(fromDesk.codec ?? "", /VP8/i, `the desktop sends Firefox VP8, got ${fromDesk.codec}`);
});

test("Chromium decodes the desktop's and Firefox's video and hears them", async () => {
  for (const user of ["desk", "fox"]) {
    await waitFor(`Chromium to receive ${user}`, async () => {
      const r = await pageReceives(lab.chromePage, user);
      return r && r.framesDecoded > 30 && r.audioEnergy > 0 && r.notBlank ? r : null;
    });
  }
});

test("chat and roster agree across the three", async () => {
  await lab.firefoxPage.evaluate(() => window.classroom.sendChat("hello from firefox"));
  await waitFor("the desktop to get Firefox's message", () =>
    lab.desktopLines.some((l) => l.type === "event" && l.detail.event === "chat-received" && l.detail.message === "hello from firefox"));
  await waitFor("Chromium to get Firefox's message", () =>
    lab.chromePage.evaluate(() => window.classroom.state.chat.some((m) => m.message === "hello from firefox" && m.userName === "Fox Student")));
  const names = (list) => list.map((p) => `${p.userId}:${p.userName}`).sort();
  assert.deepEqual(names(lab.desktopStats().participants), ["chrome:Chrome Student", "fox:Fox Student"]);
  const inFirefox = await lab.firefoxPage.evaluate(() => [...window.classroom.state.participants.values()]);
  assert.deepEqual(names(inFirefox), ["chrome:Chrome Student", "desk:Desk Top"]);
});
