//! The participants panel: everyone with role, microphone, camera, screen, hand and
//! connection state; instructors first, raised hands next. An instructor also runs the class
//! here (on our server; the browser version's relay has no controls): mute one or all, remove,
//! lock the class, what students may do and who waits to be let in (the instructor proper),
//! co-instructors, the raised hands in the order they came.

use classroom_wire::{LockSettings, Moderation, WaitingPolicy};
use egui::{Color32, RichText, vec2};

use super::{Palette, icons};
use crate::types::PeerConnState;
use crate::ui::model::{NetworkQuality, UiAction, UiModel};

struct Row<'a> {
    /// `None` for ourselves.
    user_id: Option<String>,
    name: String,
    instructor: bool,
    co_instructor: bool,
    audio: bool,
    video: bool,
    screen: bool,
    hand: bool,
    state: &'a str,
}

pub fn show(ui: &mut egui::Ui, model: &UiModel, actions: &mut Vec<UiAction>) {
    let snapshot = &model.live.snapshot;
    let class = &snapshot.class;
    // Our rank, where the server has the controls: 2 instructor, 1 co-instructor, 0 none.
    let controls = snapshot.server.is_some_and(|s| s.has_extensions());
    let our_rank = rank(controls && class.is_instructor, class.co_instructor);
    ui.add_space(6.0);
    ui.heading(format!("People ({})", snapshot.participants.len() + 1));
    ui.separator();
    if our_rank > 0 {
        instructor_controls(ui, model, our_rank, actions);
        ui.separator();
    }
    let mut rows = vec![Row {
        user_id: None,
        name: "You".into(),
        instructor: class.is_instructor,
        co_instructor: class.co_instructor,
        audio: snapshot.audio_enabled,
        video: snapshot.video_enabled,
        screen: snapshot.screen_sharing,
        hand: snapshot.hand_raised,
        state: "",
    }];
    for peer in &snapshot.participants {
        let p = &peer.participant;
        let quality = model.live.remote.get(&p.user_id).and_then(|r| r.quality);
        let state = match (peer.connection, quality) {
            (Some(PeerConnState::Connected), Some(NetworkQuality::Poor)) => "poor connection",
            (Some(PeerConnState::Connected), Some(NetworkQuality::Fair)) => "fair connection",
            (Some(PeerConnState::Connected), _) => "connected",
            (Some(PeerConnState::Failed | PeerConnState::Disconnected), _) => "reconnecting",
            (Some(PeerConnState::Closed), _) => "disconnected",
            _ => "connecting",
        };
        rows.push(Row {
            user_id: Some(p.user_id.clone()),
            name: p.user_name.clone(),
            instructor: p.is_instructor,
            co_instructor: p.co_instructor,
            audio: p.audio_enabled,
            video: p.video_enabled,
            screen: p.screen_sharing,
            hand: p.hand_raised,
            state,
        });
    }
    rows[1..].sort_by(|a, b| {
        (b.instructor, b.hand)
            .cmp(&(a.instructor, a.hand))
            .then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()))
    });
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            for row in rows {
                ui.horizontal(|ui| {
                    ui.vertical(|ui| {
                        ui.label(RichText::new(&row.name).strong());
                        let role = match (row.instructor, row.co_instructor) {
                            (true, true) => "Co-instructor",
                            (true, false) => "Instructor",
                            _ => "Student",
                        };
                        let detail = if row.state.is_empty() {
                            role.to_owned()
                        } else {
                            format!("{role} · {}", row.state)
                        };
                        ui.label(RichText::new(detail).weak().size(12.0));
                    });
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        let color = ui.visuals().text_color();
                        let icon = |ui: &mut egui::Ui| {
                            ui.allocate_exact_size(vec2(18.0, 18.0), egui::Sense::hover())
                                .0
                        };
                        let rect = icon(ui);
                        icons::camera(ui.painter(), rect, color, !row.video);
                        let rect = icon(ui);
                        icons::microphone(ui.painter(), rect, color, !row.audio);
                        if row.screen {
                            let rect = icon(ui);
                            icons::screen(ui.painter(), rect, Palette::ACCENT);
                        }
                        if row.hand {
                            let rect = icon(ui);
                            icons::hand(ui.painter(), rect, Palette::WARNING);
                        }
                    });
                });
                let outranked = our_rank > rank(row.instructor, row.co_instructor);
                if let Some(user_id) = row.user_id.as_ref().filter(|_| outranked) {
                    ui.horizontal(|ui| {
                        let target_user_id = user_id.clone();
                        if row.audio {
                            if ui
                                .small_button("Mute")
                                .on_hover_text(format!("Mute {}", row.name))
                                .clicked()
                            {
                                actions.push(UiAction::Moderate(Moderation::Mute {
                                    target_user_id: target_user_id.clone(),
                                }));
                            }
                        } else if ui.small_button("Ask to unmute").clicked() {
                            actions.push(UiAction::Moderate(Moderation::AskUnmute {
                                target_user_id: target_user_id.clone(),
                            }));
                        }
                        if row.video && ui.small_button("Stop video").clicked() {
                            actions.push(UiAction::Moderate(Moderation::StopCamera {
                                target_user_id: target_user_id.clone(),
                            }));
                        }
                        if row.screen && ui.small_button("Stop share").clicked() {
                            actions.push(UiAction::Moderate(Moderation::StopScreen {
                                target_user_id: target_user_id.clone(),
                            }));
                        }
                        if row.hand && ui.small_button("Lower hand").clicked() {
                            actions.push(UiAction::Moderate(Moderation::LowerHand {
                                target_user_id: target_user_id.clone(),
                            }));
                        }
                        if ui
                            .small_button("Remove")
                            .on_hover_text(format!("Remove {} from the class", row.name))
                            .clicked()
                        {
                            actions.push(UiAction::Moderate(Moderation::Remove {
                                target_user_id: target_user_id.clone(),
                                bar: false,
                            }));
                        }
                        if ui
                            .small_button("Bar")
                            .on_hover_text(format!(
                                "Remove {} and keep them out for {} hours",
                                row.name,
                                classroom_wire::BAR_HOURS
                            ))
                            .clicked()
                        {
                            actions.push(UiAction::Moderate(Moderation::Remove {
                                target_user_id,
                                bar: true,
                            }));
                        }
                    });
                }
                // The instructor proper makes a student a co-instructor, and back.
                if let Some(user_id) = row.user_id.as_ref().filter(|_| our_rank == 2) {
                    let target_user_id = user_id.clone();
                    if row.co_instructor {
                        if ui
                            .small_button("Revoke co-instructor")
                            .on_hover_text(format!("{} becomes a student again", row.name))
                            .clicked()
                        {
                            actions.push(UiAction::Moderate(Moderation::RevokeCoInstructor {
                                target_user_id,
                            }));
                        }
                    } else if !row.instructor
                        && ui
                            .small_button("Make co-instructor")
                            .on_hover_text(format!(
                                "{} gets the instructors' controls, but for ending the class and its settings",
                                row.name
                            ))
                            .clicked()
                    {
                        actions.push(UiAction::Moderate(Moderation::GrantCoInstructor {
                            target_user_id,
                        }));
                    }
                }
                ui.add_space(2.0);
                ui.painter().hline(
                    ui.min_rect().x_range(),
                    ui.cursor().top(),
                    egui::Stroke::new(0.5, Color32::from_gray(90)),
                );
                ui.add_space(4.0);
            }
        });
}

