//! What a participant measures about each remote participant: cumulative counters kept by the
//! media threads, turned into per-interval figures (fps, bitrate, latency percentiles, the
//! level) by [`StatsBook::report`]. Reading changes nothing in the book: the interval is the
//! reader's own, from its [`StatsCursor`], so two readers (the window and a log) do not take
//! each other's figures.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

use crate::media::level::{LevelMark, LevelMeter};
use crate::types::Source;

#[derive(Debug, Default)]
pub struct VideoCounters {
    pub codec: Option<crate::types::VideoCodec>,
    pub packets: u64,
    pub bytes: u64,
    pub frames_decoded: u64,
    pub stamps_read: u64,
    pub decode_errors: u64,
    pub packets_lost: u64,
    pub pictures_dropped: u64,
    pub width: usize,
    pub height: usize,
    pub last_counter: Option<u32>,
    /// Luma spread of the last picture (0: blank).
    pub luma_spread: f64,
    pub first_frame_at: Option<Instant>,
    pub last_frame_at: Option<Instant>,
    /// The last glass-to-glass latencies (ms), at most [`LATENCIES_KEPT`].
    pub latencies_ms: VecDeque<f64>,
    /// Latencies measured so far (more than are kept).
    pub latencies_seen: u64,
}

/// Latencies kept per video track: more than a reader at one report a second sees.
pub(crate) const LATENCIES_KEPT: usize = 4096;

impl VideoCounters {
    pub(crate) fn on_packet(&mut self, bytes: usize) {
        self.packets += 1;
        self.bytes += bytes as u64;
    }

    pub(crate) fn on_frame(
        &mut self,
        width: usize,
        height: usize,
        counter: Option<u32>,
        latency: Option<Duration>,
    ) {
        let now = Instant::now();
        self.frames_decoded += 1;
        self.width = width;
        self.height = height;
        self.first_frame_at.get_or_insert(now);
        self.last_frame_at = Some(now);
        if let Some(counter) = counter {
            self.stamps_read += 1;
            self.last_counter = Some(counter);
        }
        if let Some(latency) = latency {
            if self.latencies_ms.len() == LATENCIES_KEPT {
                self.latencies_ms.pop_front();
            }
            self.latencies_ms.push_back(latency.as_secs_f64() * 1000.0);
            self.latencies_seen += 1;
        }
    }
}

#[derive(Debug, Default)]
pub struct AudioCounters {
    pub packets: u64,
    pub bytes: u64,
    pub packets_lost: u64,
    pub decode_errors: u64,
    pub markers_heard: u64,
    pub last_marker: Option<u8>,
    pub samples: u64,
    /// Everything heard, for the level.
    pub level: LevelMeter,
}

impl AudioCounters {
    pub(crate) fn on_packet(&mut self, bytes: usize, pcm: &[f32], lost: u64) {
        self.packets += 1;
        self.bytes += bytes as u64;
        self.packets_lost += lost;
        self.samples += pcm.len() as u64;
        self.level.add(pcm);
    }

    pub(crate) fn on_marker(&mut self, index: u8) {
        self.markers_heard += 1;
        self.last_marker = Some(index);
    }
}

#[derive(Default)]
struct RemoteCounters {
    /// Transport figures of the peer connection, refreshed by the engine.
    round_trip_ms: Option<f64>,
    estimate_kbps: Option<f64>,
    audio: Option<Arc<Mutex<AudioCounters>>>,
    video: BTreeMap<&'static str, Arc<Mutex<VideoCounters>>>,
}

/// Where one reader of the stats is: when it last read, and the counters it saw then.
#[derive(Debug, Default)]
pub struct StatsCursor {
    at: Option<Instant>,
    /// Per remote and track (`user/video:camera`): frames (or packets) and bytes seen.
    counts: BTreeMap<String, (u64, u64)>,
    /// Per remote video track: latencies seen.
    latencies: BTreeMap<String, u64>,
    /// Per level (a remote's audio, a local source): the meter's mark.
    levels: BTreeMap<String, LevelMark>,
}

impl StatsCursor {
    /// The level of what came since this cursor's previous reading of `key`.
    pub(crate) fn level_since(&mut self, key: &str, now: LevelMark) -> Option<f64> {
        let before = self.levels.insert(key.to_owned(), now).unwrap_or_default();
        now.dbfs_since(before)
    }

