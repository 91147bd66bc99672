#!/usr/bin/env bash
# Starts a local class: the signaling server in development mode on http://127.0.0.1:3001
# (the browser version's default URL). Installs what the build needs first.
# Pass extra server flags after the script name, e.g. --listen 0.0.0.0:3001.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/install-system-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build --release --locked -p classroom-signaling
echo "Local class server starting. Clients connect to http://127.0.0.1:3001 (Ctrl-C stops it)."
exec "$CARGO_TARGET_DIR/release/classroom-signaling" serve --dev \
  --database "${CLASSROOM_DATABASE:-$ROOT/.local-class/classroom.sqlite3}" "$@"
