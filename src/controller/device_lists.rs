//! What the pickers offer, from the devices found: ids the join and share requests
//! understand ([`super::join::screen_input`] reads the screens'), labels a person reads,
//! and each screen's thumbnail put where the picker shows it.

use super::model::{DeviceLists, DeviceOption};
use crate::call::pictures::{PictureKey, PictureSink, offer_preview};
use crate::media::audio_device::AudioDeviceInfo;
use crate::media::devices::{DeviceInventory, ScreenKind};
use crate::types::Source;

/// The camera id of the test pattern (a setting, not a listed device).
pub(crate) const TEST_PATTERN: &str = "synthetic";

/// The picture key of a screen's thumbnail in the picker.
pub fn thumbnail_key(screen_id: &str) -> PictureKey {
    PictureKey::new(format!("thumbnail:{screen_id}"), Source::Screen)
}

/// The pickers' lists; thumbnails go to `pictures`.
pub(crate) fn device_lists(inventory: DeviceInventory, pictures: &dyn PictureSink) -> DeviceLists {
    let mut lists = DeviceLists {
        listed: true,
        ..DeviceLists::default()
    };
    // Only real cameras: on a machine without one the picker is empty and says so (the test
    // pattern is still there for a setting that names it).
    lists.cameras = inventory
        .cameras
        .into_iter()
        .map(|camera| DeviceOption {
            id: camera.index.to_string(),
            label: camera.name,
        })
        .collect();
    lists.microphones = inventory
        .microphones
        .into_iter()
        .map(audio_option)
        .collect();
    lists.speakers = inventory.speakers.into_iter().map(audio_option).collect();
    if inventory.portal {
        lists.screens.push(DeviceOption {
            id: "portal".into(),
            label: "Choose a screen or window…".into(),
        });
    }
    for screen in inventory.screens {
        let (id, label) = match screen.kind {
            ScreenKind::Display {
                id,
                primary,
                width,
                height,
            } => (
                format!("x11:{id}"),
                format!(
                    "{}{} ({width}×{height})",
                    screen.name,
                    if primary { ", main" } else { "" }
                ),
            ),
            ScreenKind::Window { id } => (
                format!("x11window:{id}"),
                format!("Window: {}", screen.name),
            ),
        };
        if let Some(picture) = &screen.thumbnail {
            offer_preview(pictures, &thumbnail_key(&id), picture);
        }
        lists.screens.push(DeviceOption { id, label });
    }
    lists
}

fn audio_option(device: AudioDeviceInfo) -> DeviceOption {
    DeviceOption {
        label: if device.is_default {
            format!("{} (default)", device.name)
        } else {
            device.name.clone()
        },
        id: device.name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::join::screen_input;
    use crate::media::camera::CameraInfo;
    use crate::media::devices::ScreenOption;
    use parking_lot::Mutex;

    /// Remembers which keys were shown.
    #[derive(Default)]
    struct Shown(Mutex<Vec<String>>);

    impl PictureSink for Shown {
        fn wants(&self, _: &PictureKey) -> bool {
            true
        }
        fn show(
            &self,
            key: &PictureKey,
            w: usize,
            h: usize,
            fill: &mut dyn FnMut(&mut [u8]) -> bool,
        ) {
            let mut pixels = vec![0; w * h * 4];
            if fill(&mut pixels) {
                self.0.lock().push(format!("{key:?}"));
            }
        }
        fn clear(&self, _: &PictureKey) {}
    }

    #[test]
    fn every_device_found_is_offered_with_an_id_the_requests_understand() {
        let inventory = DeviceInventory {
            cameras: vec![CameraInfo {
                index: 0,
                name: "Webcam".into(),
            }],
            microphones: vec![
                AudioDeviceInfo {
                    name: "USB".into(),
                    is_default: false,
                },
                AudioDeviceInfo {
                    name: "Built-in".into(),
                    is_default: true,
                },
            ],
            speakers: vec![],
            portal: false,
            screens: vec![
                ScreenOption {
                    kind: ScreenKind::Display {
                        id: 1,
                        primary: true,
                        width: 1920,
                        height: 1080,
                    },
                    name: "HDMI-1".into(),
                    thumbnail: Some(crate::media::I420Frame::black(64, 36)),
                },
                ScreenOption {
                    kind: ScreenKind::Window { id: 77 },
                    name: "Slides".into(),
                    thumbnail: None,
                },
            ],
        };
        let shown = Shown::default();
        let lists = device_lists(inventory, &shown);
        let ids = |options: &[DeviceOption]| -> Vec<String> {
            options.iter().map(|o| o.id.clone()).collect()
        };
        assert!(lists.listed);
        assert_eq!(ids(&lists.cameras), ["0"]);
        assert_eq!(lists.microphones[1].label, "Built-in (default)");
        assert_eq!(lists.microphones[1].id, "Built-in");
        assert_eq!(ids(&lists.screens), ["x11:1", "x11window:77"]);
        assert_eq!(lists.screens[0].label, "HDMI-1, main (1920×1080)");
        assert_eq!(lists.screens[1].label, "Window: Slides");
        for screen in &lists.screens {
            assert!(
                screen_input(&screen.id).is_some(),
                "{} is understood",
                screen.id
            );
        }
        assert_eq!(
            shown.0.lock().len(),
            1,
            "the display's thumbnail, not the window's"
        );
    }

    #[test]
    fn a_machine_without_devices_has_empty_lists_and_says_what_is_missing() {
        use crate::controller::model::{Missing, Settings};
        let lists = device_lists(DeviceInventory::default(), &Shown::default());
        assert!(lists.cameras.is_empty() && lists.microphones.is_empty());
        let settings = Settings::default();
        let missing = lists.missing(&settings);
        assert!(missing.camera && missing.microphone && missing.speaker);
        let test_inputs = Settings {
            camera: TEST_PATTERN.into(),
            microphone: Some("tone".into()),
            ..settings.clone()
        };
        let missing = lists.missing(&test_inputs);
        assert!(
            !missing.camera && !missing.microphone,
            "test inputs need no device"
        );
        assert_eq!(
            DeviceLists::default().missing(&settings),
            Missing::default(),
            "not looked for yet: nothing is missing"
        );
    }
}
