//! The load tester's peers: str0m connections in RTP mode, each on a UDP socket of its own
//! (SFUs route by source address), driven on the load tester's one thread. The publisher
//! replays the clip on three simulcast layers and answers keyframe requests; a subscriber
//! receives, depacketizes nothing it need not (it reads the stamp at the payload's end),
//! counts packets, keyframes and gaps, and asks for a keyframe after a gap. str0m answers with
//! RTCP itself (receiver reports, NACKs, TWCC feedback).
//!
//! Signaling is not the peers' business: a peer takes the remote's descriptions from a channel
//! and gives its own to another; `ours.rs` carries them over Socket.IO, `janus.rs` over Janus's
//! HTTP API.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::clip::{self, LAYERS};

/// A description from the SFU.
pub enum Remote {
    Offer(String),
    Answer(String),
}

/// A description for the SFU. `camera` is the publisher's simulcast m-line.
pub enum Local {
    Offer { sdp: String, camera: Option<Mid> },
    Answer(String),
}

/// What one subscriber saw.
#[derive(Default, Clone)]
pub struct Received {
    /// When it started connecting, and when its first media packet arrived (ns).
    pub started: u64,
    pub first_packet: Option<u64>,
    /// Packets whose stamp lies in the measuring window, by layer.
    pub in_window: [u64; 3],
    pub keyframes: u64,
    pub gaps: u64,
    pub failed: Option<String>,
}

/// What the load tester's peers share: the counters and the measuring window.
#[derive(Default)]
pub struct Shared {
    /// Stamps in [start, end) count (ns).
    pub window: Cell<Option<(u64, u64)>>,
    /// Packets the publisher sent in the window, by layer.
    pub sent: RefCell<[u64; 3]>,
    pub subscribers: RefCell<Vec<Received>>,
    /// Stamp → arrival, µs, of the window's packets on the subscribed layer.
    pub latencies_us: RefCell<Vec<u32>>,
    /// The publisher is connected and sending.
    pub publishing: Cell<bool>,
    pub stop: Cell<bool>,
}

impl Shared {
    fn in_window(&self, stamp: u64) -> bool {
        self.window
            .get()
            .is_some_and(|(start, end)| stamp >= start && stamp < end)
    }
}

pub enum Role {
    Publisher,
    /// The index in `Shared::subscribers`; whether it offers first (our SFU: a data channel
    /// only, so its offer publishes nothing) or waits for the SFU's offer (Janus).
    Subscriber {
        index: usize,
        offers: bool,
    },
}

/// One str0m connection in RTP mode, with its host candidate on a socket of its own.
pub async fn connection() -> std::io::Result<(Rtc, UdpSocket)> {
    let socket = UdpSocket::bind((crate::lab::ADDRESS, 0)).await?;
    stamp_arrivals(&socket)?;
    let local = socket.local_addr()?;
    let mut rtc = Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_vp8(true)
        .build(Instant::now());
    let candidate = Candidate::host(local, "udp")
        .map_err(|e| std::io::Error::other(format!("host candidate: {e}")))?;
    rtc.add_local_candidate(candidate);
    Ok((rtc, socket))
}

