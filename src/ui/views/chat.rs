//! The chat panel: messages with names and times, system messages (joins, leaves) set apart,
//! and the line to write in.

use classroom_wire::ChatKind;
use egui::{Align, Layout, RichText};

use super::{ViewContext, clock_time};
use crate::ui::model::{UiAction, UiModel};

pub fn show(
    ui: &mut egui::Ui,
    model: &mut UiModel,
    view: &ViewContext<'_>,
    actions: &mut Vec<UiAction>,
) {
    ui.add_space(6.0);
    ui.heading("Chat");
    ui.separator();
    let self_id = model.live.snapshot.self_user_id.clone();
    let input_height = 40.0;
    egui::ScrollArea::vertical()
        .max_height(ui.available_height() - input_height)
        .stick_to_bottom(true)
        .auto_shrink([false, false])
        .show(ui, |ui| {
            if model.live.snapshot.chat.is_empty() {
                ui.label(RichText::new("No messages yet. Say hello!").weak());
            }
            for message in &model.live.snapshot.chat {
                let time = clock_time(message.timestamp, view.utc_offset_secs);
                match message.kind {
                    ChatKind::System => {
                        ui.vertical_centered(|ui| {
                            ui.label(
                                RichText::new(format!("{} · {time}", message.message))
                                    .italics()
                                    .weak()
                                    .size(12.0),
                            );
                        });
                    }
                    ChatKind::User => {
                        let name = if message.user_id == self_id {
                            "You"
                        } else {
                            &message.user_name
                        };
                        ui.horizontal(|ui| {
                            ui.label(RichText::new(name).strong());
                            ui.label(RichText::new(time).weak().size(11.0));
                        });
                        ui.add(egui::Label::new(&message.message).wrap());
                    }
                }
                ui.add_space(4.0);
            }
        });
    ui.separator();
    ui.with_layout(Layout::left_to_right(Align::Center), |ui| {
        let field = ui.add(
            egui::TextEdit::singleline(&mut model.class.chat_draft)
                .hint_text("Write a message")
                .desired_width(ui.available_width() - 60.0),
        );
        let sent_by_enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        let send = ui.button("Send");
        if sent_by_enter || send.clicked() {
            let text = model.class.chat_draft.trim().to_owned();
            if !text.is_empty() {
                actions.push(UiAction::SendChat(text));
                model.class.chat_draft.clear();
            }
            field.request_focus();
        }
        field.on_hover_text("Message to everyone in the class");
    });
}
