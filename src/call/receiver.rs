//! The receiving half: one task per remote track reads RTP; video is put back into pictures
//! and decoded on a media thread of its own (the frame stamp gives glass-to-glass latency);
//! audio is decoded, its level measured and its markers listened for. Lost pictures ask the
//! sender for a keyframe (PLI). Optionally everything received is saved to disk.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::pictures::{PictureKey, PictureSink, offer_picture};
use super::stats::{AudioCounters, StatsBook, VideoCounters};
use crate::media::clock;
use crate::media::frame::I420View;
use crate::media::h264::{CodecError, DecodedSummary, luma_spread};
use crate::media::opus_codec::OpusDecoder;
use crate::media::tone::MarkerDetector;
use crate::media::video_codec::{VideoDecoder, decoder_for};
use crate::rtc::RemoteTrack;
use crate::rtc::assembler::{AccessUnit, FrameAssembler, RtpPiece};
use crate::types::{Source, VideoCodec};

/// Stamps older than this are not stamps (see the decode loop).
const PLAUSIBLE_STAMP_AGE: Duration = Duration::from_secs(60);

/// What a track reader does next.
enum Next {
    Packet(RtpPiece),
    /// The ticker fired (nothing arrived): time for periodic work.
    Tick,
    /// The track ended or the reader was told to stop.
    End,
}

/// Waits for the track's next packet or the ticker; `stop` ends the reader either way.
async fn next_rtp(
    track: &RemoteTrack,
    ticker: &mut tokio::time::Interval,
    stop: &AtomicBool,
) -> Next {
    let packet = tokio::select! {
        packet = track.next_packet() => packet,
        _ = ticker.tick() => {
            return if stop.load(Ordering::Relaxed) { Next::End } else { Next::Tick };
        }
    };
    match packet {
        _ if stop.load(Ordering::Relaxed) => Next::End,
        None => Next::End,
        Some(packet) => Next::Packet(packet),
    }
}

/// Minimum time between two keyframe requests for one track.
const PLI_SPACING: Duration = Duration::from_millis(300);

/// How a reader treats what it receives.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReaderOptions {
    /// Save what is received here.
    pub save_dir: Option<PathBuf>,
    /// Test input: drop this fraction of video packets after the transport.
    pub simulated_loss: f64,
    /// Where decoded audio goes to be played.
    pub playout: Option<super::audio::PlayoutMixer>,
    /// Where decoded pictures go to be shown (the UI).
    pub pictures: Option<super::PictureOutput>,
}

/// Reads one remote track until it ends or `stop` is set.
pub(crate) fn spawn_track_reader(
    user_id: String,
    track: RemoteTrack,
    stats: StatsBook,
    options: ReaderOptions,
    stop: Arc<AtomicBool>,
) {
    let source = track.source();
    tokio::spawn(async move {
        let result = match source {
            Source::Audio => read_audio(&user_id, track, &stats, options, &stop).await,
            _ => read_video(&user_id, source, track, &stats, options, &stop).await,
        };
        if let Err(error) = result {
            tracing::warn!(user = %user_id, ?source, %error, "remote track reader stopped");
        }
    });
}

fn save_file(save_dir: &Option<PathBuf>, user_id: &str, name: &str) -> Option<std::fs::File> {
    let dir = save_dir.as_ref()?;
    let safe_user: String = user_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{safe_user}-{name}"));
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        Ok(file) => Some(file),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot save received media");
            None
        }
    }
}

async fn request_keyframe(track: &RemoteTrack, last: &mut Option<Instant>) {
    if last.is_some_and(|at| at.elapsed() < PLI_SPACING) {
        return;
    }
    *last = Some(Instant::now());
    if let Err(error) = track.request_keyframe().await {
        tracing::debug!(%error, "keyframe request not sent");
    }
}

