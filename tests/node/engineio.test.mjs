// Engine.IO v4 conformance, written from the protocol's specification (handshake, heartbeat,
// upgrade, close, payload limits), on raw HTTP long-polling and raw WebSocket frames: no
// Socket.IO client in between, so what a server puts on the wire is what is checked. Runs
// against our server (CLASSROOM_TARGET=ours) and the reference implementation, Node's
// engine.io under socket.io (CLASSROOM_TARGET=node: protocol-relay.mjs), so a patch in
// vendor/ cannot silently change the wire behaviour.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { OURS, startServer } from "./harness.mjs";

const PING_INTERVAL_MS = 300;
const PING_TIMEOUT_MS = 200;
const MAX_PAYLOAD = 10_000;
const SEPARATOR = "\x1e";

describe(`Engine.IO v4 conformance (${OURS ? "ours" : "node"})`, () => {
  let server;
  let base; // http://host:port/socket.io/
  let wsBase;

  before(async () => {
    server = await startServer({
      pingIntervalMs: PING_INTERVAL_MS,
      pingTimeoutMs: PING_TIMEOUT_MS,
      args: ["--max-payload", String(MAX_PAYLOAD)],
    });
    base = `${server.url}/socket.io/`;
    wsBase = base.replace(/^http/, "ws");
  });

  after(async () => server?.stop());

  const get = (query) => fetch(`${base}?${query}`);
  const post = (query, body) => fetch(`${base}?${query}`, { method: "POST", body, headers: { "content-type": "text/plain;charset=UTF-8" } });

  /** Opens a polling session; resolves with the open packet's data and when it was asked for. */
  async function openPolling() {
    const askedAt = Date.now();
    const res = await get("EIO=4&transport=polling");
    assert.equal(res.status, 200);
    const body = await res.text();
    assert.equal(body[0], "0", `the first packet is OPEN, got ${body}`);
    return { open: JSON.parse(body.slice(1)), askedAt };
  }

  const poll = (sid) => get(`EIO=4&transport=polling&sid=${sid}`);

  function openWebSocket(query = "EIO=4&transport=websocket") {
    const ws = new WebSocket(`${wsBase}?${query}`);
    const messages = [];
    const waiters = [];
    ws.on("message", (data) => {
      messages.push({ text: data.toString(), at: Date.now() });
      for (const w of waiters.splice(0)) w();
    });
    const closed = new Promise((resolve) => ws.on("close", (code) => resolve(code)));
    const opened = new Promise((resolve, reject) => {
      ws.on("open", resolve);
      ws.on("error", reject);
    });
    /** The next message not yet taken. */
    let taken = 0;
    const next = (timeoutMs = 3000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (taken < messages.length) {
            clearTimeout(timer);
            resolve(messages[taken++]);
          } else waiters.push(check);
        };
        const timer = setTimeout(() => reject(new Error(`no message within ${timeoutMs} ms`)), timeoutMs);
        check();
      });
    return { ws, opened, closed, next };
  }

  describe("handshake", () => {
    it("opens a polling session with sid, upgrades, pingInterval, pingTimeout and maxPayload", async () => {
      const { open } = await openPolling();
      assert.equal(typeof open.sid, "string");
      assert.ok(open.sid.length > 0);
      assert.deepEqual(open.upgrades, ["websocket"]);
      assert.equal(open.pingInterval, PING_INTERVAL_MS);
      assert.equal(open.pingTimeout, PING_TIMEOUT_MS);
      assert.equal(open.maxPayload, MAX_PAYLOAD);
    });

    it("answers the handshake as text/plain", async () => {
      const res = await get("EIO=4&transport=polling");
      assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
      await res.text();
    });

    it("opens a websocket session whose first frame is OPEN, with no upgrades left", async () => {
      const socket = openWebSocket();
      await socket.opened;
      const first = await socket.next();
      assert.equal(first.text[0], "0");
      const open = JSON.parse(first.text.slice(1));
      assert.equal(typeof open.sid, "string");
      assert.deepEqual(open.upgrades, []);
      assert.equal(open.pingInterval, PING_INTERVAL_MS);
      socket.ws.close();
    });

    for (const [what, query] of [
      ["a missing EIO", "transport=polling"],
      ["an invalid EIO", "EIO=abc&transport=polling"],
      ["a missing transport", "EIO=4"],
      ["an unknown transport", "EIO=4&transport=carrier-pigeon"],
      ["an unknown sid", "EIO=4&transport=polling&sid=not-a-session"],
    ]) {
      it(`refuses ${what} with 400`, async () => {
        const res = await get(query);
        assert.equal(res.status, 400, `${query}: ${res.status}`);
        await res.text();
      });
    }

    it("refuses a websocket with an unknown sid", async () => {
      const socket = openWebSocket("EIO=4&transport=websocket&sid=not-a-session");
      await assert.rejects(socket.opened);
    });
  });

  describe("heartbeat", () => {
    it("sends the first ping pingInterval after the handshake, not at once (polling)", async () => {
      const { open, askedAt } = await openPolling();
      const res = await poll(open.sid);
      const body = await res.text();
      const after = Date.now() - askedAt;
      assert.equal(body, "2", "the pending poll is answered with a PING");
      assert.ok(after >= PING_INTERVAL_MS, `the first ping came ${after} ms after the handshake (< ${PING_INTERVAL_MS})`);
      assert.ok(after < PING_INTERVAL_MS + 1000, `the first ping came late: ${after} ms`);
    });

    it("goes on pinging every pingInterval while pongs come (polling)", async () => {
      const { open } = await openPolling();
      let last = Date.now();
      for (let i = 0; i < 3; i++) {
        const body = await (await poll(open.sid)).text();
        assert.equal(body, "2");
        const now = Date.now();
        if (i > 0) assert.ok(now - last >= PING_INTERVAL_MS - 20, `ping ${i} came ${now - last} ms after the last`);
        last = now;
        const res = await post(`EIO=4&transport=polling&sid=${open.sid}`, "3");
        assert.equal(res.status, 200);
        assert.equal(await res.text(), "ok");
      }
    });

    it("closes a session whose pong does not come within pingTimeout", async () => {
      const { open } = await openPolling();
      assert.equal(await (await poll(open.sid)).text(), "2");
      await new Promise((r) => setTimeout(r, PING_TIMEOUT_MS + 300));
      const res = await poll(open.sid);
      const body = await res.text();
      // The session is gone: refused as unknown (or, at the reference, a last CLOSE first).
      assert.ok(res.status === 400 || body === "1", `after the ping timeout: ${res.status} ${body}`);
    });

    it("sends the first ping pingInterval after the handshake, then every pingInterval (websocket)", async () => {
      const openedAt = Date.now();
      const socket = openWebSocket();
      await socket.opened;
      await socket.next(); // OPEN
      const first = await socket.next();
      assert.equal(first.text, "2");
      assert.ok(first.at - openedAt >= PING_INTERVAL_MS, `first ping after ${first.at - openedAt} ms`);
      socket.ws.send("3");
      const second = await socket.next();
      assert.equal(second.text, "2");
      assert.ok(second.at - first.at >= PING_INTERVAL_MS - 20, `second ping ${second.at - first.at} ms after the first`);
      socket.ws.send("3");
      socket.ws.close();
    });
  });

  describe("close", () => {
    it("answers a pending poll with NOOP when the client closes with a CLOSE packet, then forgets the session", async () => {
      const { open } = await openPolling();
      const pending = poll(open.sid);
      await new Promise((r) => setTimeout(r, 50));
      const res = await post(`EIO=4&transport=polling&sid=${open.sid}`, "1");
      assert.equal(res.status, 200);
      await res.text();
      const answered = await pending;
      assert.equal(answered.status, 200);
      assert.equal(await answered.text(), "6", "the pending poll gets a NOOP");
      const next = await poll(open.sid);
      assert.equal(next.status, 400, "the closed session is unknown");
      await next.text();
    });

    it("closes the websocket when the client sends CLOSE", async () => {
      const socket = openWebSocket();
      await socket.opened;
      await socket.next();
      socket.ws.send("1");
      const code = await Promise.race([socket.closed, new Promise((r) => setTimeout(() => r("still open"), 2000))]);
      assert.notEqual(code, "still open");
    });
  });

  describe("upgrade", () => {
    it("upgrades polling to websocket: 2probe, 3probe, a NOOP to the pending poll, 5", async () => {
      const { open } = await openPolling();
      const pending = poll(open.sid);
      await new Promise((r) => setTimeout(r, 50));
      const socket = openWebSocket(`EIO=4&transport=websocket&sid=${open.sid}`);
      await socket.opened;
      socket.ws.send("2probe");
      assert.equal((await socket.next()).text, "3probe");
      const answered = await pending;
      assert.equal(await answered.text(), "6", "the pending poll gets a NOOP during the upgrade");
      socket.ws.send("5");
      // The session now lives on the websocket: pings come there, and pongs keep it open.
      const ping = await socket.next(PING_INTERVAL_MS + 1500);
      assert.equal(ping.text, "2");
      socket.ws.send("3");
      // Polling with that sid is refused from now on.
      const res = await poll(open.sid);
      assert.equal(res.status, 400);
      await res.text();
      socket.ws.close();
    });

    it("refuses a second websocket for a session already upgraded", async () => {
      const { open } = await openPolling();
      const socket = openWebSocket(`EIO=4&transport=websocket&sid=${open.sid}`);
      await socket.opened;
      socket.ws.send("2probe");
      assert.equal((await socket.next()).text, "3probe");
      socket.ws.send("5");
      await new Promise((r) => setTimeout(r, 100));
      const again = openWebSocket(`EIO=4&transport=websocket&sid=${open.sid}`);
      const outcome = await again.opened.then(
        () => Promise.race([again.closed.then(() => "closed"), new Promise((r) => setTimeout(() => r("open"), 1500))]),
        () => "refused",
      );
      assert.notEqual(outcome, "open", "a second websocket for the same session stays open");
      socket.ws.close();
    });
  });

  describe("payloads", () => {
    it("carries a Socket.IO CONNECT and its answer as MESSAGE packets over polling", async () => {
      const { open } = await openPolling();
      const res = await post(`EIO=4&transport=polling&sid=${open.sid}`, "40");
      assert.equal(await res.text(), "ok");
      const body = await (await poll(open.sid)).text();
      const packets = body.split(SEPARATOR);
      assert.ok(packets.some((p) => p.startsWith("40{") && JSON.parse(p.slice(2)).sid), `CONNECT answer: ${body}`);
    });

    it("refuses a POST larger than maxPayload with 413", async () => {
      const { open } = await openPolling();
      const res = await post(`EIO=4&transport=polling&sid=${open.sid}`, `4${"x".repeat(MAX_PAYLOAD + 10)}`);
      assert.equal(res.status, 413);
      await res.text();
    });

    it("closes a websocket at a frame header that declares more than maxPayload, before its body", async () => {
      const socket = openWebSocket();
      await socket.opened;
      await socket.next();
      // A masked text frame declaring 10 MB (64-bit length), and no body at all.
      const header = Buffer.alloc(14);
      header[0] = 0x81;
      header[1] = 0x80 | 127;
      header.writeBigUInt64BE(10_000_000n, 2);
      socket.ws._socket.write(header);
      const code = await Promise.race([socket.closed, new Promise((r) => setTimeout(() => r("still open"), 2000))]);
      assert.notEqual(code, "still open", "the server waits for a 10 MB frame it should refuse");
    });

    it("closes a websocket that sends a frame larger than maxPayload", async () => {
      const socket = openWebSocket();
      await socket.opened;
      await socket.next();
      socket.ws.send(`4${"x".repeat(MAX_PAYLOAD + 10)}`);
      const code = await Promise.race([socket.closed, new Promise((r) => setTimeout(() => r("still open"), 2000))]);
      assert.notEqual(code, "still open");
    });
  });
});
