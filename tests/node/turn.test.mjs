// TURN in the server, proven in a lab of real networks (nat-lab.mjs): two participants each
// behind its own symmetric NAT, and a third on a school network that drops all UDP and lets
// only TCP to port 443 out. Chromium and the desktop, through the server's own relay.
//
// Needs: root (ip netns, iptables), /usr/bin/chromium, openssl, CLASSROOM_SIGNALING_BIN and
// CLASSROOM_BIN.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { NatLab, SERVER_IP, TURN_TLS_IP, icePolicy, received } from "./nat-lab.mjs";
import { sleep, waitFor } from "./three-way-lab.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const SERVER_BIN = process.env.CLASSROOM_SIGNALING_BIN;
const DESKTOP_BIN = process.env.CLASSROOM_BIN;
const ORIGIN = `http://${SERVER_IP}:443`;
const STUN = `stun:${SERVER_IP}:3478`;
const METRICS_TOKEN = "lab-metrics-token-0123456789";
/** How long media is measured once it flows, as the issue asks. */
const MEASURE_MS = 20_000;

let lab;
const serverLog = [];
const CA_CERT = () => join(lab.work, "ca.pem");

before(async () => {
  assert.ok(SERVER_BIN && DESKTOP_BIN, "set CLASSROOM_SIGNALING_BIN and CLASSROOM_BIN");
  lab = new NatLab("turn");
  // The lab's own CA, and the relay's certificate from it (for the address in its turns: URL):
  // the desktop trusts the CA as a school's IT would install theirs (SSL_CERT_FILE here).
  const caKey = join(lab.work, "ca-key.pem");
  const key = join(lab.work, "key.pem");
  const csr = join(lab.work, "turn.csr");
  const cert = join(lab.work, "cert.pem");
  const ext = join(lab.work, "turn.ext");
  const openssl = (...args) => execFileSync("openssl", args, { stdio: "ignore" });
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", caKey, "-out", CA_CERT(), "-days", "1", "-subj", "/CN=Classroom lab CA");
  openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=turn.classroom.test");
  writeFileSync(ext, `basicConstraints=CA:FALSE\nsubjectAltName=IP:${TURN_TLS_IP}\n`);
  openssl("x509", "-req", "-in", csr, "-CA", CA_CERT(), "-CAkey", caKey, "-CAcreateserial", "-out", cert, "-days", "1", "-extfile", ext);
  await lab.startServer(SERVER_BIN, [
    "--dev", "--listen", `${SERVER_IP}:443`, "--ice-server", STUN, "--metrics-token", METRICS_TOKEN,
    "--turn", "--turn-port", "3478", "--tls-cert", cert, "--tls-key", key,
    "--turn-tls-address", TURN_TLS_IP, "--turn-tls-port", "443",
  ], { logTo: serverLog });
});

after(async () => {
  await lab?.close();
});

/** Two pages of one class, on `hostA`'s and `hostB`'s networks, under an ICE `policy`. */
async function pagesOf(session, [hostA, userA], [hostB, userB], policy) {
  const pages = [];
  for (const [host, user] of [[hostA, userA], [hostB, userB]]) {
    const browser = await lab.launchChromium(host, `${session}-${user}`, ORIGIN);
    const page = await browser.newPage();
    page.on("pageerror", (e) => console.error(`${user} page error:`, e.message));
    await icePolicy(page, policy, STUN);
    await page.goto(`${ORIGIN}/?session=${session}&user=${user}&name=${user}`);
    await page.click("#enter");
    pages.push(page);
  }
  return pages;
}

/** Waits for media both ways, then measures it for MEASURE_MS: frames decoded, audio, loss. */
async function measure(pageA, userA, pageB, userB) {
  const flowing = async (page, from) => {
    const r = await received(page, from);
    return r && r.framesDecoded > 10 && r.audioEnergy > 0 ? r : null;
  };
  await waitFor(`${userA} to decode ${userB}`, () => flowing(pageA, userB), 45_000);
  await waitFor(`${userB} to decode ${userA}`, () => flowing(pageB, userA), 45_000);
  const start = [await received(pageA, userB), await received(pageB, userA)];
  await sleep(MEASURE_MS);
  const end = [await received(pageA, userB), await received(pageB, userA)];
  return end.map((e, i) => {
    const s = start[i];
    const lost = e.videoLost - s.videoLost + e.audioLost - s.audioLost;
    const got = e.videoReceived - s.videoReceived + e.audioReceived - s.audioReceived;
    return {
      frames: e.framesDecoded - s.framesDecoded,
      audioEnergy: e.audioEnergy - s.audioEnergy,
      loss: lost / Math.max(1, lost + got),
      pair: e.pair,
    };
  });
}