async fn read_video(
    user_id: &str,
    source: Source,
    track: RemoteTrack,
    stats: &StatsBook,
    options: ReaderOptions,
    stop: &Arc<AtomicBool>,
) -> Result<(), String> {
    let save_dir = options.save_dir;
    let mut loss = SimulatedLoss::new(options.simulated_loss);
    let counters = stats.video(user_id, source);
    // What the remote sends, as negotiated.
    let codec = track.video_codec().await.unwrap_or(VideoCodec::H264);
    counters.lock().codec = Some(codec);
    let decode_failed = Arc::new(AtomicBool::new(false));
    let (units, decoder_input) = std::sync::mpsc::sync_channel::<AccessUnit>(8);
    {
        let counters = counters.clone();
        let decode_failed = decode_failed.clone();
        let extension = match codec {
            VideoCodec::H264 => "h264",
            VideoCodec::Vp8 => "vp8",
        };
        let saved = save_file(
            &save_dir,
            user_id,
            &format!("{source:?}.{extension}").to_lowercase(),
        );
        let display = options
            .pictures
            .clone()
            .map(|output| (output.0, PictureKey::new(user_id, source)));
        std::thread::Builder::new()
            .name(format!("classroom-decode-{source:?}").to_lowercase())
            .spawn(move || {
                decode_loop(
                    codec,
                    decoder_input,
                    counters,
                    decode_failed,
                    saved,
                    display,
                )
            })
            .map_err(|error| error.to_string())?;
    }
    let mut assembler = FrameAssembler::for_codec(codec);
    let mut last_pli = None;
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    loop {
        let packet = match next_rtp(&track, &mut ticker, stop).await {
            Next::Packet(packet) => packet,
            Next::Tick => {
                if assembler.awaiting_keyframe() || decode_failed.swap(false, Ordering::Relaxed) {
                    request_keyframe(&track, &mut last_pli).await;
                }
                continue;
            }
            Next::End => break,
        };
        counters.lock().on_packet(packet.payload.len());
        if loss.drop_this() {
            continue;
        }
        let out = assembler.push(packet);
        {
            let mut counters = counters.lock();
            counters.packets_lost = assembler.lost_packets;
            counters.pictures_dropped = assembler.dropped_units;
        }
        if out.keyframe_needed || decode_failed.swap(false, Ordering::Relaxed) {
            request_keyframe(&track, &mut last_pli).await;
        }
        let mut dropping = false;
        for unit in out.units {
            if dropping || units.try_send(unit).is_err() {
                // The decoder is behind: drop this picture and those that refer to it, and
                // restart from a keyframe (decoding them would only give errors or garbage).
                counters.lock().pictures_dropped += 1;
                if !dropping {
                    dropping = true;
                    assembler.resync();
                    request_keyframe(&track, &mut last_pli).await;
                }
            }
        }
    }
    Ok(())
}

/// Decodes, reads what the stats need, and shows the picture if there is somewhere to.
fn decode(
    decoder: &mut dyn VideoDecoder,
    data: &[u8],
    display: Option<&(Arc<dyn PictureSink>, PictureKey)>,
) -> Result<Option<DecodedSummary>, CodecError> {
    let mut summary = None;
    decoder.decode_into(data, &mut |picture: I420View<'_>| {
        if let Some((sink, key)) = display {
            offer_picture(sink.as_ref(), key, picture);
        }
        summary = Some(DecodedSummary {
            width: picture.width,
            height: picture.height,
            stamp: picture.stamp(),
            luma_spread: luma_spread(picture.y, picture.width, picture.height, picture.y_stride),
        });
    })?;
    Ok(summary)
}

