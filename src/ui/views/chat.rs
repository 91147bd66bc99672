//! The chat panel: messages with names and times, system messages (joins, leaves) set apart,
//! private messages marked, and the line to write in with whom it goes to. On our server an
//! instructor deletes a message for everyone here; a student writes privately to the
//! instructors only, as the class's lock settings allow (the server checks the same).

use classroom_wire::{ChatKind, ChatMessage, Moderation};
use egui::{Align, Layout, RichText};

use super::{Palette, ViewContext, clock_time};
use crate::ui::model::{UiAction, UiModel};

/// Someone the chat line can go to, and why not, if it cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recipient {
    /// `None`: everyone.
    pub to: Option<String>,
    pub label: String,
    pub locked: Option<&'static str>,
}

/// Whom we may write to: everyone, and on our server privately the instructors (a student) or
/// anyone (an instructor). The browser version's relay has public chat only.
pub(crate) fn recipients(model: &UiModel) -> Vec<Recipient> {
    let snapshot = &model.live.snapshot;
    let class = &snapshot.class;
    let student = !class.is_instructor;
    let locks = class.settings.locks;
    let mut list = vec![Recipient {
        to: None,
        label: "Everyone".into(),
        locked: (student && locks.public_chat)
            .then_some("The instructor has locked public chat in this class"),
    }];
    if !snapshot.server.is_some_and(|s| s.has_extensions()) {
        return list;
    }
    let mut people: Vec<_> = snapshot
        .participants
        .iter()
        .map(|peer| &peer.participant)
        .filter(|p| !student || p.is_instructor)
        .collect();
    people.sort_by_key(|p| (!p.is_instructor, p.user_name.to_lowercase()));
    for p in people {
        list.push(Recipient {
            to: Some(p.user_id.clone()),
            label: format!("{} (privately)", p.user_name),
            locked: (student && locks.private_chat)
                .then_some("The instructor has locked private chat in this class"),
        });
    }
    list
}

/// "Ada", "You", or for a private message "Ada to you" / "You to Grace".
fn heading(message: &ChatMessage, self_id: &str) -> String {
    let from = if message.user_id == self_id {
        "You"
    } else {
        &message.user_name
    };
    match (&message.to_user_id, &message.to_user_name) {
        (Some(to), _) if to == self_id => format!("{from} to you"),
        (Some(_), Some(name)) => format!("{from} to {name}"),
        (Some(to), None) => format!("{from} to {to}"),
        (None, _) => from.to_owned(),
    }
}

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
    let recipients = recipients(model);
    // One who left takes the line back to everyone.
    let to = model
        .class
        .chat_to
        .clone()
        .filter(|to| recipients.iter().any(|r| r.to.as_deref() == Some(to)));
    let chosen = recipients
        .iter()
        .find(|r| r.to == to)
        .unwrap_or(&recipients[0])
        .clone();
    let input_height = if recipients.len() > 1 { 72.0 } else { 40.0 }
        + if chosen.locked.is_some() { 22.0 } else { 0.0 };
    // Instructors delete messages for everyone, on our server.
    let can_delete = model.live.snapshot.class.is_instructor
        && model
            .live
            .snapshot
            .server
            .is_some_and(|s| s.has_extensions());
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
                        let private = message.to_user_id.is_some();
                        ui.horizontal(|ui| {
                            ui.label(RichText::new(heading(message, &self_id)).strong());
                            if private {
                                ui.label(
                                    RichText::new("privately").color(Palette::ACCENT).size(11.0),
                                );
                            }
                            ui.label(RichText::new(time).weak().size(11.0));
                            if can_delete {
                                ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                                    if ui
                                        .small_button("Delete")
                                        .on_hover_text("Delete this message for everyone")
                                        .clicked()
                                    {
                                        actions.push(UiAction::Moderate(
                                            Moderation::DeleteMessage {
                                                message_id: message.id.clone(),
                                            },
                                        ));
                                    }
                                });
                            }
                        });
                        let text = RichText::new(&message.message);
                        let text = if private {
                            text.color(Palette::ACCENT.gamma_multiply(1.3))
                        } else {
                            text
                        };
                        ui.add(egui::Label::new(text).wrap());
                    }
                }
                ui.add_space(4.0);
            }
        });
    ui.separator();
    if recipients.len() > 1 {
        ui.horizontal(|ui| {
            let label = ui.label("To");
            egui::ComboBox::from_id_salt("chat-to")
                .selected_text(&chosen.label)
                .width(ui.available_width() - 8.0)
                .show_ui(ui, |ui| {
                    for recipient in &recipients {
                        let picked = ui
                            .add_enabled_ui(recipient.locked.is_none(), |ui| {
                                ui.selectable_label(recipient.to == chosen.to, &recipient.label)
                            })
                            .inner;
                        if picked.clicked() {
                            actions.push(UiAction::ChatTo(recipient.to.clone()));
                        }
                    }
                })
                .response
                .labelled_by(label.id);
        });
    }
    if let Some(why) = chosen.locked {
        ui.label(RichText::new(why).weak().size(12.0));
    }
    ui.with_layout(Layout::left_to_right(Align::Center), |ui| {
        let hint = match (&chosen.to, chosen.locked) {
            (_, Some(why)) => why.to_owned(),
            (None, None) => "Write a message".to_owned(),
            (Some(_), None) => format!("Write to {}", chosen.label),
        };
        let field = ui.add_enabled(
            chosen.locked.is_none(),
            egui::TextEdit::singleline(&mut model.class.chat_draft)
                .hint_text(hint)
                .desired_width(ui.available_width() - 60.0),
        );
        let sent_by_enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        let send = ui.add_enabled(chosen.locked.is_none(), egui::Button::new("Send"));
        if chosen.locked.is_none() && (sent_by_enter || send.clicked()) {
            let text = model.class.chat_draft.trim().to_owned();
            if !text.is_empty() {
                actions.push(match &chosen.to {
                    None => UiAction::SendChat(text),
                    Some(to) => UiAction::SendPrivateChat {
                        to_user_id: to.clone(),
                        message: text,
                    },
                });
                model.class.chat_draft.clear();
            }
            field.request_focus();
        }
        match &chosen.to {
            None => field.on_hover_text("Message to everyone in the class"),
            Some(_) => field.on_hover_text(format!("Message to {}", chosen.label)),
        };
    });
}
