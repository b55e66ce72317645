#!/usr/bin/env bash
# Make the README's picture, docs/connection.png: synack in a private network namespace with
# --impair loss=1%, a 4 MB download with curl, then headless chromium on that connection's
# page (sequence diagram, time-sequence and congestion graphs). Needs root, curl and chromium
# (scripts/test.sh --deps-only installs them). Nothing touches the machine's own network.
#
#   scripts/screenshot.sh            write docs/connection.png
#   scripts/screenshot.sh OUT.png    write OUT.png instead
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
    echo "the screenshot needs root (a network namespace and a TUN device): run it as root" >&2
    exit 1
fi
out=$(realpath -m "${1:-docs/connection.png}")
cargo build --release --quiet --bin synack
exec unshare -n -m -- bash -s "$out" <<'INNER'
set -euo pipefail
out=$1
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait || true; rm -rf "$work"' EXIT
mount --make-rprivate / && mkdir -p /run/synack && mount -t tmpfs tmpfs /run/synack
ip link set lo up
target/release/synack --impair loss=1%,delay=10ms --control "$work/synack.sock" >"$work/synack.log" 2>&1 &
for _ in $(seq 100); do
    curl -s -o /dev/null -m 1 http://198.18.0.2/ && break
    sleep 0.1
done
# --impair: 1% loss and 10 ms each way (a 20 ms RTT), so the graphs have room in time.
# The transfer to look at: 4 MB, slow start, losses, fast recovery (and, with luck, an RTO).
curl -s -o /dev/null -m 60 -w 'downloaded %{size_download} bytes in %{time_total} s\n' \
    http://198.18.0.2/bytes/4000000 --local-port 40000
sleep 0.5
page=http://198.18.0.2/connections/198.18.0.2/80/198.18.0.1/40000
curl -s -m 5 "$page" >"$work/page.html"; grep -q "graph time-sequence" "$work/page.html" || { echo "no graphs on $page:" >&2; head -c 3000 "$work/page.html" >&2; tail "$work/synack.log" >&2; exit 1; }
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --no-proxy-server --hide-scrollbars --user-data-dir="$work/profile" \
    --window-size=1000,1500 --screenshot="$out" "$page" 2>"$work/chromium.log" \
    || { tail "$work/chromium.log" >&2; exit 1; }
echo "wrote $out"
INNER
