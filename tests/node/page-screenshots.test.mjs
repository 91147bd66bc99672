// Screenshot tests of the page our server serves, in Debian's Chromium, like the app's
// snapshot tests: a class of three (Ada, the instructor; Ben, who shares a slide; Cy, whose
// camera is off) seen from Cy's page, with the chat open, with unread messages on a closed
// chat, on a narrow window, and with the reconnecting banner after the server is gone.
//
// Every page's camera and screen are canvases with a fixed picture (a colour and a letter, a
// slide) and its microphone is silent, so the screenshots depend on the page and not on a fake
// camera's moving pattern or who happens to be speaking. The pictures still travel through
// real WebRTC connections, so they are compared with a tolerance (page-snapshot.mjs).
//
// Needs root (ip netns), /usr/bin/chromium and CLASSROOM_SIGNALING_BIN.
// UPDATE_SNAPSHOTS=1 stores new images (tests/snapshots/page_*.png).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { NetnsLab } from "./netns-lab.mjs";
import { waitFor, sleep } from "./three-way-lab.mjs";
import { matchSnapshot } from "./page-snapshot.mjs";

const SERVER_BIN = process.env.CLASSROOM_SIGNALING_BIN;
const PORT = 3001;
const SESSION = "biology";
const PEOPLE = [
  { user: "ada", name: "Ada Lovelace", colour: "#3f6fb5", letter: "A", instructor: true },
  { user: "ben", name: "Ben Okafor", colour: "#4f8f4a", letter: "B" },
  { user: "cy", name: "Cy Tran", colour: "#a65f2d", letter: "C" },
];

let lab;
let server;
let browser;
let scratch;
const pages = {};

/** Runs in each page before its scripts: the camera, microphone and screen it is given. */
function fixedMedia({ colour, letter }) {
  const painted = (width, height, draw) => {
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext("2d");
    // Repainted (the same picture) so the track keeps sending frames.
    draw(ctx, width, height);
    setInterval(() => draw(ctx, width, height), 100);
    return canvas.captureStream(10).getVideoTracks()[0];
  };
  const camera = (ctx, w, h) => {
    ctx.fillStyle = colour;
    ctx.fillRect(0, 0, w, h);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(w / 2 - 70, h / 2 - 90, 140, 180);
    ctx.fillStyle = colour;
    ctx.font = "bold 140px sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText(letter, w / 2, h / 2 + 8);
  };
  const slide = (ctx, w, h) => {
    ctx.fillStyle = "#f4f1e8";
    ctx.fillRect(0, 0, w, h);
    ctx.fillStyle = "#1d3557";
    ctx.fillRect(0, 0, w, 120);
    ctx.fillStyle = "#f4f1e8";
    ctx.font = "bold 64px sans-serif";
    ctx.fillText("Photosynthesis", 60, 84);
    const bars = [["#e63946", 380], ["#2a9d8f", 560], ["#e9c46a", 260], ["#457b9d", 460]];
    bars.forEach(([fill, length], i) => {
      ctx.fillStyle = fill;
      ctx.fillRect(100, 200 + i * 120, length * 1.6, 80);
    });
  };
  const silence = () => {
    const audio = new AudioContext();
    const out = audio.createMediaStreamDestination();
    const gain = audio.createGain();
    gain.gain.value = 0;
    const tone = audio.createOscillator();
    tone.connect(gain).connect(out);
    tone.start();
    return out.stream.getAudioTracks()[0];
  };
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    const tracks = [];
    if (constraints.video) tracks.push(painted(640, 360, camera));
    if (constraints.audio) tracks.push(silence());
    return new MediaStream(tracks);
  };
  navigator.mediaDevices.getDisplayMedia = async () => new MediaStream([painted(1280, 720, slide)]);
}

async function openPage(person) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport({ width: 1280, height: 720 });
  page.on("pageerror", (error) => console.error(`${person.user}: page error:`, error.message));
  await page.evaluateOnNewDocument(fixedMedia, person);
  await page.goto(`http://127.0.0.1:${PORT}/?session=${SESSION}&user=${person.user}&name=${encodeURIComponent(person.name)}${person.instructor ? "&instructor=1" : ""}`);
  await page.click("#enter");
  await waitFor(`${person.user} in the class`, () => page.evaluate(() => window.classroom.state.joined));
  return page;
}

/** Every tile of `page` shows what the roster says, and every connection is up and good. */
async function settled(page, expected) {
  await waitFor("the page to settle", () => page.evaluate((expected) => {
    const figures = [...document.querySelectorAll("#videos figure")];
    const shown = figures.map((f) => `${f.dataset.user}:${f.dataset.source}:${f.dataset.showing}`).sort();
    if (JSON.stringify(shown) !== JSON.stringify(expected)) return false;
    const videosPlaying = figures.every((f) => f.dataset.showing !== "picture" || f.querySelector("video").videoWidth > 0);
    const networks = figures.every((f) => f.dataset.user === window.classroom.state.userId || f.dataset.network === "good");
    const connections = [...document.querySelectorAll("#participants li")].every((li) => ["you", "connected"].includes(li.dataset.connection));
    return videosPlaying && networks && connections && document.querySelectorAll('figure[data-speaking="true"]').length === 0;
  }, expected), 40_000);
  // The encoders' first seconds are blurry while the estimate ramps up.
  await sleep(4_000);
}

