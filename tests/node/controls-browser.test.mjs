// The classroom controls end to end: a desktop instructor (the headless participant) runs a
// class of Chromium students on the page our server serves. "Mute all" silences them (the
// audio the instructor hears from each drops to silence), the waiting room holds a Chromium
// student with no media and nothing of the class until the instructor admits them, and a
// removed student's page is disconnected and says so. Everything runs in a loopback-only
// network namespace (netns-lab.mjs).
//
// Needs: root (ip netns), /usr/bin/chromium, CLASSROOM_SIGNALING_BIN and CLASSROOM_BIN.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { NetnsLab, countPeerConnections } from "./netns-lab.mjs";
import { sleep, waitFor } from "./three-way-lab.mjs";

const SERVER_BIN = process.env.CLASSROOM_SIGNALING_BIN;
const DESKTOP_BIN = process.env.CLASSROOM_BIN;
const PORT = 3001;
const SESSION = "controls-class";
const STUDENTS = ["ada", "bob"];

let lab;
let desktop;
let browser;
const pages = new Map();
const logs = [];

async function openStudent(user) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport({ width: 1280, height: 720 });
  // Someone waiting must make no peer connection.
  await countPeerConnections(page);
  page.on("pageerror", (error) => console.error(`${user} page error:`, error.message));
  await page.goto(`http://127.0.0.1:${PORT}/?session=${SESSION}&user=${user}&name=${user}`);
  await page.click("#enter");
  pages.set(user, page);
  return page;
}

const moderate = (json) => desktop.send(`moderate ${JSON.stringify(json)}`);
/** The audio the instructor's desktop receives from `user`: packets so far and the level. */
const heard = (user) => desktop.remote(user)?.audio ?? null;

before(async () => {
  assert.ok(SERVER_BIN && DESKTOP_BIN, "set CLASSROOM_SIGNALING_BIN and CLASSROOM_BIN");
  lab = new NetnsLab("controls");
  await lab.startServer(SERVER_BIN, [
    "serve", "--dev", "--listen", `127.0.0.1:${PORT}`, "--database", join(lab.work, "db.sqlite"),
    "--ice-server", "stun:127.0.0.1:3478",
  ], { logTo: logs });
  // The instructor joins first: in development mode the first to claim it is the instructor.
  desktop = lab.startDesktop(DESKTOP_BIN, [
    "--server", `http://127.0.0.1:${PORT}`, "--session", SESSION, "--user", "grace",
    "--name", "Grace", "--instructor", "--bind-ip", "127.0.0.1", "--camera", "640x360@15",
    "--stats-interval-ms", "250",
  ], { logTo: logs });
  await waitFor("the desktop instructor to join", () => desktop.stats()?.joined && desktop.stats()?.class?.isInstructor);
  browser = await lab.launchChromium("chromium", [
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
  ]);
  for (const user of STUDENTS) await openStudent(user);
  for (const user of STUDENTS) {
    await waitFor(`the instructor to hear ${user}`, () => (heard(user)?.levelDbfs ?? -100) > -60, 30_000);
  }
});

after(async () => {
  await lab?.close();
  if (process.env.CLASSROOM_CONTROLS_TEST_LOG) console.error(logs.join("\n"));
});

test("mute all silences every student: their pages turn the microphone off and the instructor hears silence", async () => {
  moderate({ action: "mute-all" });
  for (const user of STUDENTS) {
    const page = pages.get(user);
    await waitFor(`${user}'s page to obey and say who`, () => page.evaluate(() =>
      window.classroom.state.local.audio === false && /Grace muted you/.test(document.getElementById("notice-text").textContent)));
  }
  // What the instructor hears from each: silence (no level, or nothing louder than -70 dBFS)
  // within 3 s, while the peer connections stay up.
  for (const user of STUDENTS) {
    await waitFor(`the instructor to hear silence from ${user}`, async () => {
      const before = heard(user);
      await sleep(600);
      const after = heard(user);
      const quiet = after.levelDbfs === null || after.levelDbfs === undefined || after.levelDbfs < -70;
      return quiet || after.packets === before.packets;
    }, 3_000);
  }
  const participants = desktop.stats().participants;
  for (const user of STUDENTS) {
    assert.equal(participants.find((p) => p.userId === user)?.audioEnabled, false, `${user} shows as muted`);
  }
  // Unmuting stays the student's own choice.
  await pages.get("ada").evaluate(() => window.classroom.setMicrophone(true));
  await waitFor("the instructor to hear ada again", () => (heard("ada")?.levelDbfs ?? -100) > -60, 10_000);
});

