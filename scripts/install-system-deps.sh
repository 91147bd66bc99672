#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages that building and testing Classroom needs.
# Idempotent: packages already present are skipped quickly. Run as root or with sudo available.
set -euo pipefail

PACKAGES=(
  # build toolchain helpers
  build-essential pkg-config cmake nasm clang libclang-dev mold libssl-dev
  # media stack: ALSA (cpal), V4L (nokhwa), PipeWire/DBus (scap), X11 (xcap), Opus, VP8
  libasound2-dev alsa-utils libv4l-dev libpipewire-0.3-dev libspa-0.2-dev libdbus-1-dev
  libxcb1-dev libxcb-randr0-dev libxcb-shm0-dev libxrandr-dev libopus-dev libvpx-dev
  # UI: winit/wgpu under a virtual display
  libxkbcommon-dev libwayland-dev libgbm-dev libudev-dev mesa-vulkan-drivers xvfb imagemagick xdotool
  # signaling server state
  libsqlite3-dev sqlite3
  # tests: Node socket.io peers, network namespaces, audio fixtures
  nodejs iproute2 espeak-ng sox chromium firefox-esr
  # the page's screenshot tests: the emoji of its reactions and marks, as users' systems have them
  fonts-noto-color-emoji
  # TURN lab and benchmark: NAT rules, the test certificates, coturn (the throughput anchor),
  # the system's trusted certificates (the desktop verifies a TURN server's TLS against them)
  iptables openssl coturn ca-certificates
  # packaging: signing, checking packages and installer configurations
  gnupg rpm desktop-file-utils appstream libxml2-utils python3-yaml
  # benchmarks: a sound server with devices that keep real time (PulseAudio null sink/source);
  # Janus 1.1.2, the SFU benchmark's anchor (its VideoRoom plugin, driven over HTTP)
  pulseaudio libasound2-plugins janus
)
# NodeSource's nodejs package ships npm itself; Debian's separate npm package conflicts with it.
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