/// Who may act on whom, as the server ranks it: 2 the instructor, 1 a co-instructor, 0 a
/// student.
fn rank(instructor: bool, co_instructor: bool) -> u8 {
    match (instructor, co_instructor) {
        (false, _) => 0,
        (true, true) => 1,
        (true, false) => 2,
    }
}

/// The instructor's part of the panel: the class's lock, mute all, who waits, the hands.
fn instructor_controls(ui: &mut egui::Ui, model: &UiModel, rank: u8, actions: &mut Vec<UiAction>) {
    let class = &model.live.snapshot.class;
    ui.horizontal_wrapped(|ui| {
        if ui
            .button("Mute all")
            .on_hover_text("Mute every student")
            .clicked()
        {
            actions.push(UiAction::Moderate(Moderation::MuteAll));
        }
        let lock = if class.settings.locked {
            "Unlock class"
        } else {
            "Lock class"
        };
        if ui
            .button(lock)
            .on_hover_text("A locked class takes nobody new")
            .clicked()
        {
            actions.push(UiAction::Moderate(Moderation::SetLocked {
                locked: !class.settings.locked,
            }));
        }
        if !class.hands.is_empty() && ui.button("Lower all hands").clicked() {
            actions.push(UiAction::Moderate(Moderation::LowerAllHands));
        }
        if rank == 2
            && ui
                .button("End class")
                .on_hover_text("End the class for everyone")
                .clicked()
        {
            actions.push(UiAction::Moderate(Moderation::EndClass));
        }
    });
    if rank == 2 {
        class_settings(
            ui,
            class.settings.locks,
            class.settings.waiting_room,
            actions,
        );
    }
    if !class.waiting_room.is_empty() {
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            ui.label(
                RichText::new(format!("Waiting to join ({})", class.waiting_room.len())).strong(),
            );
            if ui.small_button("Admit all").clicked() {
                actions.push(UiAction::Moderate(Moderation::AdmitAll));
            }
        });
        for waiting in &class.waiting_room {
            ui.horizontal(|ui| {
                ui.label(&waiting.user_name);
                if ui
                    .small_button("Admit")
                    .on_hover_text(format!("Let {} in", waiting.user_name))
                    .clicked()
                {
                    actions.push(UiAction::Moderate(Moderation::Admit {
                        target_user_id: waiting.user_id.clone(),
                    }));
                }
                if ui.small_button("Deny").clicked() {
                    actions.push(UiAction::Moderate(Moderation::Deny {
                        target_user_id: waiting.user_id.clone(),
                    }));
                }
            });
        }
    }
    if !class.hands.is_empty() {
        ui.add_space(4.0);
        ui.label(RichText::new("Raised hands, first first").strong());
        for (i, hand) in class.hands.iter().enumerate() {
            ui.label(format!("{}. {}", i + 1, hand.user_name));
        }
    }
}

