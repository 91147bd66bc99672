// Benchmark: the classroom controls in a class of 200 (Socket.IO clients of the Node
// socket.io-client, all in this process), our server pinned to one core and this load
// generator to the other. Measures, with the budget of 50 ms p99:
//   - hand raise → shown to instructors: from a student's `media-state {handRaised}` to the
//     instructor's `hand-queue` that has them last, raised one after another (every 10 ms)
//     and all at once;
//   - reaction → seen by the instructor, one after another;
//   - vote → the live result at the instructor, one after another and all at once;
//   - mute all → every one of the 200 told (`moderated`);
//   - the class view: in the bursts (all hands at once, mute all), until every student has
//     seen every other's change.
// The clients announce `participants-updated` (they take batched updates, as our page and the
// desktop do); CONTROLS_BENCH_BATCHES=0 joins as the browser version's page does, one
// `participant-updated` per change, for the comparison in one run.
// Prints figures, then one JSON line. Asserts nothing.
//
//   taskset -c 1 node tests/node/controls.bench.mjs      (CLASSROOM_SIGNALING_BIN: the
//   release binary; CONTROLS_BENCH_STUDENTS, default 200; CONTROLS_BENCH_SERVER_CORE, default 0)

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";
import { io } from "socket.io-client";

const BIN = process.env.CLASSROOM_SIGNALING_BIN;
const STUDENTS = Number(process.env.CONTROLS_BENCH_STUDENTS ?? 200);
const CORE = process.env.CONTROLS_BENCH_SERVER_CORE ?? "0";
const BATCHES = (process.env.CONTROLS_BENCH_BATCHES ?? "1") !== "0";
const capabilities = BATCHES ? ["participants-updated"] : [];
if (!BIN) throw new Error("set CLASSROOM_SIGNALING_BIN (the release classroom-signaling)");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.round((sorted.length - 1) * p))];
};
const summary = (values) => ({ n: values.length, p50: pct(values, 0.5), p99: pct(values, 0.99), max: Math.max(...values) });
const ms = (x) => `${x.toFixed(2)} ms`;

const server = spawn("taskset", ["-c", CORE, BIN, "serve", "--dev", "--listen", "127.0.0.1:0",
  "--max-participants", String(STUDENTS + 10), "--max-connections-per-ip", "0"], {
  stdio: ["ignore", "pipe", "inherit"],
  env: { ...process.env, CLASSROOM_LOG: "warn" },
});
const url = await new Promise((resolve, reject) => {
  server.on("exit", (code) => reject(new Error(`server exited ${code}`)));
  createInterface({ input: server.stdout }).on("line", (line) => {
    const m = line.match(/listening on (http:\/\/\S+)/);
    if (m) resolve(m[1]);
  });
});

const connect = () => new Promise((resolve, reject) => {
  const socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true });
  socket.on("connect", () => resolve(socket));
  socket.on("connect_error", reject);
});
const SESSION = "bench-class";
const teacher = await connect();
await teacher.timeout(5000).emitWithAck("join-session", { sessionId: SESSION, userId: "teacher", userName: "Teacher", isInstructor: true, capabilities });
const students = [];
for (let i = 0; i < STUDENTS; i++) {
  const socket = await connect();
  const ack = await socket.timeout(10_000).emitWithAck("join-session", { sessionId: SESSION, userId: `s${i}`, userName: `Student ${i}`, capabilities });
  if (!ack.ok) throw new Error(`join refused: ${JSON.stringify(ack.error)}`);
  students.push(socket);
}
await sleep(500);

// Resolves with the time from `start` until every student has seen every other student's
// participant pass `changed` (from `participant-updated` or a batch), or null after 10 s.
function classView(changed, start) {
  const seen = students.map(() => new Set());
  let complete = 0;
  const handlers = [];
  return new Promise((resolve) => {
    const timer = setTimeout(() => finish(null), 10_000);
    const finish = (value) => {
      clearTimeout(timer);
      for (const [socket, one, batch] of handlers) {
        socket.off("participant-updated", one);
        socket.off("participants-updated", batch);
      }
      resolve(value);
    };
    students.forEach((socket, i) => {
      const one = (p) => {
        if (p.userId === `s${i}` || !p.userId.startsWith("s") || !changed(p) || seen[i].has(p.userId)) return;
        seen[i].add(p.userId);
        if (seen[i].size === STUDENTS - 1 && ++complete === STUDENTS) finish(performance.now() - start);
      };
      const batch = ({ participants }) => participants.forEach(one);
      socket.on("participant-updated", one);
      socket.on("participants-updated", batch);
      handlers.push([socket, one, batch]);
    });
  });
}