function assertMedia(results, label) {
  for (const r of results) {
    console.log(`${label}: ${r.frames} frames in ${MEASURE_MS / 1000} s, loss ${(r.loss * 100).toFixed(2)} %, pair ${JSON.stringify(r.pair)}`);
    assert.ok(r.frames > (MEASURE_MS / 1000) * 10, `${label}: ${r.frames} frames`);
    assert.ok(r.audioEnergy > 0, `${label}: no audio`);
    assert.ok(r.loss < 0.01, `${label}: ${(r.loss * 100).toFixed(2)} % lost`);
  }
}

async function closePages(pages) {
  for (const p of pages) await p.browser().close().catch(() => {});
}

test("with STUN alone, two symmetric NATs give no media (the lab is real)", async () => {
  const pages = await pagesOf("stun-only", ["a", "sa"], ["b", "sb"], "stun-only");
  await waitFor("both to be in the class", async () => (await received(pages[0], "sb")) && (await received(pages[1], "sa")), 30_000);
  await sleep(15_000);
  const [ab, ba] = [await received(pages[0], "sb"), await received(pages[1], "sa")];
  console.log(`STUN only: ice ${ab.iceState}/${ba.iceState}, frames ${ab.framesDecoded}/${ba.framesDecoded}`);
  assert.equal(ab.framesDecoded + ba.framesDecoded, 0, "media crossed two symmetric NATs without TURN");
  assert.ok(!["connected", "completed"].includes(ab.iceState), ab.iceState);
  await closePages(pages);
});

test("through the server's TURN, Chromium and Chromium across two symmetric NATs, default ICE policy", async () => {
  const pages = await pagesOf("turn-default", ["a", "da"], ["b", "db"], "default");
  const results = await measure(pages[0], "da", pages[1], "db");
  assertMedia(results, "default policy");
  assert.ok(results.some((r) => r.pair?.local === "relay" || r.pair?.remote === "relay"), JSON.stringify(results.map((r) => r.pair)));
  await closePages(pages);
});

test("through the server's TURN, Chromium and Chromium across two symmetric NATs, relay policy", async () => {
  const pages = await pagesOf("turn-relay", ["a", "ra"], ["b", "rb"], "relay");
  const results = await measure(pages[0], "ra", pages[1], "rb");
  assertMedia(results, "relay policy");
  for (const r of results) assert.equal(r.pair?.local, "relay");
  await closePages(pages);
});

test("Chromium on a network that drops UDP and lets only TCP 443 out joins through TURN over TLS on 443", async () => {
  const pages = await pagesOf("turn-tls", ["c", "tc"], ["a", "ta"], "default");
  const results = await measure(pages[0], "tc", pages[1], "ta");
  assertMedia(results, "TLS on 443");
  assert.equal(results[0].pair?.local, "relay");
  assert.equal(results[0].pair?.localProtocol, "tls", JSON.stringify(results[0].pair));
  await closePages(pages);
});

/** A joined `desktop` and Chromium on `webHost`'s network in `session`: waits for media both
 * ways, measures it for MEASURE_MS and checks frames and loss; gives Chromium's last reading. */
async function desktopAndChromium(desktop, webHost, session, label) {
  await waitFor("the desktop to join", () => desktop.stats()?.joined, 30_000);
  const browser = await lab.launchChromium(webHost, `${session}-web`, ORIGIN);
  const page = await browser.newPage();
  await page.goto(`${ORIGIN}/?session=${session}&user=web&name=Web`);
  await page.click("#enter");
  const frames = () => desktop.remote("web")?.video?.camera?.framesDecoded ?? 0;
  await waitFor("the desktop to decode Chromium", () => frames() > 10 && desktop.remote("web")?.audio?.levelDbfs > -60, 45_000);
  await waitFor("Chromium to decode the desktop", async () => (await received(page, "desk"))?.framesDecoded > 10, 45_000);
  const [desk0, web0] = [frames(), await received(page, "desk")];
  await sleep(MEASURE_MS);
  const [desk1, web1] = [frames(), await received(page, "desk")];
  const webLoss = (web1.videoLost - web0.videoLost) / Math.max(1, web1.videoLost - web0.videoLost + web1.videoReceived - web0.videoReceived);
  console.log(`${label}: desktop decoded ${desk1 - desk0} frames, Chromium ${web1.framesDecoded - web0.framesDecoded} (loss ${(webLoss * 100).toFixed(2)} %), Chromium's pair ${JSON.stringify(web1.pair)}`);
  // The desktop's camera runs at 15 frames per second, encoded by a debug build here.
  assert.ok(desk1 - desk0 > (MEASURE_MS / 1000) * 10, `desktop: ${desk1 - desk0} frames`);
  assert.ok(web1.framesDecoded - web0.framesDecoded > (MEASURE_MS / 1000) * 5, `Chromium: ${web1.framesDecoded - web0.framesDecoded} frames`);
  assert.ok(webLoss < 0.01, `${(webLoss * 100).toFixed(2)} % lost`);
  await browser.close();
  return web1;
}

