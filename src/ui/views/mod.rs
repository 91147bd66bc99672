//! The screens. Each view reads the [`UiModel`](super::model::UiModel), draws, and pushes the
//! user's wishes as [`UiAction`](super::model::UiAction)s; none of them does IO.

pub mod chat;
pub mod class;
pub(crate) mod icons;
pub mod people;
pub mod poll;
pub mod prejoin;
pub mod settings;
pub mod start;
pub mod tiles;

use egui::Color32;

use super::model::ThemeChoice;
use super::pictures::TileTextures;

/// What views need besides the model.
pub struct ViewContext<'a> {
    pub textures: &'a TileTextures,
    /// The local time zone's offset from UTC, seconds (chat timestamps).
    pub utc_offset_secs: i32,
}

/// The few colours of the app beyond egui's theme.
pub(crate) struct Palette;

impl Palette {
    pub(crate) const ACCENT: Color32 = Color32::from_rgb(64, 132, 232);
    pub(crate) const SPEAKING: Color32 = Color32::from_rgb(72, 199, 116);
    pub(crate) const DANGER: Color32 = Color32::from_rgb(219, 68, 55);
    pub(crate) const WARNING: Color32 = Color32::from_rgb(240, 173, 48);
    pub(crate) const TILE: Color32 = Color32::from_rgb(38, 40, 46);
    pub(crate) const TILE_TEXT: Color32 = Color32::from_rgb(236, 238, 242);
    pub(crate) const BADGE: Color32 = Color32::from_rgb(219, 68, 55);
}

/// egui's look for the chosen theme.
pub(crate) fn apply_theme(ctx: &egui::Context, theme: ThemeChoice) {
    let theme = match theme {
        ThemeChoice::Dark => egui::Theme::Dark,
        ThemeChoice::Light => egui::Theme::Light,
    };
    ctx.set_theme(theme);
}

/// `HH:MM` of a server timestamp (ms since the epoch) in the local time zone.
pub(crate) fn clock_time(timestamp_ms: u64, utc_offset_secs: i32) -> String {
    let seconds = (timestamp_ms / 1000) as i64 + i64::from(utc_offset_secs);
    let of_day = seconds.rem_euclid(86_400);
    format!("{:02}:{:02}", of_day / 3600, (of_day % 3600) / 60)
}

/// The initials of a name for a tile without video ("Ada Lovelace" → "AL").
pub fn initials(name: &str) -> String {
    let mut letters = name
        .split_whitespace()
        .filter_map(|word| word.chars().next())
        .flat_map(char::to_uppercase);
    let first = letters.next();
    let last = letters.last();
    first.into_iter().chain(last).collect()
}

/// A small red badge with a count at the top-right corner of `rect`.
pub fn badge(painter: &egui::Painter, rect: egui::Rect, count: usize) {
    if count == 0 {
        return;
    }
    let text = if count > 99 {
        "99+".to_owned()
    } else {
        count.to_string()
    };
    let center = rect.right_top() + egui::vec2(-4.0, 4.0);
    let galley = painter.layout_no_wrap(text, egui::FontId::proportional(11.0), Color32::WHITE);
    let radius = (galley.size().x / 2.0 + 4.0).max(8.0);
    painter.rect_filled(
        egui::Rect::from_center_size(center, egui::vec2(radius * 2.0, 16.0)),
        8.0,
        Palette::BADGE,
    );
    painter.galley(center - galley.size() / 2.0, galley, Color32::WHITE);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_times_are_local() {
        // 2026-11-30 09:05:00 UTC.
        let ms = 1_796_029_500_000;
        assert_eq!(clock_time(ms, 0), "09:05");
        assert_eq!(clock_time(ms, 3600), "10:05");
        assert_eq!(clock_time(ms, -10 * 3600), "23:05");
    }

    #[test]
    fn initials_of_names() {
        assert_eq!(initials("Ada Lovelace"), "AL");
        assert_eq!(initials("grace"), "G");
        assert_eq!(initials("Jean Baptiste Joseph Fourier"), "JF");
        assert_eq!(initials("  "), "");
    }
}
