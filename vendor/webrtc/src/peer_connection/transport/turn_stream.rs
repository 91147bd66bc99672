//! Classroom patch: TURN over TCP and TLS (RFC 8656 §3.1).
//!
//! On a stream to a TURN server, messages follow each other with no framing of their own:
//! a STUN message is its 20-byte header plus the length in it, and a ChannelData message its
//! 4-byte header plus the length in it rounded up to a multiple of 4 (RFC 8656 §12.5). This
//! module splits such a stream back into messages and opens the stream itself (TCP, or TLS
//! through the runtime), with a time limit.

use crate::runtime::{AsyncTcpStream, Runtime};
use bytes::BytesMut;
use futures::FutureExt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long opening a stream to a TURN server may take, TLS handshake included: a firewall
/// that drops the SYN would otherwise hold the relay candidate back for minutes.
pub(crate) const TURN_STREAM_OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// A stream to a TURN server the relayer wants opened.
#[derive(Debug, Clone)]
pub(crate) struct TurnStreamRequest {
    /// The relayer's name for the request, given back with the stream: unique in the process,
    /// so that a stream opened for an earlier relayer (before a rebind) is never taken for one
    /// of a later relayer's.
    pub(crate) id: u64,
    /// `host:port` of the server, resolved when the stream opens (within its time limit, off
    /// the driver).
    pub(crate) server: String,
    /// Prefer an IPv4 address (the connection's sockets are IPv4).
    pub(crate) prefer_v4: bool,
    /// `Some(host)` for TLS, verified as `host`.
    pub(crate) tls_name: Option<String>,
}

/// A process-wide name for the next stream request.
pub(crate) fn next_request_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Opens the stream `request` asks for, name lookup included, within
/// [`TURN_STREAM_OPEN_TIMEOUT`]: each address the name has, the preferred family first.
pub(crate) async fn open(
    runtime: Arc<dyn Runtime>,
    request: &TurnStreamRequest,
) -> io::Result<Arc<dyn AsyncTcpStream>> {
    let connect = async {
        let mut addrs: Vec<SocketAddr> = runtime.resolve_host(&request.server).await?;
        addrs.sort_by_key(|addr| addr.is_ipv4() != request.prefer_v4);
        let mut last = io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} has no address", request.server),
        );
        for addr in addrs {
            let opened = match &request.tls_name {
                Some(name) => runtime.connect_tls(addr, name).await,
                None => runtime.connect_tcp(addr).await,
            };
            match opened {
                Ok(stream) => return Ok(stream),
                Err(err) => last = err,
            }
        }
        Err(last)
    };
    futures::select! {
        stream = connect.fuse() => stream,
        () = runtime.sleep(TURN_STREAM_OPEN_TIMEOUT).fuse() => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no connection within {} s", TURN_STREAM_OPEN_TIMEOUT.as_secs()),
        )),
    }
}

/// The stream carried something that is neither STUN nor ChannelData: its framing is lost,
/// and so is the stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct NotTurnFraming(pub(crate) u8);

/// Splits the bytes of a stream from a TURN server into STUN and ChannelData messages.
#[derive(Debug, Default)]
pub(crate) struct TurnFrameDecoder {
    buf: BytesMut,
}

impl TurnFrameDecoder {
    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, `None` until one has arrived.
    pub(crate) fn next_packet(&mut self) -> Result<Option<BytesMut>, NotTurnFraming> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let length = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
        let lost = NotTurnFraming(self.buf[0]);
        let total = match self.buf[0] >> 6 {
            // STUN: the length excludes the 20-byte header and is a multiple of 4; the magic
            // cookie follows it.
            0b00 => {
                if length % 4 != 0 {
                    return Err(lost);
                }
                if self.buf.len() >= 8 && self.buf[4..8] != [0x21, 0x12, 0xa4, 0x42] {
                    return Err(lost);
                }
                20 + length
            }
            // ChannelData on channels 0x4000-0x4FFF, padded to a multiple of 4 on streams.
            0b01 if self.buf[0] <= 0x4f => 4 + length.next_multiple_of(4),
            _ => return Err(lost),
        };
        if self.buf.len() < total {
            return Ok(None);
        }
        let mut message = self.buf.split_to(total);
        if message[0] >> 6 == 0b01 {
            // The padding is not part of the message.
            message.truncate(4 + length);
        }
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun(length: u16, fill: u8) -> Vec<u8> {
        let mut m = vec![0x01, 0x01];
        m.extend_from_slice(&length.to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        m.extend_from_slice(&[fill; 12]);
        m.extend(std::iter::repeat_n(fill, usize::from(length)));
        m
    }

    #[test]
    fn splits_stun_and_padded_channel_data_however_the_bytes_arrive() {
        let mut stream = stun(8, 7);
        stream.extend_from_slice(&[0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0]);
        stream.extend_from_slice(&stun(0, 9));
        for chunk in [1, 3, 7, stream.len()] {
            let mut decoder = TurnFrameDecoder::default();
            let mut out = Vec::new();
            for piece in stream.chunks(chunk) {
                decoder.extend_from_slice(piece);
                while let Some(message) = decoder.next_packet().unwrap() {
                    out.push(message.to_vec());
                }
            }
            assert_eq!(out.len(), 3, "chunks of {chunk}");
            assert_eq!(out[0], stun(8, 7));
            assert_eq!(out[1], vec![0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5]);
            assert_eq!(out[2], stun(0, 9));
        }
    }

    #[test]
    fn anything_else_loses_the_stream() {
        for bytes in [
            &[0x80, 0, 0, 0, 0][..],
            // A reserved channel number.
            &[0x50, 0, 0, 4, 1, 2, 3, 4][..],
            // STUN with a length that is no multiple of 4, and without the magic cookie.
            &[0x01, 0x01, 0, 5, 0x21, 0x12, 0xa4, 0x42][..],
            &[0x01, 0x01, 0, 8, 0xde, 0xad, 0xbe, 0xef][..],
        ] {
            let mut decoder = TurnFrameDecoder::default();
            decoder.extend_from_slice(bytes);
            assert_eq!(decoder.next_packet(), Err(NotTurnFraming(bytes[0])), "{bytes:?}");
        }
    }
}
