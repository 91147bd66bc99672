//! The participants panel: everyone with role, microphone, camera, screen, hand and
//! connection state; instructors first, raised hands next.

use egui::{Color32, RichText, vec2};

use super::{Palette, icons};
use crate::types::PeerConnState;
use crate::ui::model::{NetworkQuality, UiModel};

struct Row<'a> {
    name: String,
    instructor: bool,
    audio: bool,
    video: bool,
    screen: bool,
    hand: bool,
    state: &'a str,
}

pub fn show(ui: &mut egui::Ui, model: &UiModel) {
    let snapshot = &model.live.snapshot;
    ui.add_space(6.0);
    ui.heading(format!("People ({})", snapshot.participants.len() + 1));
    ui.separator();
    let mut rows = vec![Row {
        name: "You".into(),
        instructor: model
            .prejoin
            .as_ref()
            .is_some_and(|prejoin| prejoin.target.instructor),
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
            name: p.user_name.clone(),
            instructor: p.is_instructor,
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
                        let role = if row.instructor {
                            "Instructor"
                        } else {
                            "Student"
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
