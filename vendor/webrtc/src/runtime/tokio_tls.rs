//! Classroom patch: a TLS client stream on tokio, for TURN over TLS (`turns:` URLs).
//!
//! The server's certificate is verified for the URL's host (a DNS name or an IP address)
//! against the system's trusted certificates, read once per process by rustls-native-certs
//! (which honours `SSL_CERT_FILE` and `SSL_CERT_DIR`, so a school's own CA can be added).

use super::AsyncTcpStream;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio_rustls::client::TlsStream as RustlsStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName};

type Stream = RustlsStream<tokio::net::TcpStream>;

/// A TLS stream whose halves are read and written at the same time, as the driver does: a
/// read is always pending while writes go out.
struct TlsStream {
    read: tokio::sync::Mutex<ReadHalf<Stream>>,
    write: tokio::sync::Mutex<WriteHalf<Stream>>,
    local_addr: SocketAddr,
    peer_addr: SocketAddr,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("local_addr", &self.local_addr)
            .field("peer_addr", &self.peer_addr)
            .finish()
    }
}

impl AsyncTcpStream for TlsStream {
    fn read<'a, 'b>(
        &'a self,
        buf: &'b mut [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<usize>> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(async move { self.read.lock().await.read(buf).await })
    }

    fn write_all<'a, 'b>(
        &'a self,
        buf: &'b [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(async move {
            let mut write = self.write.lock().await;
            write.write_all(buf).await?;
            write.flush().await
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer_addr)
    }
}

/// The client configuration, built once it works: reading the system's certificates takes a
/// while, so it is read off the runtime's threads, and again after a failure (certificates
/// installed since).
async fn client_config() -> io::Result<Arc<ClientConfig>> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let built = tokio::task::spawn_blocking(build_client_config)
        .await
        .map_err(io::Error::other)??;
    Ok(CONFIG.get_or_init(|| built).clone())
}

fn build_client_config() -> io::Result<Arc<ClientConfig>> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(io::Error::other(format!(
            "no trusted certificates on this system to verify a TURN server with{why}"
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|builder| {
            Arc::new(
                builder
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        })
        .map_err(|e| io::Error::other(format!("TLS client configuration: {e}")))
}

/// Connects to `remote_addr` and completes a TLS handshake with it as `server_name`.
pub(super) async fn connect(
    remote_addr: SocketAddr,
    server_name: &str,
) -> io::Result<Arc<dyn AsyncTcpStream>> {
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{server_name:?} is not a TLS server name: {e}"),
        )
    })?;
    let config = client_config().await?;
    let tcp = tokio::net::TcpStream::connect(remote_addr).await?;
    tcp.set_nodelay(true)?;
    let local_addr = tcp.local_addr()?;
    let peer_addr = tcp.peer_addr()?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    let (read, write) = tokio::io::split(tls);
    Ok(Arc::new(TlsStream {
        read: tokio::sync::Mutex::new(read),
        write: tokio::sync::Mutex::new(write),
        local_addr,
        peer_addr,
    }))
}
