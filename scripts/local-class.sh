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
  echo "Local class \"$SESSION\": others join from a browser at http://127.0.0.1:3001/?session=$SESSION"
  echo "or with: classroom join --server http://127.0.0.1:3001 --session $SESSION"
  exec "$CARGO_TARGET_DIR/release/classroom" join --local --session "$SESSION" --instructor \
    --name "${CLASSROOM_NAME:-${USER:-Teacher}}" "$@"
fi
cargo build --release --locked -p classroom-signaling
echo "No display: starting the class server alone. Clients connect to http://127.0.0.1:3001 (Ctrl-C stops it)."
exec "$CARGO_TARGET_DIR/release/classroom-signaling" serve --dev \
  --database "${CLASSROOM_DATABASE:-$ROOT/.local-class/classroom.sqlite3}" "$@"
