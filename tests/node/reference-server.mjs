// The browser version's own signaling server, as its design document (the seed) shows it: a
// plain Socket.IO relay beside the LMS, on a stock Node socket.io 4 server. It knows the seed's
// events and fields and none of the ones our protocol added (docs/protocol.md, "What a client
// may rely on"):
//   join-session {sessionId, userId, userName, isInstructor}
//     → the joiner: session-joined (and the ack) {ok, self, participants}
//     → the others: user-joined {participant}, a system chat-message
//   participants: {userId, userName, isInstructor, audioEnabled, videoEnabled, screenSharing,
//                  socketId}   (no handRaised, no joinedAt; socketId is its own)
//   offer / answer / ice-candidate {targetUserId, …} → the target, with fromUserId, fromUserName
//   media-state {audioEnabled?, videoEnabled?, screenSharing?} → participant-updated
//   chat-message {message} → everyone: {userId, userName, message, timestamp, type}
//   leave-session, or the socket closing → user-left {userId, userName}, a system chat-message
// No protocolVersion, sessionId, iceServers or chatHistory in the join answer, no reason in
// user-left, no error codes, no extensions (video-request is dropped as unknown).
//
// It also serves the browser version's client as the seed shows it (seed-page/), so a Chromium
// participant can join a class on it: http://127.0.0.1:PORT/?session=S&user=U&name=N
//
// Usage: node reference-server.mjs [--host H] [--port N]
// Prints "classroom-reference listening on http://HOST:PORT" once ready.

import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Server } from "socket.io";

const here = dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith("--")) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const host = args.host ?? "127.0.0.1";
const port = args.port !== undefined ? Number(args.port) : 3001;

const PAGE = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/client.js": ["client.js", "text/javascript; charset=utf-8"],
};

const httpServer = createServer(async (req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  const file = PAGE[path];
  if (!file) {
    res.writeHead(404);
    res.end();
    return;
  }
  try {
    const body = await readFile(join(here, "seed-page", file[0]));
    res.writeHead(200, { "content-type": file[1], "cache-control": "no-store" });
    res.end(body);
  } catch (error) {
    res.writeHead(500);
    res.end(String(error));
  }
});

// The defaults of socket.io 4 (ping 25 s / 20 s, 1 MB payloads); it serves its own client at
// /socket.io/socket.io.js, which the seed page loads.
const io = new Server(httpServer);

/** sessionId -> Map<userId, participant> */
const sessions = new Map();

const systemMessage = (p, what) => ({
  userId: p.userId,
  userName: p.userName,
  message: `${p.userName} ${what}`,
  timestamp: Date.now(),
  type: "system",
});

io.on("connection", (socket) => {
  let joined = null; // { sessionId, userId }

  const me = () => (joined ? sessions.get(joined.sessionId)?.get(joined.userId) : undefined);

  function leave() {
    const participant = me();
    const sessionId = joined?.sessionId;
    joined = null;
    if (!participant || participant.socketId !== socket.id) return;
    const members = sessions.get(sessionId);
    members.delete(participant.userId);
    if (members.size === 0) sessions.delete(sessionId);
    socket.leave(sessionId);
    io.to(sessionId).emit("user-left", { userId: participant.userId, userName: participant.userName });
    io.to(sessionId).emit("chat-message", systemMessage(participant, "left the class"));
  }

  socket.on("join-session", (data, ack) => {
    const reply = typeof ack === "function" ? ack : () => {};
    if (!data || typeof data.sessionId !== "string" || typeof data.userId !== "string" || !data.userId) {
      reply({ ok: false, error: "sessionId and userId are required" });
      return;
    }
    if (joined) leave();
    const { sessionId, userId } = data;
    if (!sessions.has(sessionId)) sessions.set(sessionId, new Map());
    const members = sessions.get(sessionId);
    const participant = {
      userId,
      userName: typeof data.userName === "string" ? data.userName : userId,
      isInstructor: data.isInstructor === true,
      audioEnabled: true,
      videoEnabled: true,
      screenSharing: false,
      socketId: socket.id,
    };
    const others = [...members.values()].filter((p) => p.userId !== userId);
    members.set(userId, participant);
    joined = { sessionId, userId };
    socket.join(sessionId);
    const answer = { ok: true, self: participant, participants: others };
    reply(answer);
    socket.emit("session-joined", answer);
    socket.to(sessionId).emit("user-joined", participant);
    io.to(sessionId).emit("chat-message", systemMessage(participant, "joined the class"));
  });

  socket.on("leave-session", (_data, ack) => {
    leave();
    if (typeof ack === "function") ack({ ok: true });
  });

  for (const [event, field] of [["offer", "offer"], ["answer", "answer"], ["ice-candidate", "candidate"]]) {
    socket.on(event, (data, ack) => {
      const from = me();
      const target = joined && data ? sessions.get(joined.sessionId)?.get(data.targetUserId) : undefined;
      if (from && target) {
        io.to(target.socketId).emit(event, { fromUserId: from.userId, fromUserName: from.userName, [field]: data[field] });
      }
      if (typeof ack === "function") ack({ ok: Boolean(from && target) });
    });
  }

  socket.on("media-state", (data, ack) => {
    const participant = me();
    if (participant && data) {
      for (const key of ["audioEnabled", "videoEnabled", "screenSharing"])
        if (typeof data[key] === "boolean") participant[key] = data[key];
      socket.to(joined.sessionId).emit("participant-updated", participant);
    }
    if (typeof ack === "function") ack({ ok: Boolean(participant) });
  });

  socket.on("chat-message", (data, ack) => {
    const participant = me();
    if (participant && data && typeof data.message === "string" && data.message.trim()) {
      io.to(joined.sessionId).emit("chat-message", {
        userId: participant.userId,
        userName: participant.userName,
        message: data.message,
        timestamp: Date.now(),
        type: "user",
      });
    }
    if (typeof ack === "function") ack({ ok: Boolean(participant) });
  });

  socket.on("disconnect", leave);
});

httpServer.listen(port, host, () => {
  const address = httpServer.address();
  console.log(`classroom-reference listening on http://${address.address}:${address.port}`);
});

const stop = () => {
  io.close();
  httpServer.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
