//! What the local sources send, decided from what the links report: the encoders' bitrates
//! follow the weakest connected link's bandwidth estimate; the camera is sent as tall as the
//! tallest viewer shows it; each video codec a connected link negotiated is encoded, and no
//! other. Pure functions of the links' state: the session calls them after every input and
//! tells the drivers when the result changed.

use serde::Serialize;

use crate::types::{CodecSet, VideoCodec};

/// The most the camera is sent at (bits per second), whatever the link carries.
pub const CAMERA_MAX_BPS: u64 = 1_500_000;
/// The most a screen share is sent at: text must stay legible, so it gets more than the camera.
pub const SCREEN_MAX_BPS: u64 = 2_500_000;
/// What audio keeps of a link before video shares the rest.
const AUDIO_RESERVE_BPS: f64 = 40_000.0;
/// Video never aims below this, however weak the link.
const VIDEO_FLOOR_BPS: f64 = 100_000.0;
/// The screen's share when the camera runs too.
const SCREEN_SHARE_OF_VIDEO: f64 = 0.7;

/// What the encoders aim at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendTargets {
    pub camera_bps: u64,
    pub screen_bps: u64,
    /// The tallest picture any viewer shows of our camera (0: full size).
    pub camera_max_height: u32,
    /// The video codecs to encode (those connected links negotiated).
    #[serde(skip)]
    pub codecs: CodecSet,
    /// The weakest connected link's estimate, when a link is connected.
    pub weakest_link_bps: Option<u64>,
}

impl SendTargets {
    /// Before any link: the encoders' starting points.
    pub(crate) const INITIAL: SendTargets = SendTargets {
        camera_bps: 800_000,
        screen_bps: 1_200_000,
        camera_max_height: 0,
        codecs: CodecSet::EMPTY,
        weakest_link_bps: None,
    };
}

/// One link as the rules see it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct LinkMedia {
    pub connected: bool,
    /// How tall the viewer behind this link shows our camera, if it said.
    pub viewer_height: Option<u32>,
    /// The video codec negotiated on the link, once known.
    pub video_codec: Option<VideoCodec>,
    /// The link's bandwidth estimate, once reported.
    pub estimate_bps: Option<f64>,
}

/// Which local video sources run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VideoOn {
    pub camera: bool,
    pub screen: bool,
}

/// The targets for these links. Without a connected link that reported an estimate the
/// bitrates stay where `previous` left them.
pub(crate) fn send_targets(
    links: impl IntoIterator<Item = LinkMedia>,
    on: VideoOn,
    previous: &SendTargets,
) -> SendTargets {
    let mut weakest: Option<f64> = None;
    let mut tallest = Some(0u32);
    let mut codecs = CodecSet::EMPTY;
    for link in links.into_iter().filter(|link| link.connected) {
        if let Some(bps) = link.estimate_bps {
            weakest = Some(weakest.map_or(bps, |known| known.min(bps)));
        }
        // A viewer that never said (a browser) gets full size.
        tallest = match (tallest, link.viewer_height) {
            (Some(current), Some(height)) => Some(current.max(height)),
            _ => None,
        };
        if let Some(codec) = link.video_codec {
            codecs = codecs.with(codec);
        }
    }
    let (camera_bps, screen_bps) = match weakest {
        Some(bps) => split_video(bps, on),
        None => (previous.camera_bps, previous.screen_bps),
    };
    SendTargets {
        camera_bps,
        screen_bps,
        camera_max_height: tallest.unwrap_or(0),
        codecs,
        weakest_link_bps: weakest.map(|bps| bps as u64).or(previous.weakest_link_bps),
    }
}

