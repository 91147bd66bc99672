//! The desktop window (eframe/egui): start screen, pre-join check, class view. The UI thread
//! renders plain state ([`model`]) and sends requests to the [`crate::controller`], which
//! runs the call engine and the embedded server on a runtime of its own; pictures reach
//! textures through the [`pictures`] board with one copy (the upload).

pub mod app;
pub mod launch;
pub mod model;
pub mod pictures;
pub(crate) mod views;

pub use app::{ClassroomApp, WindowSetup};
pub use launch::Launch;

use crate::controller::ControllerSetup;

/// Opens the window over `devices` and runs until it is closed.
pub fn run_window(
    launch: Launch,
    setup: WindowSetup,
    devices: std::sync::Arc<dyn crate::media::devices::MediaDevices>,
) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Classroom")
            .with_app_id("classroom")
            .with_inner_size([1280.0, 760.0])
            .with_min_inner_size([720.0, 480.0])
            .with_icon(std::sync::Arc::new(window_icon())),
        ..eframe::NativeOptions::default()
    };
    eframe::run_native(
        "Classroom",
        options,
        Box::new(move |cc| {
            let board = pictures::PictureBoard::new();
            let controller = crate::controller::Controller::start(ControllerSetup {
                pictures: board.clone(),
                devices,
                extra_ice_servers: setup.config.extra_ice_servers(),
                force_relay: setup.config.force_relay.value,
            })?;
            Ok(Box::new(ClassroomApp::new(
                &cc.egui_ctx,
                controller,
                board,
                crate::controller::store::Store::for_user(),
                launch,
                setup,
            )))
        }),
    )
    .map_err(|error| anyhow::anyhow!("the window could not open: {error}"))
}

/// The app's icon for the window (the 64 px PNG of `assets/icons`).
fn window_icon() -> egui::IconData {
    let png = include_bytes!("../../assets/icons/classroom-64.png");
    eframe::icon_data::from_png_bytes(png).unwrap_or_default()
}
