// The classroom controls of docs/protocol.md ("Running the class"), driven with the Node
// socket.io-client against our server: every control works for an instructor and is refused
// with `forbidden` for a student; lock settings hold against a client that ignores the UI; the
// hand queue's order with 20 clients raising at once is the server's order of arrival; a
// removed, barred user cannot rejoin; nobody in the waiting room receives an offer, a roster
// or a chat message. Only our server has these controls (the browser version's relay and
// protocol-relay.mjs know none of them).

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { OURS, SDP, connect, startServer, uid, quiet, tempDir } from "./harness.mjs";

const skip = OURS ? false : "only our server has the classroom controls";

describe("classroom controls", { skip }, () => {
  let server;
  let dir;
  const peers = [];
  const peer = async () => {
    const p = await connect(server.url);
    peers.push(p);
    return p;
  };
  /** An instructor and `n` students joined to a new session, in that order. */
  const classOf = async (n, { sessionId = uid("class") } = {}) => {
    const teacher = await peer();
    teacher.userId = uid("teacher");
    teacher.ack = await teacher.join(sessionId, teacher.userId, "Teacher", true);
    const students = [];
    for (let i = 0; i < n; i++) {
      const p = await peer();
      p.userId = uid(`s${i}`);
      p.userName = `Student ${i}`;
      p.ack = await p.join(sessionId, p.userId, p.userName, false);
      students.push(p);
    }
    return { sessionId, teacher, students };
  };
  const moderate = (p, action, fields = {}) => p.request("moderate", { action, ...fields });

  before(async () => {
    dir = tempDir();
    server = await startServer({ database: join(dir.dir, "classroom.db"), args: ["--max-participants", "60"] });
  });
  after(async () => {
    for (const p of peers) p.close();
    await server.stop();
    dir.remove();
  });

  it("refuses every control to a student with forbidden, and changes nothing", async () => {
    const { teacher, students: [a, b] } = await classOf(2);
    const target = { targetUserId: b.userId };
    const actions = [
      ["mute", target], ["mute-all", {}], ["ask-unmute", target], ["stop-camera", target],
      ["stop-screen", target], ["remove", { ...target, bar: true }], ["set-locked", { locked: true }],
      ["end-class", {}], ["set-locks", { locks: { microphone: true } }],
      ["set-waiting-room", { policy: "ask" }], ["admit", target], ["admit-all", {}], ["deny", target],
      ["grant-co-instructor", { targetUserId: a.userId }], ["revoke-co-instructor", target],
      ["lower-hand", target], ["lower-all-hands", {}], ["delete-message", { messageId: "m" }],
    ];
    for (const [action, fields] of actions) {
      const ack = await moderate(a, action, fields);
      assert.equal(ack.ok, false, action);
      assert.equal(ack.error.code, "forbidden", action);
    }
    await quiet(200);
    assert.deepEqual(b.received("moderated"), []);
    assert.deepEqual(b.received("removed"), []);
    assert.deepEqual(teacher.received("class-settings"), []);
    // A student's isInstructor in development mode is ignored once the class has its instructor.
    const claimer = await peer();
    const ack = await claimer.join(teacher.ack.sessionId, uid("claimer"), "Claimer", true);
    assert.equal(ack.self.isInstructor, false);
    // An unknown action is invalid, not forbidden.
    const unknown = await moderate(teacher, "launch-missiles");
    assert.equal(unknown.error.code, "invalid-payload");
  });

  it("with --dev-instructor, that user instructs however late they join, and nobody else's claim is taken", async () => {
    const named = await startServer({ args: ["--dev-instructor", "grace"] });
    try {
      const sessionId = uid("class");
      const early = await connect(named.url);
      const first = await early.join(sessionId, "eve", "Eve", true);
      assert.equal(first.self.isInstructor, false, "the first to claim it is not the named instructor");
      assert.equal((await early.request("moderate", { action: "mute-all" })).error.code, "forbidden");
      const grace = await connect(named.url);
      const second = await grace.join(sessionId, "grace", "Grace", false);
      assert.equal(second.self.isInstructor, true, "the named user instructs without claiming it");
      assert.equal((await grace.request("moderate", { action: "mute-all" })).ok, true);
      await early.waitFor("moderated", (m) => m.action === "mute");
      early.close();
      grace.close();
    } finally {
      await named.stop();
    }
  });

  it("mutes one student and all; the student is told, the others see it, unmuting stays theirs", async () => {
    const { teacher, students: [a, b] } = await classOf(2);
    assert.equal((await moderate(teacher, "mute", { targetUserId: a.userId })).ok, true);
    const told = await a.waitFor("moderated");
    assert.deepEqual(told, { action: "mute", byUserId: teacher.userId, byUserName: "Teacher" });
    await b.waitFor("participant-updated", (p) => p.userId === a.userId && p.audioEnabled === false);
    await teacher.waitFor("participant-updated", (p) => p.userId === a.userId && p.audioEnabled === false);
    const unmute = await a.request("media-state", { audioEnabled: true });
    assert.equal(unmute.participant.audioEnabled, true);
    assert.equal((await moderate(teacher, "mute-all")).ok, true);
    await a.waitFor("moderated", (m) => m.action === "mute" && a.received("moderated").length === 2);
    await b.waitFor("moderated", (m) => m.action === "mute");
    assert.deepEqual(teacher.received("moderated"), [], "the instructor is not muted");
    // Ask to unmute is a request only.
    await moderate(teacher, "ask-unmute", { targetUserId: b.userId });
    await b.waitFor("moderated", (m) => m.action === "ask-unmute");
    // Stop camera and screen.
    await b.request("media-state", { screenSharing: true });
    await moderate(teacher, "stop-camera", { targetUserId: b.userId });
    await moderate(teacher, "stop-screen", { targetUserId: b.userId });
    await teacher.waitFor("participant-updated", (p) => p.userId === b.userId && !p.videoEnabled && !p.screenSharing);
  });

  it("makes a co-instructor who moderates students but not the instructor", async () => {
    const { teacher, students: [a, b] } = await classOf(2);
    await moderate(teacher, "grant-co-instructor", { targetUserId: a.userId });
    await b.waitFor("participant-updated", (p) => p.userId === a.userId && p.coInstructor === true && p.isInstructor === true);
    await a.waitFor("waiting-room");
    assert.equal((await moderate(a, "mute", { targetUserId: b.userId })).ok, true);
    const up = await moderate(a, "mute", { targetUserId: teacher.userId });
    assert.equal(up.error.code, "forbidden");
    assert.equal((await moderate(a, "end-class")).error.code, "forbidden");
    await moderate(teacher, "revoke-co-instructor", { targetUserId: a.userId });
    assert.equal((await moderate(a, "mute", { targetUserId: b.userId })).error.code, "forbidden");
  });

  it("removes a student: they are told and disconnected, the others see a removal, and barred they cannot rejoin", async () => {
    const { sessionId, teacher, students: [a, b] } = await classOf(2);
    assert.equal((await moderate(teacher, "remove", { targetUserId: a.userId, bar: true })).ok, true);
    const removed = await a.waitFor("removed");
    assert.equal(removed.byUserName, "Teacher");
    assert.ok(removed.barredUntil > Date.now() + 23 * 3600_000);
    await a.waitFor("disconnect");
    const left = await b.waitFor("user-left", (l) => l.userId === a.userId);
    assert.equal(left.reason, "removed");
    await b.waitFor("chat-message", (m) => m.message === "Student 0 was removed from the class");
    const again = await peer();
    const refused = await again.request("join-session", { sessionId, userId: a.userId, userName: "Student 0" });
    assert.equal(refused.ok, false);
    assert.equal(refused.error.code, "barred");
    // A removal without a bar lets them come back.
    await moderate(teacher, "remove", { targetUserId: b.userId });
    await b.waitFor("disconnect");
    const back = await peer();
    assert.equal((await back.join(sessionId, b.userId, "Student 1")).ok, true);
  });

  it("a locked class takes nobody new; members and instructors still come in", async () => {
    const { sessionId, teacher, students: [a] } = await classOf(1);
    await moderate(teacher, "set-locked", { locked: true });
    const settings = await a.waitFor("class-settings");
    assert.equal(settings.locked, true);
    const late = await peer();
    const refused = await late.request("join-session", { sessionId, userId: uid("late"), userName: "Late" });
    assert.equal(refused.error.code, "class-locked");
    const again = await peer();
    assert.equal((await again.join(sessionId, a.userId, "Student 0")).ok, true, "a member reconnecting");
  });

  it("lock settings hold against a client that ignores the UI", async () => {
    const { sessionId, teacher, students: [a, b] } = await classOf(2);
    await a.request("media-state", { screenSharing: true });
    const locks = { microphone: true, camera: true, screenShare: true, publicChat: true, privateChat: true };
    assert.equal((await moderate(teacher, "set-locks", { locks })).ok, true);
    await a.waitFor("class-settings", (s) => s.locks.microphone && s.locks.privateChat);
    // What was on is turned off, and the student's client is told.
    await teacher.waitFor("participant-updated", (p) => p.userId === a.userId && !p.audioEnabled && !p.videoEnabled && !p.screenSharing);
    const actions = a.received("moderated").map((m) => m.action).sort();
    assert.deepEqual(actions, ["mute", "stop-camera", "stop-screen"]);
    // The hand-written client asks anyway: refused, nothing changes.
    for (const state of [{ audioEnabled: true }, { videoEnabled: true }, { screenSharing: true }]) {
      const ack = await a.request("media-state", state);
      assert.equal(ack.error.code, "forbidden", JSON.stringify(state));
    }
    const chat = await a.request("chat-message", { message: "hello?" });
    assert.equal(chat.error.code, "forbidden");
    const dm = await a.request("chat-message", { message: "psst", toUserId: teacher.userId });
    assert.equal(dm.error.code, "forbidden");
    await quiet(200);
    assert.deepEqual(b.received("chat-message", (m) => m.type === "user"), []);
    // The instructor is never locked; a joiner comes in with the locked media off.
    assert.equal((await teacher.request("chat-message", { message: "quiet please" })).ok, true);
    const joiner = await peer();
    const joined = await joiner.join(sessionId, uid("joiner"), "Joiner");
    assert.equal(joined.self.audioEnabled, false);
    assert.equal(joined.self.videoEnabled, false);
    assert.equal(joined.settings.locks.camera, true);
  });

  it("keeps students' cameras for the instructors only on the SFU: refused without one, and a mesh under --sfu auto moves to it", async () => {
    // This server runs no SFU: refused, and nobody is told a change.
    const { teacher, students: [a] } = await classOf(1);
    const refused = await moderate(teacher, "set-locks", { locks: { studentCameras: true } });
    assert.equal(refused.ok, false);
    assert.equal(refused.error.code, "sfu-required");
    await quiet(200);
    assert.deepEqual(a.received("class-settings"), []);
    // Under --sfu auto a class of two is a mesh until the lock, then on the SFU while it holds.
    const auto = await startServer({ args: ["--sfu", "auto", "--media-port", "0"] });
    const clients = [];
    try {
      const sessionId = uid("cameras");
      const join = async (userId, instructor, capabilities = ["sfu"]) => {
        const c = await connect(auto.url);
        clients.push(c);
        c.ack = await c.join(sessionId, userId, userId, instructor, capabilities);
        return c;
      };
      const t = await join("t", true);
      const s = await join("s", false);
      assert.equal(s.ack.topology, "mesh");
      assert.equal((await moderate(t, "set-locks", { locks: { studentCameras: true } })).ok, true);
      for (const c of [t, s]) {
        const told = await c.waitFor("session-joined", (j) => j.topology === "sfu");
        assert.equal(told.settings.locks.studentCameras, true);
      }
      // A client that knows only the mesh is told the class needs a newer one.
      const old = await connect(auto.url);
      clients.push(old);
      const oldAck = await old.request("join-session", { sessionId, userId: "old", userName: "Old" });
      assert.equal(oldAck.error?.code, "sfu-required");
      // Lifted, the class of two goes back to a mesh.
      assert.equal((await moderate(t, "set-locks", { locks: {} })).ok, true);
      await s.waitFor("session-joined", (j) => j.topology === "mesh");
      // With a mesh-only member present, the lock is refused, naming them.
      const mesh = await join("m", false, []);
      assert.equal(mesh.ack.topology, "mesh");
      const again = await moderate(t, "set-locks", { locks: { studentCameras: true } });
      assert.equal(again.error?.code, "sfu-required");
      assert.match(again.error.message, /m's client/);
    } finally {
      for (const c of clients) c.close();
      await auto.stop();
    }
  });

  it("private chat reaches its two people only; students write privately to instructors only; a deleted message is gone", async () => {
    const { sessionId, teacher, students: [a, b] } = await classOf(2);
    const dm = await a.request("chat-message", { message: "may I leave early?", toUserId: teacher.userId });
    assert.equal(dm.ok, true);
    assert.equal(dm.message.toUserId, teacher.userId);
    assert.equal(dm.message.toUserName, "Teacher");
    await teacher.waitFor("chat-message", (m) => m.message === "may I leave early?");
    const toPeer = await a.request("chat-message", { message: "hi", toUserId: b.userId });
    assert.equal(toPeer.error.code, "forbidden");
    assert.equal((await teacher.request("chat-message", { message: "see me after", toUserId: b.userId })).ok, true);
    await b.waitFor("chat-message", (m) => m.message === "see me after");
    await quiet(200);
    assert.deepEqual(b.received("chat-message", (m) => m.message === "may I leave early?"), []);
    assert.deepEqual(a.received("chat-message", (m) => m.message === "see me after"), []);
    // The history keeps each private message for its two people only.
    const later = await peer();
    const joined = await later.join(sessionId, uid("later"), "Later");
    assert.equal(joined.chatHistory.filter((m) => m.toUserId).length, 0);
    // Deleting: gone for everyone, and from the stored history.
    const pub = await b.request("chat-message", { message: "something rude" });
    assert.equal((await moderate(teacher, "delete-message", { messageId: pub.message.id })).ok, true);
    await a.waitFor("chat-deleted", (d) => d.messageId === pub.message.id);
    const after = await peer();
    const rejoined = await after.join(sessionId, uid("after"), "After");
    assert.equal(rejoined.chatHistory.some((m) => m.id === pub.message.id), false);
  });

  it("holds the waiting room shut: nothing of the class reaches those waiting until an instructor admits them", async () => {
    const sessionId = uid("class");
    const teacher = await peer();
    teacher.userId = uid("teacher");
    const open = await teacher.join(sessionId, teacher.userId, "Teacher", true);
    assert.equal(open.settings.waitingRoom, "open");
    const member = await peer();
    member.userId = uid("member");
    await member.join(sessionId, member.userId, "Member");
    await moderate(teacher, "set-waiting-room", { policy: "ask" });
    await member.waitFor("class-settings", (x) => x.waitingRoom === "ask");
    const early = await peer();
    early.userId = uid("early");
    const waitAck = await early.request("join-session", { sessionId, userId: early.userId, userName: "Early" });
    assert.deepEqual(waitAck, { ok: true, waiting: true, sessionId, position: 1 });
    assert.deepEqual(await early.waitFor("waiting-for-admission"), { waiting: true, sessionId, position: 1 });
    const queue = await teacher.waitFor("waiting-room", (w) => w.waiting.length === 1);
    assert.equal(queue.waiting[0].userId, early.userId);
    assert.deepEqual(member.received("waiting-room"), [], "students do not see who waits");
    // Offers, chat and roster changes do not reach those waiting; their own events are refused.
    assert.equal((await teacher.request("offer", { targetUserId: early.userId, offer: { type: "offer", sdp: SDP } })).error.code, "target-not-found");
    await teacher.request("chat-message", { message: "welcome, everyone" });
    const refused = await early.request("chat-message", { message: "let me in" });
    assert.equal(refused.error.code, "waiting");
    await quiet(300);
    for (const event of ["session-joined", "user-joined", "user-left", "chat-message", "offer", "participant-updated", "class-settings"]) {
      assert.deepEqual(early.received(event), [], event);
    }
    // Admitted: session-joined, and the class sees a join.
    await moderate(teacher, "admit", { targetUserId: early.userId });
    const joined = await early.waitFor("session-joined");
    assert.equal(joined.self.userId, early.userId);
    assert.ok(joined.participants.some((p) => p.userId === teacher.userId));
    await member.waitFor("user-joined", (p) => p.userId === early.userId);
    // Denied: told, and the connection closes.
    const denied = await peer();
    const deniedId = uid("denied");
    await denied.request("join-session", { sessionId, userId: deniedId, userName: "Denied" });
    await teacher.waitFor("waiting-room", (x) => x.waiting.some((u) => u.userId === deniedId));
    assert.equal((await moderate(teacher, "deny", { targetUserId: deniedId })).ok, true);
    const error = await denied.waitFor("error", (e) => e.code === "admission-denied");
    assert.match(error.message, /Teacher did not let you into the class/);
    await denied.waitFor("disconnect");
  });

  it("queues 20 hands raised at once in the server's order of arrival", async () => {
    const { teacher, students } = await classOf(20);
    const arrival = [];
    await Promise.all(students.map(async (s) => {
      const ack = await s.request("media-state", { handRaised: true });
      assert.equal(ack.ok, true);
      arrival.push(s.userId);
    }));
    const queue = await teacher.waitFor("hand-queue", (q) => q.hands.length === 20);
    const order = queue.hands.map((h) => h.userId);
    assert.equal(new Set(order).size, 20);
    // Each raise's time is the server's, in the queue's order.
    const times = queue.hands.map((h) => h.raisedAt);
    assert.deepEqual(times, [...times].sort((x, y) => x - y));
    // Every queue the instructor was sent grew by the one raise the server took next.
    const updates = teacher.received("hand-queue");
    for (const [i, update] of updates.entries()) {
      assert.deepEqual(update.hands.map((h) => h.userId), order.slice(0, i + 1));
    }
    assert.deepEqual(students[0].received("hand-queue"), [], "students do not get the queue");
    const before = updates.length;
    await moderate(teacher, "lower-hand", { targetUserId: order[0] });
    await teacher.waitFor("hand-queue", () => teacher.received("hand-queue").length > before);
    const lowered = teacher.received("hand-queue")[before];
    assert.deepEqual(lowered.hands.map((h) => h.userId), order.slice(1));
    await moderate(teacher, "lower-all-hands");
    await teacher.waitFor("hand-queue", (q) => q.hands.length === 0);
  });

  it("tells a burst of changes in batches to clients that take them, and each change to the browser version's client", async () => {
    const sessionId = uid("batches");
    const batched = ["participants-updated"];
    const teacher = await peer();
    teacher.userId = uid("teacher");
    await teacher.join(sessionId, teacher.userId, "Teacher", true, batched);
    // The browser version's page announces nothing.
    const old = await peer();
    await old.join(sessionId, uid("old"), "Old page", false);
    const students = [];
    for (let i = 0; i < 20; i++) {
      const p = await peer();
      p.userId = uid(`s${i}`);
      await p.join(sessionId, p.userId, `Student ${i}`, false, batched);
      students.push(p);
    }
    await Promise.all(students.map((s) => s.request("media-state", { handRaised: true })));
    await teacher.waitFor("hand-queue", (q) => q.hands.length === 20);
    await quiet(300);

    // What a client learned of the students' hands, from single updates and batches in order.
    const learned = (p) => {
      const hands = new Map();
      let events = 0;
      for (const e of p.events) {
        const list = e.event === "participant-updated" ? [e.data]
          : e.event === "participants-updated" ? e.data.participants : null;
        if (!list) continue;
        events += 1;
        for (const q of list) hands.set(q.userId, q.handRaised);
      }
      return { hands, events };
    };
    const watcher = learned(teacher);
    for (const s of students) assert.equal(watcher.hands.get(s.userId), true, `the teacher saw ${s.userId}'s hand`);
    assert.ok(watcher.events < 20, `20 raises told the teacher in ${watcher.events} events, not one each`);
    assert.ok(teacher.received("participants-updated").length >= 1, "a batch");
    // Another student saw every other hand too, however its updates came.
    const peerView = learned(students[0]);
    for (const s of students.slice(1)) assert.equal(peerView.hands.get(s.userId), true);
    // The old page: one participant-updated per raise, no batch.
    assert.equal(old.received("participants-updated").length, 0);
    assert.equal(old.received("participant-updated", (p) => p.handRaised).length, 20);

    // An instructor's change to a member reaches that member at once, on its own.
    const target = students[5];
    const before = target.received("participant-updated").length;
    await moderate(teacher, "lower-hand", { targetUserId: target.userId });
    const told = await target.waitFor("participant-updated", (p) => p.userId === target.userId && !p.handRaised, 1000);
    assert.equal(told.handRaised, false);
    assert.ok(target.received("participant-updated").length > before);
    // Mute all: one batch of the 20 students to a batched client, straight away.
    const batchesBefore = students[0].received("participants-updated").length;
    await moderate(teacher, "mute-all");
    const muted = await students[0].waitFor("participants-updated",
      (b) => b.participants.filter((q) => !q.audioEnabled).length >= 20, 2000);
    assert.ok(muted.participants.length >= 20);
    assert.ok(students[0].received("participants-updated").length > batchesBefore);
  });

  it("sends reactions to everyone, a few emoji at a limited rate", async () => {
    const { teacher, students: [a] } = await classOf(1);
    assert.equal((await a.request("reaction", { emoji: "👏" })).ok, true);
    const r = await teacher.waitFor("reaction");
    assert.equal(r.emoji, "👏");
    assert.equal(r.userId, a.userId);
    assert.equal((await a.request("reaction", { emoji: "<script>" })).error.code, "invalid-payload");
    const acks = await Promise.all([1, 2, 3, 4].map(() => a.request("reaction", { emoji: "🎉" })));
    assert.ok(acks.some((x) => x.error?.code === "rate-limited"), JSON.stringify(acks));
  });

  it("counts one vote per user with 50 voting at once, shows instructors live results, publishes them, and exports them", async () => {
    const { sessionId, teacher, students } = await classOf(50);
    const refused = await moderate(students[0], "open-poll", { poll: { question: "Q?", kind: "yes-no" } });
    assert.equal(refused.error.code, "forbidden");
    const opened = await moderate(teacher, "open-poll", { poll: { question: "Which planet is largest?", kind: "single", options: ["Mars", "Jupiter", "Venus"], correct: [1] } });
    assert.equal(opened.ok, true);
    const poll = await students[0].waitFor("poll-opened");
    assert.deepEqual([poll.kind, poll.options, poll.quiz, poll.correct], ["single", ["Mars", "Jupiter", "Venus"], true, undefined], "students are not told the answer");
    // Everyone votes at once, some twice (the second vote replaces the first).
    const acks = await Promise.all(students.map((s, i) => s.request("vote", { pollId: poll.pollId, choices: [i % 3] })));
    assert.ok(acks.every((a) => a.ok), JSON.stringify(acks.find((a) => !a.ok)));
    await Promise.all(students.slice(0, 5).map((s) => s.request("vote", { pollId: poll.pollId, choices: [1] })));
    const live = await teacher.waitFor("poll-results", (r) => r.voters === 50 && r.totals[1] === 17 + 3);
    // i % 3 over 0..49: 17 zeros, 17 ones, 16 twos; students 0..4 moved to 1 (0, 3 from 0; 2 from 2; 4 from 1; 1 stays).
    assert.deepEqual(live.totals, [15, 20, 15]);
    assert.equal(live.answers.length, 50);
    assert.equal(live.answers.filter((a) => a.correct).length, 20);
    assert.deepEqual(students[7].received("poll-results"), [], "students do not see live results");
    const bad = await students[0].request("vote", { pollId: poll.pollId, choices: [7] });
    assert.equal(bad.error.code, "invalid-payload");
    // Published: everyone gets the totals, without names.
    await moderate(teacher, "close-poll", { pollId: poll.pollId });
    await students[3].waitFor("poll-closed");
    assert.equal((await students[3].request("vote", { pollId: poll.pollId, choices: [0] })).error.code, "invalid-payload");
    await moderate(teacher, "publish-results", { pollId: poll.pollId });
    const published = await students[9].waitFor("poll-results");
    assert.deepEqual(published.totals, [15, 20, 15]);
    assert.deepEqual(published.answers, []);
    // Exported from SQLite over HTTP (development mode needs no token here).
    const csv = await (await fetch(`${server.url}/sessions/${sessionId}/polls`)).text();
    const lines = csv.trim().split("\n");
    assert.equal(lines[0], "poll_id,question,kind,voter,user_name,answer,correct,voted_at");
    assert.equal(lines.length, 51);
    assert.equal(lines.filter((l) => l.includes('"Jupiter",true')).length, 20);
    const json = await (await fetch(`${server.url}/sessions/${sessionId}/polls?format=json`)).json();
    assert.equal(json[0].answers.length, 50);
    assert.ok(json[0].closedAt > 0);
  });

  it("keeps an anonymous poll's voters out of its results and its export", async () => {
    const { sessionId, teacher, students: [a, b] } = await classOf(2);
    await moderate(teacher, "open-poll", { poll: { question: "Was the pace right?", kind: "yes-no", anonymous: true } });
    const poll = await a.waitFor("poll-opened");
    await a.request("vote", { pollId: poll.pollId, choices: [0] });
    await b.request("vote", { pollId: poll.pollId, choices: [1] });
    const live = await teacher.waitFor("poll-results", (r) => r.voters === 2);
    assert.deepEqual(live.answers, []);
    const json = await (await fetch(`${server.url}/sessions/${sessionId}/polls?format=json`)).json();
    const stored = json.find((p) => p.pollId === poll.pollId);
    assert.equal(stored.answers.length, 2);
    assert.ok(stored.answers.every((x) => x.userName === null && x.voter !== a.userId && x.voter !== b.userId));
  });

  it("ends the class for everyone, those waiting too", async () => {
    const { teacher, students: [a] } = await classOf(1);
    await moderate(teacher, "set-waiting-room", { policy: "ask" });
    const waiting = await peer();
    await waiting.request("join-session", { sessionId: teacher.ack.sessionId, userId: uid("w"), userName: "W" });
    assert.equal((await moderate(teacher, "end-class")).ok, true);
    for (const p of [teacher, a, waiting]) {
      const ended = await p.waitFor("class-ended");
      assert.equal(ended.byUserName, "Teacher");
      await p.waitFor("disconnect");
    }
  });
});
