//! TURN over TCP and TLS: a stream carries STUN messages and channel messages back to back
//! (RFC 8656 §12.5: a channel message padded to four bytes). This cuts them out.

use super::core::MAX_MESSAGE;

/// Why a stream is closed: nothing after this can be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The first bits are neither STUN's nor a channel's.
    NotTurn,
    /// A message declares more than `MAX_MESSAGE` bytes.
    TooLarge,
}

/// The length of the message at the start of `buf`, once its header is there: `Ok(None)`
/// while the header is incomplete.
pub(crate) fn frame_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let declared = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    let len = match buf[0] {
        0x00..=0x3f => 20 + declared,
        0x40..=0x7f => 4 + ((declared + 3) & !3),
        _ => return Err(FrameError::NotTurn),
    };
    if len > MAX_MESSAGE {
        return Err(FrameError::TooLarge);
    }
    Ok(Some(len))
}

/// Collects a stream's bytes and yields whole messages.
#[derive(Default)]
pub(crate) struct Framer {
    buf: Vec<u8>,
    /// Where the next message starts: taken messages are dropped from the front once per
    /// `push`, not one by one (tiny messages must not cost a copy of the rest each).
    start: usize,
}

impl Framer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.drain(..self.start);
        self.start = 0;
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, if one is in; call until `Ok(None)`.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let rest = &self.buf[self.start..];
        match frame_len(rest)? {
            Some(len) if rest.len() >= len => {
                let at = self.start;
                self.start += len;
                Ok(Some(&self.buf[at..at + len]))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_split_across_reads_come_out_whole() {
        let mut stun = vec![0x00, 0x01, 0x00, 0x04, 0x21, 0x12, 0xa4, 0x42];
        stun.extend_from_slice(&[9; 12]);
        stun.extend_from_slice(&[1, 2, 3, 4]);
        // A 5-byte channel message, padded to 8.
        let chan = [0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0];
        let mut all = stun.clone();
        all.extend_from_slice(&chan);
        let mut f = Framer::default();
        let mut got = Vec::new();
        for piece in all.chunks(3) {
            f.push(piece);
            while let Some(m) = f.next_frame().unwrap() {
                got.push(m.to_vec());
            }
        }
        assert_eq!(got, vec![stun, chan.to_vec()]);
    }

    #[test]
    fn a_flood_of_tiny_messages_is_framed_in_linear_time() {
        let mut f = Framer::default();
        let tiny = [0x40u8, 0x00, 0x00, 0x00];
        let read: Vec<u8> = tiny.iter().copied().cycle().take(4 * 200_000).collect();
        let t = std::time::Instant::now();
        f.push(&read);
        let mut n = 0;
        while f.next_frame().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 200_000);
        // Quadratic copying would take minutes here.
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn garbage_and_oversized_declarations_end_the_stream() {
        assert_eq!(frame_len(&[0x80, 0, 0, 4]), Err(FrameError::NotTurn));
        // HTTP's first bytes read as a channel message far too long: refused all the same.
        assert_eq!(frame_len(b"GET / HTTP/1.1"), Err(FrameError::TooLarge));
        assert_eq!(frame_len(&[0x40, 0, 0xff, 0xff]), Err(FrameError::TooLarge));
        assert_eq!(frame_len(&[0x00, 0x01]), Ok(None));
    }
}