test("the desktop with force_relay and Chromium across two symmetric NATs, through the server's TURN over UDP", async () => {
  const desktop = lab.startDesktop("a", DESKTOP_BIN, [
    "--server", ORIGIN, "--session", "turn-desktop", "--user", "desk", "--name", "Desk",
    "--bind-ip", lab.a.ip, "--camera", "640x360@15", "--stats-interval-ms", "500", "--force-relay",
  ]);
  const web = await desktopAndChromium(desktop, "b", "turn-desktop", "force_relay");
  // force_relay: the desktop offered relayed candidates only.
  assert.deepEqual(web.remoteTypes, ["relay"], `the desktop offered ${web.remoteTypes}`);
  await desktop.leave();
});

test("the desktop on a network that drops UDP and lets only TCP 443 out joins through TURN over TLS on 443", async () => {
  const tlsConnections = async () => (await metricsText()).match(/^classroom_turn_connections_total\{transport="tls"\} (\d+)/m)?.[1];
  const tlsBefore = Number(await tlsConnections());
  const desktop = lab.startDesktop("c", DESKTOP_BIN, [
    "--server", ORIGIN, "--session", "turn-desktop-tls", "--user", "desk", "--name", "Desk",
    "--bind-ip", lab.c.ip, "--camera", "640x360@15", "--stats-interval-ms", "500",
  ], { env: { SSL_CERT_FILE: CA_CERT() } });
  const web = await desktopAndChromium(desktop, "a", "turn-desktop-tls", "over TLS");
  // Nothing but TCP 443 leaves the desktop's network: its media came through the relay's TLS.
  assert.equal(web.pair?.remote, "relay", JSON.stringify(web.pair));
  assert.ok(Number(await tlsConnections()) > tlsBefore, "no TLS connection reached the relay");
  await desktop.leave();
});

test("the pre-join connection test says which paths work, within 3 s, and trusts only a verified relay", () => {
  const check = (host, env = []) => {
    const out = lab.run(lab.ns[host], "env", ...env, DESKTOP_BIN, "--headless", "--connection-test",
      "--server", ORIGIN, "--bind-ip", lab[host].ip, "--session", "preflight", "--user", `pf-${host}`);
    const line = JSON.parse(out.trim().split("\n").pop());
    const works = Object.fromEntries(line.paths.map((p) => [p.path, p.outcome === "works"]));
    console.log(`${host}${env.length ? "" : " (the lab CA not trusted)"}: ${JSON.stringify(works)} in ${line.ms} ms`);
    return { ...line, works };
  };
  const trusted = [`SSL_CERT_FILE=${CA_CERT()}`];
  // Behind a symmetric NAT every path answers.
  const natted = check("a", trusted);
  assert.deepEqual(natted.works, { "direct": true, "turn-udp": true, "turn-tcp": true, "turn-tls": true });
  // On the network that lets only TCP 443 out, only the relay over TLS on 443.
  const blocked = check("c", trusted);
  assert.deepEqual(blocked.works, { "direct": false, "turn-udp": false, "turn-tcp": false, "turn-tls": true });
  assert.ok(blocked.ms < 3_000, `the test took ${blocked.ms} ms`);
  // A relay whose certificate the system's authorities do not vouch for is not used.
  const untrusted = check("c", ["SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"]);
  assert.equal(untrusted.works["turn-tls"], false, "TLS to an unverified relay");
});

// The desktop under the default ICE policy and under the policy's force_relay (relayed
// candidates only), for Firefox and for another desktop.
const POLICIES = [["default policy", []], ["force_relay", ["--force-relay"]]];