/// Runs a peer until the benchmark stops or its connection ends.
pub async fn run(
    mut rtc: Rtc,
    socket: UdpSocket,
    role: Role,
    mut remote: mpsc::UnboundedReceiver<Remote>,
    local: mpsc::UnboundedSender<Local>,
    shared: Rc<Shared>,
) {
    let local_addr = socket.local_addr().expect("bound");
    let mut pending: Option<SdpPendingOffer> = None;
    let mut camera: Option<Mid> = None;
    match role {
        Role::Publisher => {
            let mut simulcast = Simulcast::new();
            for l in LAYERS {
                simulcast.add_send_layer(SimulcastLayer::new(l.rid));
            }
            let mut change = rtc.sdp_api();
            let mid = change.add_media(
                MediaKind::Video,
                Direction::SendOnly,
                Some("bench".into()),
                Some("camera".into()),
                Some(simulcast),
            );
            let (offer, p) = change.apply().expect("an offer");
            pending = Some(p);
            camera = Some(mid);
            let _ = local.send(Local::Offer {
                sdp: offer.to_sdp_string(),
                camera,
            });
        }
        Role::Subscriber { offers: true, .. } => {
            let mut change = rtc.sdp_api();
            change.add_channel("bench".into());
            let (offer, p) = change.apply().expect("an offer");
            pending = Some(p);
            let _ = local.send(Local::Offer {
                sdp: offer.to_sdp_string(),
                camera: None,
            });
        }
        Role::Subscriber { offers: false, .. } => {}
    }
    let subscriber = match role {
        Role::Subscriber { index, .. } => Some(index),
        Role::Publisher => None,
    };
    let fail = |why: String| {
        if let Some(i) = subscriber {
            let mut subs = shared.subscribers.borrow_mut();
            if subs[i].failed.is_none() {
                subs[i].failed = Some(why);
            }
        } else {
            eprintln!("publisher: {why}");
        }
    };

    let mut buf = vec![0u8; 2048];
    let mut connected = false;
    // Publisher state: the next frame, its number, each layer's sequence number and whether
    // its next frame must be a keyframe.
    let mut next_frame = tokio::time::Instant::now();
    let mut frame_no: u64 = 0;
    let mut seq = [0u64; 3];
    let mut force_key = [false; 3];
    // Subscriber state.
    let mut last_seq: Option<u64> = None;
    let mut last_pli = Instant::now() - Duration::from_secs(10);
    // When the kernel received the datagram being handled (wall clock, ns).
    let mut arrival = 0u64;
    // One timer, moved when str0m's deadline moves.
    let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(sleep);

    loop {
        let timeout = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    if let Err(e) = socket.try_send_to(&t.contents, t.destination)
                        && e.kind() != std::io::ErrorKind::WouldBlock
                    {
                        fail(format!("send: {e}"));
                    }
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => connected = true,
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        fail("ICE disconnected".into());
                    }
                    Event::KeyframeRequest(r) => {
                        if let Some(i) = r
                            .rid
                            .and_then(|rid| LAYERS.iter().position(|l| *rid == *l.rid))
                        {
                            force_key[i] = true;
                        }
                    }
                    Event::RtpPacket(p) => {
                        let Some(index) = subscriber else { continue };
                        let now = if arrival > 0 { arrival } else { clip::now_ns() };
                        let mut subs = shared.subscribers.borrow_mut();
                        let s = &mut subs[index];
                        s.first_packet.get_or_insert(now);
                        let n: u64 = *p.seq_no;
                        if let Some(last) = last_seq
                            && n > last + 1
                        {
                            s.gaps += n - last - 1;
                            if last_pli.elapsed() > Duration::from_secs(1) {
                                last_pli = Instant::now();
                                if let Some(rx) = rtc.direct_api().stream_rx(&p.header.ssrc) {
                                    rx.request_keyframe(KeyframeRequestKind::Pli);
                                }
                            }
                        }
                        if last_seq.is_none_or(|l| n > l) {
                            last_seq = Some(n);
                        }
                        if clip::starts_keyframe(&p.payload) {
                            s.keyframes += 1;
                        }
                        if let Some((layer, stamp)) = clip::read_stamp(&p.payload)
                            && shared.in_window(stamp)
                        {
                            s.in_window[layer] += 1;
                            if layer == clip::SUBSCRIBED_LAYER {
                                let us = now.saturating_sub(stamp) / 1000;
                                shared
                                    .latencies_us
                                    .borrow_mut()
                                    .push(us.min(u32::MAX as u64) as u32);
                            }
                        }
                    }
                    _ => {}
                },
                Err(e) => {
                    fail(format!("str0m: {e}"));
                    return;
                }
            }
        };
        if shared.stop.get() {
            return;
        }
        if !rtc.is_alive() {
            fail("the connection closed".into());
            return;
        }
        let publishing = subscriber.is_none() && connected && pending.is_none();
        if publishing && !shared.publishing.get() {
            shared.publishing.set(true);
            next_frame = tokio::time::Instant::now();
        }
        // A deadline already reached is handled now: a timer rounds up to the next
        // millisecond, and str0m releases queued packets one deadline at a time.
        let now = Instant::now();
        if timeout <= now {
            let _ = rtc.handle_input(Input::Timeout(now));
            continue;
        }
        let wake = tokio::time::Instant::from_std(timeout);
        if sleep.deadline() != wake {
            sleep.as_mut().reset(wake);
        }
        tokio::select! {
            biased;
            r = socket.readable() => match r {
                Ok(()) => {
                    // One datagram, then back to draining str0m's output (its events name
                    // the arrival they came from).
                    match socket.try_io(Interest::READABLE, || recv_stamped(&socket, &mut buf)) {
                        Ok((n, from, at)) => {
                            arrival = at;
                            if let Ok(receive) = Receive::new(Protocol::Udp, from, local_addr, &buf[..n]) {
                                let _ = rtc.handle_input(Input::Receive(Instant::now(), receive));
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => fail(format!("receive: {e}")),
                    }
                }
                Err(e) => fail(format!("receive: {e}")),
            },
            m = remote.recv() => match m {
                Some(Remote::Offer(sdp)) => {
                    let answer = SdpOffer::from_sdp_string(&sdp)
                        .map_err(|e| e.to_string())
                        .and_then(|o| rtc.sdp_api().accept_offer(o).map_err(|e| e.to_string()));
                    match answer {
                        Ok(a) => { let _ = local.send(Local::Answer(a.to_sdp_string())); }
                        Err(e) => fail(format!("the SFU's offer: {e}")),
                    }
                }
                Some(Remote::Answer(sdp)) => {
                    let Some(p) = pending.take() else { continue };
                    let accepted = SdpAnswer::from_sdp_string(&sdp)
                        .map_err(|e| e.to_string())
                        .and_then(|a| rtc.sdp_api().accept_answer(p, a).map_err(|e| e.to_string()));
                    if let Err(e) = accepted {
                        fail(format!("the SFU's answer: {e}"));
                    }
                }
                None => {
                    // Signaling ended: keep the media running until the benchmark stops.
                    remote = mpsc::unbounded_channel().1;
                }
            },
            () = &mut sleep => {
                let _ = rtc.handle_input(Input::Timeout(Instant::now()));
            }
            _ = tokio::time::sleep_until(next_frame), if publishing => {
                send_frame(&mut rtc, camera, frame_no, &mut seq, &mut force_key, &shared);
                frame_no += 1;
                next_frame += Duration::from_micros(1_000_000 / clip::FPS as u64);
            }
        }
    }
}

