// The protocol suite of docs/protocol.md, driven with the Node socket.io-client v4 against our
// server (CLASSROOM_TARGET=ours) and the same protocol on stock Node socket.io (protocol-relay.mjs,
// CLASSROOM_TARGET=node), over polling-then-upgrade or websocket only (CLASSROOM_TRANSPORT).
// Features only our server has (SQLite history across restarts, signed tokens and enrollment)
// are skipped for the Node one. The browser version's own relay is tested in seed-relay.test.mjs.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import {
  OURS, TRANSPORT, PING_INTERVAL_MS, PING_TIMEOUT_MS, SDP,
  connect, startServer, withServer, uid, quiet, signJwt, ourCli, tempDir,
} from "./harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const oursOnly = OURS ? false : "only our server has this feature";
const PING_DEADLINE_MS = PING_INTERVAL_MS + PING_TIMEOUT_MS + 1500;

describe(`protocol (${OURS ? "ours" : "node"}, ${TRANSPORT})`, () => {
  let server;
  const peers = [];
  const peer = async (opts) => {
    const p = await connect(server.url, opts);
    peers.push(p);
    return p;
  };
  /** n peers joined to one new session, in order. */
  const classOf = async (n) => {
    const sessionId = uid("class");
    const out = [];
    for (let i = 0; i < n; i++) {
      const p = await peer();
      const userId = uid(`u${i}`);
      p.userId = userId;
      p.userName = `User ${i}`;
      p.ack = await p.join(sessionId, userId, p.userName, i === 0);
      out.push(p);
    }
    return { sessionId, peers: out };
  };

  before(async () => {
    server = await startServer({ args: ["--events-per-second", "50", "--event-burst", "60", "--max-participants", "4", "--max-chat-chars", "500", "--max-payload", "100000"] });
  });
  after(async () => {
    for (const p of peers) p.close();
    await server.stop();
  });

  it("uses the transport under test", async () => {
    const p = await peer();
    assert.equal(p.transport(), "websocket");
  });

  it("join acks the roster, ICE servers and history, and also sends session-joined", async () => {
    const p = await peer();
    const sessionId = uid("class");
    const ack = await p.join(sessionId, "ada", "Ada Lovelace", true);
    assert.equal(ack.ok, true);
    assert.equal(ack.protocolVersion, 1);
    assert.equal(ack.sessionId, sessionId);
    assert.deepEqual(ack.participants, []);
    assert.equal(ack.self.userId, "ada");
    assert.equal(ack.self.userName, "Ada Lovelace");
    assert.equal(ack.self.isInstructor, true);
    assert.equal(ack.self.audioEnabled, true);
    assert.ok(ack.iceServers.length >= 1 && ack.iceServers[0].urls.length >= 1);
    assert.equal(ack.chatHistory.at(-1).type, "system");
    assert.match(ack.chatHistory.at(-1).message, /Ada Lovelace joined/);
    const joined = await p.waitFor("session-joined");
    assert.equal(joined.self.userId, "ada");
    assert.equal(joined.sessionId, sessionId);
  });

  it("the roster grows with user-joined and a system message for those already in", async () => {
    const { peers: [a, b] } = await classOf(2);
    assert.deepEqual(b.ack.participants.map((p) => p.userId), [a.userId]);
    const joined = await a.waitFor("user-joined");
    assert.equal(joined.userId, b.userId);
    assert.equal(joined.userName, "User 1");
    assert.equal(joined.isInstructor, false);
    const notice = await a.waitFor("chat-message", (m) => m.type === "system");
    assert.match(notice.message, /User 1 joined/);
    assert.equal(b.received("user-joined").length, 0, "the joiner is not told about itself");
  });

  it("offer, answer and ice-candidate reach only their target, stamped with the sender", async () => {
    const { peers: [a, b, c] } = await classOf(3);
    const offerAck = await a.request("offer", { targetUserId: b.userId, offer: { type: "offer", sdp: SDP } });
    assert.equal(offerAck.ok, true);
    const offer = await b.waitFor("offer");
    assert.deepEqual(offer, { fromUserId: a.userId, fromUserName: a.userName, offer: { type: "offer", sdp: SDP } });

    b.emit("answer", { targetUserId: a.userId, answer: { type: "answer", sdp: SDP } });
    const answer = await a.waitFor("answer");
    assert.equal(answer.fromUserId, b.userId);
    assert.equal(answer.answer.type, "answer");

    const candidate = { candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "abcd" };
    a.emit("ice-candidate", { targetUserId: b.userId, candidate });
    a.emit("ice-candidate", { targetUserId: b.userId, candidate: null });
    const got = await b.waitFor("ice-candidate");
    assert.deepEqual(got, { fromUserId: a.userId, fromUserName: a.userName, candidate });
    const end = await b.waitFor("ice-candidate", (d) => d.candidate === null);
    assert.equal(end.fromUserId, a.userId);

    await quiet(200);
    for (const event of ["offer", "answer", "ice-candidate"]) assert.equal(c.received(event).length, 0, `${event} leaked to a bystander`);
  });

  it("relays a burst from one sender in the order it was sent", async () => {
    const { peers: [a, b] } = await classOf(2);
    a.emit("offer", { targetUserId: b.userId, offer: { type: "offer", sdp: SDP } });
    for (let i = 0; i < 40; i++) {
      a.emit("ice-candidate", { targetUserId: b.userId, candidate: { candidate: `candidate:${i} 1 udp 1 127.0.0.1 ${5000 + i} typ host`, sdpMid: "0", sdpMLineIndex: 0 } });
    }
    await b.waitFor("ice-candidate", (c) => c.candidate?.candidate.startsWith("candidate:39 "));
    const relayed = b.events.filter((e) => e.event === "offer" || e.event === "ice-candidate");
    assert.equal(relayed[0].event, "offer", "the offer comes before its candidates");
    const order = relayed.slice(1).map((e) => Number(e.data.candidate.candidate.split(/[: ]/)[1]));
    assert.deepEqual(order, Array.from({ length: 40 }, (_, i) => i));
  });

  it("handles an event sent right after connecting", async () => {
    const { io } = await import("socket.io-client");
    const socket = io(server.url, { transports: TRANSPORT === "websocket" ? ["websocket"] : ["polling", "websocket"], forceNew: true, reconnection: false });
    try {
      // Emitted before the connection is even open: socket.io-client buffers it and sends it
      // right after the namespace CONNECT; the server must already be listening for it.
      const ack = await socket.timeout(5000).emitWithAck("join-session", { sessionId: uid("class"), userId: uid("eager"), userName: "Eager" });
      assert.equal(ack.ok, true);
    } finally {
      socket.close();
    }
  });

  it("ignores sender fields a client puts in a relay", async () => {
    const { peers: [a, b] } = await classOf(2);
    a.emit("offer", { targetUserId: b.userId, fromUserId: "mallory", fromUserName: "Mallory", offer: { type: "offer", sdp: SDP } });
    const offer = await b.waitFor("offer");
    assert.equal(offer.fromUserId, a.userId);
    assert.equal(offer.fromUserName, a.userName);
  });

  it("cannot relay into another session", async () => {
    const { peers: [a] } = await classOf(1);
    const { peers: [x] } = await classOf(1);
    const ack = await a.request("offer", { targetUserId: x.userId, offer: { type: "offer", sdp: SDP } });
    assert.equal(ack.ok, false);
    assert.equal(ack.error.code, "target-not-found");
    const err = await a.waitFor("error", (e) => e.code === "target-not-found");
    assert.equal(err.event, "offer");
    await quiet(100);
    assert.equal(x.received("offer").length, 0);
  });

  it("chat is broadcast to everyone in the session, sender included", async () => {
    const { peers: [a, b] } = await classOf(2);
    const ack = await b.request("chat-message", { message: "Is the homework due Friday?" });
    assert.equal(ack.ok, true);
    for (const p of [a, b]) {
      const m = await p.waitFor("chat-message", (m) => m.type === "user");
      assert.equal(m.message, "Is the homework due Friday?");
      assert.equal(m.userId, b.userId);
      assert.equal(m.userName, b.userName);
      assert.equal(m.id, ack.message.id);
      assert.ok(Math.abs(m.timestamp - Date.now()) < 10_000);
    }
  });

  it("replays chat history to a client that reconnects", async () => {
    const { sessionId, peers: [a, b] } = await classOf(2);
    for (const text of ["one", "two", "three"]) await a.request("chat-message", { message: text });
    b.close();
    const again = await peer();
    const ack = await again.join(sessionId, b.userId, b.userName);
    const texts = ack.chatHistory.filter((m) => m.type === "user").map((m) => m.message);
    assert.deepEqual(texts, ["one", "two", "three"]);
  });

  it("media-state updates the participant for everyone", async () => {
    const { peers: [a, b] } = await classOf(2);
    const ack = await a.request("media-state", { audioEnabled: false, screenSharing: true });
    assert.equal(ack.ok, true);
    assert.equal(ack.participant.audioEnabled, false);
    assert.equal(ack.participant.videoEnabled, true);
    const update = await b.waitFor("participant-updated");
    assert.equal(update.userId, a.userId);
    assert.equal(update.screenSharing, true);
    assert.equal(update.audioEnabled, false);
    const bad = await a.request("media-state", { audioEnabled: "off" });
    assert.equal(bad.error.code, "invalid-payload");
  });

  it("leave-session tells the others and ends relaying", async () => {
    const { peers: [a, b] } = await classOf(2);
    const ack = await a.request("leave-session", {});
    assert.equal(ack.ok, true);
    const left = await b.waitFor("user-left");
    assert.deepEqual(left, { userId: a.userId, userName: a.userName, reason: "left" });
    const notice = await b.waitFor("chat-message", (m) => m.type === "system" && /left/.test(m.message));
    assert.equal(notice.userId, a.userId);
    const after = await a.request("offer", { targetUserId: b.userId, offer: { type: "offer", sdp: SDP } });
    assert.equal(after.error.code, "not-joined");
  });

  for (const how of ["killed", "frozen"]) {
    it(`a ${how} client leaves within the ping timeout`, async () => {
      const { sessionId, peers: [a] } = await classOf(1);
      const child = spawn(process.execPath, [join(here, "peer-process.mjs"), server.url, sessionId, "ghost", "Ghost", TRANSPORT], { stdio: ["ignore", "pipe", "inherit"] });
      try {
        const line = await new Promise((resolve) => createInterface({ input: child.stdout }).once("line", resolve));
        assert.equal(line, "joined");
        await a.waitFor("user-joined", (p) => p.userId === "ghost");
        const t0 = Date.now();
        child.kill(how === "killed" ? "SIGKILL" : "SIGSTOP");
        const left = await a.waitFor("user-left", (l) => l.userId === "ghost", PING_DEADLINE_MS + 2000);
        const elapsed = Date.now() - t0;
        assert.equal(left.reason, "disconnected");
        assert.ok(elapsed <= PING_DEADLINE_MS, `user-left after ${elapsed} ms, deadline ${PING_DEADLINE_MS} ms`);
      } finally {
        child.kill("SIGKILL");
      }
    });
  }

  it("the same user joining again replaces the old connection without a departure", async () => {
    const { sessionId, peers: [a, b] } = await classOf(2);
    const second = await peer();
    const ack = await second.join(sessionId, b.userId, "User 1 (laptop)");
    assert.deepEqual(ack.participants.map((p) => p.userId), [a.userId]);
    const err = await b.waitFor("error", (e) => e.code === "session-replaced");
    assert.equal(err.event, "join-session");
    await b.waitFor("disconnect");
    const update = await a.waitFor("participant-updated", (p) => p.userId === b.userId);
    assert.equal(update.userName, "User 1 (laptop)");
    await quiet(200);
    assert.equal(a.received("user-left").length, 0);
    a.emit("offer", { targetUserId: b.userId, offer: { type: "offer", sdp: SDP } });
    await second.waitFor("offer");
  });

  describe("errors", () => {
    it("not-joined for session events before join-session", async () => {
      const p = await peer();
      for (const [event, data] of [["chat-message", { message: "hi" }], ["media-state", { audioEnabled: false }], ["offer", { targetUserId: "x", offer: { type: "offer", sdp: SDP } }], ["leave-session", {}]]) {
        const ack = await p.request(event, data);
        assert.equal(ack.ok, false, event);
        assert.equal(ack.error.code, "not-joined", event);
      }
    });

    it("invalid-payload for payloads that do not match the protocol", async () => {
      const { peers: [a, b] } = await classOf(2);
      const cases = [
        ["join-session", { sessionId: 42, userId: "u", userName: "U" }],
        ["join-session", { sessionId: "s" }],
        ["join-session", "not an object"],
        ["offer", { offer: { type: "offer", sdp: SDP } }],
        ["offer", { targetUserId: b.userId, offer: { type: "offer", sdp: "hello" } }],
        ["offer", { targetUserId: b.userId, offer: { type: "answer", sdp: SDP } }],
        ["answer", { targetUserId: b.userId, answer: "v=0" }],
        ["ice-candidate", { targetUserId: b.userId, candidate: { sdpMid: "0" } }],
        ["chat-message", { text: "wrong field" }],
        ["chat-message", { message: "   " }],
        ["offer", { targetUserId: a.userId, offer: { type: "offer", sdp: SDP } }],
      ];
      for (const [event, data] of cases) {
        const ack = await a.request(event, data);
        assert.equal(ack.ok, false, `${event} ${JSON.stringify(data)}`);
        assert.equal(ack.error.code, "invalid-payload", `${event} ${JSON.stringify(data)}: ${ack.error.message}`);
        assert.equal(ack.error.event, event);
      }
      assert.ok(a.received("error").filter((e) => e.code === "invalid-payload").length >= cases.length);
      await quiet(100);
      assert.equal(b.received("offer").length + b.received("answer").length + b.received("ice-candidate").length, 0);
    });

    it("payload-too-large for oversized fields, and the sender stays connected", async () => {
      const { peers: [a, b] } = await classOf(2);
      const ack = await a.request("chat-message", { message: "x".repeat(501) });
      assert.equal(ack.error.code, "payload-too-large");
      const big = await a.request("offer", { targetUserId: b.userId, offer: { type: "offer", sdp: SDP + "a=x:" + "y".repeat(70_000) } });
      assert.equal(big.error.code, "payload-too-large");
      // Every string of a candidate counts against its limit, usernameFragment too.
      const fragment = await a.request("ice-candidate", {
        targetUserId: b.userId,
        candidate: { candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "u".repeat(50_000) },
      });
      assert.equal(fragment.error?.code, "payload-too-large", JSON.stringify(fragment));
      await quiet(100);
      assert.equal(b.received("ice-candidate").length, 0, "the oversized candidate was relayed");
      const fine = await a.request("chat-message", { message: "still here" });
      assert.equal(fine.ok, true);
    });

    it("a packet above the transport limit closes only that client; the class goes on", async () => {
      const { peers: [a, b, c] } = await classOf(3);
      a.emit("chat-message", { message: "z".repeat(200_000) });
      await a.waitFor("disconnect", () => true, 5000);
      const ack = await b.request("chat-message", { message: "anyone there?" });
      assert.equal(ack.ok, true);
      const m = await c.waitFor("chat-message", (m) => m.message === "anyone there?");
      assert.equal(m.userId, b.userId);
      await b.waitFor("user-left", (l) => l.userId === a.userId, PING_DEADLINE_MS);
    });

    it("a malformed packet does not disturb the other clients", async () => {
      const { peers: [a, b, c] } = await classOf(3);
      a.socket.io.engine.write('42["chat-message",{"message":');
      a.socket.io.engine.write("4x-garbage");
      await quiet(300);
      const ack = await b.request("chat-message", { message: "unaffected" });
      assert.equal(ack.ok, true);
      await c.waitFor("chat-message", (m) => m.message === "unaffected");
    });

    it("target-not-found for someone not in the session", async () => {
      const { peers: [a] } = await classOf(1);
      const ack = await a.request("ice-candidate", { targetUserId: "nobody", candidate: null });
      assert.equal(ack.error.code, "target-not-found");
    });

    it("unknown-event for events outside the protocol", async () => {
      const p = await peer();
      const ack = await p.request("drop-table", { x: 1 });
      assert.equal(ack.ok, false);
      assert.equal(ack.error.code, "unknown-event");
      const err = await p.waitFor("error", (e) => e.code === "unknown-event");
      assert.equal(err.event, "drop-table");
    });

    it("session-full past the participant limit", async () => {
      const { sessionId } = await classOf(4);
      const late = await peer();
      const ack = await late.request("join-session", { sessionId, userId: uid("late"), userName: "Late" });
      assert.equal(ack.ok, false);
      assert.equal(ack.error.code, "session-full");
    });

    it("rate-limited past the event rate, reported once a second, others unaffected", async () => {
      const { peers: [a, b] } = await classOf(2);
      const acks = await Promise.all(Array.from({ length: 100 }, (_, i) => a.request("media-state", { handRaised: i % 2 === 0 })));
      const limited = acks.filter((x) => !x.ok && x.error.code === "rate-limited");
      assert.ok(limited.length >= 30, `${limited.length} of 100 refused`);
      assert.ok(acks.filter((x) => x.ok).length >= 50, "the burst passes");
      const errors = a.received("error").filter((e) => e.code === "rate-limited");
      assert.equal(errors.length, 1, "one error event per second, with the count");
      assert.match(errors[0].message, /\d+ event\(s\) refused/);
      const ok = await b.request("chat-message", { message: "b is fine" });
      assert.equal(ok.ok, true);
      await quiet(1100);
      const later = await a.request("chat-message", { message: "a recovered" });
      assert.equal(later.ok, true);
    });
  });
});

