// A lab of networks for TURN: the server on the "internet" (a bridge, 203.0.113.0/24), two
// participants each behind its own symmetric NAT (iptables MASQUERADE --random-fully; nothing
// unsolicited gets in), and a school network whose firewall drops all UDP and lets only TCP to
// port 443 out. Documentation and benchmarking ranges only; nothing is routed out of the lab.
// Needs root (ip netns, iptables).
//
//   a 198.51.100.10 ─ natA 203.0.113.2 ┐
//   b 198.18.0.10   ─ natB 203.0.113.3 ├─ br0 ─ srv 203.0.113.1 (signaling), 203.0.113.5 (TURN TLS on 443)
//   c 198.19.0.10   ─ fw   203.0.113.4 ┘

import { spawn, execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdtempSync, writeFileSync, chmodSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer from "puppeteer-core";
import { Desktop } from "./netns-lab.mjs";

const CHROMIUM = process.env.CLASSROOM_CHROMIUM ?? "/usr/bin/chromium";

export const SERVER_IP = "203.0.113.1";
export const TURN_TLS_IP = "203.0.113.5";

const SITES = {
  a: { router: "natA", routerIp: "203.0.113.2", lan: "198.51.100", kind: "nat" },
  b: { router: "natB", routerIp: "203.0.113.3", lan: "198.18.0", kind: "nat" },
  c: { router: "fw", routerIp: "203.0.113.4", lan: "198.19.0", kind: "firewall" },
};

export class NatLab {
  constructor(tag) {
    this.tag = `${tag}${process.pid}`.slice(-10);
    this.work = mkdtempSync(join(tmpdir(), `classroom-${tag}-`));
    this.children = [];
    this.browsers = [];
    this.made = [];
    const ns = (name) => `cl-${this.tag}-${name}`;
    this.ns = { srv: ns("srv"), natA: ns("natA"), natB: ns("natB"), fw: ns("fw"), a: ns("a"), b: ns("b"), c: ns("c") };
    for (const name of Object.values(this.ns)) {
      execFileSync("ip", ["netns", "add", name]);
      this.made.push(name);
      this.run(name, "ip", "link", "set", "lo", "up");
    }
    // The internet: a bridge in the server's namespace.
    this.run(this.ns.srv, "ip", "link", "add", "br0", "type", "bridge");
    this.run(this.ns.srv, "ip", "addr", "add", `${SERVER_IP}/24`, "dev", "br0");
    this.run(this.ns.srv, "ip", "addr", "add", `${TURN_TLS_IP}/24`, "dev", "br0");
    this.run(this.ns.srv, "ip", "link", "set", "br0", "up");
    let n = 0;
    for (const [host, site] of Object.entries(SITES)) {
      n += 1;
      const router = this.ns[site.router];
      // Router to the internet.
      this.veth(router, "wan0", this.ns.srv, `up${n}`);
      this.run(this.ns.srv, "ip", "link", "set", `up${n}`, "master", "br0");
      this.run(this.ns.srv, "ip", "link", "set", `up${n}`, "up");
      this.run(router, "ip", "addr", "add", `${site.routerIp}/24`, "dev", "wan0");
      this.run(router, "ip", "link", "set", "wan0", "up");
      // Host to its router.
      this.veth(this.ns[host], "eth0", router, "lan0");
      this.run(router, "ip", "addr", "add", `${site.lan}.1/24`, "dev", "lan0");
      this.run(router, "ip", "link", "set", "lan0", "up");
      this.run(this.ns[host], "ip", "addr", "add", `${site.lan}.10/24`, "dev", "eth0");
      this.run(this.ns[host], "ip", "link", "set", "eth0", "up");
      this.run(this.ns[host], "ip", "route", "add", "default", "via", `${site.lan}.1`);
      this.run(router, "sysctl", "-qw", "net.ipv4.ip_forward=1");
      const ipt = (...args) => this.run(router, "iptables", ...args);
      ipt("-t", "nat", "-A", "POSTROUTING", "-o", "wan0", "-j", "MASQUERADE", "--random-fully");
      ipt("-A", "FORWARD", "-i", "wan0", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT");
      ipt("-A", "FORWARD", "-i", "wan0", "-j", "DROP");
      if (site.kind === "firewall") {
        ipt("-A", "FORWARD", "-i", "lan0", "-p", "tcp", "--dport", "443", "-j", "ACCEPT");
        ipt("-A", "FORWARD", "-i", "lan0", "-j", "DROP");
      }
      this[host] = { ns: this.ns[host], ip: `${site.lan}.10`, publicIp: site.routerIp };
    }
  }

  run(ns, ...cmd) {
    return execFileSync("ip", ["netns", "exec", ns, ...cmd]).toString();
  }

  veth(nsA, nameA, nsB, nameB) {
    const tmpA = `va${this.tag}`.slice(0, 15);
    const tmpB = `vb${this.tag}`.slice(0, 15);
    execFileSync("ip", ["link", "add", tmpA, "type", "veth", "peer", "name", tmpB]);
    execFileSync("ip", ["link", "set", tmpA, "netns", nsA]);
    execFileSync("ip", ["link", "set", tmpB, "netns", nsB]);
    this.run(nsA, "ip", "link", "set", tmpA, "name", nameA);
    this.run(nsB, "ip", "link", "set", tmpB, "name", nameB);
  }

  spawn(ns, program, args, { env = {}, logTo } = {}) {
    const child = spawn("ip", ["netns", "exec", ns, program, ...args], {
      stdio: ["pipe", "pipe", logTo ? "pipe" : "inherit"],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "error", ...env },
    });
    if (logTo) createInterface({ input: child.stderr }).on("line", (line) => logTo.push(line));
    this.children.push(child);
    return child;
  }

  async startServer(program, args, { env = {}, logTo } = {}) {
    const server = this.spawn(this.ns.srv, program, args, { env, logTo });
    await new Promise((resolve, reject) => {
      createInterface({ input: server.stdout }).on("line", (line) => {
        logTo?.push(line);
        if (line.includes("listening on")) resolve();
      });
      server.on("exit", (code) => reject(new Error(`${program} exited ${code} before listening`)));
    });
    return server;
  }

  startDesktop(host, bin, args, { env, logTo } = {}) {
    return new Desktop(this.spawn(this[host].ns, bin, ["--headless", ...args], { env, logTo }));
  }

  /** Chromium on `host`'s network; `policy` rewrites every peer connection's ICE settings:
   * "stun-only" (the server's STUN, no TURN), "default" (as handed out), or "relay". */
  async launchChromium(host, name, origin) {
    const wrapper = join(this.work, `${name}.sh`);
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${this[host].ns} ${CHROMIUM} "$@"\n`);
    chmodSync(wrapper, 0o755);
    const browser = await puppeteer.launch({
      executablePath: wrapper,
      headless: true,
      pipe: true,
      userDataDir: join(this.work, name),
      args: [
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--no-sandbox",
        "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required",
        // The page is served over plain HTTP from a lab address: capture needs a secure context.
        `--unsafely-treat-insecure-origin-as-secure=${origin}`,
        // The lab's TURN certificate is issued by the lab's own CA.
        "--ignore-certificate-errors",
      ],
    });
    this.browsers.push(browser);
    return browser;
  }

  async close() {
    for (const browser of this.browsers) await browser.close().catch(() => {});
    for (const child of this.children) child.kill("SIGKILL");
    for (const name of this.made) {
      try {
        execFileSync("ip", ["netns", "delete", name]);
      } catch {
        /* gone */
      }
    }
    rmSync(this.work, { recursive: true, force: true });
  }
}

/** Makes `page`'s peer connections use `policy` (see launchChromium). */
export async function icePolicy(page, policy, stunUrl) {
  await page.evaluateOnNewDocument((policy, stunUrl) => {
    const Native = window.RTCPeerConnection;
    window.RTCPeerConnection = function (config = {}, ...rest) {
      const c = { ...config };
      if (policy === "stun-only") c.iceServers = [{ urls: stunUrl }];
      if (policy === "relay") c.iceTransportPolicy = "relay";
      return new Native(c, ...rest);
    };
    window.RTCPeerConnection.prototype = Native.prototype;
  }, policy, stunUrl);
}

/** Media the page receives from `userId`: inbound video and audio, and the candidate types of
 * the pair in use. */
export async function received(page, userId) {
  return page.evaluate(async (userId) => {
    const entry = window.classroom.state.peers.get(userId);
    if (!entry) return null;
    const report = await entry.pc.getStats();
    const out = { framesDecoded: 0, videoLost: 0, videoReceived: 0, audioEnergy: 0, audioLost: 0, audioReceived: 0, pair: null, iceState: entry.pc.iceConnectionState, remoteTypes: [] };
    const byId = new Map([...report.values()].map((s) => [s.id, s]));
    for (const s of report.values()) {
      if (s.type === "inbound-rtp" && s.kind === "video") {
        out.framesDecoded += s.framesDecoded ?? 0;
        out.videoLost += s.packetsLost ?? 0;
        out.videoReceived += s.packetsReceived ?? 0;
      }
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        out.audioEnergy += s.totalAudioEnergy ?? 0;
        out.audioLost += s.packetsLost ?? 0;
        out.audioReceived += s.packetsReceived ?? 0;
      }
      if (s.type === "remote-candidate" && !out.remoteTypes.includes(s.candidateType)) out.remoteTypes.push(s.candidateType);
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const pair = byId.get(s.selectedCandidatePairId);
        const local = byId.get(pair?.localCandidateId);
        const remote = byId.get(pair?.remoteCandidateId);
        out.pair = { local: local?.candidateType, localProtocol: local?.relayProtocol ?? local?.protocol, remote: remote?.candidateType };
      }
    }
    return out;
  }, userId);
}