// ---- hand raise → instructors ----------------------------------------------------------
const sentAt = new Map();
const handLatency = [];
teacher.on("hand-queue", ({ hands }) => {
  const now = performance.now();
  const last = hands[hands.length - 1];
  if (last && sentAt.has(last.userId)) {
    handLatency.push(now - sentAt.get(last.userId));
    sentAt.delete(last.userId);
  }
});
async function raiseAll(gapMs) {
  handLatency.length = 0;
  for (const [i, socket] of students.entries()) {
    sentAt.set(`s${i}`, performance.now());
    socket.emit("media-state", { handRaised: true });
    if (gapMs) await sleep(gapMs);
  }
  const deadline = performance.now() + 10_000;
  while (handLatency.length < STUDENTS && performance.now() < deadline) await sleep(20);
  const got = [...handLatency];
  teacher.emit("moderate", { action: "lower-all-hands" });
  await sleep(500);
  for (const socket of students) socket.emit("media-state", { handRaised: false });
  await sleep(500);
  sentAt.clear();
  return got;
}
const steady = await raiseAll(10);
// At once: every raise's latency includes waiting behind the others (each one is a queue
// of up to 200 sent to the instructor).
const burst = [];
let handsClassView = null;
{
  teacher.removeAllListeners("hand-queue");
  const seen = new Set();
  const start = performance.now();
  teacher.on("hand-queue", ({ hands }) => {
    const now = performance.now();
    for (const h of hands) if (!seen.has(h.userId)) {
      seen.add(h.userId);
      burst.push(now - start);
    }
  });
  const everyoneSaw = classView((p) => p.handRaised, start);
  for (const socket of students) socket.emit("media-state", { handRaised: true });
  const deadline = performance.now() + 10_000;
  while (burst.length < STUDENTS && performance.now() < deadline) await sleep(20);
  handsClassView = await everyoneSaw;
  teacher.removeAllListeners("hand-queue");
  teacher.emit("moderate", { action: "lower-all-hands" });
  await sleep(500);
}

// ---- reaction → the instructor -------------------------------------------------------------
const reactionLatency = [];
{
  const sent = new Map();
  teacher.on("reaction", (r) => {
    if (sent.has(r.userId)) reactionLatency.push(performance.now() - sent.get(r.userId));
    sent.delete(r.userId);
  });
  for (const [i, socket] of students.entries()) {
    sent.set(`s${i}`, performance.now());
    socket.emit("reaction", { emoji: "👏" });
    await sleep(10);
  }
  await sleep(1000);
}

// ---- vote → the live result at the instructor ----------------------------------------------
// A poll per round; students vote one every 10 ms, then all at once. The k-th vote counted is
// the instructor's first result with k voters (one vote each, so the count only grows).
async function voting(gapMs) {
  const poll = new Promise((resolve) => students[0].once("poll-opened", resolve));
  const ack = await teacher.timeout(5000).emitWithAck("moderate", {
    action: "open-poll", poll: { question: "Which planet is largest?", kind: "single", options: ["Mars", "Jupiter", "Venus"] },
  });
  if (!ack.ok) throw new Error(`open-poll refused: ${JSON.stringify(ack.error)}`);
  const { pollId } = await poll;
  const sent = [];
  const latency = [];
  teacher.on("poll-results", (r) => {
    if (r.pollId !== pollId) return;
    const now = performance.now();
    while (latency.length < r.voters && latency.length < sent.length) latency.push(now - sent[latency.length]);
  });
  for (const [i, socket] of students.entries()) {
    sent.push(performance.now());
    socket.emit("vote", { pollId, choices: [i % 3] });
    if (gapMs) await sleep(gapMs);
  }
  const deadline = performance.now() + 10_000;
  while (latency.length < STUDENTS && performance.now() < deadline) await sleep(20);
  teacher.removeAllListeners("poll-results");
  await teacher.timeout(5000).emitWithAck("moderate", { action: "close-poll", pollId });
  return latency;
}
const voteSteady = await voting(10);
const voteBurst = await voting(0);

