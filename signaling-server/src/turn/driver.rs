//! The relay's sockets, on a thread of their own (a single-threaded runtime): the UDP
//! listener, the TCP and TLS listeners and their connections, and one UDP socket per
//! allocation. Each task hands what it reads to the core and carries out what the core
//! says; nothing here decides anything.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Notify, mpsc};

use super::batch::Batch;
use super::core::{ClientId, Input, Output, RelayId, Rules, TurnCore};
use super::credentials::Credentials;
use super::framing::Framer;
use super::peer_filter::PeerFilter;
use super::{Refusal, Turn, TurnConfig, TurnCounters, TurnError};

/// Messages waiting to go out to one TCP or TLS client; past this they are dropped (and
/// counted), as a congested UDP path would drop them. With peer datagrams of at most
/// `MAX_MESSAGE` bytes, a client that stops reading holds at most about 1 MiB.
const STREAM_QUEUE: usize = 256;
/// Datagrams read from one socket before the others get their turn.
const READS_PER_TURN: usize = 64;
/// A TCP or TLS client that sends nothing for this long is closed (WebRTC's consent checks
/// run every few seconds through a working relay).
const STREAM_IDLE: Duration = Duration::from_secs(120);
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);
/// Socket buffers of the listener and of each relay: a burst of video fits.
const SOCKET_BUFFER_BYTES: libc::c_int = 4 << 20;

struct Relay {
    socket: Rc<UdpSocket>,
    task: tokio::task::JoinHandle<()>,
}

struct Io {
    core: RefCell<TurnCore>,
    udp: UdpSocket,
    relays: RefCell<HashMap<RelayId, Relay>>,
    streams: RefCell<HashMap<u64, mpsc::Sender<Vec<u8>>>>,
    next_stream: Cell<u64>,
    /// TLS handshakes under way.
    pending: Cell<usize>,
    counters: Arc<TurnCounters>,
    deadline: Cell<Option<Instant>>,
    timer: Notify,
    max_streams: usize,
    /// Streams (and TLS handshakes) open from each address, against `max_streams_per_address`.
    per_address: RefCell<HashMap<IpAddr, usize>>,
    max_streams_per_address: usize,
}

/// One address's place among the open streams, given back when dropped.
struct AddressSlot {
    io: Rc<Io>,
    ip: IpAddr,
}

impl AddressSlot {
    /// A place for a stream from `ip`, or `None` when that address has its fill.
    fn take(io: &Rc<Io>, ip: IpAddr) -> Option<AddressSlot> {
        let mut per_address = io.per_address.borrow_mut();
        let n = per_address.entry(ip).or_default();
        if *n >= io.max_streams_per_address {
            return None;
        }
        *n += 1;
        Some(AddressSlot { io: io.clone(), ip })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut per_address = self.io.per_address.borrow_mut();
        if let Some(n) = per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_address.remove(&self.ip);
            }
        }
    }
}

