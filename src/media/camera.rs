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

use std::time::Duration;

use crate::media::capture::{CaptureBackend, CaptureError, CaptureInfo, ThreadedCapture};
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

/// How long the capture waits for a picture before calling the camera lost.
const FRAME_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens camera `index` at the format closest to `width`×`height` at `fps`, streaming. nokhwa's
/// camera is not `Send`, so it lives on a thread of its own ([`ThreadedCapture`]).
pub(crate) fn open_camera_capture(
    index: u32,
    width: u32,
    height: u32,
    fps: u32,
) -> Result<ThreadedCapture, CaptureError> {
    ThreadedCapture::start("classroom-camera", FRAME_TIMEOUT, move || {
        let camera = open_camera(index, width, height, fps)?;
        let format = camera.camera_format();
        let info = CaptureInfo {
            name: camera.info().human_name(),
            width: format.width() as usize & !1,
            height: format.height() as usize & !1,
            is_screen: false,
        };
        Ok((info, CameraBackend(camera)))
    })
}

struct CameraBackend(Camera);

impl CaptureBackend for CameraBackend {
    fn next(&mut self, frame: &mut I420Frame) -> Result<I420Frame, CaptureError> {
        next_picture(&mut self.0, frame)
    }

    fn close(&mut self) {
        let _ = self.0.stop_stream();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_cameras_works_and_opening_one_that_is_not_there_is_an_error() {
        // No camera (this machine): the list is empty, not an error. Either way, the index
        // past the highest one listed is not there, and opening it says so.
        let found = cameras().expect("cameras listed");
        let missing = found
            .iter()
            .map(|camera| camera.index + 1)
            .max()
            .unwrap_or(0);
        match open_camera_capture(missing, 1280, 720, 30) {
            Ok(_) => panic!(
                "camera {missing} opened, but only {} are listed",
                found.len()
            ),
            Err(error) => assert!(!error.to_string().is_empty()),
        }
    }
}
