#!/usr/bin/env bash
# Builds the Linux packages into dist/ (or $CLASSROOM_DIST): a .deb and an .rpm for the app
# and for the signaling server, SHA256SUMS, and, with a signing key, a detached armored GPG
# signature of each (`*.asc`) plus the public key (`classroom-signing-key.asc`).
#
#   CLASSROOM_SIGNING_KEY=<fingerprint> scripts/package.sh      # GNUPGHOME as usual
#
# The packaging tools (cargo-deb, cargo-generate-rpm) come from crates.io, once.
# docs/packaging.md says what is in the packages and how IT verifies them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/install-system-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="${CLASSROOM_DIST:-$ROOT/dist}"
mkdir -p "$OUT"

command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb@3.8.0
command -v cargo-generate-rpm >/dev/null 2>&1 || cargo install --locked cargo-generate-rpm@0.21.1

echo "== release build"
cargo build --release --locked -p classroom -p classroom-signaling
# The packages ship the binaries without their debug information.
mkdir -p "$CARGO_TARGET_DIR/release/stripped"
for bin in classroom classroom-signaling; do
  strip --strip-debug -o "$CARGO_TARGET_DIR/release/stripped/$bin" "$CARGO_TARGET_DIR/release/$bin"
done

echo "== packages"
rm -f "$OUT"/*.deb "$OUT"/*.rpm "$OUT"/*.asc "$OUT"/SHA256SUMS
cargo deb --no-build --locked -p classroom -o "$OUT"
cargo deb --no-build --locked -p classroom-signaling -o "$OUT"
cargo generate-rpm --target-dir "$CARGO_TARGET_DIR" -p . -o "$OUT"
cargo generate-rpm --target-dir "$CARGO_TARGET_DIR" -p signaling-server -o "$OUT"
(cd "$OUT" && sha256sum -- *.deb *.rpm > SHA256SUMS)

if [ -n "${CLASSROOM_SIGNING_KEY:-}" ]; then
  echo "== signing with $CLASSROOM_SIGNING_KEY"
  for file in "$OUT"/*.deb "$OUT"/*.rpm "$OUT"/SHA256SUMS; do
    gpg --batch --yes --local-user "$CLASSROOM_SIGNING_KEY" --armor --detach-sign \
      --output "$file.asc" "$file"
  done
  gpg --batch --yes --armor --export "$CLASSROOM_SIGNING_KEY" > "$OUT/classroom-signing-key.asc"
else
  echo "(no CLASSROOM_SIGNING_KEY: packages left unsigned)"
fi
ls -l "$OUT"
