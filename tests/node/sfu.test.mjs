// A class on the server's SFU (`--sfu always`): three Chromium participants (headless, fake
// camera and microphone, driven by puppeteer-core) on the page the server serves and a desktop
// participant (the app's headless mode), each with one connection to the server, which forwards everyone's tracks to the others and picks each
// viewer's simulcast layer from the size of its tile. Runs in a network namespace of its own
// (loopback only). Also: a client that announces no SFU capability is told so, and garbage on
// the media port harms nobody.
//
// Needs: root (ip netns), /usr/bin/chromium, CLASSROOM_SIGNALING_BIN and CLASSROOM_BIN.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { NetnsLab, countPeerConnections } from "./netns-lab.mjs";
import { sleep, waitFor } from "./three-way-lab.mjs";

const SERVER_BIN = process.env.CLASSROOM_SIGNALING_BIN;
const DESKTOP_BIN = process.env.CLASSROOM_BIN;
const PORT = 3001;
const MEDIA_PORT = 3479;
const SESSION = "sfu-class";
const USERS = ["ada", "bob", "cy"];
let lab;
let server;
let desktop; // the headless desktop participant (netns-lab.mjs's Desktop)
const pages = new Map(); // userId -> page
const serverLog = [];

/** What `viewer`'s one connection receives from `owner`: inbound RTP by kind. */
async function inboundFrom(viewer, owner) {
  return pages.get(viewer).evaluate(async (owner) => {
    const entry = window.classroom.state.sfu;
    if (!entry) return null;
    const out = { video: [], audio: [] };
    for (const transceiver of entry.pc.getTransceivers()) {
      const who = entry.tracks.get(transceiver.mid);
      if (!who || who.userId !== owner) continue;
      const report = await transceiver.receiver.getStats();
      for (const s of report.values()) {
        if (s.type !== "inbound-rtp") continue;
        out[s.kind].push({
          source: who.source,
          framesDecoded: s.framesDecoded ?? 0,
          frameHeight: s.frameHeight ?? 0,
          totalAudioEnergy: s.totalAudioEnergy ?? 0,
        });
      }
    }
    return out;
  }, owner);
}

/** What a page's connection looks like, for a failure's message. */
async function describe(viewer) {
  return pages.get(viewer).evaluate(async () => {
    const entry = window.classroom.state.sfu;
    if (!entry) return "no SFU connection";
    const report = await entry.pc.getStats();
    const inbound = [...report.values()].filter((s) => s.type === "inbound-rtp").map((s) => `${s.mid}:${s.kind}:${s.packetsReceived}p/${s.framesDecoded ?? "-"}f`);
    const outbound = [...report.values()].filter((s) => s.type === "outbound-rtp").map((s) => `${s.mid}:${s.rid ?? "-"}:${s.packetsSent}p/${s.frameHeight ?? "-"}h/${s.qualityLimitationReason ?? ""}/${s.active}`);
    const pair = [...report.values()].find((s) => s.type === "candidate-pair" && s.nominated);
    const remote = entry.pc.remoteDescription?.sdp ?? "";
    return JSON.stringify({
      estimate: pair?.availableOutgoingBitrate,
      twcc: remote.includes("transport-cc"),
      remb: remote.includes("goog-remb"),
      signaling: entry.pc.signalingState,
      connection: entry.pc.connectionState,
      tracks: [...entry.tracks],
      transceivers: entry.pc.getTransceivers().map((t) => `${t.mid}:${t.direction}/${t.currentDirection}`),
      inbound,
      outbound,
      errors: window.classroom.state.errors,
    });
  });
}

async function cameraFrom(viewer, owner) {
  const inbound = await inboundFrom(viewer, owner);
  return inbound?.video.find((v) => v.source === "camera") ?? null;
}

const desktopStats = () => desktop?.stats() ?? null;
const desktopRemote = (userId) => desktop?.remote(userId) ?? null;

const metrics = async () => lab.metrics(`http://127.0.0.1:${PORT}`);

async function startServer() {
  server = await lab.startServer(SERVER_BIN, [
    "serve", "--dev", "--listen", `127.0.0.1:${PORT}`, "--database", join(lab.work, "db.sqlite"),
    "--ice-server", "stun:127.0.0.1:3478", "--sfu", "always", "--media-port", String(MEDIA_PORT),
  ], { logTo: serverLog });
}

