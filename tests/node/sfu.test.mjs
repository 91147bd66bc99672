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
          packetsReceived: s.packetsReceived ?? 0,
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

async function startServer(extra = []) {
  server = await lab.startServer(SERVER_BIN, [
    "serve", "--dev", "--listen", `127.0.0.1:${PORT}`, "--database", join(lab.work, "db.sqlite"),
    "--ice-server", "stun:127.0.0.1:3478", "--sfu", "always", "--media-port", String(MEDIA_PORT),
    ...extra,
  ], { logTo: serverLog });
}

/** Kills the server and starts it again with `extra` flags; resolves once it listens. */
async function restartServer(extra = []) {
  const dead = server;
  const exited = new Promise((resolve) => dead.on("exit", resolve));
  dead.kill("SIGKILL");
  await exited;
  await sleep(1_000);
  await startServer(extra);
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
    // ada instructs (in development mode the first to claim it does); the others are students.
    const instructor = user === "ada" ? "&instructor=1" : "";
    await page.goto(`http://127.0.0.1:${PORT}/?session=${SESSION}&user=${user}&name=${user}${instructor}`);
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

test("a viewer whose tile grows receives the higher simulcast layer, timed from the growth", async () => {
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
      // receiveTime: when the frame's last packet arrived (what the network and the server
      // took); the rest is the jitter buffer, the decoder and the compositor.
      if (frame.height >= 720) resolve({ shown: performance.now() - grown, received: (frame.receiveTime ?? NaN) - grown });
      else if (performance.now() - grown > 10_000) resolve(null);
      else watch();
    });
    watch();
  }));
  assert.ok(took !== null, "no 720p frame within 10 s");
  const [received, shown] = [Math.round(took.received), Math.round(took.shown)];
  console.log(JSON.stringify({ layerSwitchReceivedMs: received, layerSwitchShownMs: shown }));
  // From the tile's growth to the first frame of the full layer received whole: the request,
  // the keyframe the server asks bob for (Chromium takes about 250 ms to make it), the
  // switch, the forwarding; then Chromium decodes and shows it (100–450 ms more on this
  // machine's loaded cores). The budget (received within 1 s: issue 18) is the figure printed
  // above, read off the run: a timed assertion on two shared cores that also run three
  // Chromiums fails by chance (DESIGN: budgets are proven by benchmarks). The bounds below
  // catch what is broken, not slow: a switch that waits for the publisher's next periodic
  // keyframe, or a stream Chromium's jitter buffer holds back (a wrong timestamp).
  assert.ok(received <= 2_500, `the full layer was received ${received} ms after the tile grew (shown after ${shown} ms)`);
  assert.ok(shown <= 3_500, `the full layer was shown ${shown} ms after the tile grew (received after ${received} ms)`);
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