test("the waiting room holds a Chromium student with no media and nothing of the class until admitted", async () => {
  moderate({ action: "set-waiting-room", policy: "ask" });
  await waitFor("the class to ask", () => pages.get("ada").evaluate(() => window.classroom.state.settings.waitingRoom === "ask"));
  const cy = await openStudent("cy");
  await waitFor("cy to wait", () => cy.evaluate(() => window.classroom.state.waiting));
  await waitFor("the instructor to see cy waiting", () => desktop.stats().class.waitingRoom.some((w) => w.userId === "cy"));
  assert.match(await cy.$eval("#waiting-text", (el) => el.textContent), /number 1 in line/);
  await sleep(2_000);
  const waiting = await cy.evaluate(() => ({
    made: window.peerConnectionsMade,
    joined: window.classroom.state.joined,
    roster: window.classroom.state.participants.size,
    chat: window.classroom.state.chat.length,
  }));
  assert.deepEqual(waiting, { made: 0, joined: false, roster: 0, chat: 0 }, "nothing of the class before admission");
  assert.equal(desktop.participant("cy"), null, "not in the instructor's class yet");
  moderate({ action: "admit", targetUserId: "cy" });
  await waitFor("cy to be admitted", () => cy.evaluate(() => window.classroom.state.joined));
  await waitFor("the instructor to decode cy's camera", () => desktop.remote("cy")?.video?.camera?.framesDecoded > 10, 30_000);
});

test("a removed student's page is disconnected and says so; the class sees them go", async () => {
  moderate({ action: "remove", targetUserId: "bob" });
  const bob = pages.get("bob");
  await waitFor("bob's page to end", () => bob.evaluate(() => !document.getElementById("ended").hidden));
  assert.match(await bob.$eval("#ended-text", (el) => el.textContent), /Grace removed you from the class/);
  assert.equal(await bob.evaluate(() => window.classroom.state.left), true);
  await waitFor("the instructor to see bob leave", () => desktop.participant("bob") === null);
  await waitFor("ada's page to see bob leave", () => pages.get("ada").evaluate(() => !window.classroom.state.participants.has("bob")));
  // No reconnect brings bob back by itself.
  await sleep(1_500);
  assert.equal(desktop.participant("bob"), null);
});

test("a poll the desktop instructor opens is answered on the Chromium pages, stored, and its results shown in both", async () => {
  moderate({ action: "open-poll", poll: { question: "Which planet is largest?", kind: "single", options: ["Mars", "Jupiter"] } });
  const voters = ["ada", "cy"];
  for (const [i, user] of voters.entries()) {
    const page = pages.get(user);
    await waitFor(`${user}'s page to show the poll`, () => page.evaluate(() => !document.getElementById("poll").hidden));
    assert.match(await page.$eval("#poll-question", (el) => el.textContent), /Which planet is largest\?/);
    await page.click(`#poll-options button[data-choice="${i === 0 ? 1 : 0}"]`);
    await waitFor(`${user}'s vote to be taken`, () => page.evaluate(() => window.classroom.state.myVote.length === 1));
  }
  // Ada changes her mind: one vote per user, the later one counts.
  await pages.get("ada").click('#poll-options button[data-choice="0"]');
  await waitFor("ada's new vote", () => pages.get("ada").evaluate(() => window.classroom.state.myVote[0] === 0));
  const pollId = await pages.get("ada").evaluate(() => window.classroom.state.poll.pollId);
  // The desktop instructor's poll panel has the live results: both answered, on Mars.
  await waitFor("the desktop to show the live results", () => {
    const poll = desktop.stats().class.poll;
    return poll?.poll.pollId === pollId && poll.results?.voters === 2 && poll.results.totals[0] === 2;
  });
  moderate({ action: "close-poll", pollId });
  moderate({ action: "publish-results", pollId });
  for (const user of voters) {
    const page = pages.get(user);
    await waitFor(`${user}'s page to show the results`, () => page.evaluate(() => document.querySelectorAll("#poll-results li").length === 3));
    const shown = await page.$$eval("#poll-results li", (items) => items.map((li) => li.textContent));
    assert.deepEqual(shown, ["Mars: 2", "Jupiter: 0", "2 answered"]);
  }
  await waitFor("the desktop to see the poll closed", () => desktop.stats().class.poll?.closed === true);
  // Stored in SQLite, as the export gives it.
  const fetchIt = `fetch("http://127.0.0.1:${PORT}/sessions/${SESSION}/polls?format=json").then((r) => r.text()).then((t) => process.stdout.write(t))`;
  const { execFileSync } = await import("node:child_process");
  const polls = JSON.parse(execFileSync("ip", ["netns", "exec", lab.ns, process.execPath, "-e", fetchIt]).toString());
  const stored = polls.find((p) => p.pollId === pollId);
  assert.deepEqual(stored.answers.map((a) => [a.voter, a.choices]).sort(), [["ada", [0]], ["cy", [0]]]);
  assert.ok(stored.closedAt > 0);
});
