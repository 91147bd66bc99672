//! The class view: the video grid (or the stage when someone shares or a tile is pinned, the
//! cameras in a strip beside it), banners, the control bar and the side panels.

use egui::{Align, Color32, Layout, Rect, RichText, vec2};

use super::{Palette, ViewContext, badge, chat, people, poll, settings, tiles};
use crate::call::pictures::PictureKey;
use crate::types::Source;
use crate::ui::model::{Panel, REACTION_SHOWN_SECS, UiAction, UiModel, grid_shape, reaction_key};

/// Keyboard shortcuts, shown in the buttons' tooltips.
pub(crate) const SHORTCUT_MIC: &str = "Ctrl+Shift+M";
pub(crate) const SHORTCUT_CAMERA: &str = "Ctrl+Shift+V";
pub(crate) const SHORTCUT_SHARE: &str = "Ctrl+Shift+S";
pub(crate) const SHORTCUT_HAND: &str = "Ctrl+Shift+H";
pub(crate) const SHORTCUT_CHAT: &str = "Ctrl+Shift+C";
pub(crate) const SHORTCUT_FULLSCREEN: &str = "F11";
pub(crate) const SHORTCUT_LEAVE: &str = "Ctrl+Shift+Q";

pub fn show(
    ui: &mut egui::Ui,
    model: &mut UiModel,
    view: &ViewContext<'_>,
    actions: &mut Vec<UiAction>,
) {
    let ctx = ui.ctx().clone();
    shortcuts(&ctx, model, actions);
    let now = ctx.input(|i| i.time);
    note_reactions(model, now);
    if !model.class.fullscreen {
        egui::Panel::top("class-top").show(ui, |ui| top_bar(ui, model));
    }
    let react_button = egui::Panel::bottom("class-controls")
        .exact_size(64.0)
        .resizable(false)
        .show(ui, |ui| control_bar(ui, model, actions))
        .inner;
    let panel = model
        .class
        .panel
        .filter(|panel| !model.class.fullscreen && (*panel != Panel::Chat || model.managed.chat));
    if let Some(panel) = panel {
        egui::Panel::right("class-panel")
            .resizable(false)
            .exact_size(300.0)
            .show(ui, |ui| match panel {
                Panel::Chat => chat::show(ui, model, view, actions),
                Panel::People => people::show(ui, model, actions),
                Panel::Poll => poll::show(ui, model, actions),
                Panel::Settings => {
                    egui::ScrollArea::vertical()
                        .auto_shrink([false, false])
                        .show(ui, |ui| settings::show(ui, model, actions));
                }
            });
    }
    egui::CentralPanel::default()
        .frame(
            egui::Frame::new()
                .fill(ui.visuals().extreme_bg_color)
                .inner_margin(8.0),
        )
        .show(ui, |ui| {
            banners(ui, model, actions);
            let area = ui.available_rect_before_wrap();
            stage(ui, model, view, actions);
            reactions(ui, model, area, now);
        });
    if model.class.share_picker_open {
        share_picker(&ctx, model, view, actions);
    }
    if let Some(button) = react_button.filter(|_| model.class.reactions_open) {
        reaction_picker(&ctx, button, actions);
    }
}

/// Notes when each reaction the session keeps was first drawn, forgetting those it no longer
/// keeps.
fn note_reactions(model: &mut UiModel, now: f64) {
    let kept = &model.live.snapshot.class.reactions;
    let seen = &mut model.class.reactions_seen;
    seen.retain(|(key, _)| kept.iter().any(|r| reaction_key(r) == *key));
    for reaction in kept {
        let key = reaction_key(reaction);
        if !seen.iter().any(|(k, _)| *k == key) {
            seen.push((key, now));
        }
    }
}

/// How an emoji is drawn: without the variation selector, which egui's emoji font lacks.
fn emoji_glyphs(emoji: &str) -> String {
    emoji.replace('\u{fe0f}', "")
}

