//! Turns a stream of video RTP packets (H.264 or VP8) back into whole pictures, as soon as the
//! last packet of a picture (the marker bit) is in: no waiting for the next picture's first
//! packet, which would add a frame time of latency. Packets may arrive reordered within a
//! small window; a packet that never comes makes the picture (and what depends on it)
//! undecodable, so the assembler drops it, counts it and asks for a keyframe. Sans-IO.

use std::collections::BTreeMap;

use bytes::Bytes;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;

use crate::types::VideoCodec;

/// How far (in packets) the assembler waits for a missing packet before giving up on it.
const REORDER_WINDOW: u64 = 64;

/// One packet's worth of what the assembler needs.
#[derive(Debug, Clone)]
pub(crate) struct RtpPiece {
    pub sequence_number: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Bytes,
}

/// A complete picture: Annex-B for H.264, a VP8 frame for VP8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccessUnit {
    pub timestamp: u32,
    pub data: Vec<u8>,
}

/// What the assembler produced from one packet.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Assembled {
    pub units: Vec<AccessUnit>,
    /// Packets were lost: the decoder needs a keyframe.
    pub keyframe_needed: bool,
}

pub(crate) struct FrameAssembler {
    codec: VideoCodec,
    /// Packets not yet consumed, by extended sequence number.
    pending: BTreeMap<u64, RtpPiece>,
    /// Extended sequence number of the next packet to consume.
    next: Option<u64>,
    /// Highest extended sequence number seen.
    highest: Option<u64>,
    /// Packets given up on.
    pub lost_packets: u64,
    /// Pictures dropped because a packet was missing or malformed.
    pub dropped_units: u64,
    /// After a loss, wait for a picture that starts cleanly.
    resync: bool,
}

impl Default for FrameAssembler {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameAssembler {
    /// A new H.264 assembler (see [`for_codec`](Self::for_codec)).
    pub fn new() -> Self {
        Self::for_codec(VideoCodec::H264)
    }

    /// A new assembler waits for a keyframe: a decoder cannot start on anything else.
    pub(crate) fn for_codec(codec: VideoCodec) -> Self {
        FrameAssembler {
            codec,
            pending: BTreeMap::new(),
            next: None,
            highest: None,
            lost_packets: 0,
            dropped_units: 0,
            resync: true,
        }
    }

    /// Pictures are being dropped until a keyframe arrives.
    pub(crate) fn awaiting_keyframe(&self) -> bool {
        self.resync
    }

    /// A picture given out was dropped after all (its decoder fell behind): what follows
    /// refers to it, so pictures are dropped until the next keyframe, as after a loss.
    pub(crate) fn resync(&mut self) {
        self.resync = true;
    }

    fn extend(&self, sequence_number: u16) -> u64 {
        let Some(highest) = self.highest else {
            return u64::from(sequence_number) + (1 << 16);
        };
        let base = highest & !0xffff;
        let candidates = [
            base.wrapping_sub(1 << 16) | u64::from(sequence_number),
            base | u64::from(sequence_number),
            (base + (1 << 16)) | u64::from(sequence_number),
        ];
        candidates
            .into_iter()
            .min_by_key(|candidate| candidate.abs_diff(highest))
            .unwrap_or(base | u64::from(sequence_number))
    }

    pub fn push(&mut self, piece: RtpPiece) -> Assembled {
        let mut out = Assembled::default();
        let extended = self.extend(piece.sequence_number);
        if self.next.is_some_and(|next| extended < next) {
            return out; // late duplicate or a packet already given up on
        }
        self.highest = Some(self.highest.map_or(extended, |h| h.max(extended)));
        self.next.get_or_insert(extended);
        self.pending.insert(extended, piece);

        while let Some(next) = self.next {
            if let Some(taken) = self.take_complete_unit(next, &mut out) {
                out.units.extend(taken);
                continue;
            }
            // Nothing complete at the front. A packet is missing when there is a hole below
            // the highest one seen; give up on it once the window moved past it. (A large
            // picture still arriving in order has no hole: it is waited for, however long.)
            let highest = self.highest.unwrap_or(next);
            let hole = (next..=highest).find(|sequence| !self.pending.contains_key(sequence));
            if hole.is_some_and(|missing| highest >= missing + REORDER_WINDOW) {
                self.skip_to_next_picture(&mut out);
                continue;
            }
            break;
        }
        out
    }

