//! Real ALSA streams through cpal on a machine without a sound card: the ALSA `null` device
//! (captures silence, discards playback) stands in for the hardware, the code path is the
//! one a laptop uses. Feeding real samples in needs an ALSA `file` plugin recipe (next step).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use classroom::media::FrameQueue;
use classroom::media::audio_device::{
    AudioError, FRAME, input_devices, open_microphone, open_speaker, output_devices,
};

fn pick(devices: &[classroom::media::audio_device::AudioDeviceInfo]) -> Option<String> {
    devices
        .iter()
        .find(|d| d.is_default)
        .or(devices.first())
        .map(|d| d.name.clone())
}

#[test]
fn microphone_and_speaker_streams_run_on_alsa() {
    let inputs = input_devices().expect("ALSA lists input devices");
    let outputs = output_devices().expect("ALSA lists output devices");
    let input = pick(&inputs).expect("at least ALSA's null device");
    let output = pick(&outputs).expect("at least ALSA's null device");

    let frames = FrameQueue::new(400);
    let (events, lost) = std::sync::mpsc::channel();
    let mic =
        open_microphone(Some(&input), frames.clone(), events.clone()).expect("input stream opens");
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let speaker = open_speaker(
        Some(&output),
        move |out: &mut [f32]| {
            out.fill(0.1);
            counter.fetch_add(out.len(), Ordering::Relaxed);
        },
        events,
    )
    .expect("output stream opens");

    std::thread::sleep(Duration::from_millis(1500));
    let captured = frames.len();
    assert!(
        captured >= 50,
        "{captured} frames of 10 ms captured in 1.5 s from {input} ({} Hz, {} ch)",
        mic.device_rate,
        mic.device_channels
    );
    let frame = frames.pop_latest().expect("a frame");
    assert_eq!(frame.samples.len(), FRAME);
    let played = pulled.load(Ordering::Relaxed);
    assert!(
        played >= 48_000,
        "{played} samples pulled for playback in 1.5 s by {output}"
    );
    assert!(lost.try_recv().is_err(), "no device errors");
    drop(speaker);
    drop(mic);
}

#[test]
fn a_missing_device_is_a_clear_error() {
    let (events, _) = std::sync::mpsc::channel();
    match open_microphone(Some("no such microphone"), FrameQueue::new(4), events) {
        Err(AudioError::NotFound(name)) => assert_eq!(name, "no such microphone"),
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("opened a device that does not exist"),
    }
}
