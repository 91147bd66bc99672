//! Small icons drawn with shapes (no icon font: nothing to be missing on a machine).

use egui::{Color32, Painter, Pos2, Rect, Stroke, StrokeKind, pos2, vec2};

/// Microphone; struck through when muted.
pub fn microphone(painter: &Painter, rect: Rect, color: Color32, muted: bool) {
    let c = rect.center();
    let s = rect.height() / 16.0;
    let stroke = Stroke::new(1.5 * s, color);
    let capsule = Rect::from_center_size(c - vec2(0.0, 2.0 * s), vec2(5.0 * s, 9.0 * s));
    painter.rect_filled(capsule, 2.5 * s, color);
    // The holder: a cup under the capsule and a stem.
    let cup: Vec<Pos2> = (0..=8)
        .map(|i| {
            let a = std::f32::consts::PI * i as f32 / 8.0;
            pos2(c.x - 4.5 * s * a.cos(), c.y + 0.5 * s + 3.5 * s * a.sin())
        })
        .collect();
    painter.add(egui::Shape::line(cup, stroke));
    painter.line_segment([pos2(c.x, c.y + 4.0 * s), pos2(c.x, c.y + 6.5 * s)], stroke);
    if muted {
        strike(painter, rect, s);
    }
}

/// Video camera; struck through when off.
pub fn camera(painter: &Painter, rect: Rect, color: Color32, off: bool) {
    let c = rect.center();
    let s = rect.height() / 16.0;
    let body = Rect::from_min_size(pos2(c.x - 6.5 * s, c.y - 4.0 * s), vec2(9.0 * s, 8.0 * s));
    painter.rect_filled(body, 1.5 * s, color);
    let lens = vec![
        pos2(c.x + 3.0 * s, c.y - 1.0 * s),
        pos2(c.x + 6.5 * s, c.y - 3.5 * s),
        pos2(c.x + 6.5 * s, c.y + 3.5 * s),
        pos2(c.x + 3.0 * s, c.y + 1.0 * s),
    ];
    painter.add(egui::Shape::convex_polygon(lens, color, Stroke::NONE));
    if off {
        strike(painter, rect, s);
    }
}

/// A monitor (screen share).
pub fn screen(painter: &Painter, rect: Rect, color: Color32) {
    let c = rect.center();
    let s = rect.height() / 16.0;
    let stroke = Stroke::new(1.5 * s, color);
    let monitor = Rect::from_center_size(c - vec2(0.0, 1.5 * s), vec2(13.0 * s, 9.0 * s));
    painter.rect_stroke(monitor, 1.0 * s, stroke, StrokeKind::Middle);
    painter.line_segment(
        [
            pos2(c.x - 3.0 * s, c.y + 5.5 * s),
            pos2(c.x + 3.0 * s, c.y + 5.5 * s),
        ],
        stroke,
    );
    painter.line_segment([pos2(c.x, c.y + 3.0 * s), pos2(c.x, c.y + 5.5 * s)], stroke);
}

/// A raised hand: palm and four fingers.
pub fn hand(painter: &Painter, rect: Rect, color: Color32) {
    let c = rect.center();
    let s = rect.height() / 16.0;
    let palm = Rect::from_center_size(c + vec2(0.0, 2.5 * s), vec2(8.0 * s, 7.0 * s));
    painter.rect_filled(palm, 2.5 * s, color);
    for (i, height) in [5.0, 6.5, 6.0, 4.5].into_iter().enumerate() {
        let x = c.x - 3.0 * s + i as f32 * 2.0 * s;
        let finger = Rect::from_min_max(
            pos2(x - 0.8 * s, c.y - height * s + 0.5 * s),
            pos2(x + 0.8 * s, c.y + 0.5 * s),
        );
        painter.rect_filled(finger, 0.8 * s, color);
    }
    // Thumb.
    painter.line_segment(
        [pos2(c.x + 4.0 * s, c.y + 3.0 * s), pos2(c.x + 6.0 * s, c.y)],
        Stroke::new(1.6 * s, color),
    );
}

/// Signal bars: `level` of 3 lit (0: none, e.g. still connecting).
pub(crate) fn signal_bars(painter: &Painter, rect: Rect, level: usize, lit: Color32, dim: Color32) {
    let s = rect.height() / 16.0;
    for i in 0..3 {
        let height = (5.0 + 4.0 * i as f32) * s;
        let x = rect.left() + (2.0 + 4.5 * i as f32) * s;
        let bar = Rect::from_min_max(
            pos2(x, rect.bottom() - 2.0 * s - height),
            pos2(x + 3.0 * s, rect.bottom() - 2.0 * s),
        );
        painter.rect_filled(bar, 0.5 * s, if i < level { lit } else { dim });
    }
}

fn strike(painter: &Painter, rect: Rect, s: f32) {
    let a = rect.left_top() + vec2(2.0 * s, 2.0 * s);
    let b = rect.right_bottom() - vec2(2.0 * s, 2.0 * s);
    painter.line_segment([a, b], Stroke::new(3.0 * s, Color32::from_black_alpha(160)));
    painter.line_segment([a, b], Stroke::new(1.6 * s, Color32::from_rgb(235, 87, 87)));
}