/// The reactions of the last few seconds, newest at the bottom, over the stage's lower left
/// corner: "👍 Ada".
fn reactions(ui: &mut egui::Ui, model: &UiModel, area: Rect, now: f64) {
    const SHOWN_AT_ONCE: usize = 5;
    let fresh: Vec<_> = model
        .live
        .snapshot
        .class
        .reactions
        .iter()
        .filter_map(|reaction| {
            let key = reaction_key(reaction);
            let (_, since) = model.class.reactions_seen.iter().find(|(k, _)| *k == key)?;
            let left = REACTION_SHOWN_SECS - (now - since);
            (left > 0.0).then_some((reaction, left))
        })
        .collect();
    let Some(soonest) = fresh.iter().map(|(_, left)| *left).reduce(f64::min) else {
        return;
    };
    // Drawn again when the next one is due to go.
    ui.ctx()
        .request_repaint_after(std::time::Duration::from_secs_f64(soonest));
    let painter = ui.painter_at(area);
    // Above the tiles' name labels.
    let mut bottom = area.bottom() - 48.0;
    for (reaction, _) in fresh.iter().rev().take(SHOWN_AT_ONCE) {
        let name = if reaction.user_id == model.live.snapshot.self_user_id {
            "You"
        } else {
            &reaction.user_name
        };
        let emoji = painter.layout_no_wrap(
            emoji_glyphs(&reaction.emoji),
            egui::FontId::proportional(24.0),
            Color32::WHITE,
        );
        let label = painter.layout_no_wrap(
            name.to_owned(),
            egui::FontId::proportional(14.0),
            Palette::TILE_TEXT,
        );
        let size = vec2(
            emoji.size().x + label.size().x + 28.0,
            emoji.size().y.max(label.size().y) + 8.0,
        );
        let pill = Rect::from_min_size(egui::pos2(area.left() + 12.0, bottom - size.y), size);
        painter.rect_filled(pill, size.y / 2.0, Color32::from_black_alpha(170));
        painter.galley(
            egui::pos2(pill.left() + 10.0, pill.center().y - emoji.size().y / 2.0),
            emoji.clone(),
            Color32::WHITE,
        );
        painter.galley(
            egui::pos2(
                pill.left() + 18.0 + emoji.size().x,
                pill.center().y - label.size().y / 2.0,
            ),
            label,
            Palette::TILE_TEXT,
        );
        bottom = pill.top() - 6.0;
    }
}

/// The class's few reactions, in a row above the React button; one click sends one.
fn reaction_picker(ctx: &egui::Context, button: Rect, actions: &mut Vec<UiAction>) {
    egui::Area::new(egui::Id::unique("reaction-picker"))
        .order(egui::Order::Foreground)
        .fixed_pos(button.center_top() - vec2(0.0, 8.0))
        .pivot(egui::Align2::CENTER_BOTTOM)
        .show(ctx, |ui| {
            egui::Frame::popup(ui.style()).show(ui, |ui| {
                ui.horizontal(|ui| {
                    for emoji in classroom_wire::REACTIONS {
                        let button =
                            egui::Button::new(RichText::new(emoji_glyphs(emoji)).size(24.0))
                                .min_size(vec2(40.0, 40.0));
                        if ui.add(button).on_hover_text("React").clicked() {
                            actions.push(UiAction::React(emoji.to_owned()));
                        }
                    }
                });
            });
        });
}

fn shortcuts(ctx: &egui::Context, model: &UiModel, actions: &mut Vec<UiAction>) {
    let snapshot = &model.live.snapshot;
    let chord = egui::Modifiers::CTRL | egui::Modifiers::SHIFT;
    ctx.input_mut(|input| {
        if input.consume_key(chord, egui::Key::M) {
            actions.push(UiAction::SetMicrophone(!snapshot.audio_enabled));
        }
        if input.consume_key(chord, egui::Key::V) {
            actions.push(UiAction::SetCamera(!snapshot.video_enabled));
        }
        if input.consume_key(chord, egui::Key::S) {
            if snapshot.screen_sharing {
                actions.push(UiAction::ShareScreen(None));
            } else if model.managed.screen_share {
                actions.push(UiAction::OpenSharePicker(true));
            }
        }
        if input.consume_key(chord, egui::Key::H) {
            actions.push(UiAction::RaiseHand(!snapshot.hand_raised));
        }
        if input.consume_key(chord, egui::Key::C) && model.managed.chat {
            actions.push(UiAction::TogglePanel(Panel::Chat));
        }
        if input.consume_key(chord, egui::Key::Q) {
            actions.push(UiAction::Leave);
        }
        if input.consume_key(egui::Modifiers::NONE, egui::Key::F11) {
            actions.push(UiAction::ToggleFullscreen);
        }
        if model.class.fullscreen && input.consume_key(egui::Modifiers::NONE, egui::Key::Escape) {
            actions.push(UiAction::ToggleFullscreen);
        }
    });
}