before(async () => {
  assert.ok(SERVER_BIN && DESKTOP_BIN, "set CLASSROOM_SIGNALING_BIN and CLASSROOM_BIN");
  lab = new NetnsLab("sfu");
  await startServer();
  const browser = await lab.launchChromium("chromium", [
    // Every participant's tab runs as if in front: no timer throttling in background tabs.
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
  ]);
  for (const user of USERS) {
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    await page.setViewport({ width: 1280, height: 720 });
    await countPeerConnections(page);
    page.on("pageerror", (error) => console.error(`${user} page error:`, error.message));
    await page.goto(`http://127.0.0.1:${PORT}/?session=${SESSION}&user=${user}&name=${user}`);
    await page.click("#enter");
    pages.set(user, page);
  }
});

after(async () => {
  await lab?.close();
  if (process.env.CLASSROOM_SFU_TEST_LOG) console.error(serverLog.join("\n"));
});

test("everyone decodes everyone's camera and hears everyone, each on one connection to the server", async () => {
  for (const viewer of USERS) {
    for (const owner of USERS.filter((u) => u !== viewer)) {
      await waitFor(`${viewer} to decode ${owner}'s camera and hear them`, async () => {
        const inbound = await inboundFrom(viewer, owner);
        const camera = inbound?.video.find((v) => v.source === "camera");
        return camera?.framesDecoded > 10 && inbound.audio.some((a) => a.totalAudioEnergy > 0);
      }).catch(async (e) => {
        throw new Error(`${e.message}\n${viewer}: ${await describe(viewer)}\n${owner}: ${await describe(owner)}`);
      });
      const picture = await pages.get(viewer).evaluate((owner) => {
        const video = document.querySelector(`figure[data-user="${owner}"][data-source="camera"] video`);
        return video ? { width: video.videoWidth, hidden: video.hidden } : null;
      }, owner);
      assert.ok(picture && picture.width > 0 && !picture.hidden, `${viewer} shows ${owner}'s picture: ${JSON.stringify(picture)}`);
    }
    const page = pages.get(viewer);
    const { made, topology, meshPeers } = await page.evaluate(() => ({
      made: window.peerConnectionsMade,
      topology: window.classroom.state.topology,
      meshPeers: window.classroom.state.peers.size,
    }));
    assert.equal(topology, "sfu");
    assert.equal(made, 1, `${viewer} made ${made} peer connections`);
    assert.equal(meshPeers, 0);
  }
  const m = await metrics();
  assert.equal(m.value("classroom_sfu_peers"), USERS.length);
  // Audio, camera and screen of each.
  assert.equal(m.value("classroom_sfu_tracks"), USERS.length * 3);
  assert.ok(m.value("classroom_sfu_packets_forwarded_total") > 0);
});