pub(super) fn start(
    config: &TurnConfig,
    secret: &str,
    own_services: Vec<SocketAddr>,
) -> Result<Turn, TurnError> {
    if secret.is_empty() {
        return Err(TurnError::NoSecret);
    }
    let udp_addr = SocketAddr::new(config.listen_ip, config.port);
    let bind = |addr| move |source| TurnError::Bind { addr, source };
    let udp = std::net::UdpSocket::bind(udp_addr).map_err(bind(udp_addr))?;
    let udp_addr = udp.local_addr().map_err(bind(udp_addr))?;
    udp.set_nonblocking(true).map_err(bind(udp_addr))?;
    grow_buffers(&udp);
    // TCP on the same port as UDP (as coturn), unless UDP took any port.
    let tcp_want = SocketAddr::new(config.listen_ip, udp_addr.port());
    let tcp = std::net::TcpListener::bind(tcp_want).map_err(bind(tcp_want))?;
    tcp.set_nonblocking(true).map_err(bind(tcp_want))?;
    let tcp_addr = tcp.local_addr().map_err(bind(tcp_want))?;
    let tls = match &config.tls {
        Some(t) => {
            let acceptor = tls_acceptor(&t.cert, &t.key)?;
            let addr = SocketAddr::new(t.ip.unwrap_or(config.listen_ip), t.port);
            let l = std::net::TcpListener::bind(addr).map_err(bind(addr))?;
            l.set_nonblocking(true).map_err(bind(addr))?;
            let addr = l.local_addr().map_err(bind(addr))?;
            Some((l, acceptor, addr))
        }
        None => None,
    };
    let tls_addr = tls.as_ref().map(|t| t.2);

    let counters = Arc::new(TurnCounters::default());
    let mut own: Vec<IpAddr> = vec![config.listen_ip, config.relay_ip];
    own.extend(config.public_ip);
    let filter = PeerFilter::new(config.allow_peers.clone(), own, own_services);
    let mut nonce_key = [0u8; 32];
    for chunk in nonce_key.chunks_mut(16) {
        chunk.copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    let credentials = Credentials::new(secret, &config.realm, nonce_key);
    let rules = Rules {
        relay_ip: config.relay_ip,
        relay_public_ip: config.public_ip,
        max_allocations: config.max_allocations,
        max_allocations_per_user: config.max_allocations_per_user,
        max_bytes_per_second: config.max_bps_per_allocation / 8,
    };
    let unix_now = crate::auth::unix_now().as_secs();
    let thread_counters = counters.clone();
    let max_streams = config.max_streams;
    let max_streams_per_address = config.max_streams_per_address;
    let thread = std::thread::Builder::new()
        .name("turn".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return tracing::error!(error = %e, "TURN: no runtime; the relay is off"),
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                let core = TurnCore::new(
                    rules,
                    credentials,
                    filter,
                    thread_counters.clone(),
                    Instant::now(),
                    unix_now,
                );
                let udp = match UdpSocket::from_std(udp) {
                    Ok(u) => u,
                    Err(e) => return tracing::error!(error = %e, "TURN: UDP listener"),
                };
                let io = Rc::new(Io {
                    core: RefCell::new(core),
                    udp,
                    relays: Default::default(),
                    streams: Default::default(),
                    next_stream: Cell::new(1),
                    pending: Cell::new(0),
                    counters: thread_counters,
                    deadline: Cell::new(None),
                    timer: Notify::new(),
                    max_streams,
                    per_address: Default::default(),
                    max_streams_per_address,
                });
                tokio::task::spawn_local(timer(io.clone()));
                if let Ok(l) = TcpListener::from_std(tcp) {
                    tokio::task::spawn_local(accept(io.clone(), l, None));
                }
                if let Some((l, acceptor, _)) = tls
                    && let Ok(l) = TcpListener::from_std(l)
                {
                    tokio::task::spawn_local(accept(io.clone(), l, Some(acceptor)));
                }
                listen_udp(io).await;
            });
        })
        .map_err(TurnError::Thread)?;
    tracing::info!(%udp_addr, %tcp_addr, tls = ?tls_addr, "TURN relay listening");
    Ok(Turn {
        counters,
        udp_addr,
        tcp_addr,
        tls_addr,
        _thread: thread,
    })
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, TurnError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| TurnError::Tls(format!("the certificate {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(TurnError::Tls(format!(
            "{} holds no certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TurnError::Tls(format!("the key {}: {e}", key.display())))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TurnError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| TurnError::Tls(format!("the certificate and key: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn grow_buffers(socket: &impl std::os::fd::AsRawFd) {
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: a valid socket and a c_int option value of the right size.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &SOCKET_BUFFER_BYTES as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// Hands `input` to the core and carries out everything it says.
fn feed(io: &Rc<Io>, input: Input<'_>) {
    io.core.borrow_mut().handle_input(Instant::now(), input);
    loop {
        let Some(out) = io.core.borrow_mut().poll_output() else {
            return;
        };
        execute(io, out);
    }
}

fn execute(io: &Rc<Io>, out: Output) {
    match out {
        Output::ToClient {
            client: ClientId::Udp(addr),
            data,
        } => {
            if io.udp.try_send_to(&data, addr).is_err() {
                io.counters.refused(Refusal::SendBuffer);
            }
        }
        Output::ToClient {
            client: ClientId::Stream(id),
            data,
        } => {
            let sent = io
                .streams
                .borrow()
                .get(&id)
                .map(|tx| tx.try_send(data).is_ok());
            if sent == Some(false) {
                io.counters.refused(Refusal::SendBuffer);
            }
        }
        Output::ToPeer { relay, peer, data } => {
            let sent = io
                .relays
                .borrow()
                .get(&relay)
                .map(|r| r.socket.try_send_to(&data, peer).is_ok());
            if sent != Some(true) {
                io.counters.refused(Refusal::SendBuffer);
            }
        }
        Output::BindRelay { relay, ip } => {
            let result = open_relay(io, relay, ip);
            io.core
                .borrow_mut()
                .handle_input(Instant::now(), Input::RelayBound { relay, result });
        }
        Output::CloseRelay(relay) => {
            if let Some(r) = io.relays.borrow_mut().remove(&relay) {
                r.task.abort();
            }
        }
        Output::Timeout(at) => {
            if io.deadline.get().is_none_or(|d| at < d) {
                io.deadline.set(Some(at));
                io.timer.notify_one();
            }
        }
    }
}

fn open_relay(io: &Rc<Io>, relay: RelayId, ip: IpAddr) -> Result<SocketAddr, String> {
    let std_socket =
        std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).map_err(|e| e.to_string())?;
    std_socket
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    grow_buffers(&std_socket);
    let addr = std_socket.local_addr().map_err(|e| e.to_string())?;
    let socket = Rc::new(UdpSocket::from_std(std_socket).map_err(|e| e.to_string())?);
    let task = tokio::task::spawn_local(read_relay(io.clone(), relay, socket.clone()));
    io.relays.borrow_mut().insert(relay, Relay { socket, task });
    Ok(addr)
}

thread_local! {
    /// The one receive buffer of the relay's thread: sockets are read when ready, without
    /// awaiting, so no buffer is held per allocation (64 KiB each otherwise).
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 65536]);
}

