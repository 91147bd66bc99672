//! The layers of `docs/architecture.md` hold: no file imports a layer its own may not, and
//! the outside crates a layer alone talks to (webrtc, egui, cpal, …) appear nowhere else.
//! The rules are read from the document itself, so the document and the code cannot drift
//! apart (in the spirit of rerun's `check_forbidden_dependencies.py`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The body of the first fenced block tagged `tag` in the document.
fn block<'a>(document: &'a str, tag: &str) -> &'a str {
    let start = document
        .find(&format!("```{tag}\n"))
        .unwrap_or_else(|| panic!("docs/architecture.md has no ```{tag} block"));
    let body = &document[start + tag.len() + 4..];
    &body[..body.find("```").expect("the block is closed")]
}

fn lines_of(block: &str) -> impl Iterator<Item = (&str, Vec<&str>)> {
    block
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (key, rest) = line.split_once(':').expect("`name: values` lines");
            let values = rest
                .split_whitespace()
                .filter(|value| *value != "-")
                .collect();
            (key.trim(), values)
        })
}

/// Outside crates per layer, from the table's last column.
fn crates_of_layers(document: &str) -> BTreeMap<String, Vec<String>> {
    let mut crates = BTreeMap::new();
    for row in document.lines().filter(|line| line.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let layer = cells[1].trim_matches('`').to_owned();
        let owned = cells[cells.len() - 2]
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect();
        crates.insert(layer, owned);
    }
    crates
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source tree") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The layer a source file belongs to: its first path component under `src/`.
fn layer_of(relative: &Path) -> Option<String> {
    let mut components = relative.components().skip(1); // "src"
    let first = components.next()?.as_os_str().to_str()?;
    let layer = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(layer, "main" | "lib")).then(|| layer.to_owned())
}

/// Every `crate::<layer>` a file names, in `use` lines, paths and doc links alike.
fn layers_named(source: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                named.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            named.insert(name);
        }
    }
    named.retain(|name| !name.is_empty());
    named
}

/// Whether `source` uses the outside crate `name` (as `name::…`, not `other_name::…` or
/// `crate::name::…`).
fn uses_crate(source: &str, name: &str) -> bool {
    let needle = format!("{name}::");
    source.match_indices(&needle).any(|(at, _)| {
        let before = source[..at].chars().next_back();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
    })
}

#[test]
fn every_layer_imports_only_what_docs_architecture_allows() {
    let document = std::fs::read_to_string(Path::new(ROOT).join("docs/architecture.md"))
        .expect("docs/architecture.md");
    let allowed: BTreeMap<&str, Vec<&str>> = lines_of(block(&document, "layers")).collect();
    let exceptions: BTreeMap<&str, Vec<&str>> = lines_of(block(&document, "exceptions")).collect();
    let owners = crates_of_layers(&document);
    assert!(
        owners
            .get("rtc")
            .is_some_and(|crates| crates.iter().any(|c| c == "webrtc")),
        "the table names webrtc as rtc's: {owners:?}"
    );

    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src"), &mut files);
    let mut violations = Vec::new();
    let mut exceptions_seen = BTreeSet::new();
    for path in files {
        let relative = path
            .strip_prefix(ROOT)
            .expect("under the root")
            .to_path_buf();
        let Some(layer) = layer_of(&relative) else {
            continue;
        };
        let shown = relative.display().to_string();
        let source = std::fs::read_to_string(&path).expect("readable source file");
        let Some(may_use) = allowed.get(layer.as_str()) else {
            violations.push(format!(
                "{shown}: layer `{layer}` is not in docs/architecture.md"
            ));
            continue;
        };
        for named in layers_named(&source) {
            if named == layer || !allowed.contains_key(named.as_str()) {
                continue; // itself, or not a layer (`crate::Foo` items of lib.rs)
            }
            if may_use.contains(&named.as_str()) {
                continue;
            }
            if exceptions
                .get(shown.as_str())
                .is_some_and(|listed| listed.contains(&named.as_str()))
            {
                exceptions_seen.insert(format!("{shown}: {named}"));
                continue;
            }
            violations.push(format!("{shown} (layer `{layer}`) imports `{named}`"));
        }
        for (owner, crates) in &owners {
            if *owner == layer {
                continue;
            }
            for name in crates {
                if uses_crate(&source, name) {
                    violations.push(format!(
                        "{shown} (layer `{layer}`) uses `{name}`, which only `{owner}` may"
                    ));
                }
            }
        }
    }
    for (file, layers) in &exceptions {
        for layer in layers {
            let exception = format!("{file}: {layer}");
            if !exceptions_seen.contains(&exception) {
                violations.push(format!(
                    "the exception `{exception}` no longer happens: remove it from \
                     docs/architecture.md"
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering broken:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_scanner_sees_grouped_imports_and_tells_crates_apart() {
    let named = layers_named("use crate::{rtc::Link, session};\nlet x = crate::media::f();");
    assert_eq!(
        named.into_iter().collect::<Vec<_>>(),
        vec!["media", "rtc", "session"]
    );
    assert!(uses_crate("use webrtc::peer;", "webrtc"));
    assert!(!uses_crate("use crate::rtc::Peer;", "rtc"));
    assert!(!uses_crate("use librtc::x;", "rtc"));
    assert!(uses_crate("let e: rtc::Error;", "rtc"));
}

/// What opens a device or starts capture: none of it may appear in the window's code, which
/// reaches devices only through the controller.
const DEVICE_OPENERS: &[&str] = &[
    "audio_device::",
    "media::camera",
    "media::screen",
    "portal_screen",
    "SystemDevices",
    "open_video",
    "CapturePreview",
];

#[test]
fn the_window_opens_no_device() {
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src/ui"), &mut files);
    assert!(!files.is_empty(), "src/ui has the window's files");
    let mut found = Vec::new();
    for path in files {
        let source = std::fs::read_to_string(&path).expect("readable source file");
        for opener in DEVICE_OPENERS {
            if source.contains(opener) {
                found.push(format!("{} names `{opener}`", path.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the window opens devices:\n{}",
        found.join("\n")
    );
}
