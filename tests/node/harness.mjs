// Shared helpers of the Node protocol suite: start a server (ours, or our protocol on stock Node
// socket.io: protocol-relay.mjs), connect
// socket.io-client peers over the chosen transport, and wait for events with timeouts.

import { spawn, execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createHmac } from "node:crypto";
import { io } from "socket.io-client";

const here = dirname(fileURLToPath(import.meta.url));

/** Which server the suite runs against: "ours" (needs CLASSROOM_SIGNALING_BIN) or "node"
 * (protocol-relay.mjs). The browser version's own relay (reference-server.mjs) knows none of
 * the protocol's additions, so this suite does not run against it (seed-relay.test.mjs does). */
export const TARGET = process.env.CLASSROOM_TARGET ?? "ours";
/** "polling-upgrade" (browsers' default: polling first, then websocket) or "websocket". */
export const TRANSPORT = process.env.CLASSROOM_TRANSPORT ?? "polling-upgrade";
export const OURS = TARGET === "ours";

/** Timings the suite's servers use, so that ping-based disconnects are seen fast. */
export const PING_INTERVAL_MS = 400;
export const PING_TIMEOUT_MS = 400;

let counter = 0;
/** A session or user id unique to this run. */
export const uid = (prefix) => `${prefix}-${process.pid}-${++counter}`;

/**
 * Starts a server on a free loopback port and resolves once it listens.
 * options: { dev = true, args = [], database, jwtSecret, env, pingIntervalMs, pingTimeoutMs }
 */
export async function startServer(options = {}) {
  const {
    dev = true, args = [], database, jwtSecret, env = {},
    pingIntervalMs = PING_INTERVAL_MS, pingTimeoutMs = PING_TIMEOUT_MS,
  } = options;
  const common = [
    "--ping-interval-ms", String(pingIntervalMs),
    "--ping-timeout-ms", String(pingTimeoutMs),
    ...args,
  ];
  let cmd, argv;
  if (OURS) {
    cmd = ourBinary();
    argv = ["serve", "--listen", "127.0.0.1:0", ...(dev ? ["--dev"] : []), ...common];
    if (database) argv.unshift("--database", database);
    if (jwtSecret) argv.unshift("--jwt-secret", jwtSecret);
  } else {
    cmd = process.execPath;
    argv = [join(here, "protocol-relay.mjs"), "--port", "0", ...common];
  }
  const child = spawn(cmd, argv, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, CLASSROOM_LOG: process.env.CLASSROOM_LOG ?? "warn", ...env },
  });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
    if (process.env.CLASSROOM_SERVER_STDERR) process.stderr.write(d);
  });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 15000);
    child.on("error", (e) => reject(new Error(`cannot start ${cmd}: ${e.message}`)));
    child.on("exit", (code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const m = line.match(/listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  return {
    url,
    child,
    stderr: () => stderr,
    /** Graceful stop (SIGTERM); resolves with the exit status. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

/** Runs `fn(server)` against a server started with `options`, and stops it whatever happens. */
export async function withServer(options, fn) {
  const server = await startServer(options);
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

export function ourBinary() {
  const bin = process.env.CLASSROOM_SIGNALING_BIN;
  if (!bin) throw new Error("set CLASSROOM_SIGNALING_BIN to the classroom-signaling binary");
  return bin;
}

/** Runs our binary's roster/token subcommands. */
export function ourCli(args, env = {}) {
  return execFileSync(ourBinary(), args, { env: { ...process.env, ...env }, encoding: "utf8" }).trim();
}

export function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), "classroom-node-"));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

function transportOptions() {
  return TRANSPORT === "websocket" ? { transports: ["websocket"] } : { transports: ["polling", "websocket"], upgrade: true };
}

/**
 * A connected socket.io-client peer that records every event it receives.
 */
export async function connect(url, { auth, expectError = false } = {}) {
  const socket = io(url, { ...transportOptions(), reconnection: false, forceNew: true, auth, timeout: 5000 });
  const peer = new Peer(socket);
  if (expectError) {
    return await new Promise((resolve, reject) => {
      socket.on("connect", () => reject(new Error("connected although a refusal was expected")));
      socket.on("connect_error", (err) => {
        socket.close();
        resolve(err);
      });
    });
  }
  await new Promise((resolve, reject) => {
    socket.on("connect", resolve);
    socket.on("connect_error", reject);
  });
  if (TRANSPORT === "polling-upgrade") await peer.upgraded();
  return peer;
}

export class Peer {
  constructor(socket) {
    this.socket = socket;
    this.events = [];
    this.waiters = [];
    socket.onAny((event, ...args) => {
      this.events.push({ event, data: args[0] });
      this.waiters = this.waiters.filter((w) => !w.check());
    });
    socket.on("disconnect", (reason) => {
      this.events.push({ event: "disconnect", data: reason });
      this.waiters = this.waiters.filter((w) => !w.check());
    });
  }

  /** Resolves when the transport was upgraded to websocket (polling-upgrade mode). */
  upgraded() {
    const engine = this.socket.io.engine;
    if (engine.transport.name === "websocket") return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("transport was not upgraded to websocket")), 5000);
      engine.once("upgrade", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  transport() {
    return this.socket.io.engine.transport.name;
  }

  /** Emits with an ack and resolves with the ack payload. */
  request(event, data, timeoutMs = 5000) {
    return this.socket.timeout(timeoutMs).emitWithAck(event, data);
  }

  emit(event, data) {
    this.socket.emit(event, data);
  }

  /** All received events named `event` (optionally matching `pred`). */
  received(event, pred = () => true) {
    return this.events.filter((e) => e.event === event && pred(e.data)).map((e) => e.data);
  }

  /** Waits for the first received `event` matching `pred` (including ones already received). */
  waitFor(event, pred = () => true, timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
      const waiter = {
        check: () => {
          const hit = this.events.find((e) => e.event === event && pred(e.data));
          if (hit) {
            clearTimeout(waiter.timer);
            resolve(hit.data);
            return true;
          }
          return false;
        },
      };
      if (waiter.check()) return;
      waiter.timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no ${event} within ${timeoutMs} ms; got ${JSON.stringify(this.events.map((e) => e.event))}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  async join(sessionId, userId, userName, isInstructor = false, capabilities = undefined) {
    const ack = await this.request("join-session", { sessionId, userId, userName, isInstructor, capabilities });
    if (!ack.ok) throw new Error(`join refused: ${JSON.stringify(ack.error)}`);
    return ack;
  }

  close() {
    this.socket.close();
  }
}

/** Waits `ms` (to check that nothing arrives). */
export const quiet = (ms) => new Promise((r) => setTimeout(r, ms));

/** A minimal SDP body; the server checks only its shape. */
export const SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

/** An HS256 JWT made with Node's crypto, independent of the server's own token code. */
export function signJwt(claims, secret) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const head = b64({ alg: "HS256", typ: "JWT" });
  const body = b64(claims);
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}