/// Reads every datagram waiting on `socket` and hands each to `deliver`; `Err` when the socket
/// failed for good.
fn drain(
    socket: &UdpSocket,
    mut deliver: impl FnMut(SocketAddr, &[u8]),
) -> Result<(), std::io::Error> {
    SCRATCH.with(|buf| {
        let mut buf = buf.borrow_mut();
        for _ in 0..READS_PER_TURN {
            match socket.try_recv_from(&mut buf[..]) {
                Ok((n, from)) => deliver(from, &buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                // An ICMP error for an earlier send: nothing to do but keep reading.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
}

async fn read_relay(io: Rc<Io>, relay: RelayId, socket: Rc<UdpSocket>) {
    loop {
        // One busy socket must not keep the others (and the timer) waiting.
        tokio::task::yield_now().await;
        let ready = socket.readable().await;
        let drained = ready.and_then(|()| {
            drain(&socket, |peer, data| {
                feed(&io, Input::FromPeer { relay, peer, data })
            })
        });
        if let Err(e) = drained {
            tracing::warn!(error = %e, "TURN: a relay socket failed");
            return;
        }
    }
}

async fn listen_udp(io: Rc<Io>) {
    use std::os::fd::AsRawFd;
    let fd = io.udp.as_raw_fd();
    let mut batch = Batch::new();
    loop {
        if let Err(e) = io.udp.readable().await {
            tracing::error!(error = %e, "TURN: the UDP listener failed");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        for turn in 0.. {
            if turn == READS_PER_TURN / 8 {
                // The other sockets and the timer get their turn.
                tokio::task::yield_now().await;
                break;
            }
            let read = io
                .udp
                .try_io(tokio::io::Interest::READABLE, || batch.receive(fd));
            let n = match read {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // An ICMP error for an earlier send: nothing to do but keep reading.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(e) => {
                    tracing::error!(error = %e, "TURN: the UDP listener failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
            };
            for i in 0..n {
                match batch.get(i) {
                    Some((from, Some(data))) => feed(
                        &io,
                        Input::FromClient {
                            client: ClientId::Udp(from),
                            source: from,
                            data,
                        },
                    ),
                    Some((_, None)) => io.counters.refused(Refusal::Oversized),
                    None => io.counters.refused(Refusal::Malformed),
                }
            }
        }
    }
}

async fn timer(io: Rc<Io>) {
    loop {
        match io.deadline.get() {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {
                        io.deadline.set(None);
                        feed(&io, Input::Timeout);
                    }
                    _ = io.timer.notified() => {}
                }
            }
            None => io.timer.notified().await,
        }
    }
}

async fn accept(io: Rc<Io>, listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors, say: wait a little rather than spin.
                tracing::warn!(error = %e, "TURN: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Handshakes under way count too: a client that never finishes one holds a socket.
        if io.streams.borrow().len() + io.pending.get() >= io.max_streams {
            io.counters.refused(Refusal::Connection);
            continue;
        }
        // Nor may one address take them all (a school's NAT holds many students: the limit
        // is generous).
        let Some(slot) = AddressSlot::take(&io, from.ip()) else {
            io.counters.refused(Refusal::Connection);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let id = io.next_stream.get();
        io.next_stream.set(id + 1);
        let io = io.clone();
        match &tls {
            None => {
                io.counters.connected(false);
                tokio::task::spawn_local(async move {
                    serve_stream(io, id, from, stream).await;
                    drop(slot);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                io.pending.set(io.pending.get() + 1);
                tokio::task::spawn_local(async move {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await;
                    io.pending.set(io.pending.get() - 1);
                    let _slot = slot;
                    match handshake {
                        Ok(Ok(s)) => {
                            io.counters.connected(true);
                            serve_stream(io, id, from, s).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %from, "TURN: TLS handshake failed");
                            io.counters.refused(Refusal::Connection);
                        }
                        Err(_) => io.counters.refused(Refusal::Connection),
                    }
                });
            }
        }
    }
}

async fn serve_stream<S>(io: Rc<Io>, id: u64, from: SocketAddr, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(STREAM_QUEUE);
    io.streams.borrow_mut().insert(id, tx);
    let writer = async move {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
    };
    let reader = async {
        let mut framer = Framer::default();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match tokio::time::timeout(STREAM_IDLE, rd.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(n)) => n,
            };
            framer.push(&buf[..n]);
            loop {
                match framer.next_frame() {
                    Ok(Some(frame)) => feed(
                        &io,
                        Input::FromClient {
                            client: ClientId::Stream(id),
                            source: from,
                            data: frame,
                        },
                    ),
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(?e, %from, "TURN: a stream sent what is not TURN; closed");
                        io.counters.refused(Refusal::Malformed);
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = reader => {}
        _ = writer => {}
    }
    io.streams.borrow_mut().remove(&id);
    feed(&io, Input::StreamClosed(id));
}