    /// `(value - the value at the previous reading)` of two counters under `key`; counters
    /// that went back (a participant who left and came back) count from zero.
    fn counts_since(&mut self, key: String, now: (u64, u64)) -> (u64, u64) {
        let before = self.counts.insert(key, now).unwrap_or_default();
        if now.0 < before.0 || now.1 < before.1 {
            now
        } else {
            (now.0 - before.0, now.1 - before.1)
        }
    }
}

/// Counters for every remote participant, shared between the readers and the reporter.
#[derive(Clone)]
pub struct StatsBook {
    remotes: Arc<Mutex<BTreeMap<String, RemoteCounters>>>,
    /// When the call started (first-frame times count from here).
    origin: Instant,
}

impl Default for StatsBook {
    fn default() -> Self {
        StatsBook {
            remotes: Arc::default(),
            origin: Instant::now(),
        }
    }
}

fn source_name(source: Source) -> &'static str {
    match source {
        Source::Audio => "audio",
        Source::Camera => "camera",
        Source::Screen => "screen",
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoReport {
    pub codec: Option<crate::types::VideoCodec>,
    pub fps: f64,
    pub bitrate_kbps: f64,
    pub frames_decoded: u64,
    pub stamps_read: u64,
    pub width: usize,
    pub height: usize,
    /// Standard deviation of the last picture's luma (0 for a blank picture).
    pub luma_spread: f64,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p95: Option<f64>,
    pub latency_ms_max: Option<f64>,
    pub packets_lost: u64,
    pub pictures_dropped: u64,
    pub decode_errors: u64,
    /// Milliseconds since the last decoded picture.
    pub last_frame_ago_ms: Option<u64>,
    /// Milliseconds from the start of the call (connecting, joining) to the first picture
    /// decoded from this participant.
    pub first_frame_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AudioReport {
    pub bitrate_kbps: f64,
    pub packets: u64,
    pub packets_lost: u64,
    pub level_dbfs: Option<f64>,
    pub markers_heard: u64,
    pub last_marker: Option<u8>,
    pub decode_errors: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteReport {
    pub user_id: String,
    /// Round-trip time of the selected ICE candidate pair.
    pub rtt_ms: Option<f64>,
    /// What congestion control lets us send to this participant.
    pub send_estimate_kbps: Option<f64>,
    pub video: BTreeMap<&'static str, VideoReport>,
    pub audio: Option<AudioReport>,
}

pub fn percentile(sorted: &[f64], fraction: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted.get(index.min(sorted.len() - 1)).copied()
}

impl StatsBook {
    pub fn video(&self, user_id: &str, source: Source) -> Arc<Mutex<VideoCounters>> {
        let mut remotes = self.remotes.lock();
        remotes
            .entry(user_id.to_owned())
            .or_default()
            .video
            .entry(source_name(source))
            .or_insert_with(|| Arc::new(Mutex::new(VideoCounters::default())))
            .clone()
    }

    pub fn audio(&self, user_id: &str) -> Arc<Mutex<AudioCounters>> {
        let mut remotes = self.remotes.lock();
        remotes
            .entry(user_id.to_owned())
            .or_default()
            .audio
            .get_or_insert_with(|| Arc::new(Mutex::new(AudioCounters::default())))
            .clone()
    }

    pub(crate) fn set_transport(
        &self,
        user_id: &str,
        round_trip_ms: Option<f64>,
        estimate_kbps: f64,
    ) {
        let mut remotes = self.remotes.lock();
        let remote = remotes.entry(user_id.to_owned()).or_default();
        remote.round_trip_ms = round_trip_ms;
        remote.estimate_kbps = Some(estimate_kbps);
    }

    pub(crate) fn forget(&self, user_id: &str) {
        self.remotes.lock().remove(user_id);
    }

    /// Figures since `cursor`'s previous report (or the call's start), which this moves on.
    pub fn report(&self, cursor: &mut StatsCursor) -> Vec<RemoteReport> {
        let now = Instant::now();
        let since = cursor.at.replace(now).unwrap_or(self.origin);
        let seconds = now.duration_since(since).as_secs_f64().max(0.001);
        let remotes = self.remotes.lock();
        let origin = self.origin;
        remotes
            .iter()
            .map(|(user_id, remote)| {
                let mut video = BTreeMap::new();
                for (name, counters) in &remote.video {
                    let c = counters.lock();
                    let key = format!("{user_id}/video:{name}");
                    let (frames, bytes) =
                        cursor.counts_since(key.clone(), (c.frames_decoded, c.bytes));
                    let seen_before = cursor.latencies.insert(key, c.latencies_seen);
                    let new = c.latencies_seen - seen_before.unwrap_or(0).min(c.latencies_seen);
                    let kept = c.latencies_ms.len();
                    let mut latencies: Vec<f64> = c
                        .latencies_ms
                        .iter()
                        .skip(kept - (new as usize).min(kept))
                        .copied()
                        .collect();
                    latencies.sort_by(|a, b| a.total_cmp(b));
                    video.insert(
                        *name,
                        VideoReport {
                            codec: c.codec,
                            fps: frames as f64 / seconds,
                            bitrate_kbps: bytes as f64 * 8.0 / seconds / 1000.0,
                            frames_decoded: c.frames_decoded,
                            stamps_read: c.stamps_read,
                            width: c.width,
                            height: c.height,
                            luma_spread: c.luma_spread,
                            latency_ms_p50: percentile(&latencies, 0.5),
                            latency_ms_p95: percentile(&latencies, 0.95),
                            latency_ms_max: latencies.last().copied(),
                            packets_lost: c.packets_lost,
                            pictures_dropped: c.pictures_dropped,
                            decode_errors: c.decode_errors,
                            last_frame_ago_ms: c
                                .last_frame_at
                                .map(|at| now.duration_since(at).as_millis() as u64),
                            first_frame_ms: c
                                .first_frame_at
                                .map(|at| at.duration_since(origin).as_millis() as u64),
                        },
                    );
                }
                let audio = remote.audio.as_ref().map(|counters| {
                    let c = counters.lock();
                    let key = format!("{user_id}/audio");
                    let (_, bytes) = cursor.counts_since(key.clone(), (c.packets, c.bytes));
                    AudioReport {
                        bitrate_kbps: bytes as f64 * 8.0 / seconds / 1000.0,
                        packets: c.packets,
                        packets_lost: c.packets_lost,
                        level_dbfs: cursor.level_since(&key, c.level.mark()),
                        markers_heard: c.markers_heard,
                        last_marker: c.last_marker,
                        decode_errors: c.decode_errors,
                    }
                });
                RemoteReport {
                    user_id: user_id.clone(),
                    rtt_ms: remote.round_trip_ms,
                    send_estimate_kbps: remote.estimate_kbps,
                    video,
                    audio,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_sorted_list() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), Some(51.0));
        assert_eq!(percentile(&values, 0.95), Some(95.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn each_reader_gets_the_figures_since_its_own_last_report() {
        let book = StatsBook::default();
        let video = book.video("bob", Source::Camera);
        let audio = book.audio("bob");
        let add = |frames: usize| {
            for _ in 0..frames {
                video.lock().on_packet(1000);
                video
                    .lock()
                    .on_frame(640, 360, Some(1), Some(Duration::from_millis(20)));
            }
            audio.lock().on_packet(100, &[0.5; 960], 0);
        };
        let (mut window, mut log) = (StatsCursor::default(), StatsCursor::default());
        add(30);
        let first = book.report(&mut window);
        let camera = &first[0].video["camera"];
        assert!(camera.fps > 0.0);
        assert_eq!(camera.latency_ms_p50, Some(20.0));
        assert!(first[0].audio.as_ref().and_then(|a| a.level_dbfs).is_some());
        let again = book.report(&mut window);
        assert_eq!(
            again[0].video["camera"].fps, 0.0,
            "nothing new for this reader"
        );
        assert_eq!(again[0].video["camera"].latency_ms_p50, None);
        assert_eq!(again[0].audio.as_ref().and_then(|a| a.level_dbfs), None);
        let other = book.report(&mut log);
        assert_eq!(
            other[0].video["camera"].latency_ms_p50,
            Some(20.0),
            "the other reader still sees everything since its start"
        );
        assert_eq!(other[0].video["camera"].frames_decoded, 30);
        assert!(other[0].audio.as_ref().and_then(|a| a.level_dbfs).is_some());
    }

    #[test]
    fn a_participant_who_comes_back_counts_from_zero() {
        let book = StatsBook::default();
        let mut cursor = StatsCursor::default();
        for _ in 0..10 {
            book.video("bob", Source::Camera).lock().on_packet(1000);
        }
        book.report(&mut cursor);
        book.forget("bob");
        book.video("bob", Source::Camera).lock().on_packet(500);
        let report = book.report(&mut cursor);
        assert!(report[0].video["camera"].bitrate_kbps > 0.0);
    }
}
