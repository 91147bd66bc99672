#!/usr/bin/env bash
# The Linux packages, end to end: builds them with scripts/package.sh and signs them with a
# key made here, then checks what IT will check and what a machine will get:
#   1. every signature verifies against the exported public key (gpgv), SHA256SUMS matches,
#      and a tampered package is refused (so this test can fail);
#   2. the .debs unpack into a throwaway root (dpkg -x); the installed `classroom --version`
#      and `classroom-signaling --version` run; the desktop entry validates and registers the
#      classroom:// handler; the AppStream data validates; the systemd unit and the server's
#      default configuration are where the service expects them;
#   3. a policy file in the throwaway root changes what `classroom config show` reports;
#   4. the .rpms list the same files (rpm -qpl);
#   5. the Windows and macOS installer configurations and the release workflow parse.
# `--verify-only DIR` runs step 1 (with DIR's own public key) and 2–4 on packages built
# elsewhere (the release workflow).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "-- $*"; }

if [ "${1:-}" = "--verify-only" ]; then
  DIST="$(cd "$2" && pwd)"
else
  step "a signing key for this test"
  export GNUPGHOME="$WORK/gnupg"
  mkdir -m 700 "$GNUPGHOME"
  gpg --batch --quiet --passphrase '' --quick-gen-key "Classroom test signing <test@example.invalid>" ed25519 sign 1d
  KEY="$(gpg --batch --with-colons --list-secret-keys | awk -F: '/^fpr/ {print $10; exit}')"
  DIST="$WORK/dist"
  CLASSROOM_SIGNING_KEY="$KEY" CLASSROOM_DIST="$DIST" bash scripts/package.sh
fi

step "signatures and checksums"
KEYRING="$WORK/trusted.gpg"
gpg --batch --quiet --no-default-keyring --keyring "$KEYRING" --import "$DIST/classroom-signing-key.asc"
count=0
for file in "$DIST"/*.deb "$DIST"/*.rpm "$DIST"/SHA256SUMS; do
  gpgv --quiet --keyring "$KEYRING" "$file.asc" "$file" 2>/dev/null || fail "signature of $(basename "$file")"
  count=$((count + 1))
done
[ "$count" -eq 5 ] || fail "expected 2 .deb, 2 .rpm and SHA256SUMS signed, found $count files"
(cd "$DIST" && sha256sum --quiet -c SHA256SUMS) || fail "SHA256SUMS"
APP_DEB="$(ls "$DIST"/classroom_*.deb)"
SERVER_DEB="$(ls "$DIST"/classroom-signaling_*.deb)"
cp "$APP_DEB" "$WORK/tampered.deb"
printf 'x' | dd of="$WORK/tampered.deb" bs=1 seek=2000 conv=notrunc status=none
if gpgv --quiet --keyring "$KEYRING" "$APP_DEB.asc" "$WORK/tampered.deb" 2>/dev/null; then
  fail "a tampered package passed the signature check"
fi

step "install into a throwaway root"
TARGET="$WORK/root"
dpkg -x "$APP_DEB" "$TARGET"
dpkg -x "$SERVER_DEB" "$TARGET"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
[ "$("$TARGET/usr/bin/classroom" --version)" = "classroom $version" ] || fail "classroom --version"
[ "$("$TARGET/usr/bin/classroom-signaling" --version)" = "classroom-signaling $version" ] || fail "classroom-signaling --version"
DESKTOP="$TARGET/usr/share/applications/app.classroom.Classroom.desktop"
desktop-file-validate "$DESKTOP" || fail "desktop entry"
grep -qx 'MimeType=x-scheme-handler/classroom;' "$DESKTOP" || fail "the classroom:// handler is not registered"
grep -q '^Exec=classroom %u$' "$DESKTOP" || fail "the desktop entry does not pass the link to the app"
appstreamcli validate --no-net --pedantic "$TARGET/usr/share/metainfo/app.classroom.Classroom.metainfo.xml" >/dev/null || fail "AppStream data"
[ -f "$TARGET/usr/share/icons/hicolor/256x256/apps/app.classroom.Classroom.png" ] || fail "icon"
UNIT="$(find "$TARGET" -path '*/systemd/system/classroom-signaling.service' | head -1)"
[ -n "$UNIT" ] || fail "systemd unit"
grep -q '^ExecStart=/usr/bin/classroom-signaling --config /etc/classroom/signaling.toml serve$' \
  "$UNIT" || fail "unit's command"
grep -q '^User=classroom$' "$UNIT" || fail "unit's user"
if command -v systemd-analyze >/dev/null 2>&1; then
  systemd-analyze verify --root="$TARGET" "$UNIT" 2>&1 | grep -v 'Failed to' || true
