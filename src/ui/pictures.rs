//! Pictures on their way to the screen. Media threads write each decoded or captured picture
//! straight into the pixel buffer of an `egui` image ([`PictureBoard`], the call's
//! [`PictureSink`]); the UI thread moves the newest one of each tile into its texture
//! ([`TileTextures`]), so the upload is the only copy. A tile whose last picture has not been
//! drawn yet gets no new conversion, and each new picture asks for one repaint.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use egui::{Color32, ColorImage, TextureHandle, TextureOptions};
use parking_lot::Mutex;

use crate::call::pictures::{PictureKey, PictureSink};

#[derive(Default)]
struct Slot {
    /// The newest picture not yet moved into a texture.
    pending: Option<ColorImage>,
    /// The tile shows nothing any more.
    cleared: bool,
}

/// The newest picture of every tile, shared by the media threads and the UI thread.
#[derive(Default)]
pub struct PictureBoard {
    slots: Mutex<HashMap<PictureKey, Slot>>,
    repaint: OnceLock<egui::Context>,
}

impl PictureBoard {
    pub fn new() -> Arc<Self> {
        Arc::new(PictureBoard::default())
    }

    /// New pictures wake this context.
    pub fn attach(&self, ctx: &egui::Context) {
        let _ = self.repaint.set(ctx.clone());
    }

    fn wake(&self) {
        if let Some(ctx) = self.repaint.get() {
            ctx.request_repaint();
        }
    }

    /// Takes what changed since the last call: new pictures and cleared tiles.
    fn take_changes(&self) -> Vec<(PictureKey, Option<ColorImage>)> {
        let mut slots = self.slots.lock();
        let mut changes = Vec::new();
        slots.retain(|key, slot| {
            if let Some(image) = slot.pending.take() {
                changes.push((key.clone(), Some(image)));
            } else if slot.cleared {
                changes.push((key.clone(), None));
                return false;
            }
            true
        });
        changes
    }

    /// Puts a picture on the board directly (tests and the UI benchmark feed tiles this way).
    pub fn put(&self, key: &PictureKey, image: ColorImage) {
        let mut slots = self.slots.lock();
        let slot = slots.entry(key.clone()).or_default();
        slot.pending = Some(image);
        slot.cleared = false;
        drop(slots);
        self.wake();
    }
}

impl PictureSink for PictureBoard {
    fn wants(&self, key: &PictureKey) -> bool {
        self.slots
            .lock()
            .get(key)
            .is_none_or(|slot| slot.pending.is_none())
    }

    fn show(
        &self,
        key: &PictureKey,
        width: usize,
        height: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> bool,
    ) {
        // Converted outside the lock, straight into the image's own pixels.
        let mut pixels = vec![Color32::BLACK; width * height];
        if !fill(bytemuck::cast_slice_mut(&mut pixels)) {
            return;
        }
        self.put(key, ColorImage::new([width, height], pixels));
    }

    fn clear(&self, key: &PictureKey) {
        let mut slots = self.slots.lock();
        let slot = slots.entry(key.clone()).or_default();
        slot.pending = None;
        slot.cleared = true;
        drop(slots);
        self.wake();
    }
}

/// The UI thread's textures, one per tile that has a picture.
#[derive(Default)]
pub struct TileTextures {
    textures: HashMap<PictureKey, TextureHandle>,
}

impl TileTextures {
    /// Moves new pictures into their textures; drops the textures of cleared tiles.
    pub fn sync(&mut self, ctx: &egui::Context, board: &PictureBoard) {
        for (key, image) in board.take_changes() {
            match image {
                Some(image) => match self.textures.get_mut(&key) {
                    Some(texture) => texture.set(image, TextureOptions::LINEAR),
                    None => {
                        let name = format!("tile-{}-{:?}", key.user_id, key.source);
                        let texture = ctx.load_texture(name, image, TextureOptions::LINEAR);
                        self.textures.insert(key, texture);
                    }
                },
                None => {
                    self.textures.remove(&key);
                }
            }
        }
    }

    pub fn get(&self, key: &PictureKey) -> Option<&TextureHandle> {
        self.textures.get(key)
    }

    /// Forgets tiles that are no longer in the class.
    pub fn retain(&mut self, keep: impl Fn(&PictureKey) -> bool) {
        self.textures.retain(|key, _| keep(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Source;

    #[test]
    fn a_tile_gets_no_new_picture_until_the_last_one_was_taken() {
        let board = PictureBoard::default();
        let key = PictureKey::new("ada", Source::Camera);
        assert!(board.wants(&key));
        board.show(&key, 2, 2, &mut |out| {
            out.fill(200);
            true
        });
        assert!(!board.wants(&key), "the first picture was not drawn yet");
        let changes = board.take_changes();
        assert_eq!(changes.len(), 1);
        let image = changes[0].1.as_ref().unwrap();
        assert_eq!(image.size, [2, 2]);
        assert_eq!(
            image.pixels[0],
            Color32::from_rgba_premultiplied(200, 200, 200, 200)
        );
        assert!(board.wants(&key));
        board.clear(&key);
        let changes = board.take_changes();
        assert_eq!(changes.len(), 1);
        assert!(changes[0].1.is_none(), "a cleared tile is reported once");
        assert!(board.take_changes().is_empty());
    }

    #[test]
    fn a_failed_conversion_shows_nothing() {
        let board = PictureBoard::default();
        let key = PictureKey::new("ada", Source::Screen);
        board.show(&key, 4, 4, &mut |_| false);
        assert!(board.take_changes().is_empty());
    }
}