for (const [policy, flags] of POLICIES) test(`the desktop (${policy}) and Firefox across two symmetric NATs, through the server's TURN over UDP`, async () => {
  const session = `turn-firefox-${flags.length}`;
  const desktop = lab.startDesktop("a", DESKTOP_BIN, [
    "--server", ORIGIN, "--session", session, "--user", "desk", "--name", "Desk",
    "--bind-ip", lab.a.ip, "--camera", "640x360@15", "--stats-interval-ms", "500", ...flags,
  ]);
  await waitFor("the desktop to join", () => desktop.stats()?.joined, 30_000);
  const fox = lab.spawn(lab.b.ns, process.execPath, [
    join(here, "firefox-peer.mjs"), `${ORIGIN}/?session=${session}&user=fox&name=Fox`, "desk", ORIGIN,
  ]);
  const foxLines = [];
  createInterface({ input: fox.stdout }).on("line", (l) => { try { foxLines.push(JSON.parse(l)); } catch { /* not JSON */ } });
  const foxSees = () => foxLines.at(-1);
  const frames = () => desktop.remote("fox")?.video?.camera?.framesDecoded ?? 0;
  await waitFor("the desktop to decode Firefox", () => frames() > 10 && desktop.remote("fox")?.audio?.levelDbfs > -60, 60_000);
  await waitFor("Firefox to decode the desktop", () => foxSees()?.framesDecoded > 10, 60_000);
  const [desk0, fox0] = [frames(), foxSees()];
  await sleep(MEASURE_MS);
  const [desk1, fox1] = [frames(), foxSees()];
  const foxLoss = (fox1.videoLost - fox0.videoLost) / Math.max(1, fox1.videoLost - fox0.videoLost + fox1.videoReceived - fox0.videoReceived);
  console.log(`${policy}: desktop decoded ${desk1 - desk0} frames of Firefox, Firefox ${fox1.framesDecoded - fox0.framesDecoded} of the desktop (loss ${(foxLoss * 100).toFixed(2)} %), Firefox's pair ${JSON.stringify(fox1.pair)}`);
  assert.ok(desk1 - desk0 > (MEASURE_MS / 1000) * 5, `desktop: ${desk1 - desk0} frames`);
  assert.ok(fox1.framesDecoded - fox0.framesDecoded > (MEASURE_MS / 1000) * 5, `Firefox: ${fox1.framesDecoded - fox0.framesDecoded} frames`);
  assert.ok(foxLoss < 0.01, `${(foxLoss * 100).toFixed(2)} % lost`);
  // force_relay: the desktop offered relayed candidates only, so Firefox sends to its relay.
  if (flags.length) assert.equal(fox1.pair?.remote, "relay", JSON.stringify(fox1.pair));
  fox.stdin.end();
  await desktop.leave();
});

for (const [policy, flags] of POLICIES) test(`two desktops (${policy}) across two symmetric NATs, through the server's TURN over UDP`, async () => {
  const desktops = [["a", "d1"], ["b", "d2"]].map(([host, user]) => lab.startDesktop(host, DESKTOP_BIN, [
    "--server", ORIGIN, "--session", `turn-desktops-${flags.length}`, "--user", user, "--name", user,
    "--bind-ip", lab[host].ip, "--camera", "640x360@15", "--stats-interval-ms", "500", ...flags,
  ]));
  const [one, two] = desktops;
  const view = (d, from) => {
    const r = d.remote(from);
    return { frames: r?.video?.camera?.framesDecoded ?? 0, markers: r?.audio?.markersHeard ?? 0, packets: r?.audio?.packets ?? 0, lost: r?.audio?.packetsLost ?? 0 };
  };
  await waitFor("d1 to decode d2", () => view(one, "d2").frames > 10 && view(one, "d2").markers > 0, 60_000);
  await waitFor("d2 to decode d1", () => view(two, "d1").frames > 10 && view(two, "d1").markers > 0, 60_000);
  const start = [view(one, "d2"), view(two, "d1")];
  await sleep(MEASURE_MS);
  const end = [view(one, "d2"), view(two, "d1")];
  end.forEach((e, i) => {
    const s = start[i];
    const frames = e.frames - s.frames;
    const markers = e.markers - s.markers;
    const loss = (e.lost - s.lost) / Math.max(1, e.packets - s.packets + e.lost - s.lost);
    console.log(`${policy}: desktop ${i + 1}: ${frames} frames, ${markers} audio markers heard in ${MEASURE_MS / 1000} s, audio loss ${(loss * 100).toFixed(2)} %`);
    assert.ok(frames > (MEASURE_MS / 1000) * 5, `${frames} frames`);
    assert.ok(markers > 0, "no audio markers heard");
    assert.ok(loss < 0.01, `${(loss * 100).toFixed(2)} % audio lost`);
  });
  for (const d of desktops) await d.leave();
});

function metricsText() {
  return lab.run(lab.ns.srv, process.execPath, "-e", `fetch("${ORIGIN}/metrics", { headers: { authorization: "Bearer ${METRICS_TOKEN}" } }).then((r) => r.text()).then((t) => process.stdout.write(t))`);
}

test("the relay's metrics count allocations and relayed packets, and nothing was refused that should pass", async () => {
  const text = metricsText();
  const value = (re) => Number(text.match(re)?.[1] ?? NaN);
  const allocations = value(/^classroom_turn_allocations_total (\d+)/m);
  const relayed = value(/^classroom_turn_relayed_packets_total\{direction="to-peer"\} (\d+)/m);
  console.log(`allocations ${allocations}, packets relayed to peers ${relayed}`);
  assert.ok(allocations > 0 && relayed > 1000, text);
  assert.equal(value(/^classroom_turn_refused_total\{reason="unauthorized"\} (\d+)/m), 0, "a handed-out credential was refused");
});