fn top_bar(ui: &mut egui::Ui, model: &UiModel) {
    ui.horizontal(|ui| {
        ui.add_space(4.0);
        ui.label(RichText::new(&model.class.title).strong().size(15.0));
        ui.label(RichText::new(format!("· {}", model.live.server_label)).weak());
        ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
            let count = model.live.snapshot.participants.len() + 1;
            ui.label(format!(
                "{count} {}",
                if count == 1 { "person" } else { "people" }
            ));
        });
    });
}

fn banners(ui: &mut egui::Ui, model: &UiModel, actions: &mut Vec<UiAction>) {
    let banner = |ui: &mut egui::Ui, color: Color32, text: &str| {
        egui::Frame::new()
            .fill(color)
            .corner_radius(6.0)
            .inner_margin(vec2(12.0, 6.0))
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.label(RichText::new(text).color(Color32::BLACK));
            });
        ui.add_space(6.0);
    };
    if let Some(text) = model.live.connection_banner() {
        banner(ui, Palette::WARNING, &text);
    }
    // What an instructor did to us, until read.
    if let Some(notice) = &model.live.snapshot.class.notice {
        egui::Frame::new()
            .fill(Palette::ACCENT.gamma_multiply(1.4))
            .corner_radius(6.0)
            .inner_margin(vec2(12.0, 6.0))
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.horizontal(|ui| {
                    ui.label(RichText::new(notice).color(Color32::BLACK));
                    if ui.button("OK").clicked() {
                        actions.push(UiAction::DismissNotice);
                    }
                });
            });
        ui.add_space(6.0);
    }
    if let Some(problem) = &model.live.device_problem {
        banner(ui, Palette::DANGER.gamma_multiply(1.3), problem);
    }
    if let Some(error) = &model.live.snapshot.last_error {
        banner(ui, Palette::DANGER.gamma_multiply(1.3), error);
    }
    if let Some(notice) = &model.notice {
        banner(ui, Palette::ACCENT.gamma_multiply(1.4), notice);
    }
    if model.live.muted_talking && !model.live.snapshot.audio_enabled {
        banner(
            ui,
            Palette::WARNING,
            "You are muted. Press Unmute (Ctrl+Shift+M) to be heard.",
        );
    }
}

/// The tile shown large: the pinned one, else a screen share.
fn staged(model: &UiModel, keys: &[PictureKey]) -> Option<PictureKey> {
    if let Some(pinned) = &model.class.pinned
        && keys.contains(pinned)
    {
        return Some(pinned.clone());
    }
    keys.iter()
        .find(|key| key.source == Source::Screen)
        .cloned()
}

