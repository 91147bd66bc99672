//! Cameras through `nokhwa` (V4L2 on Linux, AVFoundation, Media Foundation): enumerate, open
//! the one chosen at the size and rate closest to what is asked, and turn what it sends
//! (MJPEG, YUYV, NV12, grey or raw RGB) into I420 stamped with the media clock. Behind the same
//! [`VideoCapture`] trait as the synthetic source and the screens.

use nokhwa::Camera;
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    Resolution,
};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::media::FrameQueue;
use crate::media::capture::{CaptureError, CaptureInfo, VideoCapture};
use crate::media::clock;
use crate::media::convert::{
    PackedOrder, mjpeg_to_i420, nv12_to_i420, packed_to_i420, yuyv_to_i420,
};
use crate::media::frame::I420Frame;

/// A camera as the device picker lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraInfo {
    pub index: u32,
    pub name: String,
}

fn device_error(what: &str, error: impl std::fmt::Display) -> CaptureError {
    CaptureError::Backend(format!("{what}: {error}"))
}

/// The cameras on this machine (none is not an error).
pub fn cameras() -> Result<Vec<CameraInfo>, CaptureError> {
    let found =
        nokhwa::query(ApiBackend::Auto).map_err(|error| device_error("listing cameras", error))?;
    Ok(found
        .into_iter()
        .enumerate()
        .map(|(position, info)| CameraInfo {
            index: match info.index() {
                CameraIndex::Index(index) => *index,
                CameraIndex::String(_) => position as u32,
            },
            name: info.human_name(),
        })
        .collect())
}

/// An open camera, streaming. nokhwa's camera is not `Send`, so it lives on a thread of its
/// own, which converts each picture and hands it over through a drop-oldest queue.
pub struct CameraCapture {
    info: CaptureInfo,
    frames: FrameQueue<Result<I420Frame, CaptureError>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long `capture` waits for a picture before calling the camera lost.
const FRAME_TIMEOUT: Duration = Duration::from_secs(3);

impl CameraCapture {
    /// Opens camera `index` at the format closest to `width`×`height` at `fps`.
    pub fn open(index: u32, width: u32, height: u32, fps: u32) -> Result<Self, CaptureError> {
        let frames = FrameQueue::new(2);
        let stop = Arc::new(AtomicBool::new(false));
        let (opened_tx, opened_rx) = std::sync::mpsc::channel();
        let (queue, stopping) = (frames.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("classroom-camera".to_owned())
            .spawn(move || {
                let mut camera = match open_camera(index, width, height, fps) {
                    Ok(camera) => camera,
                    Err(error) => {
                        let _ = opened_tx.send(Err(error));
                        return;
                    }
                };
                let format = camera.camera_format();
                let _ = opened_tx.send(Ok(CaptureInfo {
                    name: camera.info().human_name(),
                    width: format.width() as usize & !1,
                    height: format.height() as usize & !1,
                    is_screen: false,
                }));
                let mut frame = I420Frame::black(2, 2);
                while !stopping.load(Ordering::Relaxed) {
                    let result = next_picture(&mut camera, &mut frame);
                    let lost = result.is_err();
                    queue.push(result);
                    if lost {
                        break; // unplugged: reported once, the caller reopens
                    }
                }
                let _ = camera.stop_stream();
            })
            .map_err(|error| device_error("camera thread", error))?;
        let info = opened_rx
            .recv()
            .map_err(|_| device_error("camera", "its thread ended before opening it"))??;
        Ok(CameraCapture {
            info,
            frames,
            stop,
            thread: Some(thread),
        })
    }
}

fn open_camera(index: u32, width: u32, height: u32, fps: u32) -> Result<Camera, CaptureError> {
    let wanted = CameraFormat::new(
        Resolution::new(width, height),
        FrameFormat::MJPEG,
        fps.max(1),
    );
    let requested = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(wanted));
    let mut camera = Camera::new(CameraIndex::Index(index), requested)
        .map_err(|error| device_error(&format!("camera {index}"), error))?;
    camera
        .open_stream()
        .map_err(|error| device_error(&format!("starting camera {index}"), error))?;
    Ok(camera)
}

/// One picture from the camera, converted from whatever it sends.
fn next_picture(camera: &mut Camera, frame: &mut I420Frame) -> Result<I420Frame, CaptureError> {
    let name = camera.info().human_name();
    let buffer = camera
        .frame()
        .map_err(|error| CaptureError::DeviceLost(format!("{name}: {error}")))?;
    let captured_at = clock::now();
    let resolution = buffer.resolution();
    let (width, height) = (resolution.width() as usize, resolution.height() as usize);
    let data = buffer.buffer();
    match buffer.source_frame_format() {
        FrameFormat::MJPEG => mjpeg_to_i420(data, frame)?,
        FrameFormat::YUYV => yuyv_to_i420(data, width, height, width * 2, frame)?,
        FrameFormat::NV12 => nv12_to_i420(data, width, height, frame)?,
        FrameFormat::RAWRGB | FrameFormat::RAWBGR | FrameFormat::GRAY => {
            let rgba = buffer
                .decode_image::<nokhwa::pixel_format::RgbAFormat>()
                .map_err(|error| device_error(&name, error))?;
            packed_to_i420(
                rgba.as_raw(),
                width,
                height,
                width * 4,
                PackedOrder::Rgba,
                frame,
            )?;
        }
    }
    let mut picture = frame.clone();
    picture.capture_time = captured_at;
    Ok(picture)
}

impl VideoCapture for CameraCapture {
    fn info(&self) -> CaptureInfo {
        self.info.clone()
    }

    /// The next picture; a camera that was unplugged (or went silent) is an error the caller
    /// reports and recovers from, never a panic or a hung thread.
    fn capture(&mut self) -> Result<I420Frame, CaptureError> {
        match self.frames.pop_timeout(FRAME_TIMEOUT) {
            Ok(result) => result,
            Err(_) => Err(CaptureError::DeviceLost(format!(
                "{}: no picture for {} s",
                self.info.name,
                FRAME_TIMEOUT.as_secs()
            ))),
        }
    }
}

impl Drop for CameraCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_cameras_works_with_none_present() {
        // This machine has no camera: the list is empty, not an error.
        let found = cameras().expect("cameras listed");
        if found.is_empty() {
            assert!(
                CameraCapture::open(0, 1280, 720, 30).is_err(),
                "opening a camera that is not there is a clear error"
            );
        }
    }
}