/// What students may do, and who waits to be let in: the instructor's settings for the class,
/// applied to everyone in it and to whoever joins.
fn class_settings(
    ui: &mut egui::Ui,
    locks: LockSettings,
    waiting: WaitingPolicy,
    actions: &mut Vec<UiAction>,
) {
    egui::CollapsingHeader::new("Class settings")
        .id_salt("class-settings")
        .show(ui, |ui| {
            ui.label(RichText::new("Students may").weak().size(12.0));
            let mut changed = locks;
            // A ticked box allows; the lock is its opposite.
            let allow = |ui: &mut egui::Ui, text: &str, locked: &mut bool| {
                let mut allowed = !*locked;
                if ui.checkbox(&mut allowed, text).changed() {
                    *locked = !allowed;
                }
            };
            allow(ui, "turn on their camera", &mut changed.camera);
            allow(ui, "unmute their microphone", &mut changed.microphone);
            allow(ui, "share their screen", &mut changed.screen_share);
            allow(ui, "write to everyone", &mut changed.public_chat);
            allow(
                ui,
                "write privately to the instructors",
                &mut changed.private_chat,
            );
            allow(ui, "see each other's cameras", &mut changed.student_cameras);
            if changed != locks {
                actions.push(UiAction::Moderate(Moderation::SetLocks { locks: changed }));
            }
            ui.add_space(4.0);
            ui.label(RichText::new("Who comes in").weak().size(12.0));
            for (policy, text, hint) in [
                (WaitingPolicy::Open, "Everyone", "Students come straight in"),
                (
                    WaitingPolicy::Ask,
                    "Everyone I admit",
                    "Every student waits until an instructor lets them in",
                ),
                (
                    WaitingPolicy::Roster,
                    "The roster; others wait",
                    "Students on the class's roster come in; anyone else waits to be let in",
                ),
            ] {
                if ui
                    .radio(waiting == policy, text)
                    .on_hover_text(hint)
                    .clicked()
                    && waiting != policy
                {
                    actions.push(UiAction::Moderate(Moderation::SetWaitingRoom { policy }));
                }
            }
        });
}