    /// If the packets from `next` on form a whole picture (same timestamp, no gap, ending in a
    /// marker), removes and depacketizes them: `Some(Some(unit))`, or `Some(None)` when they
    /// were consumed but are not decodable. `None`: incomplete so far.
    fn take_complete_unit(&mut self, next: u64, out: &mut Assembled) -> Option<Option<AccessUnit>> {
        let first = self.pending.get(&next)?;
        let timestamp = first.timestamp;
        let mut end = next;
        loop {
            let piece = self.pending.get(&end)?;
            if piece.timestamp != timestamp {
                // A new picture began without a marker: what we have is incomplete.
                self.drop_range(next, end, out);
                return Some(None);
            }
            if piece.marker {
                break;
            }
            end += 1;
        }
        let mut depacketizer: Box<dyn Depacketizer> = match self.codec {
            VideoCodec::H264 => Box::new(H264Packet::default()),
            VideoCodec::Vp8 => Box::new(Vp8Packet::default()),
        };
        let mut data = Vec::new();
        let mut broken = false;
        for sequence in next..=end {
            if let Some(piece) = self.pending.remove(&sequence) {
                match depacketizer.depacketize(&piece.payload) {
                    Ok(bytes) => data.extend_from_slice(&bytes),
                    Err(_) => broken = true,
                }
            }
        }
        self.next = Some(end + 1);
        let starts_cleanly = match self.codec {
            VideoCodec::H264 => has_keyframe(&data),
            VideoCodec::Vp8 => crate::media::vp8::is_keyframe(&data),
        };
        if self.resync && !starts_cleanly {
            self.dropped_units += 1;
            out.keyframe_needed = true;
            return Some(None);
        }
        if broken || data.is_empty() {
            self.dropped_units += 1;
            self.resync = true;
            out.keyframe_needed = true;
            return Some(None);
        }
        self.resync = false;
        Some(Some(AccessUnit { timestamp, data }))
    }

    fn drop_range(&mut self, from: u64, to_exclusive: u64, out: &mut Assembled) {
        for sequence in from..to_exclusive {
            self.pending.remove(&sequence);
        }
        self.next = Some(to_exclusive);
        self.dropped_units += 1;
        self.resync = true;
        out.keyframe_needed = true;
    }