/** An Engine.IO polling session opened by hand, as a hostile or careless client would: its URL
 * (GET polls it) and a POST of raw packets. */
async function rawPolling(serverUrl) {
  const base = `${serverUrl}/socket.io/?EIO=4&transport=polling`;
  const open = JSON.parse((await (await fetch(base)).text()).slice(1));
  const url = `${base}&sid=${open.sid}`;
  const post = (body) => fetch(url, { method: "POST", body, headers: { "content-type": "text/plain;charset=UTF-8" } });
  return { url, post };
}

// Ours only: the Node relay is the protocol's model on stock socket.io, not hardened against
// floods; under this one its event loop held a bystander's chat past the 5 s ack timeout (here
// on 2026-12-03, and most likely the CI failure of the run before; the flooder's own next event
// was answered after 575 ms).
describe(`hand-written polling clients (${TRANSPORT})`, { skip: oursOnly }, () => {
  // 40,000 tiny events in one polling POST (880 KB, under the 1 MB packet limit), as a hostile
  // client can send. Over the rate they are refused on arrival; before that fix each waited for
  // its turn and every finished turn woke them all (n²/2 wake-ups): the server stalled for
  // minutes on the flooder and its memory held every parsed payload. Now, past 1000 refusals
  // within a second the socket is disconnected.
  const FLOOD = 40_000;
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => server?.stop());

  it("a flood of events is refused on arrival, the flooder is told and disconnected at once, and the class goes on", async () => {
    const sessionId = uid("class");
    const b = await connect(server.url);
    await b.join(sessionId, "bob", "Bob");
    const c = await connect(server.url);
    await c.join(sessionId, "cy", "Cy");

    const { url, post } = await rawPolling(server.url);
    await post("40");
    // Emits only once the namespace answered the CONNECT, as socket.io-client does: an event
    // sent before that may reach a socket the namespace has not taken yet (seen once in CI:
    // the join was lost, and no user-joined came).
    const connected = await (await fetch(url)).text();
    assert.ok(connected.split("\x1e").some((p) => p.startsWith("40")), `no CONNECT answer: ${connected}`);
    await post(`42${JSON.stringify(["join-session", { sessionId, userId: "mallory", userName: "Mallory" }])}`);
    await b.waitFor("user-joined", (p) => p.userId === "mallory");

    const flood = Array.from({ length: FLOOD }, () => '42["media-state",{}]').join("\x1e");
    const started = Date.now();
    const posted = await post(flood);
    await posted.text();
    const postedAt = Date.now();
    // The flooder hears why (past 1000 refusals within a second) and its connection closes:
    // the socket.io disconnect, then the session gone.
    let told = false;
    let closed = false;
    while (!closed && Date.now() - started < 20_000) {
      const res = await fetch(url);
      const body = await res.text();
      if (res.status !== 200) break;
      for (const packet of body.split("\x1e")) {
        if (packet.startsWith('42["error"') && /rate-limited/.test(packet) && /connection is closed/.test(packet)) told = true;
        if (packet === "41" || packet === "1") closed = true;
      }
    }
    const took = Date.now() - started;
    console.log(JSON.stringify({ floodEvents: FLOOD, postMs: postedAt - started, closedMs: took }));
    assert.ok(told, "the flooder is told why");
    assert.ok(took < 5000, `the flood went on for ${took} ms before its connection closed`);
    await b.waitFor("user-left", (l) => l.userId === "mallory");
    // Meanwhile and after, the others are served.
    const t0 = Date.now();
    const ack = await b.request("chat-message", { message: "still here" });
    assert.equal(ack.ok, true);
    await c.waitFor("chat-message", (m) => m.message === "still here");
    assert.ok(Date.now() - t0 < 1000, `a bystander's message took ${Date.now() - t0} ms`);
    b.close();
    c.close();
  });

  // An event pipelined behind its CONNECT, before the namespace answered (socket.io-client
  // never does this; a hand-written client may): socketioxide takes the socket into the
  // namespace in a task of its own, and an event for a socket not yet taken closes the
  // connection, as Node's socket.io does ("invalid state"). Whichever comes first, the event is
  // never silently lost: either it is handled (the others see the join) or the client sees its
  // connection close.
  it("an event sent before its CONNECT is answered is handled, or the connection closes: never dropped in silence", async () => {
    const sessionId = uid("class");
    const b = await connect(server.url);
    await b.join(sessionId, "bob", "Bob");
    const outcomes = { joined: 0, closed: 0 };
    for (let round = 0; round < 5; round++) {
      const userId = `eager-${round}`;
      const { url, post } = await rawPolling(server.url);
      await post(`40\x1e42${JSON.stringify(["join-session", { sessionId, userId, userName: userId }])}`);
      let outcome = null;
      const joined = b.waitFor("user-joined", (p) => p.userId === userId, 5_000).then(() => { outcome ??= "joined"; }, () => {});
      const deadline = Date.now() + 5_000;
      while (!outcome && Date.now() < deadline) {
        const res = await fetch(url);
        const body = await res.text();
        if (res.status !== 200 || body.split("\x1e").some((p) => p === "1" || p === "41")) outcome ??= "closed";
      }
      await Promise.race([joined, quiet(100)]);
      assert.ok(outcome, `round ${round}: the join was neither handled nor refused by closing the connection`);
      outcomes[outcome]++;
      if (outcome === "joined") await post("41");
    }
    console.log(JSON.stringify({ eagerEvents: outcomes }));
    b.close();
  });
});