/// Audio first; video shares what is left, the screen (text must stay legible) first.
fn split_video(link_bps: f64, on: VideoOn) -> (u64, u64) {
    let video = (link_bps - AUDIO_RESERVE_BPS).max(VIDEO_FLOOR_BPS);
    let (camera, screen) = if on.camera && on.screen {
        (
            video * (1.0 - SCREEN_SHARE_OF_VIDEO),
            video * SCREEN_SHARE_OF_VIDEO,
        )
    } else {
        (video, video)
    };
    (
        (camera as u64).min(CAMERA_MAX_BPS),
        (screen as u64).min(SCREEN_MAX_BPS),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: VideoOn = VideoOn {
        camera: true,
        screen: true,
    };
    const CAMERA: VideoOn = VideoOn {
        camera: true,
        screen: false,
    };

    fn link(estimate: f64, height: Option<u32>, codec: VideoCodec) -> LinkMedia {
        LinkMedia {
            connected: true,
            viewer_height: height,
            video_codec: Some(codec),
            estimate_bps: Some(estimate),
        }
    }

    #[test]
    fn the_encoders_follow_the_weakest_connected_link() {
        let links = [
            link(3_000_000.0, Some(720), VideoCodec::H264),
            link(640_000.0, Some(720), VideoCodec::H264),
            LinkMedia {
                connected: false,
                estimate_bps: Some(100_000.0),
                ..Default::default()
            },
        ];
        let targets = send_targets(links, CAMERA, &SendTargets::INITIAL);
        assert_eq!(targets.weakest_link_bps, Some(640_000));
        assert_eq!(targets.camera_bps, 600_000, "the link less audio's reserve");
    }

    #[test]
    fn with_both_sources_on_the_screen_gets_the_larger_share_and_each_stays_under_its_cap() {
        let targets = send_targets(
            [link(1_040_000.0, None, VideoCodec::H264)],
            BOTH,
            &SendTargets::INITIAL,
        );
        assert_eq!((targets.camera_bps, targets.screen_bps), (300_000, 700_000));
        let rich = send_targets(
            [link(10_000_000.0, None, VideoCodec::H264)],
            CAMERA,
            &SendTargets::INITIAL,
        );
        assert_eq!(
            (rich.camera_bps, rich.screen_bps),
            (CAMERA_MAX_BPS, SCREEN_MAX_BPS)
        );
        let poor = send_targets(
            [link(50_000.0, None, VideoCodec::H264)],
            CAMERA,
            &SendTargets::INITIAL,
        );
        assert_eq!(poor.camera_bps, 100_000, "never below the floor");
    }

    #[test]
    fn without_an_estimate_the_bitrates_stay_where_they_were() {
        let previous = SendTargets {
            camera_bps: 123_000,
            screen_bps: 456_000,
            ..SendTargets::INITIAL
        };
        let links = [LinkMedia {
            connected: true,
            ..Default::default()
        }];
        let targets = send_targets(links, BOTH, &previous);
        assert_eq!((targets.camera_bps, targets.screen_bps), (123_000, 456_000));
    }

    #[test]
    fn the_camera_is_sent_as_tall_as_the_tallest_viewer_and_full_size_to_one_that_never_said() {
        let sized = [
            link(1e6, Some(360), VideoCodec::H264),
            link(1e6, Some(540), VideoCodec::H264),
        ];
        assert_eq!(
            send_targets(sized, CAMERA, &SendTargets::INITIAL).camera_max_height,
            540
        );
        let with_browser = [
            link(1e6, Some(360), VideoCodec::H264),
            link(1e6, None, VideoCodec::H264),
        ];
        assert_eq!(
            send_targets(with_browser, CAMERA, &SendTargets::INITIAL).camera_max_height,
            0
        );
        assert_eq!(
            send_targets([], CAMERA, &SendTargets::INITIAL).camera_max_height,
            0,
            "nobody connected: full size"
        );
    }

    #[test]
    fn each_codec_a_connected_link_negotiated_is_encoded_and_no_other() {
        let mut firefox = link(1e6, None, VideoCodec::Vp8);
        let links = [link(1e6, None, VideoCodec::H264), firefox];
        let codecs = send_targets(links, CAMERA, &SendTargets::INITIAL).codecs;
        assert!(codecs.contains(VideoCodec::H264) && codecs.contains(VideoCodec::Vp8));
        firefox.connected = false;
        let links = [link(1e6, None, VideoCodec::H264), firefox];
        let codecs = send_targets(links, CAMERA, &SendTargets::INITIAL).codecs;
        assert!(codecs.contains(VideoCodec::H264) && !codecs.contains(VideoCodec::Vp8));
    }
}