fi
# Installed binaries carry no debug sections (scripts/package.sh strips them).
if readelf -S --wide "$TARGET/usr/bin/classroom" | grep -q '\.debug_info'; then fail "the app binary is not stripped"; fi
[ -f "$TARGET/etc/classroom/signaling.toml" ] || fail "server config"
dpkg-deb -f "$SERVER_DEB" Depends | grep -q adduser || fail "the server package needs adduser for its user"
dpkg-deb -e "$SERVER_DEB" "$WORK/server-control"
grep -q 'adduser --system' "$WORK/server-control/postinst" || fail "postinst creates the service user"
grep -q '^/etc/classroom/signaling.toml$' "$WORK/server-control/conffiles" || fail "the server config is a conffile"

step "the managed policy changes the effective configuration"
export CLASSROOM_CONFIG_DIR="$WORK/user-config"
unset CLASSROOM_SERVER
before="$("$TARGET/usr/bin/classroom" config show --root "$TARGET")"
echo "$before" | grep -Eq '^server_url +http://127.0.0.1:3001 +default$' || fail "default server before the policy: $before"
mkdir -p "$TARGET/etc/classroom"
cp "$TARGET/usr/share/doc/classroom/policy.example.toml" "$TARGET/etc/classroom/policy.toml"
after="$("$TARGET/usr/bin/classroom" config show --root "$TARGET")"
echo "$after"
echo "$after" | grep -Eq '^server_url +https://classroom.school.org +policy-locked$' || fail "policy server"
echo "$after" | grep -Eq '^local_class +false +policy-locked$' || fail "policy local class"
echo "$after" | grep -Eq '^ice_servers +turn:turn.school.org:3478 +policy$' || fail "policy TURN"
echo "$after" | grep -Eq '^voice_processing +true +policy$' || fail "policy sound processing"
locked="$(CLASSROOM_SERVER=http://elsewhere:3001 "$TARGET/usr/bin/classroom" config show --root "$TARGET")"
echo "$locked" | grep -Eq '^server_url +https://classroom.school.org +policy-locked$' || fail "a locked server yields to the environment: $locked"
# A reader that stops at the first line (grep -q) is no error for `config show`.
"$TARGET/usr/bin/classroom" config show --root "$TARGET" | head -c 1 >/dev/null || fail "config show into a closed pipe"
echo 'server_ulr = "typo"' > "$TARGET/etc/classroom/policy.toml"
if "$TARGET/usr/bin/classroom" config show --root "$TARGET" 2>"$WORK/err"; then
  fail "a broken policy was accepted"
fi
grep -q 'server_ulr' "$WORK/err" || fail "the error does not name the problem: $(cat "$WORK/err")"

step "rpm packages"
for rpm_file in "$DIST"/*.rpm; do
  rpm -qpl "$rpm_file" 2>/dev/null > "$WORK/rpm-files"
  case "$(basename "$rpm_file")" in
    classroom-signaling*) grep -qx /usr/bin/classroom-signaling "$WORK/rpm-files" || fail "rpm: server binary";
                          grep -qx /etc/classroom/signaling.toml "$WORK/rpm-files" || fail "rpm: server config" ;;
    classroom*) grep -qx /usr/bin/classroom "$WORK/rpm-files" || fail "rpm: app binary";
                grep -qx /usr/share/applications/app.classroom.Classroom.desktop "$WORK/rpm-files" || fail "rpm: desktop entry" ;;
  esac
done

step "Windows and macOS installer configurations, release workflow"
xmllint --noout packaging/windows/main.wxs packaging/windows/policy/Classroom.admx \
  packaging/windows/policy/en-US/Classroom.adml || fail "Windows XML"
grep -q 'Key="Software\\Classes\\classroom"' packaging/windows/main.wxs || fail "MSI registers classroom://"
python3 - <<'PY' || fail "macOS plists or the workflow"
import plistlib, yaml
info = plistlib.load(open("packaging/macos/Info.plist", "rb"))
assert info["CFBundleURLTypes"][0]["CFBundleURLSchemes"] == ["classroom"], "URL scheme"
assert info["CFBundleExecutable"] == "classroom"
entitlements = plistlib.load(open("packaging/macos/entitlements.plist", "rb"))
assert entitlements["com.apple.security.device.camera"] and entitlements["com.apple.security.device.audio-input"]
workflow = yaml.safe_load(open(".github/workflows/release.yml"))
jobs = workflow["jobs"]
assert set(jobs) == {"linux", "windows", "macos"}, jobs
text = open(".github/workflows/release.yml").read()
for needed in ["signtool sign", "signtool verify", "codesign", "notarytool submit", "stapler staple", "scripts/package.sh"]:
    assert needed in text, needed
PY
bash -n packaging/macos/bundle.sh || fail "bundle.sh"
echo "packages: all checks passed"