fn stage(ui: &mut egui::Ui, model: &UiModel, view: &ViewContext<'_>, actions: &mut Vec<UiAction>) {
    let keys = crate::ui::model::tiles(&model.live);
    let area = ui.available_rect_before_wrap();
    let gap = 8.0;
    match staged(model, &keys) {
        Some(large) => {
            // The stage, and the others in a strip on the right.
            let others: Vec<&PictureKey> = keys.iter().filter(|key| **key != large).collect();
            let strip_width = if others.is_empty() {
                0.0
            } else {
                (area.width() * 0.2).clamp(160.0, 260.0)
            };
            let stage = Rect::from_min_max(
                area.min,
                area.max - vec2(strip_width + if others.is_empty() { 0.0 } else { gap }, 0.0),
            );
            let pinned = model.class.pinned.as_ref() == Some(&large);
            tiles::show(ui, stage, &large, &model.live, view, pinned, actions);
            let tile_height = strip_width * 9.0 / 16.0;
            let mut y = area.top();
            for key in others {
                if y + tile_height > area.bottom() {
                    break;
                }
                let rect = Rect::from_min_size(
                    egui::pos2(area.right() - strip_width, y),
                    vec2(strip_width, tile_height),
                );
                tiles::show(ui, rect, key, &model.live, view, false, actions);
                y += tile_height + gap;
            }
        }
        None => {
            let (columns, rows) = grid_shape(keys.len(), area.width(), area.height());
            let cell = vec2(
                (area.width() - gap * (columns as f32 - 1.0)) / columns as f32,
                (area.height() - gap * (rows as f32 - 1.0)) / rows as f32,
            );
            let tile = vec2(
                cell.x.min(cell.y * 16.0 / 9.0),
                cell.y.min(cell.x * 9.0 / 16.0),
            );
            let used_height = rows as f32 * tile.y + (rows as f32 - 1.0) * gap;
            let top = area.top() + (area.height() - used_height) / 2.0;
            for (row, chunk) in keys.chunks(columns).enumerate() {
                let used_width = chunk.len() as f32 * tile.x + (chunk.len() as f32 - 1.0) * gap;
                let left = area.left() + (area.width() - used_width) / 2.0;
                for (column, key) in chunk.iter().enumerate() {
                    let min = egui::pos2(
                        left + column as f32 * (tile.x + gap),
                        top + row as f32 * (tile.y + gap),
                    );
                    tiles::show(
                        ui,
                        Rect::from_min_size(min, tile),
                        key,
                        &model.live,
                        view,
                        false,
                        actions,
                    );
                }
            }
        }
    }
}

/// The tallest any camera tile is drawn, in pixels: what the senders need to send us.
pub(crate) fn camera_tile_height(
    model: &UiModel,
    screen: egui::Vec2,
    pixels_per_point: f32,
) -> u32 {
    let keys = crate::ui::model::tiles(&model.live);
    let panel = if model.class.panel.is_some() {
        300.0
    } else {
        0.0
    };
    let area = vec2(screen.x - panel - 16.0, screen.y - 64.0 - 40.0 - 16.0);
    let points = match staged(model, &keys) {
        Some(large) if large.source == Source::Camera => area.y,
        Some(_) => (area.x * 0.2).clamp(160.0, 260.0) * 9.0 / 16.0,
        None => {
            let (columns, rows) = grid_shape(keys.len(), area.x, area.y);
            let cell = vec2(area.x / columns as f32, area.y / rows as f32);
            cell.y.min(cell.x * 9.0 / 16.0)
        }
    };
    (points * pixels_per_point).max(90.0) as u32
}

/// Buttons in the control bar (the leave button is set apart by a gap).
const CONTROL_BUTTONS: f32 = 9.0;
const CONTROL_GAP: f32 = 16.0;

/// A control bar button: a text label, highlighted while on.
fn control(
    ui: &mut egui::Ui,
    width: f32,
    text: &str,
    on: bool,
    danger: bool,
    hint: &str,
) -> egui::Response {
    let mut button = egui::Button::new(RichText::new(text).size(14.0)).min_size(vec2(width, 40.0));
    if danger {
        button = button.fill(Palette::DANGER);
    } else if on {
        button = button.fill(Palette::ACCENT.gamma_multiply(0.8));
    }
    ui.add(button).on_hover_text(hint)
}

