// A loopback-only network namespace for browser tests, and what runs inside it: a server,
// headless desktop participants (their JSON lines collected) and Debian's Chromium (fake camera
// and microphone, driven by puppeteer-core; never a downloaded browser). Needs root (ip netns).

import { spawn, execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdtempSync, writeFileSync, chmodSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer from "puppeteer-core";

const CHROMIUM = process.env.CLASSROOM_CHROMIUM ?? "/usr/bin/chromium";

export class NetnsLab {
  constructor(tag) {
    this.ns = `classroom-${tag}-${process.pid}`;
    this.work = mkdtempSync(join(tmpdir(), `classroom-${tag}-`));
    this.children = [];
    this.browsers = [];
    execFileSync("ip", ["netns", "add", this.ns]);
    execFileSync("ip", ["netns", "exec", this.ns, "ip", "link", "set", "lo", "up"]);
  }

  /** Spawns `program` inside the namespace; killed by close(). With `logTo` (an array) its
   * standard error is collected there, line by line, instead of passed through. */
  spawn(program, args, env = {}, { logTo } = {}) {
    const child = spawn("ip", ["netns", "exec", this.ns, program, ...args], {
      stdio: ["pipe", "pipe", logTo ? "pipe" : "inherit"],
      // The browser version's relay hands out the seed's public STUN servers, which cannot be
      // resolved in here: their lookup errors are expected and kept out of the output.
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "error,webrtc::peer_connection::transport::stun_gatherer=off", ...env },
    });
    if (logTo) createInterface({ input: child.stderr }).on("line", (line) => logTo.push(line));
    this.children.push(child);
    return child;
  }

  /** Starts a server and resolves once it prints "listening on"; with `logTo`, its output is
   * collected there. */
  async startServer(program, args, { env = {}, logTo } = {}) {
    const server = this.spawn(program, args, env, { logTo });
    await new Promise((resolve, reject) => {
      createInterface({ input: server.stdout }).on("line", (line) => {
        logTo?.push(line);
        if (line.includes("listening on")) resolve();
      });
      server.on("exit", (code) => reject(new Error(`${program} exited ${code} before listening`)));
    });
    return server;
  }

  /** A headless desktop participant (`classroom --headless …`). */
  startDesktop(bin, args, { logTo } = {}) {
    const child = this.spawn(bin, ["--headless", ...args], {}, { logTo });
    const desktop = new Desktop(child);
    return desktop;
  }

  /** Debian's Chromium inside the namespace (a wrapper keeps puppeteer's pipe to it). */
  async launchChromium(name = "chromium", extraArgs = []) {
    const wrapper = join(this.work, `${name}-in-namespace.sh`);
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${this.ns} ${CHROMIUM} "$@"\n`);
    chmodSync(wrapper, 0o755);
    const browser = await puppeteer.launch({
      executablePath: wrapper,
      headless: true,
      pipe: true,
      userDataDir: join(this.work, name),
      args: [
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--no-sandbox",
        "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--allow-loopback-in-peer-connection",
        "--autoplay-policy=no-user-gesture-required", ...extraArgs,
      ],
    });
    this.browsers.push(browser);
    return browser;
  }

  /** A server's Prometheus text (`GET url/metrics`), fetched from inside the namespace, and
   * a reader of one unlabelled value in it. */
  metrics(url) {
    const fetchIt = `fetch(${JSON.stringify(`${url}/metrics`)}).then((r) => r.text()).then((t) => process.stdout.write(t))`;
    const text = execFileSync("ip", ["netns", "exec", this.ns, process.execPath, "-e", fetchIt]).toString();
    const value = (name) => Number(text.match(new RegExp(`^${name} (\\d+)`, "m"))?.[1] ?? NaN);
    return { text, value };
  }

  async close() {
    for (const browser of this.browsers) await browser.close().catch(() => {});
    for (const child of this.children) child.kill("SIGKILL");
    try {
      execFileSync("ip", ["netns", "delete", this.ns]);
    } catch {
      /* gone */
    }
    rmSync(this.work, { recursive: true, force: true });
  }
}

/** Makes `page` count the peer connections it creates, in `window.peerConnectionsMade`
 * (from its next navigation on). */
export async function countPeerConnections(page) {
  await page.evaluateOnNewDocument(() => {
    const Native = window.RTCPeerConnection;
    window.peerConnectionsMade = 0;
    window.RTCPeerConnection = function (...args) {
      window.peerConnectionsMade += 1;
      return new Native(...args);
    };
    window.RTCPeerConnection.prototype = Native.prototype;
  });
}

/** A headless desktop participant: its stats and events, and its stdin commands. */
export class Desktop {
  constructor(child) {
    this.child = child;
    this.lines = [];
    createInterface({ input: child.stdout }).on("line", (line) => {
      try {
        // When it arrived, for timelines (a test's log of a restart, say).
        this.lines.push({ ...JSON.parse(line), arrivedAt: Date.now() });
      } catch {
        /* not JSON */
      }
    });
  }

  stats() {
    return this.lines.findLast((l) => l.type === "stats") ?? null;
  }

  remote(userId) {
    return this.stats()?.remotes?.find((r) => r.userId === userId) ?? null;
  }

  participant(userId) {
    return this.stats()?.participants?.find((p) => p.userId === userId) ?? null;
  }

  /** Whether an event line (`{type: "event", detail: {event, …}}`) matches `pred`. */
  hadEvent(name, pred = () => true) {
    return this.lines.some((l) => l.type === "event" && l.detail?.event === name && pred(l.detail));
  }

  send(line) {
    this.child.stdin.write(`${line}\n`);
  }

  /** Asks it to leave and waits for it to exit. */
  async leave() {
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.send("leave");
    return exited;
  }
}