test("students' cameras kept for the instructors: no student receives another's, the instructor every one, a co-instructor too, and lifted all come back", async () => {
  const roles = new Map();
  for (const user of USERS) {
    roles.set(user, await pages.get(user).evaluate(() => window.classroom.state.self?.isInstructor === true));
  }
  const teacher = USERS.find((u) => roles.get(u));
  const [s1, s2] = USERS.filter((u) => !roles.get(u));
  assert.ok(teacher && s1 && s2, `one instructor and two students: ${JSON.stringify([...roles])}`);
  const setLocks = (locks) => pages.get(teacher).evaluate((locks) => window.classroom.moderate("set-locks", { locks }), locks);
  const receivesCamera = async (viewer, owner) => (await cameraFrom(viewer, owner)) !== null;
  /** Whether `viewer` decodes more of `owner`'s camera within 5 s. */
  const decodesCamera = async (viewer, owner) => {
    const before = (await cameraFrom(viewer, owner))?.framesDecoded ?? 0;
    return waitFor(`${viewer} to decode more of ${owner}'s camera`, async () => ((await cameraFrom(viewer, owner))?.framesDecoded ?? 0) > before, 5000);
  };
  /** The desktop's decoded frames of `owner`'s camera stop growing (it is forwarded none). */
  const desktopStops = async (owner) => {
    let last = -1;
    await waitFor(`the desktop to stop decoding ${owner}'s camera`, async () => {
      const now = desktopRemote(owner)?.video?.camera?.framesDecoded ?? 0;
      const still = now === last;
      last = now;
      if (!still) await sleep(1_500);
      return still;
    }, 15_000);
  };

  const ack = await setLocks({ studentCameras: true });
  assert.ok(ack.ok, JSON.stringify(ack));
  // The students' connections lose each other's camera m-lines; audio stays.
  for (const [viewer, owner] of [[s1, s2], [s2, s1], [s1, "desk"], [s2, "desk"]]) {
    await waitFor(`${viewer} to stop receiving ${owner}'s camera`, async () => !(await receivesCamera(viewer, owner)))
      .catch(async (e) => { throw new Error(`${e.message}\n${viewer}: ${await describe(viewer)}`); });
    const audio = (await inboundFrom(viewer, owner)).audio;
    assert.ok(audio.length > 0, `${viewer} still hears ${owner}`);
  }
  // What the student's page shows of another student: the name, no picture.
  await waitFor(`${s1} to show ${s2}'s name in place of the camera`, () => pages.get(s1).evaluate((owner) =>
    document.querySelector(`figure[data-user="${owner}"][data-source="camera"]`)?.dataset.showing === "name", s2));
  await desktopStops(s1);
  await desktopStops(s2);
  // The instructor still sees every student, and every student the instructor.
  for (const owner of [s1, s2, "desk"]) await decodesCamera(teacher, owner);
  for (const viewer of [s1, s2]) await decodesCamera(viewer, teacher);
  const instructorOnDesktop = desktopRemote(teacher)?.video?.camera?.framesDecoded ?? 0;
  await waitFor("the desktop to go on decoding the instructor", () => (desktopRemote(teacher)?.video?.camera?.framesDecoded ?? 0) > instructorOnDesktop);
  // The page says so to the student.
  const title = await pages.get(s1).evaluate(() => document.querySelector("#camera").title);
  assert.match(title, /Only the instructors see your camera/);

  // A co-instructor sees the students' cameras; a student again, no longer.
  const granted = await pages.get(teacher).evaluate((target) => window.classroom.moderate("grant-co-instructor", { targetUserId: target }), s1);
  assert.ok(granted.ok, JSON.stringify(granted));
  await waitFor(`${s1}, co-instructor, to receive ${s2}'s camera`, () => receivesCamera(s1, s2));
  await decodesCamera(s1, s2);
  const revoked = await pages.get(teacher).evaluate((target) => window.classroom.moderate("revoke-co-instructor", { targetUserId: target }), s1);
  assert.ok(revoked.ok, JSON.stringify(revoked));
  await waitFor(`${s1}, a student again, to stop receiving ${s2}'s camera`, async () => !(await receivesCamera(s1, s2)));

  // Lifted: everyone sees everyone again.
  assert.ok((await setLocks({})).ok);
  for (const [viewer, owner] of [[s1, s2], [s2, s1], [s1, "desk"], [s2, "desk"]]) {
    await waitFor(`${viewer} to receive ${owner}'s camera again`, () => receivesCamera(viewer, owner));
    await decodesCamera(viewer, owner);
  }
  // (The count starts again with the new track: decoding again is a count that grows.)
  const desktopDecoded = (owner) => desktopRemote(owner)?.video?.camera?.framesDecoded ?? 0;
  for (const owner of [s1, s2]) {
    await waitFor(`the desktop to decode ${owner}'s camera again`, async () => {
      const before = desktopDecoded(owner);
      await sleep(1_000);
      return desktopDecoded(owner) > before;
    }, 15_000).catch((e) => {
      throw new Error(`${e.message}\ndesktop: ${JSON.stringify(desktopRemote(owner))}`);
    });
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
  // The class goes on: bob keeps decoding ada (over 3 s: on loaded cores Chromium may send a
  // few frames a second for a while, CPU-limited).
  const framesBefore = (await cameraFrom("bob", "ada")).framesDecoded;
  await sleep(3000);
  const framesAfter = (await cameraFrom("bob", "ada")).framesDecoded;
  assert.ok(framesAfter > framesBefore + 5, `bob still decodes ada: ${framesBefore} → ${framesAfter} in 3 s`);
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

test("above --sfu-audio-above speakers each participant hears only the loudest, by the levels their packets carry", async () => {
  // Three pages and the desktop: each receives three microphones. Above 2 speakers only the
  // loudest 1 is heard, ranked by the level each packet carries (Chromium's and the desktop's
  // audio-level header extension): 2 withheld for each of the four.
  await restartServer(["--sfu-audio-above", "2", "--sfu-loudest", "1"]);
  await waitFor("everyone back on the restarted server", async () => (await metrics()).value("classroom_sfu_peers") === 4, 20_000);
  const withheld = await waitFor("the server to withhold the quieter speakers", async () => {
    const n = (await metrics()).value("classroom_sfu_audio_withheld");
    return n === 8 ? n : null;
  }, 20_000).catch(async (e) => {
    throw new Error(`${e.message}: withheld ${(await metrics()).value("classroom_sfu_audio_withheld")}`);
  });
  assert.equal(withheld, 8);
  // What ada hears: each microphone's packets a second, from two readings of her connection's
  // stats two seconds apart, timed by the stats' own clock (not by how long this test took to
  // ask).
  const audioFrom = () => pages.get("ada").evaluate(async () => {
    const entry = window.classroom.state.sfu;
    const counts = {};
    let at = 0;
    for (const transceiver of entry.pc.getTransceivers()) {
      const who = entry.tracks.get(transceiver.mid);
      if (!who || who.source !== "audio") continue;
      for (const s of (await transceiver.receiver.getStats()).values()) {
        if (s.type !== "inbound-rtp") continue;
        counts[who.userId] = (counts[who.userId] ?? 0) + (s.packetsReceived ?? 0);
        at = Math.max(at, s.timestamp);
      }
    }
    return { counts, at };
  });
  const before = await audioFrom();
  await sleep(2_000);
  const after = await audioFrom();
  const seconds = (after.at - before.at) / 1000;
  const rate = Object.fromEntries(["bob", "cy", "desk"].map((owner) =>
    [owner, Math.round(((after.counts[owner] ?? 0) - (before.counts[owner] ?? 0)) / seconds)]));
  console.log(JSON.stringify({ adaPacketsPerSecond: rate, seconds }));
  // A microphone is 50 packets a second (Chromium's; a debug-build desktop on these loaded
  // cores sends about 37): ada receives one at a time (which one may change as the pages'
  // beeps and the desktop's tone come and go). Two would be 85 or more, none 0.
  const total = rate.bob + rate.cy + rate.desk;
  assert.ok(seconds > 1, `the stats moved on ${seconds} s`);
  assert.ok(total > 15 && total < 75, `one microphone at a time: ${JSON.stringify(rate)}`);
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
  // ada and bob still see each other: ada decodes more of bob's camera (within 5 s: the
  // server's renegotiation that removes cy's m-lines can hold a loaded page for a second; a CI
  // run on 2026-12-03 saw no new frame within 1 s).
  const before = (await cameraFrom("ada", "bob")).framesDecoded;
  await waitFor("ada to go on decoding bob", async () => (await cameraFrom("ada", "bob")).framesDecoded > before, 5000);
});

test("after the server is killed and restarted everyone is back with media, timed from the restart", async () => {
  const everyone = ["ada", "bob", "desk"];
  // Each page notes, every 20 ms, when a camera tile shows a new frame of a track that came
  // after the kill (a rejoin is a new connection to the server, with new tracks; an old one
  // may still show a last frame): when media is back is then read from the page's own clock,
  // not from how fast this test can poll four clients.
  for (const user of ["ada", "bob"]) {
    await pages.get(user).evaluate(() => {
      const track = (video) => video.srcObject?.getVideoTracks?.()[0] ?? null;
      const old = new WeakSet();
      for (const video of document.querySelectorAll("video")) if (track(video)) old.add(track(video));
      const seen = new WeakMap();
      window.framesAt = {};
      setInterval(() => {
        for (const video of document.querySelectorAll('figure[data-source="camera"] video')) {
          const owner = video.closest("figure").dataset.user;
          const count = video.getVideoPlaybackQuality().totalVideoFrames;
          const t = track(video);
          const before = seen.get(video);
          seen.set(video, { count, t });
          if (t && !old.has(t) && before?.t === t && count > before.count) (window.framesAt[owner] ??= []).push(Date.now());
        }
      }, 20);
    });
  }
  // When each pair first showed a frame after `since` (null: not yet).
  const backSince = async (since) => {
    const at = {};
    for (const viewer of ["ada", "bob"]) {
      const firsts = await pages.get(viewer).evaluate((since) => Object.fromEntries(
        Object.entries(window.framesAt).map(([owner, times]) => [owner, times.find((t) => t > since) ?? null])), since);
      for (const owner of everyone.filter((u) => u !== viewer)) at[`${viewer}>${owner}`] = firsts[owner] ?? null;
    }
    // The desktop: the first stats line after `since` in which its count of an owner's
    // frames moved (a new connection counts from zero), at the line's arrival (every 250 ms).
    const stats = desktop.lines.filter((l) => l.type === "stats");
    for (const owner of ["ada", "bob"]) {
      const count = (l) => l.remotes?.find((r) => r.userId === owner)?.video?.camera?.framesDecoded ?? 0;
      let last = count(stats.findLast((l) => l.arrivedAt <= since) ?? {});
      at[`desk>${owner}`] = null;
      for (const l of stats.filter((l) => l.arrivedAt > since)) {
        if (count(l) > 0 && count(l) !== last) {
          at[`desk>${owner}`] = l.arrivedAt;
          break;
        }
        last = count(l);
      }
    }
    return at;
  };
  await restartServer();
  const restarted = Date.now();
  let at = {};
  while (Date.now() - restarted < 20_000) {
    at = await backSince(restarted);
    if (Object.values(at).every((t) => t !== null)) break;
    await sleep(200);
  }
  const backAt = Object.fromEntries(Object.entries(at).map(([pair, t]) => [pair, t === null ? null : t - restarted]));
  const stalled = Object.keys(backAt).filter((pair) => backAt[pair] === null);
  const took = stalled.length > 0 ? null : Math.max(...Object.values(backAt));
  // Which pair came back when, and each client's signaling, to tell a slow rejoin from a
  // slow first picture.
  console.log(JSON.stringify({ backAfterRestartMs: took, backAt }));
  for (const user of ["ada", "bob"]) {
    const log = await pages.get(user).evaluate(() => window.classroom.state.connectionLog);
    console.log(`${user}'s signaling: ${log.filter((e) => e.at > restarted - 2_000).map((e) => `${e.at - restarted} ms ${e.what}`).join("; ")}`);
  }
  const deskEvents = desktop.lines.filter((l) => l.type === "event" && l.arrivedAt > restarted - 2_000);
  console.log(`desk's events: ${deskEvents.map((l) => `${l.arrivedAt - restarted} ms ${JSON.stringify(l.detail).slice(0, 80)}`).join("; ")}`);
  if (stalled.length > 0) {
    const views = [];
    for (const user of ["ada", "bob"]) views.push(`${user}: ${await describe(user)}`);
    const desk = desktopStats();
    assert.fail(`not decoding after the restart: ${stalled.join(", ")}\n${views.join("\n")}\ndesktop: ${JSON.stringify({ local: desk?.local, participants: desk?.participants })}`);
  }
  // The server holds one connection per client, no more (none left over from before).
  assert.equal((await metrics()).value("classroom_sfu_peers"), everyone.length);
  // The budget (every pair back within 5 s: issue 18) is `backAfterRestartMs` above. Most of
  // it is each Chromium's reconnect backoff and its ICE to the server (about 1.3 s on these
  // loaded cores), not the server; the bound catches a client that comes back only by a
  // timeout or a periodic keyframe.
  assert.ok(took <= 12_000, `media back ${took} ms after the restart`);
});
