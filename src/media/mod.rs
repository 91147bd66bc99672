//! The media layer: frames, the queues between media threads, sources, codecs.
//!
//! capture (sources) → [`FrameQueue`] → encode ([`h264`]) → transport (the `rtc` layer)
//! → decode ([`h264`]) → render (RGBA for the UI).

pub mod audio_device;
pub mod camera;
pub mod capture;
pub mod clock;
pub mod convert;
pub mod device_error;
pub mod devices;
pub mod frame;
pub mod h264;
pub mod level;
pub mod opus_codec;
pub mod portal_screen;
pub(crate) mod queue;
pub mod screen;
pub mod stamp;
pub mod synthetic;
pub mod tone;
pub(crate) mod video_codec;
pub mod voice;
pub mod vp8;

pub use frame::{I420Frame, RgbaFrame};
pub use queue::FrameQueue;
