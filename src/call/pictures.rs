//! Where pictures go to be shown: decoded remote video and the local camera and screen
//! previews. The UI implements [`PictureSink`] (textures); the engine and the media threads
//! only call it. A picture is converted to RGBA straight into the buffer the sink hands out,
//! and only when the sink still wants one (the last picture has been drawn), so a hidden or
//! slow window costs no conversions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::media::capture::VideoCapture;
use crate::media::device_error::DeviceError;
use crate::media::frame::I420View;
use crate::types::Source;

/// What a picture belongs to: a participant's camera or screen (our own for previews).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PictureKey {
    pub user_id: String,
    pub source: Source,
}

/// The user id of our own pictures (camera and screen previews), whatever the server calls us.
pub(crate) const LOCAL_USER: &str = "";

impl PictureKey {
    /// Our own camera or screen.
    pub fn local(source: Source) -> Self {
        PictureKey::new(LOCAL_USER, source)
    }

    pub(crate) fn is_local(&self) -> bool {
        self.user_id == LOCAL_USER
    }

    pub fn new(user_id: impl Into<String>, source: Source) -> Self {
        PictureKey {
            user_id: user_id.into(),
            source,
        }
    }
}

/// Receives pictures to show. Called from media threads: must not block for long.
pub trait PictureSink: Send + Sync {
    /// False while the last picture for `key` has not been drawn yet: skip converting this one.
    fn wants(&self, key: &PictureKey) -> bool;
    /// A picture `width × height` for `key`; `fill` writes its RGBA pixels into the buffer
    /// given (exactly `width × height × 4` bytes) and says whether it succeeded.
    fn show(
        &self,
        key: &PictureKey,
        width: usize,
        height: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> bool,
    );
    /// `key` shows nothing any more (camera off, participant gone).
    fn clear(&self, key: &PictureKey);
}

/// Hands a decoded or captured picture to `sink` if it wants one.
pub fn offer_picture(sink: &dyn PictureSink, key: &PictureKey, picture: I420View<'_>) {
    if !sink.wants(key) {
        return;
    }
    sink.show(
        key,
        picture.width,
        picture.height,
        &mut |out| match picture.write_rgba(out) {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(%error, "picture not converted for display");
                false
            }
        },
    );
}

/// Largest preview height: previews are tiles, never full size.
pub(crate) const PREVIEW_MAX_HEIGHT: usize = 360;

/// Shows a captured frame as a preview, halved down to a tile's size first.
pub(crate) fn offer_preview(
    sink: &dyn PictureSink,
    key: &PictureKey,
    frame: &crate::media::frame::I420Frame,
) {
    if !sink.wants(key) {
        return;
    }
    if frame.height / 2 >= PREVIEW_MAX_HEIGHT {
        let mut small = frame.half_size();
        while small.height / 2 >= PREVIEW_MAX_HEIGHT {
            small = small.half_size();
        }
        offer_picture(sink, key, small.view());
    } else {
        offer_picture(sink, key, frame.view());
    }
}

/// A camera preview outside a call (the pre-join check): a thread that captures and shows
/// until dropped. Opening or capture failures are reported through `on_error`, in plain words.
pub struct CapturePreview {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CapturePreview {
    pub fn start(
        mut open: impl FnMut() -> Result<Box<dyn VideoCapture>, DeviceError> + Send + 'static,
        sink: Arc<dyn PictureSink>,
        key: PictureKey,
        on_error: impl Fn(DeviceError) + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("classroom-preview".into())
                .spawn(move || {
                    let mut capture = match open() {
                        Ok(capture) => capture,
                        Err(error) => {
                            on_error(error);
                            return;
                        }
                    };
                    while !stop.load(Ordering::Relaxed) {
                        match capture.capture() {
                            Ok(frame) => offer_preview(sink.as_ref(), &key, &frame),
                            Err(error) => {
                                on_error(DeviceError::from_capture(key.source.name(), &error));
                                sink.clear(&key);
                                return;
                            }
                        }
                    }
                    sink.clear(&key);
                })?
        };
        Ok(CapturePreview {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for CapturePreview {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // A capture call returns within a frame interval; don't wait on a stuck device.
            let deadline = std::time::Instant::now() + Duration::from_millis(500);
            while !thread.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}