fn decode_loop(
    codec: VideoCodec,
    input: std::sync::mpsc::Receiver<AccessUnit>,
    counters: Arc<Mutex<VideoCounters>>,
    decode_failed: Arc<AtomicBool>,
    mut saved: Option<std::fs::File>,
    display: Option<(Arc<dyn PictureSink>, PictureKey)>,
) {
    let mut decoder = match decoder_for(codec) {
        Ok(decoder) => decoder,
        Err(error) => {
            tracing::error!(?codec, %error, "cannot create the video decoder");
            return;
        }
    };
    while let Ok(unit) = input.recv() {
        if let Some(file) = saved.as_mut() {
            // H.264: an Annex-B stream. VP8: each frame prefixed by its length (u32 LE).
            let written = match codec {
                VideoCodec::H264 => file.write_all(&unit.data),
                VideoCodec::Vp8 => file
                    .write_all(&(unit.data.len() as u32).to_le_bytes())
                    .and_then(|()| file.write_all(&unit.data)),
            };
            if let Err(error) = written {
                tracing::warn!(%error, "saving received video failed; no longer saving");
                saved = None;
            }
        }
        match decode(decoder.as_mut(), &unit.data, display.as_ref()) {
            Ok(Some(picture)) => {
                // A CRC-8 lets about one random picture in 256 pass for a stamp (a browser's
                // camera, say): a stamp from more than a minute ago is taken for such a one.
                let stamp = picture
                    .stamp
                    .filter(|stamp| clock::age(stamp.capture_time) < PLAUSIBLE_STAMP_AGE);
                let latency = stamp.map(|stamp| clock::age(stamp.capture_time));
                let mut counters = counters.lock();
                counters.on_frame(
                    picture.width,
                    picture.height,
                    stamp.map(|s| s.counter),
                    latency,
                );
                counters.luma_spread = picture.luma_spread;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(%error, "undecodable picture");
                counters.lock().decode_errors += 1;
                decode_failed.store(true, Ordering::Relaxed);
            }
        }
    }
    // The track ended: its tile shows no stale picture.
    if let Some((sink, key)) = &display {
        sink.clear(key);
    }
}

async fn read_audio(
    user_id: &str,
    track: RemoteTrack,
    stats: &StatsBook,
    options: ReaderOptions,
    stop: &Arc<AtomicBool>,
) -> Result<(), String> {
    let save_dir = options.save_dir;
    let counters: Arc<Mutex<AudioCounters>> = stats.audio(user_id);
    let mut decoder = OpusDecoder::new(false).map_err(|error| error.to_string())?;
    let mut markers = MarkerDetector::new();
    let mut saved = save_file(&save_dir, user_id, "audio.pcm");
    let mut last_sequence: Option<u16> = None;
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    loop {
        let packet = match next_rtp(&track, &mut ticker, stop).await {
            Next::Packet(packet) => packet,
            Next::Tick => continue,
            Next::End => break,
        };
        let sequence = packet.sequence_number;
        let gap = last_sequence.map_or(0, |last| sequence.wrapping_sub(last).wrapping_sub(1));
        if gap < 1000 {
            last_sequence = Some(sequence);
        }
        // The lost packets in between (short gaps only): the last restored from this one's
        // in-band FEC, the others concealed.
        let mut pcm = match gap {
            1..=5 => decoder
                .fill_gap(gap as usize, &packet.payload)
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        match decoder.decode(Some(&packet.payload)) {
            Ok(decoded) => pcm.extend(decoded),
            Err(error) => {
                tracing::debug!(%error, "undecodable audio packet");
                counters.lock().decode_errors += 1;
                continue;
            }
        }
        if let Some(playout) = &options.playout {
            playout.push(user_id, &pcm);
        }
        let heard = markers.push(&pcm);
        {
            let mut counters = counters.lock();
            counters.on_packet(packet.payload.len(), &pcm, gap.min(1000) as u64);
            for marker in heard {
                counters.on_marker(marker.index);
            }
        }
        if let Some(file) = saved.as_mut() {
            let bytes: Vec<u8> = pcm
                .iter()
                .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
                .collect();
            if file.write_all(&bytes).is_err() {
                saved = None;
            }
        }
    }
    Ok(())
}

/// Test input: drops a fraction of packets, deterministically (xorshift).
struct SimulatedLoss {
    threshold: u64,
    state: u64,
}

impl SimulatedLoss {
    fn new(fraction: f64) -> Self {
        SimulatedLoss {
            threshold: (fraction.clamp(0.0, 1.0) * u32::MAX as f64) as u64,
            state: 0x2545_F491_4F6C_DD1D,
        }
    }

    fn drop_this(&mut self) -> bool {
        if self.threshold == 0 {
            return false;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state & u64::from(u32::MAX)) < self.threshold
    }
}