test("a viewer whose tile grows receives the higher simulcast layer within a second", async () => {
  const viewer = pages.get("ada");
  if (process.env.CLASSROOM_SFU_TEST_LOG) {
    console.error("bob:", await describe("bob"));
    console.error("ada's remote sdp:", await pages.get("ada").evaluate(() => window.classroom.state.sfu.pc.remoteDescription.sdp));
  }
  // A small tile for bob's camera: the quarter layer (Chromium's fake camera at 720p sends
  // 180p, 360p and 720p).
  const small = async () => {
    await viewer.evaluate(() => {
      const figure = document.querySelector('figure[data-user="bob"][data-source="camera"]');
      figure.style.height = "120px";
      figure.style.flex = "none";
    });
  };
  await small();
  const low = await waitFor("ada to receive bob's lower layer", async () => {
    const camera = await cameraFrom("ada", "bob");
    return camera && camera.frameHeight > 0 && camera.frameHeight <= 180 ? camera : null;
  }, 20_000);
  // Chromium turns a layer on once its own uplink estimate allows it (it starts low and ramps
  // up): the switch is timed from when bob's full layer flows.
  const fullSent = () => pages.get("bob").evaluate(async () => {
    const report = await window.classroom.state.sfu.pc.getStats();
    return [...report.values()].find((s) => s.type === "outbound-rtp" && s.rid === "f")?.packetsSent ?? 0;
  });
  await waitFor("bob to send its full layer", async () => {
    const before = await fullSent();
    await sleep(500);
    return (await fullSent()) > before + 20;
  }, 30_000);
  // The tile becomes large; the page times the first frame of 720 lines it shows there.
  const took = await viewer.evaluate(() => new Promise((resolve) => {
    const figure = document.querySelector('figure[data-user="bob"][data-source="camera"]');
    const video = figure.querySelector("video");
    const grown = performance.now();
    figure.style.height = "600px";
    const watch = () => video.requestVideoFrameCallback((_, frame) => {
      if (frame.height >= 720) resolve(performance.now() - grown);
      else if (performance.now() - grown > 10_000) resolve(null);
      else watch();
    });
    watch();
  }));
  assert.ok(took !== null, "no 720p frame within 10 s");
  // From the tile's growth to the first sharp frame on screen: the request, the keyframe
  // the server asks bob for, the switch, the decode.
  assert.ok(took <= 1_000, `the full layer came after ${Math.round(took)} ms`);
  console.log(JSON.stringify({ layerSwitchMs: Math.round(took) }));
  await waitFor("ada's stats to say 720p", async () => (await cameraFrom("ada", "bob"))?.frameHeight >= 720, 5_000);
  const m = await metrics();
  assert.ok(m.value("classroom_sfu_layer_switches_total") > 0);
  assert.ok(m.value("classroom_sfu_keyframe_requests_total") > 0);
});

test("a desktop participant joins: it decodes everyone and everyone decodes it, through the server", async () => {
  desktop = lab.startDesktop(DESKTOP_BIN, [
    "--server", `http://127.0.0.1:${PORT}`, "--session", SESSION, "--user", "desk",
    "--name", "Desk Top", "--bind-ip", "127.0.0.1", "--camera", "640x360@15", "--stats-interval-ms", "250",
  ], { logTo: serverLog });
  await waitFor("the desktop participant to join", () => desktopStats()?.joined);
  for (const user of USERS) {
    const remote = await waitFor(`the desktop to decode ${user}'s camera and hear them`, () => {
      const r = desktopRemote(user);
      return r && r.video?.camera?.framesDecoded > 10 && r.audio?.levelDbfs > -60 ? r : null;
    }).catch((e) => {
      const stats = desktopStats();
      throw new Error(`${e.message}\ndesktop: ${JSON.stringify({ participants: stats?.participants, remotes: stats?.remotes })}`);
    });
    assert.ok(remote.video.camera.lumaSpread > 10, `the picture is blank (luma spread ${remote.video.camera.lumaSpread})`);
    await waitFor(`${user} to decode the desktop's camera and hear it`, async () => {
      const inbound = await inboundFrom(user, "desk");
      const camera = inbound?.video.find((v) => v.source === "camera");
      return camera?.framesDecoded > 10 && inbound.audio.some((a) => a.totalAudioEnergy > 0);
    }).catch(async (e) => {
      throw new Error(`${e.message}\n${user}: ${await describe(user)}`);
    });
  }
  const m = await metrics();
  assert.equal(m.value("classroom_sfu_peers"), USERS.length + 1);
  assert.equal(m.value("classroom_sfu_tracks"), (USERS.length + 1) * 3);
  const me = desktopStats();
  const links = new Set(me.participants.map((p) => p.connection));
  assert.deepEqual([...links], ["connected"], `one connection for everyone: ${JSON.stringify(me.participants)}`);
});

test("a screen share reaches the others through the server, and stops", async () => {
  const sharer = pages.get("cy");
  await sharer.evaluate(() => window.classroom.setScreenShare(true));
  for (const viewer of ["ada", "bob"]) {
    await waitFor(`${viewer} to decode cy's screen`, async () => {
      const inbound = await inboundFrom(viewer, "cy");
      return inbound?.video.find((v) => v.source === "screen")?.framesDecoded > 5;
    });
    await waitFor(`${viewer} to show cy's screen as the stage`, () =>
      pages.get(viewer).evaluate(() => document.querySelector("#videos").classList.contains("has-stage")));
  }
  await sharer.evaluate(() => window.classroom.setScreenShare(false));
  for (const viewer of ["ada", "bob"]) {
    await waitFor(`${viewer} to drop cy's screen tile`, () =>
      pages.get(viewer).evaluate(() => !document.querySelector('figure[data-user="cy"][data-source="screen"]')));
  }
});