// ---- mute all → every student told ---------------------------------------------------------
const muteAll = [];
const muteAllClassView = [];
for (let round = 0; round < 5; round++) {
  for (const socket of students) socket.emit("media-state", { audioEnabled: true });
  await sleep(500);
  let told = 0;
  const start = performance.now();
  const done = new Promise((resolve) => {
    for (const socket of students) socket.once("moderated", () => { if (++told === STUDENTS) resolve(); });
  });
  const everyoneSaw = classView((p) => !p.audioEnabled, start);
  const ack = await teacher.timeout(10_000).emitWithAck("moderate", { action: "mute-all" });
  if (!ack.ok) throw new Error(`mute-all refused: ${JSON.stringify(ack.error)}`);
  await Promise.race([done, sleep(10_000)]);
  if (told < STUDENTS) throw new Error(`mute all told ${told} of ${STUDENTS}`);
  muteAll.push(performance.now() - start);
  const view = await everyoneSaw;
  if (view === null) throw new Error("mute all: not every student saw every other muted within 10 s");
  muteAllClassView.push(view);
}

for (const s of students) s.close();
teacher.close();
server.kill("SIGTERM");

const figures = {
  students: STUDENTS,
  handRaiseSteady: summary(steady),
  handRaiseAllAtOnce: summary(burst),
  reaction: summary(reactionLatency),
  voteSteady: summary(voteSteady),
  voteAllAtOnce: summary(voteBurst),
  muteAllEveryoneTold: summary(muteAll),
  batches: BATCHES,
  handsAllAtOnceClassViewMs: handsClassView,
  muteAllClassView: summary(muteAllClassView),
};
console.log(`classroom controls, ${STUDENTS} students, server on core ${CORE}, ${BATCHES ? "clients taking batched updates" : "clients taking one participant-updated per change (the browser version's)"}`);
console.log(`hand raise → instructor, one every 10 ms: p50 ${ms(figures.handRaiseSteady.p50)}, p99 ${ms(figures.handRaiseSteady.p99)} (${steady.length} of ${STUDENTS})`);
console.log(`hand raise → instructor, all at once:     p50 ${ms(figures.handRaiseAllAtOnce.p50)}, p99 ${ms(figures.handRaiseAllAtOnce.p99)} (${burst.length} of ${STUDENTS})`);
console.log(`reaction → instructor:                   p50 ${ms(figures.reaction.p50)}, p99 ${ms(figures.reaction.p99)} (${reactionLatency.length} of ${STUDENTS})`);
console.log(`vote → live result, one every 10 ms:   p50 ${ms(figures.voteSteady.p50)}, p99 ${ms(figures.voteSteady.p99)} (${voteSteady.length} of ${STUDENTS})`);
console.log(`vote → live result, all at once:       p50 ${ms(figures.voteAllAtOnce.p50)}, p99 ${ms(figures.voteAllAtOnce.p99)} (${voteBurst.length} of ${STUDENTS})`);
console.log(`mute all → all ${STUDENTS} told (5 rounds):       p50 ${ms(figures.muteAllEveryoneTold.p50)}, max ${ms(figures.muteAllEveryoneTold.max)}`);
console.log(`all hands at once → every student saw every hand: ${handsClassView === null ? "not within 10 s" : ms(handsClassView)}`);
console.log(`mute all → every student saw every other muted (5 rounds): p50 ${ms(figures.muteAllClassView.p50)}, max ${ms(figures.muteAllClassView.max)}`);
const verdict = (f) => (f.p99 <= 50 ? "met" : "NOT met");
console.log(`budget: 50 ms p99 → hand raise ${verdict(figures.handRaiseSteady)} one at a time, ${verdict(figures.handRaiseAllAtOnce)} all at once; vote ${verdict(figures.voteSteady)} one at a time, ${verdict(figures.voteAllAtOnce)} all at once`);
console.log(JSON.stringify({ bench: "controls", ...figures }));
process.exit(0);
