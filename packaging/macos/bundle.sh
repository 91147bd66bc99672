#!/usr/bin/env bash
# Builds Classroom.app from a release binary (macOS: iconutil). Signing, the .dmg and
# notarization are the next steps (.github/workflows/release.yml):
#   packaging/macos/bundle.sh <classroom binary> <output dir>
set -euo pipefail
BIN="$1"
OUT="$2"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
APP="$OUT/Classroom.app"
rm -rf "$APP"
mkdir -p "$APP/Contents/MacOS" "$APP/Contents/Resources"
cp "$BIN" "$APP/Contents/MacOS/classroom"
cp "$HERE/Info.plist" "$APP/Contents/Info.plist"
ICONSET="$OUT/classroom.iconset"
rm -rf "$ICONSET"
mkdir -p "$ICONSET"
for size in 32 64 128 256; do
  cp "$ROOT/assets/icons/classroom-$size.png" "$ICONSET/icon_${size}x${size}.png"
done
iconutil -c icns -o "$APP/Contents/Resources/classroom.icns" "$ICONSET"
rm -rf "$ICONSET"
echo "$APP"