/// Draws the control bar; returns where the React button is (on our server).
fn control_bar(ui: &mut egui::Ui, model: &UiModel, actions: &mut Vec<UiAction>) -> Option<Rect> {
    let snapshot = &model.live.snapshot;
    // Reactions are our server's: the browser version's relay has none.
    let reactions = snapshot.server.is_some_and(|s| s.has_extensions());
    let mut react_button = None;
    ui.add_space(10.0);
    ui.horizontal(|ui| {
        // As wide as the window allows, up to 104 points; the bar is centred.
        let spacing = ui.spacing().item_spacing.x;
        let (poll_offered, poll_waiting) = poll::offered(model);
        let buttons = CONTROL_BUTTONS - if model.managed.chat { 0.0 } else { 1.0 }
            + if poll_offered { 1.0 } else { 0.0 }
            + if reactions { 1.0 } else { 0.0 };
        let available = ui.available_width() - CONTROL_GAP - spacing * (buttons - 1.0) - 8.0;
        let width = (available / buttons).clamp(64.0, 104.0);
        let used = width * buttons + spacing * (buttons - 1.0) + CONTROL_GAP;
        ui.add_space(((ui.available_width() - used) / 2.0).max(4.0));
        let mic = if snapshot.audio_enabled {
            "Mute"
        } else {
            "Unmute"
        };
        // What the instructor locked is greyed out while off, and says why.
        let mic_locked = snapshot.class.locks(Source::Audio) && !snapshot.audio_enabled;
        let mic_button = ui
            .add_enabled_ui(!mic_locked, |ui| {
                control(
                    ui,
                    width,
                    mic,
                    !snapshot.audio_enabled,
                    false,
                    &format!("Microphone ({SHORTCUT_MIC})"),
                )
                .on_disabled_hover_text("The instructor has locked microphones in this class")
            })
            .inner;
        if mic_button.clicked() {
            actions.push(UiAction::SetMicrophone(!snapshot.audio_enabled));
        }
        let camera = if snapshot.video_enabled {
            "Stop video"
        } else {
            "Start video"
        };
        let camera_locked = snapshot.class.locks(Source::Camera) && !snapshot.video_enabled;
        let camera_button = ui
            .add_enabled_ui(!camera_locked, |ui| {
                control(
                    ui,
                    width,
                    camera,
                    !snapshot.video_enabled,
                    false,
                    &format!("Camera ({SHORTCUT_CAMERA})"),
                )
                .on_disabled_hover_text("The instructor has locked cameras in this class")
            })
            .inner;
        if camera_button.clicked() {
            actions.push(UiAction::SetCamera(!snapshot.video_enabled));
        }
        let share = if snapshot.screen_sharing {
            "Stop sharing"
        } else {
            "Share screen"
        };
        let share_allowed = (model.managed.screen_share && !snapshot.class.locks(Source::Screen))
            || snapshot.screen_sharing;
        let shared = ui
            .add_enabled_ui(share_allowed, |ui| {
                control(
                    ui,
                    width,
                    share,
                    snapshot.screen_sharing,
                    false,
                    &format!("Share a screen ({SHORTCUT_SHARE})"),
                )
                .on_disabled_hover_text(if model.managed.screen_share {
                    "The instructor has locked screen sharing in this class"
                } else {
                    "Screen sharing is turned off by your school"
                })
            })
            .inner;
        if shared.clicked() {
            actions.push(if snapshot.screen_sharing {
                UiAction::ShareScreen(None)
            } else {
                UiAction::OpenSharePicker(true)
            });
        }
        let hand = if snapshot.hand_raised {
            "Lower hand"
        } else {
            "Raise hand"
        };
        if control(
            ui,
            width,
            hand,
            snapshot.hand_raised,
            false,
            &format!("Raise your hand ({SHORTCUT_HAND})"),
        )
        .clicked()
        {
            actions.push(UiAction::RaiseHand(!snapshot.hand_raised));
        }
        if reactions {
            let react = control(
                ui,
                width,
                "React",
                model.class.reactions_open,
                false,
                "Send a reaction to the class",
            );
            if react.clicked() {
                actions.push(UiAction::OpenReactions(!model.class.reactions_open));
            }
            react_button = Some(react.rect);
        }
        if model.managed.chat {
            let chat = control(
                ui,
                width,
                "Chat",
                model.class.panel == Some(Panel::Chat),
                false,
                &format!("Chat ({SHORTCUT_CHAT})"),
            );
            badge(ui.painter(), chat.rect, model.class.unread(&model.live));
            if chat.clicked() {
                actions.push(UiAction::TogglePanel(Panel::Chat));
            }
        }
        if control(
            ui,
            width,
            "People",
            model.class.panel == Some(Panel::People),
            false,
            "Participants",
        )
        .clicked()
        {
            actions.push(UiAction::TogglePanel(Panel::People));
        }
        if poll_offered {
            let poll = control(
                ui,
                width,
                "Poll",
                model.class.panel == Some(Panel::Poll),
                false,
                "The class's poll",
            );
            if model.class.panel != Some(Panel::Poll) {
                badge(ui.painter(), poll.rect, usize::from(poll_waiting));
            }
            if poll.clicked() {
                actions.push(UiAction::TogglePanel(Panel::Poll));
            }
        }
        if control(
            ui,
            width,
            "Settings",
            model.class.panel == Some(Panel::Settings),
            false,
            "Devices, video quality, theme",
        )
        .clicked()
        {
            actions.push(UiAction::TogglePanel(Panel::Settings));
        }
        let full = if model.class.fullscreen {
            "Exit full screen"
        } else {
            "Full screen"
        };
        if control(
            ui,
            width,
            full,
            model.class.fullscreen,
            false,
            SHORTCUT_FULLSCREEN,
        )
        .clicked()
        {
            actions.push(UiAction::ToggleFullscreen);
        }
        ui.add_space(CONTROL_GAP - spacing);
        if control(
            ui,
            width,
            "Leave",
            false,
            true,
            &format!("Leave the class ({SHORTCUT_LEAVE})"),
        )
        .clicked()
        {
            actions.push(UiAction::Leave);
        }
    });
    react_button
}

