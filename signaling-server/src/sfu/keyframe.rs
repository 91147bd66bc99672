//! Where a picture that needs no other starts, read from one RTP payload (VP8, H.264): a
//! subscriber is switched to another layer only there.

use str0m::rtp::Vp8Descriptor;

/// The video codecs whose payloads the SFU reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VideoPayload {
    Vp8,
    H264,
    /// A codec we forward without reading (VP9, AV1): its layers never switch.
    Opaque,
}

/// Whether this payload carries the start of a keyframe (VP8: the first packet of a
/// keyframe; H.264: a sequence parameter set or the first piece of an IDR slice).
pub(crate) fn starts_keyframe(codec: VideoPayload, payload: &[u8]) -> bool {
    match codec {
        VideoPayload::Vp8 => {
            Vp8Descriptor::parse(payload).is_ok_and(|d| d.starts_keyframe(payload))
        }
        VideoPayload::H264 => h264_starts_keyframe(payload),
        VideoPayload::Opaque => false,
    }
}

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

fn h264_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        NAL_IDR | NAL_SPS => true,
        STAP_A => {
            // [size: u16][NAL unit] ...
            let mut rest = &payload[1..];
            while rest.len() >= 3 {
                let size = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                let Some(nal) = rest.get(2..2 + size) else {
                    return false;
                };
                if nal
                    .first()
                    .is_some_and(|h| matches!(h & 0x1f, NAL_IDR | NAL_SPS))
                {
                    return true;
                }
                rest = &rest[2 + size..];
            }
            false
        }
        FU_A => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && matches!(fu & 0x1f, NAL_IDR | NAL_SPS)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_keyframes_are_found_in_single_aggregated_and_fragmented_units() {
        assert!(starts_keyframe(VideoPayload::H264, &[0x65, 1, 2]), "IDR");
        assert!(starts_keyframe(VideoPayload::H264, &[0x67, 1, 2]), "SPS");
        assert!(
            !starts_keyframe(VideoPayload::H264, &[0x41, 1, 2]),
            "P slice"
        );
        // STAP-A with SPS and PPS.
        assert!(starts_keyframe(
            VideoPayload::H264,
            &[0x18, 0, 2, 0x67, 9, 0, 2, 0x68, 9]
        ));
        // STAP-A of two non-IDR units, and one with a size past its end.
        assert!(!starts_keyframe(
            VideoPayload::H264,
            &[0x18, 0, 2, 0x41, 9, 0, 1, 0x06]
        ));
        assert!(!starts_keyframe(VideoPayload::H264, &[0x18, 0, 9, 0x67]));
        // FU-A: start of an IDR, a middle piece of one, the start of a P slice.
        assert!(starts_keyframe(VideoPayload::H264, &[0x7c, 0x85, 1]));
        assert!(!starts_keyframe(VideoPayload::H264, &[0x7c, 0x05, 1]));
        assert!(!starts_keyframe(VideoPayload::H264, &[0x7c, 0x81, 1]));
        assert!(!starts_keyframe(VideoPayload::H264, &[]));
    }

    #[test]
    fn vp8_keyframes_are_the_first_packet_with_the_key_bit_clear() {
        // Descriptor: X=1 S=1 PID=0; I=1 with a 15-bit picture id; then the VP8 header.
        let key = [0x90, 0x80, 0x81, 0x23, 0x10, 0, 0];
        let delta = [0x90, 0x80, 0x81, 0x24, 0x11, 0, 0];
        let middle = [0x80, 0x80, 0x81, 0x23, 0x10, 0, 0];
        assert!(starts_keyframe(VideoPayload::Vp8, &key));
        assert!(!starts_keyframe(VideoPayload::Vp8, &delta));
        assert!(
            !starts_keyframe(VideoPayload::Vp8, &middle),
            "not the start of the frame"
        );
        assert!(!starts_keyframe(VideoPayload::Vp8, &[0x90]), "truncated");
        assert!(!starts_keyframe(VideoPayload::Opaque, &key));
    }
}