before(async () => {
  assert.ok(SERVER_BIN, "set CLASSROOM_SIGNALING_BIN");
  lab = new NetnsLab("page-shots");
  server = await lab.startServer(SERVER_BIN, ["serve", "--dev", "--listen", `127.0.0.1:${PORT}`, "--database", join(lab.work, "db.sqlite"), "--ice-server", "stun:127.0.0.1:3478"]);
  browser = await lab.launchChromium("chromium", [
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows",
    "--hide-scrollbars", "--font-render-hinting=none",
  ]);
  scratch = await browser.newPage();
  // One after the other, so the roster's order (and the tiles') is the same on every run.
  for (const person of PEOPLE) pages[person.user] = await openPage(person);
  await pages.ben.evaluate(() => window.classroom.setScreenShare(true));
  await pages.cy.evaluate(() => window.classroom.setCamera(false));
});

after(async () => lab?.close());

test("a class of three with a slide on the stage and a camera off", async () => {
  await settled(pages.cy, ["ada:camera:picture", "ben:camera:picture", "ben:screen:picture", "cy:camera:name"]);
  const layout = await pages.cy.evaluate(() => ({
    stageFirst: document.querySelector("#videos").firstElementChild.dataset.source === "screen",
    cyInitials: document.querySelector('figure[data-user="cy"] .name-tile').textContent,
    people: document.getElementById("people-count").textContent,
    rows: [...document.querySelectorAll("#participants li")].map((li) => li.textContent),
  }));
  assert.deepEqual(layout, {
    stageFirst: true,
    cyInitials: "CT",
    people: "(3)",
    rows: [
      "Cy Tran (you) mic on · camera off",
      "Ada Lovelace instructor mic on · camera on · connected",
      "Ben Okafor mic on · camera on · sharing · connected",
    ],
  });
  console.log(JSON.stringify(await matchSnapshot(pages.cy, scratch, "page_class_sharing")));
});

test("the chat, open, with system messages and private ones", async () => {
  await pages.ada.evaluate(() => window.classroom.sendChat("Welcome! Today: photosynthesis."));
  await pages.ben.evaluate(() => window.classroom.sendChat("Can everyone see my slide?"));
  await pages.ada.evaluate(() => window.classroom.sendChat("Cy, please stay after class.", "cy"));
  await waitFor("Cy to get three messages", () => pages.cy.evaluate(() => window.classroom.state.chat.filter((m) => m.type === "user").length === 3));
  await sleep(300);
  // Open and seen: nothing counts as unread.
  assert.equal(await pages.cy.evaluate(() => document.getElementById("chat-unread").hidden), true);
  console.log(JSON.stringify(await matchSnapshot(pages.cy, scratch, "page_chat_open")));
});

test("messages that arrive while the chat is closed are counted until it is opened", async () => {
  await pages.cy.keyboard.down("Alt");
  await pages.cy.keyboard.press("KeyC");
  await pages.cy.keyboard.up("Alt");
  assert.equal(await pages.cy.evaluate(() => document.getElementById("chat-panel").open), false, "Alt+C closes the chat");
  await pages.ada.evaluate(() => window.classroom.sendChat("Open your books at page 12."));
  await pages.ben.evaluate(() => window.classroom.sendChat("Done."));
  const unread = await waitFor("two unread at Cy", () => pages.cy.evaluate(() => {
    const badge = document.getElementById("chat-unread");
    return !badge.hidden && badge.textContent === "2 new" ? { badge: badge.textContent, title: document.title } : null;
  }));
  assert.equal(unread.title, "(2) Live class biology");
  // Cy's own message is not news to Cy.
  await pages.cy.evaluate(() => window.classroom.sendChat("ok"));
  await sleep(300);
  assert.equal(await pages.cy.evaluate(() => document.getElementById("chat-unread").textContent), "2 new");
  console.log(JSON.stringify(await matchSnapshot(pages.cy, scratch, "page_chat_unread")));
  await pages.cy.click("#chat-panel > summary");
  // The details element's toggle event comes a moment after the click.
  await waitFor("the count gone once the chat is open", () =>
    pages.cy.evaluate(() => document.getElementById("chat-unread").hidden && document.title === "Live class biology"), 5_000);
});

test("a narrow window: the stage over the cameras, the panels below", async () => {
  await pages.cy.setViewport({ width: 480, height: 900 });
  await sleep(1_000);
  const narrow = await pages.cy.evaluate(() => {
    const stage = document.querySelector('figure[data-source="screen"]').getBoundingClientRect();
    const aside = document.querySelector("aside").getBoundingClientRect();
    return { stageFits: stage.right <= window.innerWidth + 1, panelsBelow: aside.top >= stage.bottom, scrollsSideways: document.documentElement.scrollWidth > window.innerWidth };
  });
  assert.deepEqual(narrow, { stageFits: true, panelsBelow: true, scrollsSideways: false });
  await settled(pages.cy, ["ada:camera:picture", "ben:camera:picture", "ben:screen:picture", "cy:camera:name"]);
  console.log(JSON.stringify(await matchSnapshot(pages.cy, scratch, "page_narrow")));
  await pages.cy.setViewport({ width: 1280, height: 720 });
});

test("the reconnecting banner once the server is gone", async () => {
  server.kill("SIGKILL");
  await waitFor("the banner", () => pages.cy.evaluate(() => !document.getElementById("banner").hidden));
  await sleep(1_000);
  assert.match(await pages.cy.evaluate(() => document.getElementById("banner").textContent), /Reconnecting/);
  console.log(JSON.stringify(await matchSnapshot(pages.cy, scratch, "page_reconnecting")));
});
