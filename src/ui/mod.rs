//! The desktop window (eframe/egui): start screen, pre-join check, class view. The UI thread
//! renders plain state ([`model`]) and sends requests to the [`backend`], which runs the call
//! engine and the embedded server on a runtime of its own; pictures reach textures through
//! the [`pictures`] board with one copy (the upload).

pub mod app;
pub mod backend;
pub mod launch;
pub mod model;
pub mod pictures;
pub mod store;
pub mod views;

pub use app::ClassroomApp;
pub use launch::Launch;

/// Opens the window and runs until it is closed.
pub fn run_window(launch: Launch, utc_offset_secs: i32) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Classroom")
            .with_app_id("classroom")
            .with_inner_size([1280.0, 760.0])
            .with_min_inner_size([720.0, 480.0]),
        ..eframe::NativeOptions::default()
    };
    eframe::run_native(
        "Classroom",
        options,
        Box::new(move |cc| {
            let backend = backend::Backend::start()?;
            Ok(Box::new(ClassroomApp::new(
                &cc.egui_ctx,
                backend,
                store::Store::for_user(),
                launch,
                utc_offset_secs,
            )))
        }),
    )
    .map_err(|error| anyhow::anyhow!("the window could not open: {error}"))
}
