//! The start screen: which class, as whom; a local class in one click; recent classes.

use egui::{Align, Layout, RichText};

use super::Palette;
use crate::ui::model::{UiAction, UiModel};

pub fn show(ui: &mut egui::Ui, model: &mut UiModel, actions: &mut Vec<UiAction>) {
    ui.vertical_centered(|ui| {
        ui.add_space((ui.available_height() * 0.08).min(48.0));
        ui.heading(RichText::new("Classroom").size(28.0).strong());
        ui.label("Join your live class");
        ui.add_space(16.0);
    });
    let width = ui.available_width().min(420.0);
    let margin = ((ui.available_width() - width) / 2.0).max(0.0);
    ui.horizontal(|ui| {
        ui.add_space(margin);
        ui.vertical(|ui| {
            ui.set_width(width);
            form(ui, model, actions);
            if model.managed.local_class {
                ui.add_space(12.0);
                ui.vertical_centered(|ui| ui.label(RichText::new("or").weak()));
                ui.add_space(8.0);
                let local = ui
                    .add_sized(
                        [width, 32.0],
                        egui::Button::new("Start a local class on this computer"),
                    )
                    .on_hover_text(
                        "Runs the class server inside the app; others on this computer (or a \
                         browser on it) can join",
                    );
                if local.clicked() {
                    actions.push(UiAction::StartLocalClass);
                }
            }
            recent(ui, model, actions);
        });
    });
}

fn form(ui: &mut egui::Ui, model: &mut UiModel, actions: &mut Vec<UiAction>) {
    let server_locked = model.managed.server_locked;
    let form = &mut model.start;
    egui::Grid::new("start-form")
        .num_columns(2)
        .spacing([12.0, 10.0])
        .show(ui, |ui| {
            let field = |ui: &mut egui::Ui, label: &str, value: &mut String, hint: &str| {
                let label = ui.label(label);
                ui.add(
                    egui::TextEdit::singleline(value)
                        .hint_text(hint)
                        .desired_width(280.0),
                )
                .labelled_by(label.id);
                ui.end_row();
            };
            let label = ui.label("Server");
            let server = ui.add_enabled(
                !server_locked,
                egui::TextEdit::singleline(&mut form.server_url)
                    .hint_text("https://classroom.school.org")
                    .desired_width(280.0),
            );
            server
                .labelled_by(label.id)
                .on_disabled_hover_text("Set by your school");
            ui.end_row();
            field(ui, "Class", &mut form.session, "physics-101");
            field(ui, "Your name", &mut form.name, "Ada Lovelace");
            let label = ui.label("Sign-in token");
            ui.add(
                egui::TextEdit::singleline(&mut form.token)
                    .password(true)
                    .hint_text("from your school (optional)")
                    .desired_width(280.0),
            )
            .labelled_by(label.id);
            ui.end_row();
            ui.label("");
            ui.checkbox(&mut form.instructor, "I teach this class");
            ui.end_row();
        });
    if let Some(error) = &form.error {
        ui.colored_label(Palette::DANGER, error);
    }
    ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
        let go = ui.add(
            egui::Button::new(RichText::new("Continue").strong()).min_size([120.0, 32.0].into()),
        );
        if go.clicked() || ui.input(|i| i.key_pressed(egui::Key::Enter)) {
            match form.target() {
                Ok(target) => {
                    form.error = None;
                    actions.push(UiAction::Prepare(target));
                }
                Err(error) => form.error = Some(error),
            }
        }
    });
}

fn recent(ui: &mut egui::Ui, model: &mut UiModel, actions: &mut Vec<UiAction>) {
    if model.recent.is_empty() {
        return;
    }
    ui.add_space(20.0);
    ui.label(RichText::new("Recent classes").strong());
    ui.separator();
    for recent in &model.recent {
        let target = &recent.target;
        let text = format!(
            "{}  ·  {}  ·  as {}",
            target.session,
            target.server.label(),
            target.name
        );
        if ui.add(egui::Button::new(text).frame(false)).clicked() {
            actions.push(UiAction::Prepare(target.clone()));
        }
    }
}