test("garbage and STUN with a wrong ufrag on the media port are dropped and counted, and the class goes on", async () => {
  const before = (await metrics()).value("classroom_sfu_packets_refused_total");
  const script = `
    const dgram = require("node:dgram");
    const s = dgram.createSocket("udp4");
    const garbage = Buffer.alloc(300, 0xab);
    // A STUN binding request whose USERNAME names no peer of this server.
    const user = Buffer.from("nobody00:client00");
    const attr = Buffer.alloc(4 + user.length);
    attr.writeUInt16BE(0x0006, 0); attr.writeUInt16BE(user.length, 2); user.copy(attr, 4);
    const head = Buffer.alloc(20);
    head.writeUInt16BE(0x0001, 0); head.writeUInt16BE(attr.length, 2); head.writeUInt32BE(0x2112a442, 4);
    const stun = Buffer.concat([head, attr]);
    let n = 0;
    const next = () => {
      if (n++ >= 200) return s.close();
      // Paced a little: a burst on a loaded machine overflows the socket's buffer.
      s.send(n % 2 ? garbage : stun, ${MEDIA_PORT}, "127.0.0.1", () => setTimeout(next, 2));
    };
    next();`;
  execFileSync("ip", ["netns", "exec", lab.ns, process.execPath, "-e", script]);
  let counted = before;
  await waitFor("the refusals to be counted", async () => {
    counted = (await metrics()).value("classroom_sfu_packets_refused_total");
    return counted >= before + 200;
  }, 10_000).catch((e) => {
    throw new Error(`${e.message}: ${before} before, ${counted} now`);
  });
  const framesBefore = (await cameraFrom("bob", "ada")).framesDecoded;
  await sleep(1000);
  const framesAfter = (await cameraFrom("bob", "ada")).framesDecoded;
  assert.ok(framesAfter > framesBefore + 5, `bob still decodes ada: ${framesBefore} → ${framesAfter}`);
  const logged = serverLog.filter((l) => l.includes("SFU dropped a datagram")).length;
  assert.equal(logged, 1, "logged once, not once per datagram");
});

test("a client that announces no SFU capability is told the class needs a newer client", async () => {
  // The Node client runs on the host and reaches the server in the namespace through a
  // process inside it.
  const script = `
    const { io } = require(${JSON.stringify(join(process.cwd(), "node_modules/socket.io-client"))});
    const socket = io("http://127.0.0.1:${PORT}", { transports: ["websocket"] });
    socket.on("connect", () => {
      socket.emit("join-session", { sessionId: "${SESSION}", userId: "old", userName: "Old Client" }, (ack) => {
        console.log(JSON.stringify(ack));
        socket.close();
      });
    });`;
  const out = execFileSync("ip", ["netns", "exec", lab.ns, process.execPath, "-e", script]).toString();
  const ack = JSON.parse(out.trim().split("\n").pop());
  assert.equal(ack.ok, false);
  assert.equal(ack.error.code, "sfu-required");
  assert.match(ack.error.message, /newer app/);
});

test("a participant who leaves is gone from everyone's view, and the server's m-lines stop", async () => {
  await pages.get("cy").evaluate(() => window.classroom.leave());
  for (const viewer of ["ada", "bob"]) {
    await waitFor(`${viewer} to drop cy`, () =>
      pages.get(viewer).evaluate(() => !document.querySelector('figure[data-user="cy"]')));
  }
  await waitFor("the server to forget cy's tracks", async () => {
    const m = await metrics();
    return m.value("classroom_sfu_peers") === 3 && m.value("classroom_sfu_tracks") === 9;
  });
  // ada and bob still see each other.
  const before = (await cameraFrom("ada", "bob")).framesDecoded;
  await sleep(1000);
  assert.ok((await cameraFrom("ada", "bob")).framesDecoded > before);
});

