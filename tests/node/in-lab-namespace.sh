#!/usr/bin/env bash
# Runs a command inside a fresh network namespace that reaches nothing outside it: its
# loopback, plus a veth pair whose both ends stay inside, with documentation-range addresses
# (198.51.100.0/24) and a default route into it. Firefox gathers no ICE candidates without a
# default route; with this one it has a route, and nothing can leave. Needs root.
set -euo pipefail
ns="classroom-lab-$$"
cleanup() { ip netns delete "$ns" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$ns"
in_ns() { ip netns exec "$ns" "$@"; }
in_ns ip link set lo up
in_ns ip link add lab0 type veth peer name lab1
in_ns ip addr add 198.51.100.1/24 dev lab0
in_ns ip addr add 198.51.100.2/24 dev lab1
in_ns ip link set lab0 up
in_ns ip link set lab1 up
in_ns ip route add default via 198.51.100.254 dev lab0 onlink
CLASSROOM_LAB_ADDRESS=198.51.100.1 ip netns exec "$ns" "$@"
