#!/usr/bin/env bash
# Runs every test of the repository, the way CI does:
#   1. installs the Debian/Ubuntu packages the build and the tests need (scripts/install-system-deps.sh),
#   2. installs the Node test peers from tests/node/package-lock.json (npm ci),
#   3. cargo test for the whole workspace (unit tests, Rust protocol suite against our server and
#      our protocol on stock Node socket.io, calls (also through the browser version's own plain
#      relay), the window's snapshots and its smoke test under Xvfb),
#   4. Engine.IO v4 conformance and the Node socket.io-client protocol suite against our server
#      and our protocol on stock Node socket.io, over polling-then-upgrade and websocket only; the browser suites (Chromium,
#      Firefox), a class on the server's SFU (Chromium), and the desktop with Chromium in a class
#      on the browser version's own relay;
#   5. the Linux packages: built, signed with a throwaway key, verified, unpacked into a
#      throwaway root and checked (tests/packaging/test-packages.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/install-system-deps.sh

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: Rust is not installed; install Rust 1.94 or newer with rustup, then run this again" >&2
  exit 1
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# The window tests (snapshots, the Xvfb smoke test) want a private runtime directory.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -w "${XDG_RUNTIME_DIR}" ]; then
  XDG_RUNTIME_DIR="$(mktemp -d)"
  chmod 700 "$XDG_RUNTIME_DIR"
  export XDG_RUNTIME_DIR
fi

echo "== npm ci (tests/node)"
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)

# One build, in the release profile, for the tests, the end-to-end suites and the packages: a
# cold run builds the dependency tree once instead of once per profile (the debug profile
# already optimized every dependency, so it saved no build time), and the end-to-end suites run
# the binaries people install. Only the crates on tokio build twice: the tests' paused clock
# (tokio's test-util, a dev-dependency feature) stays out of the packaged binaries.
echo "== cargo build (release)"
cargo build --workspace --all-targets --locked --release

echo "== cargo test (release)"
cargo test --workspace --locked --release

echo "== node protocol suite"
export CLASSROOM_SIGNALING_BIN="$CARGO_TARGET_DIR/release/classroom-signaling"
export CLASSROOM_BIN="$CARGO_TARGET_DIR/release/classroom"
failed=0
for target in ours node; do
  echo "-- Engine.IO v4 conformance (raw polling and websocket) against $target"
  if ! (cd tests/node && CLASSROOM_TARGET=$target \
        node --test --test-concurrency=1 --test-reporter=spec engineio.test.mjs); then
    failed=$((failed + 1))
  fi
  for transport in polling-upgrade websocket; do
    echo "-- socket.io-client against $target over $transport"
    if ! (cd tests/node && CLASSROOM_TARGET=$target CLASSROOM_TRANSPORT=$transport \
          node --test --test-concurrency=1 --test-reporter=spec protocol.test.mjs); then
      failed=$((failed + 1))
    fi
  done
done
echo "-- the classroom controls (moderation, lock settings, waiting room, hands, reactions, private chat)"
if ! (cd tests/node && node --test --test-concurrency=1 --test-reporter=spec controls.test.mjs); then
  failed=$((failed + 1))
fi
echo "-- the classroom controls end to end: a desktop instructor and Chromium students"
if ! (cd tests/node && node --test --test-concurrency=1 --test-reporter=spec controls-browser.test.mjs); then
  failed=$((failed + 1))
fi
echo "-- the browser version's own relay: two desktops and Chromium's seed client in one class"
if ! (cd tests/node && node --test --test-concurrency=1 --test-reporter=spec seed-relay.test.mjs); then
  failed=$((failed + 1))
fi
echo "-- a browser participant (Debian's Chromium) with a desktop participant"
if ! (cd tests/node && node --test --test-concurrency=1 --test-reporter=spec browser.test.mjs); then
  failed=$((failed + 1))
fi
echo "-- the browser page's screenshots (Chromium): a class of three, chat, unread count, narrow, reconnecting"
if ! (cd tests/node && node --test --test-concurrency=1 --test-reporter=spec page-screenshots.test.mjs); then
  failed=$((failed + 1))
fi
echo "-- a class on the server's SFU: three Chromium participants and a desktop, one connection each"
if ! (cd tests/node && node --test --test-concurrency=1 --test-reporter=spec sfu.test.mjs); then
  failed=$((failed + 1))
fi
echo "-- --sfu auto: a class of Chromium and desktops grows onto the SFU and shrinks back to a mesh"
if ! (cd tests/node && node --test --test-concurrency=1 --test-reporter=spec sfu-auto.test.mjs); then
  failed=$((failed + 1))
fi
echo "-- TURN: Chromium and the desktop behind two symmetric NATs and a UDP-blocking firewall"
if ! (cd tests/node && node --test --test-concurrency=1 --test-reporter=spec turn.test.mjs); then
  failed=$((failed + 1))
fi
# Firefox ESR (VP8 only, as offline), Chromium and the desktop in one class, inside the lab
# namespace (a closed veth pair with a default route: Firefox needs one to gather candidates),
# once with the desktop preferring H.264 (the default) and once preferring VP8.
for codecs in h264,vp8 vp8,h264; do
  echo "-- Firefox, Chromium and the desktop (desktop codecs $codecs)"
  if ! (cd tests/node && CLASSROOM_DESKTOP_CODECS=$codecs ./in-lab-namespace.sh \
        node --test --test-concurrency=1 --test-reporter=spec firefox.test.mjs); then
    failed=$((failed + 1))
  fi
done
if [ "$failed" -ne 0 ]; then
  echo "node suites: $failed run(s) failed" >&2
  exit 1
fi

echo "== packages: build, sign, verify, install into a throwaway root, policy"
bash tests/packaging/test-packages.sh
echo "all tests passed"
