// A participant in its own process, so a test can kill or freeze it (abrupt disconnects).
// Usage: node peer-process.mjs URL SESSION USER NAME TRANSPORT [CHAT]
// With CHAT, it says that in the chat once joined.
import { io } from "socket.io-client";

const [url, sessionId, userId, userName, transport, chat] = process.argv.slice(2);
const transports = transport === "websocket" ? ["websocket"] : ["polling", "websocket"];
const socket = io(url, { transports, reconnection: false });
socket.on("connect", async () => {
  const ack = await socket.timeout(5000).emitWithAck("join-session", { sessionId, userId, userName, isInstructor: false });
  console.log(ack.ok ? "joined" : `refused ${JSON.stringify(ack.error)}`);
  if (ack.ok && chat) socket.emit("chat-message", { message: chat });
});
socket.on("connect_error", (e) => {
  console.log(`connect_error ${e.message}`);
  process.exit(1);
});
