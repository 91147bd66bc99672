//! The publisher's clip: VP8 simulcast frames, three layers from one "capture" (720p, 360p and
//! 180p at about 1.5 Mbit/s, 500 kbit/s and 150 kbit/s, 30 frames per second), packetized as
//! RTP payloads. Each payload is a real VP8 payload descriptor (RFC 7741, 15-bit picture id),
//! the first packet of a frame a real VP8 frame tag (a keyframe's with its start code and size),
//! so an SFU finds keyframes and rewrites picture ids as it would for an encoder's output; the
//! picture data is filler. Every packet ends in a stamp (which layer, when it was sent), so a
//! subscriber reads the layer it receives and each packet's latency without decoding.

pub const FPS: u32 = 30;
/// RTP clock ticks per frame (90 kHz).
pub const TICKS_PER_FRAME: u32 = 90_000 / FPS;
/// A keyframe on every layer this often (and when asked for).
pub const KEYFRAME_EVERY: u64 = 3 * FPS as u64;
/// Payload bytes per packet, descriptor and stamp included.
const PACKET_BYTES: usize = 1_100;

#[derive(Debug, Clone, Copy)]
pub struct LayerSpec {
    pub rid: &'static str,
    pub width: u16,
    pub height: u16,
    pub kbps: u32,
}

/// Lowest first, in the order of the offer's `a=simulcast:send q;h;f`.
pub const LAYERS: [LayerSpec; 3] = [
    LayerSpec {
        rid: "q",
        width: 320,
        height: 180,
        kbps: 150,
    },
    LayerSpec {
        rid: "h",
        width: 640,
        height: 360,
        kbps: 500,
    },
    LayerSpec {
        rid: "f",
        width: 1280,
        height: 720,
        kbps: 1_500,
    },
];

/// The layer subscribers of the benchmark ask for (360p).
pub const SUBSCRIBED_LAYER: usize = 1;

const STAMP_MAGIC: [u8; 4] = *b"CLSB";
const STAMP_BYTES: usize = 4 + 1 + 8;

/// The wall clock in nanoseconds: the clock the kernel stamps arriving datagrams with
/// (`SO_TIMESTAMPNS`), so a packet's latency is read at its arrival, not when the load
/// tester's one thread gets to it.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The RTP payloads of one frame of `layer`.
pub fn frame(layer: usize, picture_id: u16, keyframe: bool, stamp_ns: u64) -> Vec<Vec<u8>> {
    let spec = LAYERS[layer];
    let mut bytes = (spec.kbps as usize * 1000 / 8 / FPS as usize).max(64);
    if keyframe {
        bytes *= 3;
    }
    let per_packet = PACKET_BYTES - 4 - STAMP_BYTES;
    let count = bytes.div_ceil(per_packet);
    let pid = picture_id & 0x7fff;
    (0..count)
        .map(|i| {
            let mut p = Vec::with_capacity(PACKET_BYTES);
            // X, S (start of partition 0 on the first packet), PID 0; I; M + 15-bit picture id.
            p.push(if i == 0 { 0x90 } else { 0x80 });
            p.push(0x80);
            p.push(0x80 | (pid >> 8) as u8);
            p.push(pid as u8);
            let filler = if i + 1 == count {
                bytes - per_packet * (count - 1)
            } else {
                per_packet
            };
            let start = p.len();
            if i == 0 {
                // Frame tag: key (bit 0 clear) or inter, version 0, shown; partition size.
                p.push(if keyframe { 0x10 } else { 0x11 });
                p.push(0x02);
                p.push(0x00);
                if keyframe {
                    p.extend_from_slice(&[0x9d, 0x01, 0x2a]);
                    p.extend_from_slice(&spec.width.to_le_bytes());
                    p.extend_from_slice(&spec.height.to_le_bytes());
                }
            }
            p.resize(start + filler.max(p.len() - start), 0x5a);
            p.extend_from_slice(&STAMP_MAGIC);
            p.push(layer as u8);
            p.extend_from_slice(&stamp_ns.to_be_bytes());
            p
        })
        .collect()
}

/// The layer and send time a received payload carries, if it is one of the clip's.
pub fn read_stamp(payload: &[u8]) -> Option<(usize, u64)> {
    let tail = payload.get(payload.len().checked_sub(STAMP_BYTES)?..)?;
    if tail[..4] != STAMP_MAGIC {
        return None;
    }
    let layer = tail[4] as usize;
    let stamp = u64::from_be_bytes(tail[5..13].try_into().ok()?);
    (layer < LAYERS.len()).then_some((layer, stamp))
}

/// Whether a VP8 payload starts a keyframe (descriptor per RFC 7741 §4.2, then the frame tag).
pub fn starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    // S set and partition index 0.
    if first & 0x10 == 0 || first & 0x07 != 0 {
        return false;
    }
    let mut at = 1;
    if first & 0x80 != 0 {
        let Some(&x) = payload.get(1) else {
            return false;
        };
        at = 2;
        if x & 0x80 != 0 {
            // I: picture id, 7 or 15 bits.
            at += if payload.get(at).is_some_and(|b| b & 0x80 != 0) {
                2
            } else {
                1
            };
        }
        if x & 0x40 != 0 {
            at += 1; // L: TL0PICIDX
        }
        if x & 0x30 != 0 {
            at += 1; // T or K: TID/KEYIDX
        }
    }
    payload.get(at).is_some_and(|tag| tag & 0x01 == 0)
}