    /// Gives up on the missing packet at the front: everything up to the next picture
    /// boundary is dropped.
    fn skip_to_next_picture(&mut self, out: &mut Assembled) {
        let Some(next) = self.next else { return };
        let missing_at = (next..).find(|sequence| !self.pending.contains_key(sequence));
        let Some(missing_at) = missing_at else { return };
        // The first packet after the gap that starts a new picture: its predecessor carried
        // a marker, or its timestamp differs from the one of the broken picture.
        let broken_timestamp = self
            .pending
            .range(..missing_at)
            .next_back()
            .map(|(_, piece)| piece.timestamp);
        let resume = self
            .pending
            .range(missing_at..)
            .find(|(sequence, piece)| {
                Some(piece.timestamp) != broken_timestamp
                    || self
                        .pending
                        .get(&(**sequence - 1))
                        .is_some_and(|previous| previous.marker)
            })
            .map(|(sequence, _)| *sequence);
        let resume = resume.unwrap_or(self.highest.unwrap_or(missing_at) + 1);
        let lost = (next..resume)
            .filter(|sequence| !self.pending.contains_key(sequence))
            .count() as u64;
        self.lost_packets += lost;
        self.drop_range(next, resume, out);
    }
}

/// An IDR slice (NAL type 5) is in this Annex-B picture.
pub(crate) fn has_keyframe(annex_b: &[u8]) -> bool {
    let mut zeros = 0;
    for (index, &byte) in annex_b.iter().enumerate() {
        if byte == 0 {
            zeros += 1;
            continue;
        }
        if byte == 1
            && zeros >= 2
            && let Some(header) = annex_b.get(index + 1)
            && header & 0x1f == 5
        {
            return true;
        }
        zeros = 0;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A single-NAL packet (type 5: IDR, type 1: non-IDR) carrying `tag`.
    fn nal(nal_type: u8, tag: u8) -> Bytes {
        Bytes::from(vec![0x60 | nal_type, tag, tag])
    }

    fn piece(sequence_number: u16, timestamp: u32, marker: bool, payload: Bytes) -> RtpPiece {
        RtpPiece {
            sequence_number,
            timestamp,
            marker,
            payload,
        }
    }

    /// FU-A fragments of one NAL unit of `nal_type`.
    fn fragments(nal_type: u8, parts: usize) -> Vec<Bytes> {
        (0..parts)
            .map(|index| {
                let start = if index == 0 { 0x80 } else { 0 };
                let end = if index + 1 == parts { 0x40 } else { 0 };
                Bytes::from(vec![0x7c, start | end | nal_type, index as u8])
            })
            .collect()
    }

    #[test]
    fn after_a_picture_is_dropped_downstream_only_a_keyframe_is_given_out() {
        let mut assembler = FrameAssembler::new();
        assert_eq!(
            assembler.push(piece(1, 100, true, nal(5, 1))).units.len(),
            1
        );
        assert_eq!(
            assembler.push(piece(2, 200, true, nal(1, 2))).units.len(),
            1
        );
        // The decoder's queue was full: picture 2 never reached it.
        assembler.resync();
        assert!(assembler.awaiting_keyframe());
        let out = assembler.push(piece(3, 300, true, nal(1, 3)));
        assert!(
            out.units.is_empty(),
            "a picture that refers to the dropped one"
        );
        assert!(out.keyframe_needed);
        let out = assembler.push(piece(4, 400, true, nal(5, 4)));
        assert_eq!(out.units.len(), 1);
        assert!(!assembler.awaiting_keyframe());
    }

    #[test]
    fn a_picture_is_released_as_soon_as_its_marker_packet_arrives() {
        let mut assembler = FrameAssembler::new();
        let parts = fragments(5, 3);
        assert!(
            assembler
                .push(piece(10, 900, false, parts[0].clone()))
                .units
                .is_empty()
        );
        assert!(
            assembler
                .push(piece(11, 900, false, parts[1].clone()))
                .units
                .is_empty()
        );
        let out = assembler.push(piece(12, 900, true, parts[2].clone()));
        assert_eq!(out.units.len(), 1);
        assert!(has_keyframe(&out.units[0].data));
        assert!(!out.keyframe_needed);
    }

    #[test]
    fn reordered_packets_are_put_back_in_order() {
        let mut assembler = FrameAssembler::new();
        let parts = fragments(5, 3);
        assembler.push(piece(65535, 1, false, parts[0].clone()));
        assert!(
            assembler
                .push(piece(1, 1, true, parts[2].clone()))
                .units
                .is_empty()
        );
        let out = assembler.push(piece(0, 1, false, parts[1].clone()));
        assert_eq!(out.units.len(), 1, "sequence numbers wrap around");
        assert_eq!(out.units[0].data, vec![0, 0, 0, 1, 0x65, 0, 1, 2]);
    }

    #[test]
    fn a_lost_packet_drops_the_picture_asks_for_a_keyframe_and_waits_for_one() {
        let mut assembler = FrameAssembler::new();
        assert_eq!(assembler.push(piece(1, 1, true, nal(5, 1))).units.len(), 1);
        let parts = fragments(1, 3);
        assembler.push(piece(2, 2, false, parts[0].clone()));
        // Packet 3 never arrives.
        let mut needed = false;
        let mut released = 0;
        let mut sequence = 4u16;
        assembler.push(piece(sequence, 2, true, parts[2].clone()));
        for picture in 3..100u32 {
            sequence += 1;
            let out = assembler.push(piece(sequence, picture, true, nal(1, picture as u8)));
            needed |= out.keyframe_needed;
            released += out.units.len();
        }
        assert!(needed, "a keyframe was asked for");
        assert_eq!(released, 0, "nothing decodable until a keyframe");
        assert_eq!(assembler.lost_packets, 1);
        sequence += 1;
        let out = assembler.push(piece(sequence, 200, true, nal(5, 9)));
        assert_eq!(out.units.len(), 1, "the keyframe resumes decoding");
    }

    #[test]
    fn a_picture_of_hundreds_of_packets_in_order_is_waited_for() {
        let mut assembler = FrameAssembler::new();
        let parts = fragments(5, 250);
        let mut units = Vec::new();
        for (index, part) in parts.iter().enumerate() {
            let last = index + 1 == parts.len();
            let out = assembler.push(piece(index as u16, 7, last, part.clone()));
            assert!(
                !out.keyframe_needed,
                "packet {index} made it ask for a keyframe"
            );
            units.extend(out.units);
        }
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].data.len(), 4 + 1 + 250);
    }

    #[test]
    fn duplicates_and_late_packets_are_ignored() {
        let mut assembler = FrameAssembler::new();
        assert_eq!(assembler.push(piece(5, 1, true, nal(5, 1))).units.len(), 1);
        assert!(
            assembler
                .push(piece(5, 1, true, nal(5, 1)))
                .units
                .is_empty()
        );
        assert!(
            assembler
                .push(piece(4, 0, true, nal(5, 1)))
                .units
                .is_empty()
        );
    }

    #[test]
    fn vp8_pictures_are_put_together_from_their_packets() {
        let mut assembler = FrameAssembler::for_codec(VideoCodec::Vp8);
        // Descriptor byte 0x10 (S: start of partition) then payload; 0x00 for continuations.
        // A keyframe's first byte has its low bit clear.
        let first = Bytes::from(vec![0x10, 0x00, 0x01, 0x02, 0x03]);
        let rest = Bytes::from(vec![0x00, 0x04, 0x05, 0x06, 0x07]);
        assert!(assembler.push(piece(1, 9, false, first)).units.is_empty());
        let out = assembler.push(piece(2, 9, true, rest));
        assert_eq!(out.units.len(), 1);
        assert_eq!(
            out.units[0].data,
            vec![0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]
        );
    }

    #[test]
    fn garbage_payloads_are_counted_not_panicked_on() {
        let mut assembler = FrameAssembler::new();
        let out = assembler.push(piece(1, 1, true, Bytes::from_static(&[0x7c])));
        assert!(out.units.is_empty());
        assert!(out.keyframe_needed);
        assert_eq!(assembler.dropped_units, 1);
    }
}
