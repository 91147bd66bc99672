#!/usr/bin/env bash
# Starts a local class: the desktop app with the class server running inside it on
# http://127.0.0.1:3001 (the browser version's default URL), straight into the class's
# pre-join check. Installs what the build needs first. Without a display (no $DISPLAY or
# $WAYLAND_DISPLAY) it starts the class server alone.
#   CLASSROOM_SESSION (default demo), CLASSROOM_NAME (default: your login name).
# Extra arguments go to `classroom join` (or to the server when there is no display).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/install-system-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
SESSION="${CLASSROOM_SESSION:-demo}"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  cargo build --release --locked -p classroom
  # The app prints the invitation links: they carry this launch's random key, without which
  # the local class lets no one in.
  exec "$CARGO_TARGET_DIR/release/classroom" join --local --session "$SESSION" --instructor \
    --name "${CLASSROOM_NAME:-${USER:-Teacher}}" "$@"
fi
cargo build --release --locked -p classroom-signaling
# As the app's own local class: loopback only, pages of this machine only, a random key.
KEY="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
echo "No display: starting the class server alone (Ctrl-C stops it). Others on this computer join"
echo "from a browser at http://127.0.0.1:3001/?session=$SESSION&key=$KEY"
echo "or with: classroom join --server http://127.0.0.1:3001 --session $SESSION --key $KEY"
exec "$CARGO_TARGET_DIR/release/classroom-signaling" serve --dev --listen 127.0.0.1:3001 \
  --allowed-origin loopback --join-key "$KEY" \
  --database "${CLASSROOM_DATABASE:-$ROOT/.local-class/classroom.sqlite3}" "$@"
