//! One video tile: the picture (fitted, never stretched), or the person's initials when there
//! is none; name and mic bottom left, network quality and hand bottom right; a green frame
//! while they speak.

use egui::{Color32, CornerRadius, FontId, Rect, Sense, Stroke, StrokeKind, pos2, vec2};

use super::{Palette, ViewContext, icons, initials};
use crate::call::pictures::PictureKey;
use crate::types::Source;
use crate::ui::model::{LiveClass, NetworkQuality, UiAction};

/// What a tile shows about its person.
pub(crate) struct TileInfo {
    pub name: String,
    pub audio_enabled: bool,
    pub video_enabled: bool,
    pub hand_raised: bool,
    pub speaking: bool,
    pub quality: Option<NetworkQuality>,
}

/// The tile's person, from the class state.
pub(crate) fn tile_info(live: &LiveClass, key: &PictureKey) -> TileInfo {
    let snapshot = &live.snapshot;
    if key.is_local() || key.user_id == snapshot.self_user_id {
        return TileInfo {
            name: "You".into(),
            audio_enabled: snapshot.audio_enabled,
            video_enabled: snapshot.video_enabled,
            hand_raised: snapshot.hand_raised,
            speaking: live.self_speaking && snapshot.audio_enabled,
            quality: None,
        };
    }
    let participant = snapshot
        .participants
        .iter()
        .find(|peer| peer.participant.user_id == key.user_id)
        .map(|peer| &peer.participant);
    let remote = live.remote.get(&key.user_id);
    TileInfo {
        name: participant.map_or_else(|| key.user_id.clone(), |p| p.user_name.clone()),
        audio_enabled: participant.is_some_and(|p| p.audio_enabled),
        video_enabled: participant.is_some_and(|p| p.video_enabled),
        hand_raised: participant.is_some_and(|p| p.hand_raised),
        speaking: remote.is_some_and(|r| r.speaking),
        quality: remote.and_then(|r| r.quality),
    }
}

/// The texture key of a tile: our own pictures live under the local key.
fn picture_key(live: &LiveClass, key: &PictureKey) -> PictureKey {
    if key.user_id == live.snapshot.self_user_id {
        PictureKey::local(key.source)
    } else {
        key.clone()
    }
}

/// Draws the tile for `key` into `rect`; a click pins (or unpins) it.
pub fn show(
    ui: &mut egui::Ui,
    rect: Rect,
    key: &PictureKey,
    live: &LiveClass,
    view: &ViewContext<'_>,
    pinned: bool,
    actions: &mut Vec<UiAction>,
) {
    let info = tile_info(live, key);
    let is_screen = key.source == Source::Screen;
    let label = if is_screen {
        format!("{}'s screen", info.name)
    } else {
        info.name.clone()
    };
    let id = ui.make_persistent_id(("tile", &key.user_id, key.source));
    let response = ui
        .interact(rect, id, Sense::click())
        .on_hover_text(if pinned {
            "Click to unpin"
        } else {
            "Click to pin"
        });
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
    if response.clicked() {
        actions.push(UiAction::Pin((!pinned).then(|| key.clone())));
    }
    let painter = ui.painter_at(rect);
    let radius = CornerRadius::same(8);
    painter.rect_filled(rect, radius, Palette::TILE);
    let texture = view.textures.get(&picture_key(live, key));
    let showing_video = is_screen || info.video_enabled;
    match texture.filter(|_| showing_video) {
        Some(texture) => {
            let size = texture.size_vec2();
            let scale = (rect.width() / size.x).min(rect.height() / size.y);
            let fitted = Rect::from_center_size(rect.center(), size * scale);
            painter.image(
                texture.id(),
                fitted,
                Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0)),
                Color32::WHITE,
            );
        }
        None => {
            let diameter = (rect.height() * 0.36).clamp(24.0, 120.0);
            painter.circle_filled(rect.center(), diameter / 2.0, Palette::ACCENT);
            painter.text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                initials(&info.name),
                FontId::proportional(diameter * 0.4),
                Color32::WHITE,
            );
        }
    }
    // The name plate, bottom left: mic mark and name.
    let plate_height = 22.0;
    let name_galley = painter.layout_no_wrap(label, FontId::proportional(13.0), Palette::TILE_TEXT);
    let plate_width = (name_galley.size().x + plate_height + 14.0).min(rect.width() - 8.0);
    let plate = Rect::from_min_size(
        pos2(rect.left() + 6.0, rect.bottom() - plate_height - 6.0),
        vec2(plate_width, plate_height),
    );
    painter.rect_filled(plate, CornerRadius::same(4), Color32::from_black_alpha(150));
    if !is_screen {
        let mic_rect = Rect::from_min_size(plate.min + vec2(3.0, 3.0), vec2(16.0, 16.0));
        icons::microphone(&painter, mic_rect, Palette::TILE_TEXT, !info.audio_enabled);
    } else {
        let screen_rect = Rect::from_min_size(plate.min + vec2(3.0, 3.0), vec2(16.0, 16.0));
        icons::screen(&painter, screen_rect, Palette::TILE_TEXT);
    }
    painter.with_clip_rect(plate).galley(
        plate.min
            + vec2(
                plate_height + 2.0,
                (plate_height - name_galley.size().y) / 2.0,
            ),
        name_galley,
        Palette::TILE_TEXT,
    );
    // Bottom right, on the name plate's line (the top of a picture stays clear: it is where
    // people put what they show, and where the test pattern keeps its stamp): how the
    // connection to them is doing, and a raised hand.
    let mut corner = rect.right_bottom() + vec2(-8.0, -6.0 - plate_height);
    if let Some(quality) = info.quality.filter(|_| !is_screen) {
        let bars = Rect::from_min_size(corner - vec2(18.0, -2.0), vec2(18.0, 18.0));
        let (level, color) = match quality {
            NetworkQuality::Connecting => (0, Palette::TILE_TEXT),
            NetworkQuality::Poor => (1, Palette::DANGER),
            NetworkQuality::Fair => (2, Palette::WARNING),
            NetworkQuality::Good => (3, Palette::SPEAKING),
        };
        painter.rect_filled(
            bars.expand(2.0),
            CornerRadius::same(4),
            Color32::from_black_alpha(150),
        );
        icons::signal_bars(&painter, bars, level, color, Color32::from_gray(110));
        corner.x -= 26.0;
    }
    if info.hand_raised && !is_screen {
        let hand = Rect::from_min_size(corner - vec2(22.0, 0.0), vec2(22.0, plate_height));
        painter.rect_filled(hand.expand(1.0), CornerRadius::same(4), Palette::WARNING);
        icons::hand(&painter, hand.shrink(2.0), Color32::from_rgb(40, 30, 0));
    }
    if info.speaking && !is_screen {
        painter.rect_stroke(
            rect.shrink(1.5),
            radius,
            Stroke::new(3.0, Palette::SPEAKING),
            StrokeKind::Inside,
        );
    } else if pinned {
        painter.rect_stroke(
            rect.shrink(1.0),
            radius,
            Stroke::new(2.0, Palette::ACCENT),
            StrokeKind::Inside,
        );
    }
}