fn share_picker(
    ctx: &egui::Context,
    model: &UiModel,
    view: &ViewContext<'_>,
    actions: &mut Vec<UiAction>,
) {
    egui::Window::new("Share your screen")
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, vec2(0.0, 0.0))
        .show(ctx, |ui| {
            if model.devices.screens.is_empty() {
                ui.label("No screen can be shared here (no X11 display and no desktop portal).");
            }
            ui.horizontal_wrapped(|ui| {
                for screen in &model.devices.screens {
                    ui.vertical(|ui| {
                        let size = vec2(192.0, 108.0);
                        let (rect, response) = ui.allocate_exact_size(size, egui::Sense::click());
                        response.widget_info(|| {
                            egui::WidgetInfo::labeled(
                                egui::Role::Button,
                                true,
                                format!("Share {}", screen.label),
                            )
                        });
                        ui.painter().rect_filled(rect, 6.0, Palette::TILE);
                        let thumbnail = crate::controller::thumbnail_key(&screen.id);
                        if let Some(texture) = view.textures.get(&thumbnail) {
                            let scale = (size.x / texture.size_vec2().x)
                                .min(size.y / texture.size_vec2().y);
                            let fitted =
                                Rect::from_center_size(rect.center(), texture.size_vec2() * scale);
                            ui.painter().image(
                                texture.id(),
                                fitted,
                                Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
                                Color32::WHITE,
                            );
                        } else {
                            super::icons::screen(
                                ui.painter(),
                                Rect::from_center_size(rect.center(), vec2(48.0, 48.0)),
                                Palette::TILE_TEXT,
                            );
                        }
                        if response.hovered() {
                            ui.painter().rect_stroke(
                                rect,
                                6.0,
                                egui::Stroke::new(2.0, Palette::ACCENT),
                                egui::StrokeKind::Inside,
                            );
                        }
                        ui.label(&screen.label);
                        if response.clicked() {
                            actions.push(UiAction::ShareScreen(Some(screen.id.clone())));
                        }
                    });
                }
            });
            ui.add_space(8.0);
            ui.allocate_ui_with_layout(
                vec2(ui.available_width(), 28.0),
                Layout::right_to_left(Align::Center),
                |ui| {
                    if ui.button("Cancel").clicked() {
                        actions.push(UiAction::OpenSharePicker(false));
                    }
                },
            );
        });
}
