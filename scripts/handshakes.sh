#!/usr/bin/env bash
# Regenerate docs/HANDSHAKES.md: build synack, then run every command of the tour against
# the real daemon inside a private network namespace (nothing touches the machine's own
# network) and paste what they print. Needs root, tcpdump, nc (netcat-openbsd), curl and
# python3-scapy (scripts/test.sh --deps-only installs them).
#
#   scripts/handshakes.sh            write docs/HANDSHAKES.md
#   scripts/handshakes.sh --out F    write F instead
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
    echo "the tour needs root (a network namespace and a TUN device): run it as root" >&2
    exit 1
fi
cargo build --release --quiet --bin synack
exec unshare -n -- /usr/bin/python3 scripts/handshakes.py "$@"
