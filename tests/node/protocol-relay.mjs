// Our protocol (docs/protocol.md, with every field and error our server adds) on a stock Node
// socket.io 4 server, in development mode (identity from the join-session payload, sessions
// created on first join, chat history in memory only). The protocol suite runs against it and
// against ours, so the suite checks the protocol rather than one implementation, and the Rust
// clients meet a strict Node server. The browser version's own relay, which knows none of our
// additions, is reference-server.mjs.
//
// Usage: node protocol-relay.mjs [--port N] [--ping-interval-ms N] [--ping-timeout-ms N]
//        [--max-participants N] [--events-per-second N] [--event-burst N] [--chat-history N]
//        [--max-payload BYTES] [--max-chat-chars N]
// Prints "classroom-protocol-relay listening on http://127.0.0.1:PORT" once ready.

import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { Server } from "socket.io";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith("--")) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const num = (name, fallback) => (args[name] !== undefined ? Number(args[name]) : fallback);

const config = {
  host: args.host ?? "127.0.0.1",
  port: num("port", 3001),
  pingInterval: num("ping-interval-ms", 25000),
  pingTimeout: num("ping-timeout-ms", 20000),
  maxParticipants: num("max-participants", 50),
  eventsPerSecond: num("events-per-second", 100),
  eventBurst: num("event-burst", 400),
  chatHistory: num("chat-history", 50),
  maxPayload: num("max-payload", 1_000_000),
  maxChatChars: num("max-chat-chars", 4000),
  maxSdpBytes: 64 * 1024,
  maxCandidateBytes: 1024,
  maxIdChars: 128,
  maxNameChars: 128,
};

const PROTOCOL_VERSION = 1;
const ICE_SERVERS = [
  { urls: ["stun:stun.l.google.com:19302"] },
  { urls: ["stun:stun1.l.google.com:19302"] },
];

/** sessionId -> { members: Map<userId, {participant, socket}>, history: [] } */
const sessions = new Map();

const httpServer = createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ status: "ok", sessions: sessions.size }));
    return;
  }
  res.writeHead(404);
  res.end();
});

const io = new Server(httpServer, {
  pingInterval: config.pingInterval,
  pingTimeout: config.pingTimeout,
  maxHttpBufferSize: config.maxPayload,
  cors: { origin: true },
});

class Refusal extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const chars = (s) => [...s].length;

function checkText(field, value, max, required) {
  if (typeof value !== "string") throw new Refusal("invalid-payload", `${field} must be a string`);
  if (required && value.trim() === "") throw new Refusal("invalid-payload", `${field} must not be empty`);
  if (value.length > max && chars(value) > max)
    throw new Refusal("payload-too-large", `${field} is longer than ${max} characters`);
}

function checkSdp(field, d, kinds) {
  if (!isObject(d) || typeof d.type !== "string")
    throw new Refusal("invalid-payload", `${field} must be {type, sdp}`);
  if (!kinds.includes(d.type)) throw new Refusal("invalid-payload", `${field}.type must be one of ${kinds}`);
  const sdp = d.sdp ?? "";
  if (typeof sdp !== "string") throw new Refusal("invalid-payload", `${field}.sdp must be a string`);
  if (Buffer.byteLength(sdp) > config.maxSdpBytes)
    throw new Refusal("payload-too-large", `${field}.sdp is larger than ${config.maxSdpBytes} bytes`);
  if (!sdp.startsWith("v=0")) throw new Refusal("invalid-payload", `${field}.sdp is not an SDP (must start with v=0)`);
  return { type: d.type, sdp };
}

function systemMessage(p, what) {
  return {
    id: randomUUID(),
    userId: p.userId,
    userName: p.userName,
    message: `${p.userName} ${what}`,
    timestamp: Date.now(),
    type: "system",
  };
}

// The last chatHistory user messages and the last SYSTEM_NOTICES_KEPT notices, so that joins and
// leaves do not push the conversation out of the replayed history.
const SYSTEM_NOTICES_KEPT = 10;
function pushHistory(session, message) {
  session.history.push(message);
  const cap = message.type === "system" ? SYSTEM_NOTICES_KEPT : config.chatHistory;
  if (session.history.filter((m) => m.type === message.type).length > cap)
    session.history.splice(session.history.findIndex((m) => m.type === message.type), 1);
}

function emitToOthers(session, exceptSocketId, event, data) {
  for (const m of session.members.values()) if (m.socket.id !== exceptSocketId) m.socket.emit(event, data);
}