test("after the server is killed and restarted everyone is back with media within 5 s", async () => {
  const everyone = ["ada", "bob", "desk"];
  const frames = async () => {
    const counts = new Map();
    for (const viewer of everyone) {
      for (const owner of everyone.filter((u) => u !== viewer)) {
        const n = viewer === "desk"
          ? desktopRemote(owner)?.video?.camera?.framesDecoded ?? 0
          : (await cameraFrom(viewer, owner))?.framesDecoded ?? 0;
        counts.set(`${viewer}>${owner}`, n);
      }
    }
    return counts;
  };
  const dead = server;
  const exited = new Promise((resolve) => dead.on("exit", resolve));
  dead.kill("SIGKILL");
  await exited;
  await sleep(1_000);
  await startServer();
  const restarted = Date.now();
  // When each client's signaling is connected again, to tell whose backoff was slow.
  const rejoinedAt = {};
  const watchRejoins = (async () => {
    while (Object.keys(rejoinedAt).length < everyone.length && Date.now() - restarted < 15_000) {
      for (const user of ["ada", "bob"]) {
        if (!(user in rejoinedAt) && await pages.get(user).evaluate(() => document.querySelector("#status").dataset.state === "connected").catch(() => false)) {
          rejoinedAt[user] = Date.now() - restarted;
        }
      }
      if (!("desk" in rejoinedAt) && desktopStats()?.signalingConnected) rejoinedAt.desk = Date.now() - restarted;
      await sleep(50);
    }
  })();
  // Decoding again: each pair's count grows from what it is once the clients are back.
  await waitFor("everyone to rejoin", async () => {
    const m = await metrics();
    return m.value("classroom_sfu_peers") === everyone.length;
  }, 15_000).catch(async (e) => {
    const peers = (await metrics()).value("classroom_sfu_peers");
    const pagesState = [];
    for (const user of ["ada", "bob"]) {
      pagesState.push(await pages.get(user).evaluate(() => ({
        joined: window.classroom.state.joined,
        status: document.querySelector("#status").textContent,
        sfu: window.classroom.state.sfu?.pc.connectionState ?? null,
        errors: window.classroom.state.errors.slice(-3),
      })));
    }
    const desk = desktopStats();
    throw new Error(`${e.message}: ${peers} SFU peers; pages ${JSON.stringify(pagesState)}; desktop joined ${desk?.joined} ${desk?.signalingConnected}`);
  });
  const rejoinedMs = Date.now() - restarted;
  const base = await frames();
  const stalled = new Set(base.keys());
  const backAt = {};
  while (stalled.size > 0 && Date.now() - restarted < 20_000) {
    await sleep(100);
    const now = await frames();
    // A count from the new connection (it starts again from zero) that moves.
    for (const key of [...stalled]) {
      if (now.get(key) !== base.get(key) && now.get(key) > 0) {
        stalled.delete(key);
        backAt[key] = Date.now() - restarted;
      }
    }
  }
  const took = Date.now() - restarted;
  await watchRejoins;
  // Which pair came back when, to tell a slow rejoin from a slow first picture.
  console.log(JSON.stringify({ backAfterRestartMs: took, rejoinedMs, rejoinedAt, backAt }));
  for (const user of ["ada", "bob"]) {
    const log = await pages.get(user).evaluate(() => window.classroom.state.connectionLog);
    console.log(`${user}'s signaling: ${log.map((e) => `${e.at - restarted} ms ${e.what}`).join("; ")}`);
  }
  const deskEvents = desktop.lines.filter((l) => l.type === "event" && l.arrivedAt > restarted - 2_000);
  console.log(`desk's events: ${deskEvents.map((l) => `${l.arrivedAt - restarted} ms ${JSON.stringify(l.detail).slice(0, 80)}`).join("; ")}`);
  if (stalled.size > 0) {
    const views = [];
    for (const user of ["ada", "bob"]) views.push(`${user}: ${await describe(user)}`);
    const desk = desktopStats();
    assert.fail(`not decoding after the restart: ${[...stalled].join(", ")}\n${views.join("\n")}\ndesktop: ${JSON.stringify({ local: desk?.local, participants: desk?.participants })}`);
  }
  assert.ok(took <= 5_000, `media back ${took} ms after the restart`);
});
