//! The pre-join check: see yourself, watch the microphone meter, play a test sound, pick
//! devices, and join with the microphone and camera on or off.

use egui::{Align, Layout, Rect, RichText, vec2};

use super::{Palette, ViewContext, settings, tiles};
use crate::call::pictures::PictureKey;
use crate::types::Source;
use crate::ui::model::{ConnectionCheck, LiveClass, UiAction, UiModel};

pub fn show(
    ui: &mut egui::Ui,
    model: &mut UiModel,
    view: &ViewContext<'_>,
    actions: &mut Vec<UiAction>,
) {
    let Some(prejoin) = model.prejoin.clone() else {
        return;
    };
    ui.add_space(16.0);
    ui.vertical_centered(|ui| {
        ui.heading(RichText::new(format!("Ready to join {}?", prejoin.target.session)).size(22.0));
        ui.label(
            RichText::new(format!(
                "{} · as {}",
                prejoin.target.server.label(),
                prejoin.target.name
            ))
            .weak(),
        );
    });
    ui.add_space(16.0);
    let total = ui.available_width().min(960.0);
    let margin = ((ui.available_width() - total) / 2.0).max(0.0);
    ui.horizontal_top(|ui| {
        ui.add_space(margin);
        // Left: the preview, as others will see it.
        let preview_width = (total * 0.58).max(320.0);
        let (rect, _) = ui.allocate_exact_size(
            vec2(preview_width, preview_width * 9.0 / 16.0),
            egui::Sense::hover(),
        );
        let mut live = LiveClass::default();
        live.snapshot.video_enabled = prejoin.camera_on;
        live.snapshot.audio_enabled = prejoin.mic_on;
        let mut ignored = Vec::new();
        tiles::show(
            ui,
            rect,
            &PictureKey::local(Source::Camera),
            &live,
            view,
            false,
            &mut ignored,
        );
        ui.add_space(24.0);
        // Right: toggles, meter, test sound, pickers, join.
        ui.vertical(|ui| {
            ui.set_width((total - preview_width - 24.0).max(240.0));
            let mut mic_on = prejoin.mic_on;
            let mut camera_on = prejoin.camera_on;
            let missing = model.devices.missing(&model.settings);
            if missing.microphone {
                ui.label(RichText::new("No microphone found").weak());
            } else if ui.checkbox(&mut mic_on, "Microphone on").changed() {
                actions.push(UiAction::SetMicrophone(mic_on));
            }
            meter(ui, prejoin.mic_level_dbfs.filter(|_| mic_on));
            if missing.camera {
                ui.label(RichText::new("No camera found").weak());
            } else if ui.checkbox(&mut camera_on, "Camera on").changed() {
                actions.push(UiAction::SetCamera(camera_on));
            }
            ui.add_space(8.0);
            let test = if prejoin.speaker_test_playing {
                "Playing…"
            } else {
                "Test speakers"
            };
            if ui
                .add_enabled(!prejoin.speaker_test_playing, egui::Button::new(test))
                .clicked()
            {
                actions.push(UiAction::PlayTestSound);
            }
            ui.add_space(8.0);
            let mut settings = model.settings.clone();
            if settings::device_pickers(ui, &mut settings, &model.devices) {
                actions.push(UiAction::ChangeSettings(settings));
            }
            if let Some(problem) = &prejoin.device_problem {
                ui.add_space(6.0);
                ui.colored_label(Palette::DANGER, problem);
            }
            if let Some(check) = &prejoin.connection {
                ui.add_space(10.0);
                connection(ui, check);
            }
            ui.add_space(16.0);
            ui.with_layout(Layout::left_to_right(Align::Center), |ui| {
                if ui
                    .add(
                        egui::Button::new(RichText::new("Join now").strong())
                            .min_size(vec2(120.0, 34.0))
                            .fill(Palette::ACCENT),
                    )
                    .clicked()
                {
                    actions.push(UiAction::Join);
                }
                if ui
                    .add(egui::Button::new("Join without audio").min_size(vec2(120.0, 34.0)))
                    .on_hover_text(
                        "No microphone and no speakers (the class plays on another device)",
                    )
                    .clicked()
                {
                    actions.push(UiAction::JoinWithoutAudio);
                }
                if ui
                    .add(egui::Button::new("Back").min_size(vec2(80.0, 34.0)))
                    .clicked()
                {
                    actions.push(UiAction::BackToStart);
                }
            });
        });
    });
}

/// The connection test: a line per path, then what it means.
fn connection(ui: &mut egui::Ui, check: &ConnectionCheck) {
    ui.label(RichText::new("Connection").strong());
    match check {
        ConnectionCheck::Testing => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Testing which ways to the class work from this network…");
            });
        }
        ConnectionCheck::Failed(why) => {
            ui.colored_label(Palette::WARNING, why);
        }
        ConnectionCheck::Done { lines, summary } => {
            for line in lines {
                let colour = match line.works {
                    Some(true) => Palette::SPEAKING,
                    Some(false) => Palette::DANGER,
                    None => ui.visuals().weak_text_color(),
                };
                ui.horizontal(|ui| {
                    // A dot of the line's colour; the words say the same for those who
                    // cannot tell the colours apart.
                    let (dot, _) = ui.allocate_exact_size(vec2(10.0, 10.0), egui::Sense::hover());
                    ui.painter().circle_filled(dot.center(), 4.0, colour);
                    ui.add(egui::Label::new(format!("{}: {}", line.label, line.detail)).wrap());
                });
            }
            ui.add_space(4.0);
            // Selectable: a student can copy it into a message to IT.
            ui.add(egui::Label::new(summary.as_str()).selectable(true));
        }
    }
}

/// A horizontal level meter from −60 to 0 dBFS.
fn meter(ui: &mut egui::Ui, level_dbfs: Option<f32>) {
    let (rect, response) = ui.allocate_exact_size(
        vec2(ui.available_width().min(240.0), 10.0),
        egui::Sense::hover(),
    );
    let fraction = level_dbfs.map_or(0.0, |db| ((db + 60.0) / 60.0).clamp(0.0, 1.0));
    response.widget_info(|| {
        egui::WidgetInfo::labeled(egui::Role::ProgressIndicator, true, "Microphone level")
    });
    ui.painter()
        .rect_filled(rect, 5.0, ui.visuals().extreme_bg_color);
    let lit = Rect::from_min_size(rect.min, vec2(rect.width() * fraction, rect.height()));
    ui.painter().rect_filled(lit, 5.0, Palette::SPEAKING);
}