fn send_frame(
    rtc: &mut Rtc,
    camera: Option<Mid>,
    frame_no: u64,
    seq: &mut [u64; 3],
    force_key: &mut [bool; 3],
    shared: &Shared,
) {
    let Some(mid) = camera else { return };
    let Some(pt) = rtc
        .codec_config()
        .iter()
        .find(|p| p.spec().codec == Codec::Vp8)
        .map(|p| p.pt())
    else {
        return;
    };
    let stamp = clip::now_ns();
    let counted = shared.in_window(stamp);
    let time = (frame_no as u32).wrapping_mul(clip::TICKS_PER_FRAME);
    for (layer, spec) in LAYERS.iter().enumerate() {
        let key = frame_no % clip::KEYFRAME_EVERY == 0 || std::mem::take(&mut force_key[layer]);
        let packets = clip::frame(layer, frame_no as u16, key, stamp);
        let last = packets.len() - 1;
        let mut direct = rtc.direct_api();
        let Some(tx) = direct.stream_tx_by_mid(mid, Some(spec.rid.into())) else {
            continue;
        };
        for (i, payload) in packets.into_iter().enumerate() {
            let n: SeqNo = seq[layer].into();
            seq[layer] += 1;
            tx.write_rtp(
                RtpWrite::new(
                    pt,
                    n,
                    time,
                    Instant::now(),
                    std::sync::Arc::<[u8]>::from(payload),
                )
                .marker(i == last)
                .nackable(true),
            );
        }
        if counted {
            shared.sent.borrow_mut()[layer] += (last + 1) as u64;
        }
    }
}

/// Asks the kernel to stamp each arriving datagram (`SO_TIMESTAMPNS`) and gives the socket
/// room for bursts.
fn stamp_arrivals(socket: &UdpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    for (option, value) in [(libc::SO_TIMESTAMPNS, 1), (libc::SO_RCVBUF, 1 << 20)] {
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// One datagram, its sender and the kernel's arrival stamp (wall clock, ns; 0 if none).
fn recv_stamped(socket: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr, u64)> {
    use std::os::fd::AsRawFd;
    let mut from: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_in).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut stamp = 0u64;
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                stamp = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let ip = std::net::Ipv4Addr::from(u32::from_be(from.sin_addr.s_addr));
    let addr = SocketAddr::from((ip, u16::from_be(from.sin_port)));
    Ok((n as usize, addr, stamp))
}
