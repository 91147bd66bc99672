// The browser client of a live class, served by the signaling server: the browser version's
// behaviour (getUserMedia, join-session, one peer connection per participant, the newcomer
// offers, trickle ICE, chat, participant list, camera/microphone toggles, screen share), in
// the protocol of docs/protocol.md. Like the desktop app, each connection carries three
// transceivers in this order: audio, camera, screen, so a screen share needs no renegotiation;
// renegotiation follows "perfect negotiation" (the greater user id is polite).
// In a class on the server's SFU (`topology: "sfu"` in session-joined) the page holds one
// connection, to the server: it sends audio, its camera in three simulcast layers (rids q, h,
// f) and its screen, and receives everyone else's tracks on m-lines the server adds (its
// `sfu-offer`s say whose each one is). The server yields when both offer at once.
// Query parameters: session, user, name, instructor=1, token, key (a local class's join key).
// The token and the key leave the address bar once read: it ends up in the history, and in
// screen shares.
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  const secrets = { token: params.get("token"), key: params.get("key") };
  if (secrets.token !== null || secrets.key !== null) {
    const visible = new URLSearchParams(params);
    visible.delete("token");
    visible.delete("key");
    const query = visible.toString();
    history.replaceState(null, "", `${location.pathname}${query ? `?${query}` : ""}${location.hash}`);
  }
  const $ = (id) => document.getElementById(id);

  const state = {
    sessionId: params.get("session"),
    userId: params.get("user"),
    userName: params.get("name") || params.get("user"),
    isInstructor: params.get("instructor") === "1",
    joined: false,
    // The user left the class (leave()): reconnects do not join again.
    left: false,
    self: null,
    participants: new Map(), // userId -> participant
    peers: new Map(), // userId -> { pc, polite, makingOffer, ignoreOffer, pending: [] }
    topology: "mesh",
    sfu: null, // { pc, makingOffer, send: { audio, camera, screen }, tracks: Map(mid -> { userId, source }) }
    chat: [],
    iceServers: [],
    local: { stream: null, screen: null, audio: true, video: true, sharing: false, hand: false },
    errors: [],
    // The class's lock, lock settings and waiting room (class-settings); who waits and the
    // raised hands (instructors only); whether we wait to be admitted.
    settings: { locked: false, waitingRoom: "open", locks: {} },
    waitingRoom: [],
    hands: [],
    waiting: false,
    reactions: [],
    // The open (or last) poll, our choices in it, and its results when we may see them.
    poll: null,
    pollClosed: false,
    myVote: [],
    pollResults: null,
  };

  // Instructor, co-instructor, student: who may act on whom (the server checks it too).
  const rank = (p) => (p?.isInstructor ? (p.coInstructor ? 1 : 2) : 0);
  const amInstructor = () => rank(state.self) > 0;
  // What the instructor locked for us (an instructor is never locked).
  const locked = (what) => !amInstructor() && state.settings.locks?.[what] === true;
  const LOCK_WORDS = { microphone: "microphones", camera: "cameras", screenShare: "screen sharing", publicChat: "the public chat", privateChat: "private chat", studentCameras: "students' view of each other's cameras" };

  function showError(message) {
    state.errors.push(message);
    const el = $("error");
    el.textContent = message;
    el.hidden = false;
    console.error(message);
  }

  // ---- media --------------------------------------------------------------------------

  async function openMedia() {
    try {
      // 720p where the camera has it: on the SFU that makes three layers (180p, 360p, 720p).
      const video = { width: { ideal: 1280 }, height: { ideal: 720 } };
      state.local.stream = await navigator.mediaDevices.getUserMedia({ video, audio: true });
    } catch (error) {
      showError(`camera/microphone unavailable: ${error.message}`);
      state.local.stream = new MediaStream();
    }
    showVideo(state.userId, "camera", state.local.stream);
  }

  const localAudio = () => state.local.stream?.getAudioTracks()[0] ?? null;
  const localCamera = () => state.local.stream?.getVideoTracks()[0] ?? null;
  // What is really sent: a camera or microphone that did not open is off, whatever the switch.
  const sendsAudio = () => state.local.audio && localAudio() !== null;
  const sendsCamera = () => state.local.video && localCamera() !== null;

  // Tiles follow the roster, not the tracks: a camera tile shows the picture only while its
  // owner says the camera is on and frames arrive, else the owner's initials; a screen tile
  // exists only while its owner shares.
  const videoStreams = new Map(); // "userId:source" -> MediaStream of one video track
  const speaking = new Set(); // userIds heard now
  const network = new Map(); // userId -> "connecting" | "poor" | "fair" | "good"
  const SPEAKING_LEVEL = 0.02;

  function showVideo(userId, source, stream) {
    videoStreams.set(`${userId}:${source}`, stream);
    for (const track of stream.getVideoTracks()) {
      track.onmute = renderTiles;
      track.onunmute = renderTiles;
      track.onended = renderTiles;
    }
    renderTiles();
  }

  function removeScreen(userId) {
    videoStreams.delete(`${userId}:screen`);
    renderTiles();
  }

  function removeVideos(userId) {
    for (const key of [...videoStreams.keys()]) if (key.startsWith(`${userId}:`)) videoStreams.delete(key);
    renderTiles();
  }

  const initials = (name) => name.split(/\s+/).filter(Boolean).slice(0, 2).map((word) => [...word][0].toUpperCase()).join("") || "?";

  function tile(userId, source) {
    const key = `${userId}:${source}`;
    let figure = document.querySelector(`figure[data-key="${CSS.escape(key)}"]`);
    if (!figure) {
      figure = document.createElement("figure");
      figure.dataset.key = key;
      figure.dataset.user = userId;
      figure.dataset.source = source;
      const video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      video.muted = true;
      const name = document.createElement("div");
      name.className = "name-tile";
      const caption = document.createElement("figcaption");
      figure.append(video, name, caption);
      $("videos").append(figure);
      tileSizes.observe(figure);
    }
    return figure;
  }

  function renderTiles() {
    const everyone = [];
    if (state.local.stream) {
      everyone.push({
        userId: state.userId,
        name: `${state.userName} (you)`,
        camera: sendsCamera(),
        sharing: state.local.sharing,
        mic: sendsAudio(),
        hand: state.local.hand,
      });
    }
    for (const p of state.participants.values()) {
      everyone.push({
        userId: p.userId,
        name: p.userName || p.userId,
        camera: p.videoEnabled,
        sharing: p.screenSharing,
        mic: p.audioEnabled,
        hand: p.handRaised,
      });
    }
    const wanted = new Set();
    for (const person of everyone) {
      for (const source of person.sharing ? ["screen", "camera"] : ["camera"]) {
        const key = `${person.userId}:${source}`;
        wanted.add(key);
        const figure = tile(person.userId, source);
        const stream = videoStreams.get(key) ?? null;
        const track = stream?.getVideoTracks()[0] ?? null;
        const flowing = track !== null && track.readyState === "live" && !track.muted;
        const picture = flowing && (source === "screen" || person.camera);
        const video = figure.querySelector("video");
        if (video.srcObject !== stream) video.srcObject = stream;
        if (stream) video.play().catch(() => {});
        video.hidden = !picture;
        figure.dataset.showing = picture ? "picture" : "name";
        figure.querySelector(".name-tile").textContent = picture ? "" : initials(person.name);
        figure.querySelector(".name-tile").hidden = picture;
        const marks = source === "camera" ? `${person.mic ? "" : "🔇 "}${person.hand ? "✋ " : ""}` : "";
        figure.querySelector("figcaption").textContent = source === "screen" ? `${person.name} — screen` : `${marks}${person.name}`;
        figure.dataset.mic = person.mic ? "on" : "off";
        figure.dataset.hand = person.hand ? "up" : "down";
        figure.dataset.speaking = String(source === "camera" && speaking.has(person.userId));
        const quality = network.get(person.userId);
        if (quality) figure.dataset.network = quality;
        else delete figure.dataset.network;
      }
    }
    for (const figure of document.querySelectorAll("#videos figure")) {
      if (!wanted.has(figure.dataset.key)) figure.remove();
    }
    // A share is the stage: it takes the room, the cameras go beside it.
    const stage = document.querySelector('#videos figure[data-source="screen"]');
    $("videos").classList.toggle("has-stage", stage !== null);
    if (stage && $("videos").firstElementChild !== stage) $("videos").prepend(stage);
  }

  // From the connections' stats, a few times a second: the active speaker (whoever's decoded
  // audio is loud: the receivers' inbound level, as the audio-level header extension is not
  // sent by every client) and each connection's quality (the desktop's rule: good under
  // 150 ms round trip and 5 packets lost, poor over 400 ms or 50).
  setInterval(async () => {
    const now = new Set();
    const quality = new Map();
    if (state.sfu) {
      const { pc, tracks } = state.sfu;
      const report = await pc.getStats().catch(() => null);
      let rtt = 0;
      const lost = new Map();
      for (const s of report?.values() ?? []) {
        const owner = s.type === "inbound-rtp" ? tracks.get(s.mid)?.userId : undefined;
        if (owner) {
          lost.set(owner, (lost.get(owner) ?? 0) + (s.packetsLost ?? 0));
          if (s.kind === "audio" && (s.audioLevel ?? 0) > SPEAKING_LEVEL && state.participants.get(owner)?.audioEnabled) now.add(owner);
        }
        if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") rtt = (s.currentRoundTripTime ?? 0) * 1000;
      }
      for (const userId of state.participants.keys()) {
        const l = lost.get(userId) ?? 0;
        quality.set(userId, pc.connectionState !== "connected" ? "connecting"
          : rtt > 400 || l > 50 ? "poor" : rtt > 150 || l > 5 ? "fair" : "good");
      }
      requestLayers();
    }
    for (const [userId, { pc }] of state.peers) {
      const report = await pc.getStats().catch(() => null);
      let rtt = 0, lost = 0;
      for (const s of report?.values() ?? []) {
        if (s.type === "inbound-rtp") {
          lost += s.packetsLost ?? 0;
          if (s.kind === "audio" && (s.audioLevel ?? 0) > SPEAKING_LEVEL && state.participants.get(userId)?.audioEnabled) now.add(userId);
        }
        if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") rtt = (s.currentRoundTripTime ?? 0) * 1000;
      }
      quality.set(userId, pc.connectionState !== "connected" ? "connecting"
        : rtt > 400 || lost > 50 ? "poor" : rtt > 150 || lost > 5 ? "fair" : "good");
    }
    const changed = now.size !== speaking.size || [...now].some((userId) => !speaking.has(userId))
      || [...quality].some(([userId, q]) => network.get(userId) !== q) || quality.size !== network.size;
    if (changed) {
      speaking.clear();
      for (const userId of now) speaking.add(userId);
      network.clear();
      for (const [userId, q] of quality) network.set(userId, q);
      renderTiles();
    }
  }, 300);

  // ---- peer connections -----------------------------------------------------------------

  function sendersByRole(pc) {
    const transceivers = pc.getTransceivers();
    const audio = transceivers.find((t) => t.receiver.track.kind === "audio");
    const videos = transceivers.filter((t) => t.receiver.track.kind === "video");
    return { audio, camera: videos[0], screen: videos[1] };
  }

  async function attachLocalTracks(pc) {
    const { audio, camera, screen } = sendersByRole(pc);
    if (audio) { audio.direction = "sendrecv"; await audio.sender.replaceTrack(state.local.audio ? localAudio() : null); }
    if (camera) { camera.direction = "sendrecv"; await camera.sender.replaceTrack(currentCameraTrack(!screen)); }
    if (screen) { screen.direction = "sendrecv"; await screen.sender.replaceTrack(state.local.sharing ? state.local.screen : null); }
  }

  // With only one video transceiver (a peer of the browser version), the screen replaces the camera.
  function currentCameraTrack(cameraCarriesScreen) {
    if (cameraCarriesScreen && state.local.sharing) return state.local.screen;
    return state.local.video ? localCamera() : null;
  }

  function peer(userId) {
    let entry = state.peers.get(userId);
    if (entry) return entry;
    const pc = new RTCPeerConnection({ iceServers: state.iceServers });
    entry = { pc, polite: state.userId > userId, makingOffer: false, ignoreOffer: false, pending: [] };
    state.peers.set(userId, entry);
    pc.onicecandidate = ({ candidate }) => {
      if (candidate) socket.emit("ice-candidate", { targetUserId: userId, candidate: candidate.toJSON() });
    };
    pc.ontrack = (event) => {
      const role = roleOf(pc, event.transceiver);
      const stream = event.streams[0] ?? new MediaStream([event.track]);
      if (event.track.kind === "video") {
        const sharing = state.participants.get(userId)?.screenSharing;
        const source = role === "screen" ? "screen" : (role === "camera" && sharing && !sendersByRole(pc).screen ? "screen" : "camera");
        showVideo(userId, source, new MediaStream([event.track]));
      } else {
        showAudio(userId, stream);
      }
    };
    pc.onconnectionstatechange = () => {
      renderParticipants();
      if (pc.connectionState === "failed" && !entry.polite) pc.restartIce();
    };
    pc.onnegotiationneeded = async () => {
      try {
        entry.makingOffer = true;
        await pc.setLocalDescription();
        socket.emit("offer", { targetUserId: userId, offer: { type: pc.localDescription.type, sdp: pc.localDescription.sdp } });
      } catch (error) {
        showError(`offer to ${userId}: ${error.message}`);
      } finally {
        entry.makingOffer = false;
      }
    };
    return entry;
  }

  function roleOf(pc, transceiver) {
    const { audio, camera, screen } = sendersByRole(pc);
    if (transceiver === audio) return "audio";
    if (transceiver === camera) return "camera";
    if (transceiver === screen) return "screen";
    return "unknown";
  }

  function showAudio(userId, stream) {
    let audio = document.querySelector(`audio[data-user="${CSS.escape(userId)}"]`);
    if (!audio) {
      audio = document.createElement("audio");
      audio.dataset.user = userId;
      audio.autoplay = true;
      document.body.append(audio);
    }
    audio.srcObject = stream;
  }

  // We are the newcomer: three transceivers, then the offer (negotiationneeded).
  async function offerTo(userId) {
    const { pc } = peer(userId);
    pc.addTransceiver("audio", { direction: "sendrecv", streams: [state.local.stream] });
    pc.addTransceiver("video", { direction: "sendrecv", streams: [state.local.stream] });
    pc.addTransceiver("video", { direction: "sendrecv", streams: [state.local.stream] });
    await attachLocalTracks(pc);
  }

  async function onDescription(fromUserId, description) {
    const entry = peer(fromUserId);
    const { pc } = entry;
    const collision = description.type === "offer" && (entry.makingOffer || pc.signalingState !== "stable");
    entry.ignoreOffer = !entry.polite && collision;
    if (entry.ignoreOffer) return;
    try {
      await pc.setRemoteDescription(description);
      for (const candidate of entry.pending.splice(0)) await pc.addIceCandidate(candidate).catch(() => {});
      if (description.type === "offer") {
        await attachLocalTracks(pc);
        await pc.setLocalDescription();
        socket.emit("answer", { targetUserId: fromUserId, answer: { type: pc.localDescription.type, sdp: pc.localDescription.sdp } });
      }
    } catch (error) {
      showError(`${description.type} from ${fromUserId}: ${error.message}`);
    }
  }

  async function onCandidate(fromUserId, candidate) {
    if (!candidate || !candidate.candidate) return;
    const entry = peer(fromUserId);
    if (!entry.pc.remoteDescription) {
      entry.pending.push(candidate);
      return;
    }
    try {
      await entry.pc.addIceCandidate(candidate);
    } catch (error) {
      if (!entry.ignoreOffer) showError(`candidate from ${fromUserId}: ${error.message}`);
    }
  }

  function closePeer(userId) {
    state.peers.get(userId)?.pc.close();
    state.peers.delete(userId);
    removeVideos(userId);
    document.querySelector(`audio[data-user="${CSS.escape(userId)}"]`)?.remove();
  }

  // ---- the SFU connection ------------------------------------------------------------------

  // The camera's simulcast layers, as docs/protocol.md names them: a quarter, half and full size.
  const CAMERA_LAYERS = [
    { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
    { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
    { rid: "f", scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
  ];

  function sfuConnection() {
    const pc = new RTCPeerConnection({ iceServers: state.iceServers });
    const streams = [state.local.stream];
    const send = {
      audio: pc.addTransceiver("audio", { direction: "sendonly", streams }),
      camera: pc.addTransceiver("video", { direction: "sendonly", streams, sendEncodings: CAMERA_LAYERS }),
      screen: pc.addTransceiver("video", { direction: "sendonly", streams }),
    };
    const entry = { pc, makingOffer: false, send, tracks: new Map(), requested: new Map(), queue: Promise.resolve() };
    state.sfu = entry;
    pc.onicecandidate = ({ candidate }) => {
      if (candidate) socket.emit("sfu-candidate", { candidate: candidate.toJSON() });
    };
    pc.ontrack = (event) => {
      const owner = entry.tracks.get(event.transceiver.mid);
      if (!owner) return;
      if (event.track.kind === "video") showVideo(owner.userId, owner.source, new MediaStream([event.track]));
      else showAudio(owner.userId, new MediaStream([event.track]));
    };
    pc.onconnectionstatechange = () => {
      logConnection(`SFU connection ${pc.connectionState}`);
      renderParticipants();
    };
    pc.onnegotiationneeded = async () => {
      try {
        entry.makingOffer = true;
        await pc.setLocalDescription();
        socket.emit("sfu-offer", { description: plain(pc.localDescription), sources: sfuSources(entry) });
      } catch (error) {
        showError(`offer to the SFU: ${error.message}`);
      } finally {
        entry.makingOffer = false;
      }
    };
    return entry;
  }

  const plain = (d) => ({ type: d.type, sdp: d.sdp });

  function sfuSources({ send }) {
    const height = localCamera()?.getSettings().height ?? 720;
    return [
      { mid: send.audio.mid, source: "audio" },
      { mid: send.camera.mid, source: "camera", height },
      { mid: send.screen.mid, source: "screen", height: 1080 },
    ].filter((s) => s.mid !== null);
  }

  async function attachSfuTracks({ send }) {
    await send.audio.sender.replaceTrack(state.local.audio ? localAudio() : null);
    await send.camera.sender.replaceTrack(state.local.video ? localCamera() : null);
    await send.screen.sender.replaceTrack(state.local.sharing ? state.local.screen : null);
  }

  function learnTracks(entry, tracks) {
    entry.tracks = new Map((tracks ?? []).map((t) => [t.mid, { userId: t.userId, source: t.source }]));
  }

  // The server's description: an answer to ours, or an offer of the others' tracks, handled
  // one at a time in arrival order (an offer right behind an answer waits for the answer to be
  // applied). We are the impolite side: an offer that collides with ours is ignored (the
  // server yields, and offers again after answering ours).
  function onSfuDescription(message) {
    const entry = state.sfu;
    if (!entry) return;
    entry.queue = entry.queue.then(() => applySfuDescription(entry, message));
  }

  async function applySfuDescription(entry, { description, tracks }) {
    if (state.sfu !== entry) return;
    const { pc } = entry;
    if (description.type === "offer" && (entry.makingOffer || pc.signalingState !== "stable")) return;
    try {
      learnTracks(entry, tracks);
      await pc.setRemoteDescription(description);
      if (description.type === "offer") {
        await pc.setLocalDescription();
        socket.emit("sfu-answer", { description: plain(pc.localDescription) });
      }
    } catch (error) {
      showError(`${description.type} from the SFU: ${error.message}`);
    }
  }

  // A tile that changes size asks for the layer it now needs at once (not at the next stats
  // tick): growing a tile to the stage brings the sharper picture within the second.
  const tileSizes = new ResizeObserver(() => requestLayers());

  // Each camera tile's height, so the server forwards the layer it needs (like the desktop's
  // video-request in a mesh); sent when it changes.
  function requestLayers() {
    const entry = state.sfu;
    if (!entry) return;
    for (const figure of document.querySelectorAll('#videos figure[data-source="camera"]')) {
      const userId = figure.dataset.user;
      if (userId === state.userId) continue;
      const maxHeight = Math.min(4320, Math.max(90, Math.round(figure.clientHeight * (window.devicePixelRatio || 1))));
      if (entry.requested.get(userId) === maxHeight) continue;
      entry.requested.set(userId, maxHeight);
      socket.emit("video-request", { targetUserId: userId, maxHeight });
    }
  }

  function closeSfu() {
    state.sfu?.pc.close();
    state.sfu = null;
    for (const userId of state.participants.keys()) removeVideos(userId);
    for (const audio of document.querySelectorAll("audio[data-user]")) audio.remove();
  }

  // ---- controls -------------------------------------------------------------------------

  function announce() {
    socket.emit("media-state", {
      audioEnabled: sendsAudio(),
      videoEnabled: sendsCamera(),
      screenSharing: state.local.sharing,
      handRaised: state.local.hand,
    });
    renderControls();
    renderParticipants();
  }

  async function updateSenders() {
    for (const { pc } of state.peers.values()) await attachLocalTracks(pc);
    if (state.sfu) await attachSfuTracks(state.sfu);
  }

  async function setMicrophone(on) {
    state.local.audio = on;
    await updateSenders();
    announce();
  }

  async function setCamera(on) {
    state.local.video = on;
    await updateSenders();
    announce();
  }

  async function setScreenShare(on) {
    if (on && !state.local.screen) {
      try {
        const display = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
        state.local.screen = display.getVideoTracks()[0];
        state.local.screen.onended = () => setScreenShare(false);
      } catch (error) {
        showError(`screen share refused: ${error.message}`);
        return;
      }
    }
    if (!on && state.local.screen) {
      state.local.screen.stop();
      state.local.screen = null;
    }
    state.local.sharing = on;
    if (on) showVideo(state.userId, "screen", new MediaStream([state.local.screen]));
    else removeScreen(state.userId);
    await updateSenders();
    announce();
  }

  // Turns off what the lock settings forbid us; announce() then tells the server.
  async function applyLocks() {
    let changed = false;
    if (locked("microphone") && state.local.audio) { state.local.audio = false; changed = true; }
    if (locked("camera") && state.local.video) { state.local.video = false; changed = true; }
    if (locked("screenShare") && state.local.sharing) {
      await setScreenShare(false);
      return true;
    }
    if (changed) await updateSenders();
    return changed;
  }

  function moderate(action, fields = {}) {
    return socket.timeout(5_000).emitWithAck("moderate", { action, ...fields }).then((ack) => {
      if (!ack.ok) showError(`${ack.error.code}: ${ack.error.message}`);
      return ack;
    });
  }

  function vote(choices, text = null) {
    if (!state.poll) return Promise.resolve(null);
    const payload = text !== null ? { pollId: state.poll.pollId, text } : { pollId: state.poll.pollId, choices };
    return socket.timeout(5_000).emitWithAck("vote", payload).then((ack) => {
      if (ack.ok) state.myVote = choices;
      else showError(`${ack.error.code}: ${ack.error.message}`);
      renderPoll();
      return ack;
    });
  }

  function renderPoll() {
    const section = $("poll");
    section.hidden = !state.poll;
    if (!state.poll) return;
    const poll = state.poll;
    $("poll-question").textContent = `${poll.quiz ? "Quiz" : "Poll"}${poll.anonymous ? " (anonymous)" : ""}: ${poll.question}`;
    const options = $("poll-options");
    options.replaceChildren();
    if (poll.kind !== "text") {
      poll.options.forEach((label, i) => {
        const b = document.createElement("button");
        b.textContent = label;
        b.dataset.choice = String(i);
        b.disabled = state.pollClosed;
        b.setAttribute("aria-pressed", String(state.myVote.includes(i)));
        b.onclick = () => {
          const choices = poll.kind === "multiple"
            ? (state.myVote.includes(i) ? state.myVote.filter((c) => c !== i) : [...state.myVote, i])
            : [i];
          if (choices.length) vote(choices);
        };
        options.append(b);
      });
    }
    $("poll-text-form").hidden = poll.kind !== "text" || state.pollClosed;
    $("poll-status").textContent = state.pollClosed ? "The poll is closed." : state.myVote.length ? "Your answer is in; you can change it until the poll closes." : "";
    const results = $("poll-results");
    results.replaceChildren();
    const r = state.pollResults;
    if (r && r.pollId === poll.pollId) {
      r.options.forEach((label, i) => {
        const li = document.createElement("li");
        li.dataset.choice = String(i);
        li.textContent = `${label}: ${r.totals[i]}${r.correct?.includes(i) ? " ✓" : ""}`;
        results.append(li);
      });
      for (const text of [...(r.texts ?? []), ...r.answers.filter((a) => a.text).map((a) => `${a.userName}: ${a.text}`)]) {
        const li = document.createElement("li");
        li.textContent = text;
        results.append(li);
      }
      const total = document.createElement("li");
      total.textContent = `${r.voters} answered`;
      results.append(total);
    }
    $("poll-manage").hidden = !amInstructor();
    $("poll-close").disabled = state.pollClosed;
  }

  function react(emoji) {
    socket.emit("reaction", { emoji });
  }

  function showNotice(text, { unmute = false } = {}) {
    $("notice-text").textContent = text;
    $("notice-unmute").hidden = !unmute;
    $("notice").hidden = false;
  }

  // The class is over for us (removed, ended, denied): nothing reconnects.
  function endLocally(text) {
    state.left = true;
    state.joined = false;
    state.waiting = false;
    for (const userId of [...state.peers.keys()]) closePeer(userId);
    closeSfu();
    for (const track of state.local.stream?.getTracks() ?? []) track.stop();
    state.local.screen?.stop();
    state.participants.clear();
    $("class").hidden = true;
    $("waiting").hidden = true;
    $("ended-text").textContent = text;
    $("ended").hidden = false;
    $("status").textContent = "not in the class";
  }

  function raiseHand(up) {
    state.local.hand = up;
    announce();
  }

  function sendChat(message, toUserId = null) {
    if (!message.trim()) return;
    socket.emit("chat-message", toUserId ? { message, toUserId } : { message });
  }

  function leave() {
    socket.emit("leave-session", {});
    for (const userId of [...state.peers.keys()]) closePeer(userId);
    closeSfu();
    state.participants.clear();
    state.joined = false;
    // Left on purpose: a reconnect of the socket (the server restarting) does not rejoin.
    state.left = true;
    renderParticipants();
  }

  function rejoin() {
    state.left = false;
    join();
  }

  // ---- rendering ------------------------------------------------------------------------

  function renderParticipants() {
    const list = $("participants");
    list.replaceChildren();
    // Our own row says what we send now (state.self is what the server last told us).
    const me = state.self && { ...state.self, audioEnabled: sendsAudio(), videoEnabled: sendsCamera(), screenSharing: state.local.sharing, handRaised: state.local.hand };
    const everyone = [...(me ? [me] : []), ...state.participants.values()];
    for (const p of everyone) {
      const li = document.createElement("li");
      li.dataset.user = p.userId;
      const connection = p.userId === state.userId ? "you"
        : (state.sfu?.pc.connectionState ?? state.peers.get(p.userId)?.pc.connectionState ?? "waiting");
      li.dataset.connection = connection;
      // A row: who (a hand when raised), the role, what they send, the connection's state.
      const span = (className, text) => {
        const s = document.createElement("span");
        s.className = className;
        s.textContent = text;
        return s;
      };
      li.append(span("who", `${p.handRaised ? "✋ " : ""}${p.userName}${p.userId === state.userId ? " (you)" : ""}`));
      const role = p.coInstructor ? "co-instructor" : p.isInstructor ? "instructor" : "";
      if (role) li.append(" ", span("role", role));
      const sends = [p.audioEnabled ? "mic on" : "muted", p.videoEnabled ? "camera on" : "camera off", ...(p.screenSharing ? ["sharing"] : [])];
      const line = span("details", "");
      line.append(span("sends", sends.join(" · ")));
      if (connection !== "you") line.append(" · ", span("connection", connection));
      li.append(" ", line);
      // An instructor's controls over those they outrank.
      if (p.userId !== state.userId && rank(state.self) > rank(p)) {
        const button = (label, action, fields = {}) => {
          const b = document.createElement("button");
          b.textContent = label;
          b.dataset.action = action;
          b.onclick = () => moderate(action, { targetUserId: p.userId, ...fields });
          li.append(b);
        };
        if (p.audioEnabled) button("Mute", "mute");
        else button("Ask to unmute", "ask-unmute");
        if (p.videoEnabled) button("Stop camera", "stop-camera");
        if (p.screenSharing) button("Stop share", "stop-screen");
        if (p.handRaised) button("Lower hand", "lower-hand");
        button("Remove", "remove");
        if (rank(state.self) === 2) {
          if (p.coInstructor) button("Revoke co-instructor", "revoke-co-instructor");
          else button("Make co-instructor", "grant-co-instructor");
        }
      }
      list.append(li);
    }
    $("people-count").textContent = `(${everyone.length})`;
    renderChatTargets();
    renderInstructor();
    renderTiles();
  }

  // Whom we may write to privately: students the instructors, instructors anyone.
  function renderChatTargets() {
    const select = $("chat-to");
    const current = select.value;
    select.replaceChildren(new Option("Everyone", ""));
    for (const p of state.participants.values()) {
      if (amInstructor() || p.isInstructor) select.append(new Option(`${p.userName} (private)`, p.userId));
    }
    select.value = [...select.options].some((o) => o.value === current) ? current : "";
    const to = select.value ? "privateChat" : "publicChat";
    $("chat-input").disabled = locked(to);
    $("chat-input").placeholder = locked(to) ? `The instructor has locked ${LOCK_WORDS[to]}` : "";
  }

  function renderInstructor() {
    const panel = $("instructor");
    panel.hidden = !amInstructor();
    if (panel.hidden) return;
    const own = rank(state.self) === 2;
    $("lock-class").textContent = state.settings.locked ? "Unlock class" : "Lock class";
    $("lock-class").setAttribute("aria-pressed", String(state.settings.locked));
    $("end-class").hidden = !own;
    $("waiting-policy").value = state.settings.waitingRoom;
    $("waiting-policy").disabled = !own;
    for (const box of document.querySelectorAll("#locks input")) {
      box.checked = state.settings.locks?.[box.dataset.lock] === true;
      box.disabled = !own;
    }
    const waiting = $("waiting-list");
    waiting.replaceChildren();
    for (const w of state.waitingRoom) {
      const li = document.createElement("li");
      li.dataset.user = w.userId;
      li.textContent = w.userName;
      for (const [label, action] of [["Admit", "admit"], ["Deny", "deny"]]) {
        const b = document.createElement("button");
        b.textContent = label;
        b.dataset.action = action;
        b.onclick = () => moderate(action, { targetUserId: w.userId });
        li.append(b);
      }
      waiting.append(li);
    }
    $("admit-all").hidden = state.waitingRoom.length === 0;
    const hands = $("hand-queue");
    hands.replaceChildren();
    for (const h of state.hands) {
      const li = document.createElement("li");
      li.dataset.user = h.userId;
      li.textContent = h.userName;
      hands.append(li);
    }
  }

  function renderChat(message) {
    const li = document.createElement("li");
    li.dataset.kind = message.type;
    li.dataset.id = message.id;
    const privately = message.toUserId
      ? (message.toUserId === state.userId ? " (privately to you)" : ` (privately to ${message.toUserName ?? message.toUserId})`)
      : "";
    if (message.toUserId) li.dataset.private = "true";
    li.textContent = message.type === "system" ? message.message : `${message.userName}${privately}: ${message.message}`;
    if (amInstructor() && message.type === "user") {
      const b = document.createElement("button");
      b.textContent = "Delete";
      b.dataset.action = "delete-message";
      b.onclick = () => moderate("delete-message", { messageId: message.id });
      li.append(b);
    }
    const list = $("chat");
    // Kept at the newest message unless the reader scrolled back.
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.append(li);
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  // Messages that came while the chat was closed or the page hidden: counted on the chat's
  // heading and in the window's title until the chat is seen.
  let unread = 0;
  const chatSeen = () => $("chat-panel").open && !document.hidden;
  function renderUnread() {
    $("chat-unread").textContent = unread > 0 ? `${unread} new` : "";
    $("chat-unread").hidden = unread === 0;
    const title = document.title.replace(/^\(\d+\) /, "");
    document.title = unread > 0 ? `(${unread}) ${title}` : title;
  }
  function countUnread(message) {
    if (message.userId === state.userId || chatSeen()) return;
    unread += 1;
    renderUnread();
  }
  function chatNowSeen() {
    if (!chatSeen() || unread === 0) return;
    unread = 0;
    renderUnread();
  }

  function renderControls() {
    $("mic").textContent = state.local.audio ? "Mute" : "Unmute";
    $("mic").setAttribute("aria-pressed", String(state.local.audio));
    $("camera").textContent = state.local.video ? "Camera off" : "Camera on";
    $("camera").setAttribute("aria-pressed", String(state.local.video));
    $("share").textContent = state.local.sharing ? "Stop sharing" : "Share screen";
    $("share").setAttribute("aria-pressed", String(state.local.sharing));
    $("hand").textContent = state.local.hand ? "Lower hand" : "Raise hand";
    $("hand").setAttribute("aria-pressed", String(state.local.hand));
    // What is locked is greyed out, and says why.
    for (const [id, what, on] of [["mic", "microphone", state.local.audio], ["camera", "camera", state.local.video], ["share", "screenShare", state.local.sharing]]) {
      const lock = locked(what) && !on;
      $(id).disabled = lock;
      $(id).title = lock ? `The instructor has locked ${LOCK_WORDS[what]}` : "";
    }
    if (!locked("camera") && locked("studentCameras")) $("camera").title = "Only the instructors see your camera in this class";
  }

  // ---- signaling ------------------------------------------------------------------------

  const auth = {};
  if (secrets.token) auth.token = secrets.token;
  if (secrets.key) auth.key = secrets.key;
  // A lost server is tried again after 0.5 s, then at most every 2 s (socket.io-client's
  // defaults are 1 s and 5 s): a class is back soon after its server restarts.
  const socket = io(location.origin, { auth, autoConnect: false, reconnectionDelay: 500, reconnectionDelayMax: 1_500 });

  function join() {
    socket.emit("join-session", {
      sessionId: state.sessionId,
      userId: state.userId,
      userName: state.userName,
      isInstructor: state.isInstructor,
      capabilities: ["sfu", "participants-updated"],
    }, (ack) => {
      // Waiting to be admitted: session-joined comes once an instructor lets us in.
      if (ack?.ok && ack.waiting) {
        state.waiting = true;
        $("class").hidden = true;
        $("waiting-text").textContent = `Waiting for the instructor to let you in (you are number ${ack.position} in line)…`;
        $("waiting").hidden = false;
        $("status").textContent = "waiting to be admitted";
      }
    });
  }

  // The last signaling events with their times, for a support question ("when did it drop,
  // how often did it retry"): window.classroom.state.connectionLog.
  state.connectionLog = [];
  const logConnection = (what) => {
    state.connectionLog.push({ at: Date.now(), what });
    if (state.connectionLog.length > 20) state.connectionLog.shift();
  };
  socket.io.on("reconnect_attempt", (n) => logConnection(`attempt ${n}`));
  socket.io.on("reconnect_error", (e) => logConnection(`attempt failed: ${e?.message ?? e}`));
  socket.on("connect_error", (e) => logConnection(`connect error: ${e?.message ?? e}`));
  socket.on("connect", () => {
    logConnection("connected");
    $("status").textContent = "connected";
    $("status").dataset.state = "connected";
    $("banner").hidden = true;
    if (!state.left) join();
  });
  // A server that restarts says so and gives each client its own delay; the server then closes
  // the connection ("io server disconnect"), after which socket.io-client does not reconnect by
  // itself: the page does, after that delay.
  let restartDelayMs = null;
  socket.on("server-restarting", ({ retryAfterMs }) => {
    restartDelayMs = Math.min(Math.max(Number(retryAfterMs) || 0, 0), 30_000);
    $("status").textContent = "the server is restarting…";
  });
  socket.on("disconnect", (reason) => {
    logConnection(`disconnected: ${reason}`);
    $("status").textContent = "reconnecting…";
    $("status").dataset.state = "disconnected";
    if (reason !== "io client disconnect") {
      $("banner").textContent = "Connection to the class lost. Reconnecting…";
      $("banner").hidden = false;
    }
    if (reason === "io server disconnect" && restartDelayMs !== null) {
      const delay = restartDelayMs;
      restartDelayMs = null;
      setTimeout(() => socket.connect(), delay);
    }
  });
  socket.on("session-joined", async (joined) => {
    logConnection(`joined (${joined.topology ?? "mesh"})`);
    state.joined = true;
    state.waiting = false;
    $("waiting").hidden = true;
    $("class").hidden = false;
    state.settings = joined.settings ?? state.settings;
    state.waitingRoom = joined.waitingRoom?.waiting ?? [];
    state.hands = joined.handQueue?.hands ?? [];
    if (joined.poll && joined.poll.pollId !== state.poll?.pollId) {
      state.poll = joined.poll;
      state.pollClosed = false;
      state.myVote = [];
    }
    state.self = joined.self;
    state.userId = joined.self.userId;
    state.iceServers = joined.iceServers ?? [];
    $("title").textContent = `Live class ${joined.sessionId}`;
    document.title = `Live class ${joined.sessionId}`;
    renderUnread();
    $("chat").replaceChildren();
    state.chat = [...joined.chatHistory];
    state.chat.forEach(renderChat);
    const present = new Set(joined.participants.map((p) => p.userId));
    for (const userId of [...state.peers.keys()]) if (!present.has(userId)) closePeer(userId);
    state.participants = new Map(joined.participants.map((p) => [p.userId, p]));
    state.topology = joined.topology ?? "mesh";
    renderParticipants();
    await applyLocks();
    announce();
    if (state.topology === "sfu") {
      // A (re)join is a new connection to the SFU: the server forgot the old one.
      for (const userId of [...state.peers.keys()]) closePeer(userId);
      closeSfu();
      await attachSfuTracks(sfuConnection());
      logConnection("SFU connection started");
      return;
    }
    closeSfu();
    for (const p of joined.participants) {
      // A class that moved to a mesh: we offer to those the server names, the others to us.
      if (joined.offerTo && !joined.offerTo.includes(p.userId)) continue;
      const existing = state.peers.get(p.userId);
      if (existing && ["connected", "connecting", "new"].includes(existing.pc.connectionState)) continue;
      if (existing) closePeer(p.userId);
      await offerTo(p.userId);
    }
  });
  socket.on("user-joined", (p) => {
    const existing = state.peers.get(p.userId);
    if (existing && !["connected", "connecting", "new"].includes(existing.pc.connectionState)) closePeer(p.userId);
    state.participants.set(p.userId, p);
    renderParticipants();
  });
  socket.on("user-left", ({ userId }) => {
    state.participants.delete(userId);
    closePeer(userId);
    state.sfu?.requested.delete(userId);
    renderParticipants();
  });
  socket.on("participant-updated", (p) => {
    if (p.userId === state.userId) {
      // An instructor changed our role, or lowered our hand.
      state.self = p;
      if (state.local.hand && !p.handRaised) state.local.hand = false;
      renderControls();
      renderParticipants();
      return;
    }
    state.participants.set(p.userId, p);
    renderParticipants();
  });
  // Several at once, in a burst (docs/protocol.md). Our own entry is not for us: what others
  // change about us comes on its own as participant-updated, and the batch may be older than
  // what we did since.
  socket.on("participants-updated", ({ participants }) => {
    for (const p of participants) if (p.userId !== state.userId) state.participants.set(p.userId, p);
    renderParticipants();
  });
  socket.on("offer", ({ fromUserId, offer }) => onDescription(fromUserId, offer));
  socket.on("answer", ({ fromUserId, answer }) => onDescription(fromUserId, answer));
  socket.on("ice-candidate", ({ fromUserId, candidate }) => onCandidate(fromUserId, candidate));
  socket.on("sfu-offer", onSfuDescription);
  socket.on("sfu-answer", onSfuDescription);
  socket.on("chat-message", (message) => {
    state.chat.push(message);
    renderChat(message);
    countUnread(message);
  });
  socket.on("moderated", async ({ action, byUserName }) => {
    // Said first: the switch below waits for the connections.
    if (action === "mute") {
      showNotice(`${byUserName} muted you. You can unmute yourself.`);
      await setMicrophone(false);
    } else if (action === "stop-camera") {
      showNotice(`${byUserName} turned your camera off.`);
      await setCamera(false);
    } else if (action === "stop-screen") {
      showNotice(`${byUserName} stopped your screen share.`);
      await setScreenShare(false);
    } else if (action === "ask-unmute") {
      showNotice(`${byUserName} asks you to unmute.`, { unmute: !locked("microphone") });
    }
  });
  socket.on("class-settings", async (settings) => {
    state.settings = settings;
    if (await applyLocks()) announce();
    renderControls();
    renderParticipants();
  });
  socket.on("waiting-room", ({ waiting }) => {
    state.waitingRoom = waiting;
    renderInstructor();
  });
  socket.on("hand-queue", ({ hands }) => {
    state.hands = hands;
    renderInstructor();
  });
  socket.on("reaction", (r) => {
    state.reactions.push(r);
    const span = document.createElement("span");
    span.textContent = r.emoji;
    span.title = r.userName;
    span.dataset.user = r.userId;
    $("reaction-shown").append(span);
    setTimeout(() => span.remove(), 4_000);
  });
  socket.on("poll-opened", (poll) => {
    state.poll = poll;
    state.pollClosed = false;
    state.myVote = [];
    state.pollResults = null;
    renderPoll();
  });
  socket.on("poll-results", (results) => {
    state.pollResults = results;
    renderPoll();
  });
  socket.on("poll-closed", ({ pollId }) => {
    if (state.poll?.pollId === pollId) state.pollClosed = true;
    renderPoll();
  });
  socket.on("chat-deleted", ({ messageId }) => {
    state.chat = state.chat.filter((m) => m.id !== messageId);
    document.querySelector(`#chat li[data-id="${CSS.escape(messageId)}"]`)?.remove();
  });
  socket.on("removed", ({ byUserName, barredUntil }) => {
    const until = barredUntil ? ` You cannot join again before ${new Date(barredUntil).toLocaleString()}.` : "";
    endLocally(`${byUserName} removed you from the class.${until}`);
  });
  socket.on("class-ended", ({ byUserName }) => endLocally(`${byUserName} ended the class.`));
  socket.on("error", (error) => {
    if (error.code === "admission-denied") endLocally(error.message);
    else showError(`${error.code}: ${error.message}`);
  });
  socket.on("connect_error", (error) => {
    $("status").textContent = `cannot connect: ${error.message}`;
    $("status").dataset.state = "disconnected";
  });

  // ---- start ----------------------------------------------------------------------------

  $("mic").onclick = () => setMicrophone(!state.local.audio);
  $("camera").onclick = () => setCamera(!state.local.video);
  $("share").onclick = () => setScreenShare(!state.local.sharing);
  $("leave").onclick = () => leave();
  $("hand").onclick = () => raiseHand(!state.local.hand);
  for (const emoji of ["👍", "👏", "😂", "😮", "❤️", "🎉"]) {
    const b = document.createElement("button");
    b.textContent = emoji;
    b.title = `React ${emoji}`;
    b.onclick = () => react(emoji);
    $("reactions").append(b);
  }
  $("notice-close").onclick = () => { $("notice").hidden = true; };
  $("notice-unmute").onclick = () => { $("notice").hidden = true; setMicrophone(true); };
  $("mute-all").onclick = () => moderate("mute-all");
  $("lock-class").onclick = () => moderate("set-locked", { locked: !state.settings.locked });
  $("lower-hands").onclick = () => moderate("lower-all-hands");
  $("end-class").onclick = () => moderate("end-class");
  $("admit-all").onclick = () => moderate("admit-all");
  $("waiting-policy").onchange = (event) => moderate("set-waiting-room", { policy: event.target.value });
  for (const box of document.querySelectorAll("#locks input")) {
    box.onchange = () => {
      const locks = {};
      for (const b of document.querySelectorAll("#locks input")) locks[b.dataset.lock] = b.checked;
      // A refusal (students' cameras can be kept for instructors only on the SFU) puts the
      // boxes back as the class has them.
      moderate("set-locks", { locks }).then((ack) => { if (!ack.ok) renderInstructor(); }, () => renderInstructor());
    };
  }
  $("chat-to").onchange = () => renderChatTargets();
  $("poll-text-form").onsubmit = (event) => {
    event.preventDefault();
    vote([], $("poll-text").value);
  };
  $("poll-close").onclick = () => state.poll && moderate("close-poll", { pollId: state.poll.pollId });
  $("poll-publish").onclick = () => state.poll && moderate("publish-results", { pollId: state.poll.pollId });
  $("poll-form").onsubmit = (event) => {
    event.preventDefault();
    const kind = $("poll-new-kind").value;
    const options = $("poll-new-options").value.split("|").map((o) => o.trim()).filter(Boolean);
    moderate("open-poll", { poll: { question: $("poll-new-question").value, kind, options, anonymous: $("poll-new-anonymous").checked } });
  };
  // Keyboard shortcuts (as the buttons' titles say), not while typing.
  const SHORTCUTS = {
    m: () => $("mic").click(),
    v: () => $("camera").click(),
    s: () => $("share").click(),
    h: () => $("hand").click(),
    c: () => { $("chat-panel").open = !$("chat-panel").open; },
  };
  $("chat-panel").addEventListener("toggle", chatNowSeen);
  document.addEventListener("visibilitychange", chatNowSeen);
  document.addEventListener("keydown", (event) => {
    if (!event.altKey || event.ctrlKey || event.metaKey || $("class").hidden) return;
    const action = SHORTCUTS[event.key.toLowerCase()];
    if (action) {
      event.preventDefault();
      action();
    }
  });
  $("chat-form").onsubmit = (event) => {
    event.preventDefault();
    sendChat($("chat-input").value, $("chat-to").value || null);
    $("chat-input").value = "";
  };
  $("join").onsubmit = (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const next = new URLSearchParams({ session: form.get("session"), user: form.get("user"), name: form.get("name") });
    if (form.get("instructor")) next.set("instructor", "1");
    if (secrets.key) next.set("key", secrets.key);
    location.search = next.toString();
  };

  // For tests and debugging: the page's state and its controls.
  window.classroom = { state, setMicrophone, setCamera, setScreenShare, raiseHand, sendChat, leave, rejoin, moderate, react, vote };

  if (!state.sessionId || !state.userId) {
    $("join").hidden = false;
    $("status").textContent = "not joined";
    return;
  }
  // The camera and microphone open on the user's click, never from the address alone: a link
  // (or a page that opens one) cannot turn them on by itself.
  $("ready-text").textContent = `Class ${state.sessionId}, as ${state.userName}. Your camera and microphone start when you join.`;
  $("ready").hidden = false;
  $("enter").onclick = () => {
    $("ready").hidden = true;
    $("class").hidden = false;
    openMedia().then(() => socket.connect());
  };
})();