io.on("connection", (socket) => {
  const conn = { joined: null, tokens: config.eventBurst, last: Date.now(), unreported: 0, lastReport: 0 };

  function refuse(event, ack, refusal) {
    const body = { code: refusal.code, message: refusal.message, event };
    socket.emit("error", body);
    if (typeof ack === "function") ack({ ok: false, error: body });
  }

  function admit(event, ack) {
    const now = Date.now();
    conn.tokens = Math.min(config.eventBurst, conn.tokens + ((now - conn.last) / 1000) * config.eventsPerSecond);
    conn.last = now;
    if (conn.tokens >= 1) {
      conn.tokens -= 1;
      return true;
    }
    conn.unreported += 1;
    const message = (n) =>
      `more than ${config.eventsPerSecond} events per second (burst ${config.eventBurst}); ${n} event(s) refused`;
    if (now - conn.lastReport >= 1000) {
      conn.lastReport = now;
      const n = conn.unreported;
      conn.unreported = 0;
      refuse(event, ack, new Refusal("rate-limited", message(n)));
    } else if (typeof ack === "function") {
      ack({ ok: false, error: { code: "rate-limited", message: message(1), event } });
    }
    return false;
  }

  // Every handler: rate limit, run, ack or refuse.
  function handle(event, fn) {
    socket.on(event, (...params) => {
      const ack = typeof params[params.length - 1] === "function" ? params.pop() : undefined;
      if (!admit(event, ack)) return;
      try {
        const result = fn(params[0]);
        if (typeof ack === "function") ack({ ok: true, ...(result ?? {}) });
        if (event === "join-session") socket.emit("session-joined", result);
      } catch (e) {
        if (e instanceof Refusal) refuse(event, ack, e);
        else refuse(event, ack, new Refusal("internal", String(e)));
      }
    });
  }

  function leave(reason) {
    const joined = conn.joined;
    if (!joined) return false;
    conn.joined = null;
    const session = sessions.get(joined.sessionId);
    const member = session?.members.get(joined.userId);
    if (!session || !member || member.socket.id !== socket.id) return true;
    session.members.delete(joined.userId);
    const notice = systemMessage(member.participant, "left the class");
    pushHistory(session, notice);
    if (session.members.size === 0) sessions.delete(joined.sessionId);
    const left = { userId: joined.userId, userName: joined.userName, reason };
    emitToOthers(session, socket.id, "user-left", left);
    emitToOthers(session, socket.id, "chat-message", notice);
    return true;
  }

  handle("join-session", (d) => {
    if (!isObject(d) || typeof d.sessionId !== "string")
      throw new Refusal("invalid-payload", "join-session payload does not match the protocol: sessionId");
    checkText("sessionId", d.sessionId, config.maxIdChars, true);
    const userId = typeof d.userId === "string" ? d.userId.trim() : "";
    const userName = typeof d.userName === "string" ? d.userName.trim() : "";
    if (d.userId !== undefined && d.userId !== null) checkText("userId", d.userId, config.maxIdChars, false);
    if (d.userName !== undefined && d.userName !== null) checkText("userName", d.userName, config.maxNameChars, false);
    if (!userId || !userName) throw new Refusal("invalid-payload", "join-session needs userId and userName");
    const isInstructor = d.isInstructor === true;

    if (conn.joined && (conn.joined.sessionId !== d.sessionId || conn.joined.userId !== userId)) leave("left");

    let session = sessions.get(d.sessionId);
    if (!session) {
      session = { members: new Map(), history: [] };
      sessions.set(d.sessionId, session);
    }
    let participant;
    const existing = session.members.get(userId);
    if (existing) {
      const old = existing.socket;
      existing.socket = socket;
      existing.participant.userName = userName;
      existing.participant.isInstructor = isInstructor;
      participant = existing.participant;
      emitToOthers(session, socket.id, "participant-updated", participant);
      if (old.id !== socket.id) {
        old.emit("error", {
          code: "session-replaced",
          message: "you joined this session from another connection",
          event: "join-session",
        });
        old.disconnect(true);
      }
    } else {
      if (session.members.size >= config.maxParticipants)
        throw new Refusal("session-full", `the session has its maximum of ${config.maxParticipants} participants`);
      participant = {
        userId,
        userName,
        isInstructor,
        audioEnabled: true,
        videoEnabled: true,
        screenSharing: false,
        handRaised: false,
        joinedAt: Date.now(),
      };
      const others = [...session.members.values()];
      session.members.set(userId, { participant, socket });
      const notice = systemMessage(participant, "joined the class");
      pushHistory(session, notice);
      for (const m of others) {
        m.socket.emit("user-joined", participant);
        m.socket.emit("chat-message", notice);
      }
    }
    conn.joined = { sessionId: d.sessionId, userId, userName };
    return {
      protocolVersion: PROTOCOL_VERSION,
      sessionId: d.sessionId,
      self: participant,
      participants: [...session.members.values()].filter((m) => m.participant.userId !== userId).map((m) => m.participant),
      iceServers: ICE_SERVERS,
      chatHistory: [...session.history],
    };
  });

  handle("leave-session", () => {
    if (!leave("left")) throw new Refusal("not-joined", "join a session first (join-session)");
    return {};
  });

  function relay(event, field, build) {
    handle(event, (d) => {
      if (!isObject(d) || typeof d.targetUserId !== "string")
        throw new Refusal("invalid-payload", `${event} payload does not match the protocol: targetUserId`);
      if (!conn.joined) throw new Refusal("not-joined", "join a session first (join-session)");
      const value = build(d[field]);
      if (d.targetUserId === conn.joined.userId) throw new Refusal("invalid-payload", "targetUserId is yourself");
      const target = sessions.get(conn.joined.sessionId)?.members.get(d.targetUserId);
      if (!target) throw new Refusal("target-not-found", `"${d.targetUserId}" is not in this session`);
      target.socket.emit(event, { fromUserId: conn.joined.userId, fromUserName: conn.joined.userName, [field]: value });
      return {};
    });
  }
  relay("offer", "offer", (o) => checkSdp("offer", o, ["offer"]));
  relay("answer", "answer", (a) => checkSdp("answer", a, ["answer", "pranswer"]));
  relay("ice-candidate", "candidate", (c) => {
    if (c === null) return null;
    if (!isObject(c) || typeof c.candidate !== "string")
      throw new Refusal("invalid-payload", "ice-candidate payload does not match the protocol: candidate");
    if (c.candidate.length + (c.sdpMid?.length ?? 0) + (typeof c.usernameFragment === "string" ? c.usernameFragment.length : 0) > config.maxCandidateBytes)
      throw new Refusal("payload-too-large", `candidate is larger than ${config.maxCandidateBytes} bytes`);
    const out = { candidate: c.candidate, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null };
    if (typeof c.usernameFragment === "string") out.usernameFragment = c.usernameFragment;
    return out;
  });

  handle("media-state", (d) => {
    if (!isObject(d)) throw new Refusal("invalid-payload", "media-state payload does not match the protocol");
    for (const k of ["audioEnabled", "videoEnabled", "screenSharing", "handRaised"])
      if (d[k] !== undefined && d[k] !== null && typeof d[k] !== "boolean")
        throw new Refusal("invalid-payload", `media-state payload does not match the protocol: ${k}`);
    if (!conn.joined) throw new Refusal("not-joined", "join a session first (join-session)");
    const session = sessions.get(conn.joined.sessionId);
    const member = session.members.get(conn.joined.userId);
    for (const k of ["audioEnabled", "videoEnabled", "screenSharing", "handRaised"])
      if (typeof d[k] === "boolean") member.participant[k] = d[k];
    emitToOthers(session, socket.id, "participant-updated", member.participant);
    return { participant: member.participant };
  });

  handle("chat-message", (d) => {
    if (!isObject(d) || typeof d.message !== "string")
      throw new Refusal("invalid-payload", "chat-message payload does not match the protocol: message");
    checkText("message", d.message, config.maxChatChars, true);
    if (!conn.joined) throw new Refusal("not-joined", "join a session first (join-session)");
    const session = sessions.get(conn.joined.sessionId);
    const message = {
      id: randomUUID(),
      userId: conn.joined.userId,
      userName: conn.joined.userName,
      message: d.message,
      timestamp: Date.now(),
      type: "user",
    };
    pushHistory(session, message);
    emitToOthers(session, null, "chat-message", message);
    return { message };
  });

  const known = new Set(["join-session", "leave-session", "offer", "answer", "ice-candidate", "media-state", "chat-message"]);
  socket.onAny((event, ...params) => {
    if (known.has(event)) return;
    const ack = typeof params[params.length - 1] === "function" ? params.pop() : undefined;
    refuse(event, ack, new Refusal("unknown-event", `unknown event "${event}"`));
  });

  socket.on("disconnect", () => leave("disconnected"));
});

httpServer.listen(config.port, config.host, () => {
  const { address, port } = httpServer.address();
  console.log(`classroom-protocol-relay listening on http://${address}:${port}`);
});

const stop = () => {
  io.close();
  httpServer.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
