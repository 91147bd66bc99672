//! Settings: devices, video quality, voice processing and theme. Shared by the settings panel
//! and the pre-join check (the device pickers).

use egui::RichText;

use crate::media::voice::VoiceStage;

use crate::ui::model::{
    DeviceLists, DeviceOption, Settings, ThemeChoice, UiAction, UiModel, VideoQuality,
};

/// A picker over `options`; `None` stands for the system default where `default_label` is
/// given. Returns true when the choice changed.
fn picker(
    ui: &mut egui::Ui,
    label: &str,
    selected: &mut Option<String>,
    options: &[DeviceOption],
    default_label: Option<&str>,
) -> bool {
    let current = match selected {
        Some(id) => options
            .iter()
            .find(|o| &o.id == id)
            .map_or_else(|| id.clone(), |o| o.label.clone()),
        None => default_label.unwrap_or("None").to_owned(),
    };
    let mut changed = false;
    let label = ui.label(label);
    egui::ComboBox::from_id_salt(label.id)
        .selected_text(current)
        .width(ui.available_width().min(260.0))
        .show_ui(ui, |ui| {
            if let Some(default_label) = default_label {
                changed |= ui.selectable_value(selected, None, default_label).changed();
            }
            for option in options {
                changed |= ui
                    .selectable_value(selected, Some(option.id.clone()), &option.label)
                    .changed();
            }
        })
        .response
        .labelled_by(label.id);
    changed
}

/// The device pickers; true when something changed.
pub(crate) fn device_pickers(
    ui: &mut egui::Ui,
    settings: &mut Settings,
    devices: &DeviceLists,
) -> bool {
    let mut changed = false;
    let missing = devices.missing(settings);
    let none_found = |ui: &mut egui::Ui, label: &str, what: &str| {
        ui.label(label);
        ui.label(RichText::new(format!("No {what} found")).weak());
    };
    let mut camera = Some(settings.camera.clone());
    if missing.camera {
        none_found(ui, "Camera", "camera");
    } else if picker(ui, "Camera", &mut camera, &devices.cameras, None) {
        settings.camera = camera.unwrap_or_default();
        changed = true;
    }
    ui.add_space(4.0);
    if missing.microphone {
        none_found(ui, "Microphone", "microphone");
    } else {
        changed |= picker(
            ui,
            "Microphone",
            &mut settings.microphone,
            &devices.microphones,
            Some("System default"),
        );
    }
    ui.add_space(4.0);
    if missing.speaker {
        none_found(ui, "Speaker", "speaker");
    } else {
        changed |= picker(
            ui,
            "Speaker",
            &mut settings.speaker,
            &devices.speakers,
            Some("System default"),
        );
    }
    changed
}

pub fn show(ui: &mut egui::Ui, model: &mut UiModel, actions: &mut Vec<UiAction>) {
    ui.add_space(6.0);
    ui.heading("Settings");
    ui.separator();
    let mut settings = model.settings.clone();
    let mut changed = false;
    ui.label(RichText::new("Devices").strong());
    changed |= device_pickers(ui, &mut settings, &model.devices);
    ui.label(
        RichText::new(
            "A new microphone or speaker is used at once; echo cancellation starts over.",
        )
        .weak()
        .size(11.0),
    );
    ui.add_space(10.0);
    ui.label(RichText::new("Video quality").strong());
    changed |= ui
        .radio_value(
            &mut settings.video_quality,
            VideoQuality::Standard,
            "Standard (720p)",
        )
        .changed();
    changed |= ui
        .radio_value(
            &mut settings.video_quality,
            VideoQuality::Low,
            "Data saver (360p)",
        )
        .changed();
    ui.add_space(10.0);
    ui.label(RichText::new("Sound").strong());
    changed |= ui
        .add_enabled(
            !model.managed.voice_processing_locked,
            egui::Checkbox::new(&mut settings.voice_processing, "Voice processing"),
        )
        .on_disabled_hover_text("Set by your school")
        .changed();
    let master = settings.voice_processing;
    let stages = &mut settings.voice_stages;
    let locks = model.managed.voice_stages_locked;
    ui.indent("voice stages", |ui| {
        for (stage, locked) in VoiceStage::ALL.into_iter().zip(locks) {
            changed |= ui
                .add_enabled(
                    master && !locked,
                    egui::Checkbox::new(stages.stage_mut(stage), stage.label()),
                )
                .on_disabled_hover_text(if locked {
                    "Set by your school"
                } else {
                    "Voice processing is off"
                })
                .changed();
        }
    });
    ui.add_space(10.0);
    ui.label(RichText::new("Network").strong());
    ui.label(
        RichText::new(if model.managed.force_relay {
            "Every call goes through the class's relay server (set by your school)."
        } else {
            "Calls go straight to the others where the network allows, else through the \
             class's relay server."
        })
        .size(12.0),
    );
    ui.add_space(10.0);
    ui.label(RichText::new("Theme").strong());
    ui.horizontal(|ui| {
        changed |= ui
            .radio_value(&mut settings.theme, ThemeChoice::Dark, "Dark")
            .changed();
        changed |= ui
            .radio_value(&mut settings.theme, ThemeChoice::Light, "Light")
            .changed();
    });
    ui.add_space(10.0);
    ui.label(RichText::new("Shortcuts").strong());
    use super::class::*;
    for (keys, what) in [
        (SHORTCUT_MIC, "microphone on/off"),
        (SHORTCUT_CAMERA, "camera on/off"),
        (SHORTCUT_SHARE, "share screen"),
        (SHORTCUT_HAND, "raise/lower hand"),
        (SHORTCUT_CHAT, "chat"),
        (SHORTCUT_FULLSCREEN, "full screen"),
        (SHORTCUT_LEAVE, "leave the class"),
    ] {
        ui.label(RichText::new(format!("{keys}  {what}")).size(12.0));
    }
    if changed {
        actions.push(UiAction::ChangeSettings(settings));
    }
}
