// The browser version's live class client, as its design document (the seed) shows it:
// getUserMedia, one RTCPeerConnection per participant with every local track added, the
// newcomer offering to everyone in the join answer, offer / answer / ice-candidate through the
// relay, chat, media state and the participant list. It uses none of our protocol's additions.
//
// Query: ?session=S&user=U&name=N[&instructor=1]. The seed's public STUN servers are left out:
// tests run where nothing outside the machine can be reached.
//
// window.classroom exposes the state and the controls to tests, with the same shape as the
// page our server serves: state.participants (Map), state.peers (Map of {pc}), state.chat,
// sendChat, setMicrophone, setCamera, leave, rejoin.

const params = new URLSearchParams(location.search);
const sessionId = params.get("session") ?? "demo";
const userId = params.get("user") ?? `web-${Math.random().toString(36).slice(2, 8)}`;
const userName = params.get("name") ?? userId;
const isInstructor = params.get("instructor") === "1";
const iceServers = [];

const state = { joined: false, participants: new Map(), peers: new Map(), chat: [], errors: [] };
// Media first, as the seed does: the socket's handlers are then in place before it connects.
const localStream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
const socket = io({ transports: ["polling", "websocket"] });

// Socket events are handled one at a time, in order, as a relay delivers them.
let queue = Promise.resolve();
const inOrder = (handler) => (data) => {
  queue = queue.then(() => handler(data)).catch((error) => {
    state.errors.push(String(error));
    console.error(error);
  });
};

const sdpSession = (sdp) => /^o=\S+ (\S+)/m.exec(sdp ?? "")?.[1] ?? null;

function figureFor(user, source) {
  let figure = document.querySelector(`figure[data-user="${CSS.escape(user)}"][data-source="${source}"]`);
  if (!figure) {
    figure = document.createElement("figure");
    figure.dataset.user = user;
    figure.dataset.source = source;
    const video = document.createElement("video");
    video.autoplay = true;
    video.muted = true;
    video.playsInline = true;
    figure.append(video, Object.assign(document.createElement("figcaption"), { textContent: `${user} ${source}` }));
    document.getElementById("videos").append(figure);
  }
  return figure.querySelector("video");
}

function removeFigures(user) {
  for (const f of document.querySelectorAll(`figure[data-user="${CSS.escape(user)}"]`)) f.remove();
}

function createPeerConnection(remoteId) {
  const pc = new RTCPeerConnection({ iceServers });
  localStream.getTracks().forEach((track) => pc.addTrack(track, localStream));
  const entry = { pc, audio: new Audio(), remoteSession: null };
  entry.audio.autoplay = true;
  pc.ontrack = (event) => {
    if (event.track.kind === "audio") {
      entry.audio.srcObject = new MediaStream([event.track]);
      return;
    }
    // The first video track is the camera; a second one (a desktop's screen) is the screen.
    const source = document.querySelector(`figure[data-user="${CSS.escape(remoteId)}"][data-source="camera"]`) ? "screen" : "camera";
    figureFor(remoteId, source).srcObject = new MediaStream([event.track]);
  };
  pc.onicecandidate = (event) => socket.emit("ice-candidate", { targetUserId: remoteId, candidate: event.candidate });
  state.peers.set(remoteId, entry);
  return entry;
}

function closePeer(remoteId) {
  state.peers.get(remoteId)?.pc.close();
  state.peers.delete(remoteId);
  removeFigures(remoteId);
}

function render() {
  document.getElementById("participants").replaceChildren(
    ...[...state.participants.values()].map((p) =>
      Object.assign(document.createElement("li"), {
        textContent: `${p.userName}${p.isInstructor ? " (instructor)" : ""} mic ${p.audioEnabled ? "on" : "off"} camera ${p.videoEnabled ? "on" : "off"}`,
      }),
    ),
  );
  document.getElementById("chat").replaceChildren(
    ...state.chat.map((m) => Object.assign(document.createElement("li"), { textContent: `${m.userName}: ${m.message}` })),
  );
}

function join() {
  socket.emit("join-session", { sessionId, userId, userName, isInstructor });
}

socket.on("connect", join);

socket.on("session-joined", inOrder(async ({ participants }) => {
  state.joined = true;
  for (const p of participants) {
    state.participants.set(p.userId, p);
    closePeer(p.userId);
    const { pc } = createPeerConnection(p.userId);
    await pc.setLocalDescription(await pc.createOffer());
    socket.emit("offer", { targetUserId: p.userId, offer: pc.localDescription });
  }
  render();
}));

socket.on("user-joined", inOrder((p) => {
  state.participants.set(p.userId, p);
  render();
}));

socket.on("participant-updated", inOrder((p) => {
  state.participants.set(p.userId, p);
  render();
}));

socket.on("user-left", inOrder(({ userId: gone }) => {
  state.participants.delete(gone);
  closePeer(gone);
  render();
}));

socket.on("offer", inOrder(async ({ fromUserId, offer }) => {
  let entry = state.peers.get(fromUserId);
  // An offer from a connection the peer rebuilt: a new connection here too.
  if (entry && entry.remoteSession !== sdpSession(offer.sdp)) {
    closePeer(fromUserId);
    entry = undefined;
  }
  entry ??= createPeerConnection(fromUserId);
  entry.remoteSession = sdpSession(offer.sdp);
  await entry.pc.setRemoteDescription(offer);
  await entry.pc.setLocalDescription(await entry.pc.createAnswer());
  socket.emit("answer", { targetUserId: fromUserId, answer: entry.pc.localDescription });
}));

socket.on("answer", inOrder(async ({ fromUserId, answer }) => {
  const entry = state.peers.get(fromUserId);
  if (!entry || entry.pc.signalingState !== "have-local-offer") return;
  entry.remoteSession = sdpSession(answer.sdp);
  await entry.pc.setRemoteDescription(answer);
}));

socket.on("ice-candidate", inOrder(async ({ fromUserId, candidate }) => {
  const entry = state.peers.get(fromUserId);
  if (entry && candidate) await entry.pc.addIceCandidate(candidate);
}));

socket.on("chat-message", inOrder((message) => {
  state.chat.push(message);
  render();
}));

function setTracks(kind, on) {
  localStream.getTracks().filter((t) => t.kind === kind).forEach((t) => (t.enabled = on));
}

window.classroom = {
  state,
  userId,
  sendChat: (message) => socket.emit("chat-message", { message }),
  setMicrophone(on) {
    setTracks("audio", on);
    socket.emit("media-state", { audioEnabled: on });
  },
  setCamera(on) {
    setTracks("video", on);
    socket.emit("media-state", { videoEnabled: on });
  },
  leave() {
    socket.emit("leave-session");
    for (const id of [...state.peers.keys()]) closePeer(id);
    state.participants.clear();
    state.joined = false;
    render();
  },
  rejoin: join,
};