describe(`our server only (${TRANSPORT})`, { skip: oursOnly }, () => {
  const secret = "test-secret-of-the-suite-32-bytes-long";
  let tmp;
  before(() => {
    tmp = tempDir();
  });
  after(() => tmp?.remove());

  it("relays video-request (a desktop extension) to its target and checks maxHeight", async () => {
    await withServer({}, async (server) => {
      const sessionId = uid("class");
      const a = await connect(server.url);
      await a.join(sessionId, "ada", "Ada");
      const b = await connect(server.url);
      await b.join(sessionId, "bob", "Bob");
      const ack = await b.request("video-request", { targetUserId: "ada", maxHeight: 360 });
      assert.equal(ack.ok, true);
      assert.deepEqual(await a.waitFor("video-request"), { fromUserId: "bob", fromUserName: "Bob", maxHeight: 360 });
      const refused = await b.request("video-request", { targetUserId: "ada", maxHeight: 5 });
      assert.equal(refused.ok, false);
      assert.equal(refused.error.code, "invalid-payload");
      a.close();
      b.close();
    });
  });

  it("on SIGTERM tells every client when to come back, each its own delay, and takes no one new", async () => {
    await withServer({}, async (server) => {
      const sessionId = uid("class");
      const clients = [];
      for (let i = 0; i < 6; i++) {
        const p = await connect(server.url);
        await p.join(sessionId, `u${i}`, `U${i}`);
        clients.push(p);
      }
      server.child.kill("SIGTERM");
      const notices = await Promise.all(clients.map((p) => p.waitFor("server-restarting", () => true, 3000)));
      for (const n of notices) assert.ok(n.retryAfterMs >= 0 && n.retryAfterMs < 5000, JSON.stringify(n));
      assert.ok(new Set(notices.map((n) => n.retryAfterMs)).size > 1, "every client is given the same delay");
      const late = await connect(server.url, { expectError: true });
      assert.match(late.message, /server-restarting|poll error|websocket error/, late.message);
      const status = await server.stop();
      assert.equal(status.code, 0, "a clean exit");
      await Promise.all(clients.map((p) => p.waitFor("disconnect", () => true, 3000)));
      clients.forEach((p) => p.close());
    });
  });

  it("bounds connections per address and in total, and frees a place when one closes", async () => {
    await withServer({ args: ["--max-connections-per-ip", "3"] }, async (server) => {
      const open = [];
      for (let i = 0; i < 3; i++) open.push(await connect(server.url));
      const err = await connect(server.url, { expectError: true });
      assert.match(err.message, /rate-limited.*your address/);
      open.pop().close();
      await quiet(300);
      open.push(await connect(server.url));
      open.forEach((p) => p.close());
    });
    await withServer({ args: ["--max-connections", "2"] }, async (small) => {
      const a = await connect(small.url);
      const b = await connect(small.url);
      const err = await connect(small.url, { expectError: true });
      assert.match(err.message, /rate-limited.*full/);
      a.close();
      b.close();
    });
  });

  it("shares one event rate among all the connections of an address: more sockets buy no more events", async () => {
    await withServer({ args: ["--events-per-second-per-address", "5", "--event-burst-per-address", "10"] }, async (server) => {
      const sockets = [await connect(server.url), await connect(server.url)];
      const acks = await Promise.all(sockets.flatMap((p) => Array.from({ length: 8 }, () => p.request("media-state", { audioEnabled: true }))));
      const passed = acks.filter((a) => a.ok || a.error?.code !== "rate-limited").length;
      assert.ok(passed <= 12, `${passed} of 16 events passed the address's burst of 10`);
      const refused = acks.find((a) => a.error?.code === "rate-limited");
      assert.match(refused.error.message, /from your address/);
      sockets.forEach((p) => p.close());
    });
  });

  it("limits one member's chat rate (burst 10, then 2 a second), and others chat on", async () => {
    await withServer({}, async (server) => {
      const sessionId = uid("class");
      const a = await connect(server.url);
      await a.join(sessionId, "ada", "Ada");
      const b = await connect(server.url);
      await b.join(sessionId, "bob", "Bob");
      const acks = [];
      for (let i = 0; i < 14; i++) acks.push(await a.request("chat-message", { message: `spam ${i}` }));
      assert.equal(acks.filter((x) => x.ok).length, 10, JSON.stringify(acks.map((x) => x.ok)));
      assert.match(acks.at(-1).error.message, /chat messages per second/);
      await quiet(200);
      assert.equal(b.received("chat-message", (m) => m.type === "user").length, 10, "refused messages reach no one");
      assert.equal((await b.request("chat-message", { message: "my turn" })).ok, true);
      a.close();
      b.close();
    });
  });

  it("a server with a join key lets in only clients that give it", async () => {
    const key = "k".repeat(8) + "e".repeat(8) + "y";
    await withServer({ args: ["--join-key", key] }, async (server) => {
      for (const [what, auth] of [["no key", undefined], ["a wrong key", { key: "not-the-key-of-this-class" }]]) {
        const err = await connect(server.url, { auth, expectError: true });
        assert.match(err.message, /unauthorized.*key/, what);
      }
      const p = await connect(server.url, { auth: { key } });
      await p.join(uid("class"), "ada", "Ada");
      p.close();
    });
  });

  it("with --allowed-origin loopback, a page from another origin cannot connect; native clients and local pages can", async () => {
    await withServer({ args: ["--allowed-origin", "loopback"] }, async (server) => {
      const handshake = (origin) =>
        fetch(`${server.url}/socket.io/?EIO=4&transport=polling`, { headers: origin ? { origin } : {} });
      const foreign = await handshake("http://evil.example");
      assert.equal(foreign.status, 403);
      await foreign.text();
      const rebound = await handshake("http://127.0.0.1.evil.example:3001");
      assert.equal(rebound.status, 403);
      await rebound.text();
      for (const origin of [server.url, "http://localhost:3001", undefined]) {
        const res = await handshake(origin);
        assert.equal(res.status, 200, `origin ${origin}`);
        await res.text();
      }
      const { default: WebSocket } = await import("ws");
      const ws = new WebSocket(`${server.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`, { origin: "http://evil.example" });
      const refused = await new Promise((resolve) => {
        ws.on("open", () => resolve(false));
        ws.on("error", () => resolve(true));
        ws.on("unexpected-response", (_req, res) => resolve(res.statusCode === 403));
      });
      assert.ok(refused, "a websocket from another origin is refused");
      ws.terminate();
    });
  });

  it("serves its page with a content security policy that forbids framing and sniffing", async () => {
    await withServer({}, async (server) => {
      for (const path of ["/", "/classroom.js"]) {
        const res = await fetch(`${server.url}${path}`);
        const csp = res.headers.get("content-security-policy") ?? "";
        assert.match(csp, /frame-ancestors 'none'/, path);
        assert.match(csp, /script-src 'self'/, path);
        assert.equal(res.headers.get("x-content-type-options"), "nosniff", path);
        await res.text();
      }
    });
  });

  it("serves /metrics only to the bearer of --metrics-token (or in development mode)", async () => {
    await withServer({}, async (dev) => {
      assert.equal((await fetch(`${dev.url}/metrics`)).status, 200);
    });
    await withServer({ dev: false, jwtSecret: secret, args: ["--metrics-token", "m".repeat(32)] }, async (production) => {
      assert.equal((await fetch(`${production.url}/metrics`)).status, 401);
      assert.equal((await fetch(`${production.url}/metrics`, { headers: { authorization: "Bearer wrong" } })).status, 401);
      const ok = await fetch(`${production.url}/metrics`, { headers: { authorization: `Bearer ${"m".repeat(32)}` } });
      assert.equal(ok.status, 200);
      assert.match(await ok.text(), /classroom_/);
    });
    await withServer({ dev: false, jwtSecret: secret }, async (closed) => {
      assert.equal((await fetch(`${closed.url}/metrics`)).status, 404);
    });
  });

  it("keeps chat history across a server restart", async () => {
    const database = join(tmp.dir, "restart.sqlite3");
    const sessionId = uid("class");
    let server = await startServer({ database });
    const a = await connect(server.url);
    await a.join(sessionId, "ada", "Ada");
    for (const text of ["before", "the", "restart"]) await a.request("chat-message", { message: text });
    const status = await server.stop();
    assert.equal(status.code, 0, "graceful shutdown exits 0");
    a.close();

    server = await startServer({ database });
    try {
      const b = await connect(server.url);
      const ack = await b.join(sessionId, "bob", "Bob");
      const texts = ack.chatHistory.filter((m) => m.type === "user").map((m) => m.message);
      assert.deepEqual(texts, ["before", "the", "restart"]);
      assert.ok(ack.chatHistory.some((m) => m.type === "system" && /Ada joined/.test(m.message)));
      b.close();
    } finally {
      await server.stop();
    }
  });

  describe("signed tokens and enrollment", () => {
    let server;
    const classId = uid("physics");
    const now = () => Math.floor(Date.now() / 1000);
    const token = (sub, name, role = "student", exp = now() + 600) => signJwt({ sub, name, role, exp }, secret);

    before(async () => {
      const database = join(tmp.dir, "roster.sqlite3");
      const env = { CLASSROOM_DATABASE: database };
      ourCli(["class", "create", classId, "--title", "Physics 101"], env);
      ourCli(["enroll", classId, "stu1", "--role", "student"], env);
      ourCli(["enroll", classId, "prof", "--role", "instructor"], env);
      server = await startServer({ dev: false, database, jwtSecret: secret, args: ["--enrollment-recheck-secs", "1"] });
      rosterEnv = env;
    });
    after(async () => server?.stop());
    let rosterEnv;

    it("refuses to start with an empty or short JWT secret", async () => {
      for (const short of ["", "change me", "x".repeat(31)]) {
        await assert.rejects(startServer({ dev: false, jwtSecret: short || undefined, env: { CLASSROOM_JWT_SECRET: short } }), /at least 32/);
      }
    });

    it("tells and disconnects a socket whose token expires while it is connected", async () => {
      const p = await connect(server.url, { auth: { token: token("stu1", "Student One", "student", now() + 2) } });
      const ack = await p.request("join-session", { sessionId: classId });
      assert.equal(ack.ok, true, JSON.stringify(ack.error));
      const error = await p.waitFor("error", (e) => e.code === "unauthorized", 6000);
      assert.match(error.message, /expired/);
      await p.waitFor("disconnect", () => true, 3000);
      p.close();
    });

    it("tells and disconnects a member removed from the roster while connected", async () => {
      ourCli(["enroll", classId, "stu2", "--role", "student"], rosterEnv);
      const p = await connect(server.url, { auth: { token: token("stu2", "Student Two") } });
      const ack = await p.request("join-session", { sessionId: classId });
      assert.equal(ack.ok, true, JSON.stringify(ack.error));
      ourCli(["unenroll", classId, "stu2"], rosterEnv);
      const error = await p.waitFor("error", (e) => e.code === "not-enrolled", 5000);
      assert.match(error.message, /not enrolled/);
      await p.waitFor("disconnect", () => true, 3000);
      p.close();
    });

    it("an enrolled user joins with the identity and role of the token and roster", async () => {
      const p = await connect(server.url, { auth: { token: token("prof", "Prof. Curie", "student") } });
      const ack = await p.request("join-session", { sessionId: classId, userId: "mallory", userName: "Mallory", isInstructor: false });
      assert.equal(ack.ok, true, JSON.stringify(ack.error));
      assert.equal(ack.self.userId, "prof");
      assert.equal(ack.self.userName, "Prof. Curie");
      assert.equal(ack.self.isInstructor, true, "the roster's role wins");
      p.close();
    });

    it("exports a class's polls over HTTP to its instructor's sign-in token, and to nobody else", async () => {
      const prof = await connect(server.url, { auth: { token: token("prof", "Prof. Curie", "student") } });
      assert.equal((await prof.request("join-session", { sessionId: classId })).ok, true);
      const student = await connect(server.url, { auth: { token: token("stu1", "Student One") } });
      assert.equal((await student.request("join-session", { sessionId: classId })).ok, true);
      const opened = await prof.request("moderate", { action: "open-poll", poll: { question: "Ready for the test?", kind: "yes-no" } });
      assert.equal(opened.ok, true, JSON.stringify(opened.error));
      const poll = await student.waitFor("poll-opened");
      assert.equal((await student.request("vote", { pollId: poll.pollId, choices: [0] })).ok, true);
      const url = `${server.url}/sessions/${classId}/polls?format=json`;
      const get = (bearer) => fetch(url, bearer ? { headers: { authorization: `Bearer ${bearer}` } } : {});
      const ok = await get(token("prof", "Prof. Curie", "student"));
      assert.equal(ok.status, 200, "the class's instructor (by the roster) exports");
      const polls = await ok.json();
      assert.equal(polls.length, 1);
      assert.equal(polls[0].question, "Ready for the test?");
      assert.equal(polls[0].answers.length, 1);
      for (const [who, bearer] of [
        ["no token", undefined],
        ["a student of the class", token("stu1", "Student One")],
        ["an instructor's token outside the roster", token("outsider", "Outsider", "instructor")],
        ["a forged token", signJwt({ sub: "prof", name: "P", role: "instructor", exp: now() + 600 }, "wrong-secret")],
        ["an expired one", token("prof", "Prof. Curie", "instructor", now() - 3600)],
      ]) {
        const res = await get(bearer);
        assert.equal(res.status, 401, who);
        assert.match(await res.text(), /instructor's sign-in token/, who);
      }
      prof.close();
      student.close();
    });

    it("a token issued by the CLI works", async () => {
      const t = ourCli(["token", "--user", "stu1", "--name", "Student One", "--jwt-secret", secret]);
      const p = await connect(server.url, { auth: { token: t } });
      const ack = await p.request("join-session", { sessionId: classId });
      assert.equal(ack.ok, true, JSON.stringify(ack.error));
      assert.equal(ack.self.userId, "stu1");
      p.close();
    });

    for (const [what, auth, pattern] of [
      ["no token", undefined, /unauthorized.*token is required/],
      ["a forged token", { token: signJwt({ sub: "stu1", name: "S", role: "student", exp: now() + 600 }, "wrong-secret") }, /unauthorized.*signature/],
      ["an expired token", { token: token("stu1", "S", "student", now() - 3600) }, /unauthorized.*expired/],
      ["a token not valid yet", { token: signJwt({ sub: "stu1", name: "S", role: "student", exp: now() + 600, nbf: now() + 300 }, secret) }, /unauthorized.*nbf/],
      ["a token living longer than a day", { token: signJwt({ sub: "stu1", name: "S", role: "student", iat: now(), exp: now() + 30 * 86400 }, secret) }, /unauthorized.*longer than this server allows/],
      ["a token for another audience", { token: signJwt({ sub: "stu1", name: "S", role: "student", exp: now() + 600, aud: "another-app" }, secret) }, /unauthorized.*audience/],
      ["an alg none token", { token: `${Buffer.from('{"alg":"none","typ":"JWT"}').toString("base64url")}.${Buffer.from(JSON.stringify({ sub: "stu1", name: "S", role: "student", exp: now() + 600 })).toString("base64url")}.` }, /unauthorized/],
      ["garbage", { token: "abc.def" }, /unauthorized/],
    ]) {
      it(`refuses the handshake with ${what}`, async () => {
        const err = await connect(server.url, { auth, expectError: true });
        assert.match(err.message, pattern);
      });
    }

    it("not-enrolled for a valid token outside the roster", async () => {
      const p = await connect(server.url, { auth: { token: token("outsider", "Outsider") } });
      const ack = await p.request("join-session", { sessionId: classId });
      assert.equal(ack.error.code, "not-enrolled");
      p.close();
    });

    it("session-not-found for a class that does not exist", async () => {
      const p = await connect(server.url, { auth: { token: token("stu1", "S") } });
      const ack = await p.request("join-session", { sessionId: "no-such-class" });
      assert.equal(ack.error.code, "session-not-found");
      p.close();
    });
  });

  describe("the LMS enrollment hook", () => {
    let hook, hookUrl, server, deadServer;
    const asked = [];
    const badSignatures = [];
    const hookSecret = "the-lms-and-the-server-share-this-secret";
    const hookArgs = (url) => ["--enrollment-hook", url, "--enrollment-hook-secret", hookSecret, "--enrollment-hook-allow-http"];
    const token = (sub) => signJwt({ sub, name: sub, role: "student", exp: Math.floor(Date.now() / 1000) + 600 }, secret);

    before(async () => {
      const { createServer } = await import("node:http");
      const { createHmac } = await import("node:crypto");
      hook = createServer((req, res) => {
        let body = "";
        req.on("data", (d) => (body += d));
        req.on("end", () => {
          // What an LMS checks: the signature over "<timestamp>.<body>", and a fresh timestamp.
          const stamp = req.headers["x-classroom-timestamp"];
          const expected = `sha256=${createHmac("sha256", hookSecret).update(`${stamp}.${body}`).digest("hex")}`;
          if (req.headers["x-classroom-signature"] !== expected || Math.abs(Date.now() / 1000 - Number(stamp)) > 60) {
            badSignatures.push(req.headers);
            res.writeHead(401).end();
            return;
          }
          const q = JSON.parse(body);
          asked.push(q);
          if (q.sessionId === "lms-unknown") {
            res.writeHead(404).end();
            return;
          }
          if (q.sessionId === "lms-redirect") {
            res.writeHead(302, { location: "http://127.0.0.1:9/elsewhere" }).end();
            return;
          }
          if (q.sessionId === "lms-huge") {
            res.writeHead(200, { "content-type": "application/json" });
            res.end(JSON.stringify({ enrolled: true, padding: "x".repeat(100_000) }));
            return;
          }
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ enrolled: q.userId === "lms-student", role: "instructor" }));
        });
      });
      await new Promise((r) => hook.listen(0, "127.0.0.1", r));
      hookUrl = `http://127.0.0.1:${hook.address().port}/enrollment?api_key=do-not-log-me`;
      server = await startServer({ dev: false, database: join(tmp.dir, "hook.sqlite3"), jwtSecret: secret, args: hookArgs(hookUrl), env: { CLASSROOM_LOG: "info" } });
      // A hook nobody listens on: the LMS is down.
      deadServer = await startServer({ dev: false, database: join(tmp.dir, "dead.sqlite3"), jwtSecret: secret, args: hookArgs("http://127.0.0.1:9/enrollment?api_key=do-not-log-me"), env: { CLASSROOM_LOG: "info" } });
    });
    after(async () => {
      await server?.stop();
      await deadServer?.stop();
      hook?.close();
    });

    it("admits whom the LMS says is enrolled, with the LMS's role", async () => {
      const p = await connect(server.url, { auth: { token: token("lms-student") } });
      const ack = await p.request("join-session", { sessionId: "lms-class" });
      assert.equal(ack.ok, true, JSON.stringify(ack.error));
      assert.equal(ack.self.isInstructor, true);
      assert.deepEqual(asked.at(-1), { sessionId: "lms-class", userId: "lms-student" });
      p.close();
    });

    it("refuses whom the LMS does not know, and unknown sessions", async () => {
      const p = await connect(server.url, { auth: { token: token("someone-else") } });
      assert.equal((await p.request("join-session", { sessionId: "lms-class" })).error.code, "not-enrolled");
      assert.equal((await p.request("join-session", { sessionId: "lms-unknown" })).error.code, "session-not-found");
      p.close();
    });

    it("internal when the LMS cannot be reached, and the socket stays usable", async () => {
      const p = await connect(deadServer.url, { auth: { token: token("lms-student") } });
      const ack = await p.request("join-session", { sessionId: "lms-class" });
      assert.equal(ack.error.code, "internal");
      assert.match(ack.error.message, /enrollment service is unavailable/);
      const again = await p.request("chat-message", { message: "hello?" });
      assert.equal(again.error.code, "not-joined");
      p.close();
      assert.doesNotMatch(deadServer.stderr(), /do-not-log-me/, "the hook's key is in the log");
    });

    it("signs every request, follows no redirect, reads no huge answer, and reuses answers briefly", async () => {
      assert.equal(badSignatures.length, 0, "every request carried a valid signature");
      const p = await connect(server.url, { auth: { token: token("lms-student") } });
      for (const sessionId of ["lms-redirect", "lms-huge"]) {
        const ack = await p.request("join-session", { sessionId });
        assert.equal(ack.error?.code, "internal", `${sessionId}: ${JSON.stringify(ack)}`);
      }
      const before = asked.length;
      for (let i = 0; i < 3; i++) {
        const ack = await p.request("join-session", { sessionId: "lms-class" });
        assert.equal(ack.ok, true, JSON.stringify(ack.error));
      }
      assert.ok(asked.length - before <= 1, `the LMS was asked ${asked.length - before} times for one answer`);
      p.close();
      assert.doesNotMatch(server.stderr(), /do-not-log-me/, "the hook's key is in the log");
    });

    it("refuses to start with a hook but no signing secret, or an http:// hook not allowed", async () => {
      await assert.rejects(startServer({ dev: false, jwtSecret: secret, args: ["--enrollment-hook", "https://lms.example/enrollment"] }), /enrollment-hook-secret/);
      await assert.rejects(startServer({ dev: false, jwtSecret: secret, args: ["--enrollment-hook", "http://lms.example/enrollment", "--enrollment-hook-secret", hookSecret] }), /https/);
    });
  });
});
