#!/usr/bin/env bash
# synack benchmark: synack vs smoltcp on a TUN vs the kernel's TCP over veth, plus the raw TUN
# packet-rate ceiling, at MTU 1500 and 9000, with one client program and the same byte counts.
#
# Everything runs inside private network namespaces created here (only 198.18.0.0/15) and
# removed on exit. Needs root. Every wait is bounded. See docs/PERFORMANCE.md.
#
# Usage: scripts/bench.sh [--runs N] [--quick] [--mtu 1500,9000] [--servers synack,smoltcp,kernel,tun]
#                         [--bytes N] [--no-build] [--out DIR]
set -euo pipefail

usage() {
    cat <<'EOF'
scripts/bench.sh — synack vs smoltcp vs kernel TCP, plus the raw TUN ceiling

  --runs N        runs per figure; each figure is the median (default 5; --quick: 3)
  --quick         smoke run: small transfers and counts (under 2 minutes)
  --mtu LIST      comma-separated MTUs (default 1500,9000)
  --servers LIST  subset of synack,smoltcp,kernel,tun (default all)
  --bytes N       bytes per transfer (default 1 GiB; --quick: 64 MiB)
  --no-build      use the existing release binaries
  --out DIR       where latest.{md,csv,png,jsonl} go (default bench/results)
  SYNACK_ARGS     extra arguments for synack (environment variable)
EOF
}

RUNS=""
QUICK=0
MTUS="1500,9000"
SERVERS="synack,smoltcp,kernel,tun"
BYTES=""
BUILD=1
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/bench/results"
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --mtu|--mtus) MTUS=$2; shift 2 ;;
        --servers) SERVERS=$2; shift 2 ;;
        --bytes) BYTES=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

if [ "$QUICK" = 1 ]; then
    : "${RUNS:=3}" "${BYTES:=67108864}"
    CAP=3          # seconds at most per transfer
    COUNT=1000     # connect-and-close per connections/s measurement
    TUN_SECS=0.5
else
    : "${RUNS:=5}" "${BYTES:=1073741824}"
    CAP=6
    COUNT=5000
    TUN_SECS=2
fi
CONNS=4            # parallel connections (throughput and connections/s)
case "$RUNS" in ''|*[!0-9]*) echo "bench.sh: --runs needs a number" >&2; exit 2 ;; esac
[ "$RUNS" -ge 1 ] && [ "$RUNS" -le 50 ] || { echo "bench.sh: --runs must be 1..50" >&2; exit 2; }
# Each (TIME-WAIT-ing) client port is used once per namespace: stay well inside 64k ports.
[ $((RUNS * COUNT * 2)) -le 60000 ] || COUNT=$((60000 / (RUNS * 2)))

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
has() { case ",$SERVERS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

[ "$(id -u)" = 0 ] || { echo "bench.sh: needs root (network namespaces and TUN devices)" >&2; exit 1; }
for tool in ip timeout cargo; do
    command -v "$tool" >/dev/null || { echo "bench.sh: missing $tool" >&2; exit 1; }
done
[ -c /dev/net/tun ] || { echo "bench.sh: /dev/net/tun missing" >&2; exit 1; }

cd "$ROOT"
if [ "$BUILD" = 1 ]; then
    log "building (release)"
    # synack may fail to build or run; its column is then n/a and the rest still runs.
    cargo build --release --quiet || log "synack failed to build: its figures will be n/a"
    cargo build --release --quiet -p synack-bench
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
for b in bench-client smoltcp-server kernel-server tun-rate; do
    [ -x "$BIN/$b" ] || { echo "bench.sh: $BIN/$b not built" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/synack-bench.XXXXXX)
RAW="$WORK/raw.jsonl"
: >"$RAW"
PFX="sbn$$"
NAMESPACES=()
PIDS=()

cleanup() {
    local pid ns
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    for ns in "${NAMESPACES[@]}"; do
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ns_new NAME: a private namespace with loopback up and a client port range wide enough for
# the connections/s runs (each closed client port sits in TIME-WAIT for 60 s).
ns_new() {
    ip netns add "$1"
    NAMESPACES+=("$1")
    ip -n "$1" link set lo up
    ip netns exec "$1" sysctl -qw net.ipv4.ip_local_port_range="1024 65535" \
        net.ipv4.tcp_max_tw_buckets=262144 >/dev/null
}

ns_del() {
    local ns keep=()
    ip netns del "$1" 2>/dev/null || true
    for ns in "${NAMESPACES[@]}"; do [ "$ns" = "$1" ] || keep+=("$ns"); done
    NAMESPACES=("${keep[@]}")
}

# record SERVER MTU FIGURE RUN JSON-or-empty
record() {
    printf '{"server":"%s","mtu":%s,"figure":"%s","run":%s,"r":%s}\n' \
        "$1" "$2" "$3" "$4" "${5:-null}" >>"$RAW"
}

# client NS ARGS...: runs bench-client in NS, prints its JSON line (empty on failure).
client() {
    local ns=$1; shift
    timeout $((CAP + 30)) ip netns exec "$ns" "$BIN/bench-client" "$@" 2>>"$WORK/client.log" || true
}

# start_server NS LOG CMD...: starts a server in NS; sets SERVER_PID.
start_server() {
    local ns=$1 logf=$2; shift 2
    ip netns exec "$ns" "$@" >"$logf" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
}

# stop_server SERVER MTU: records peak RSS, then stops SERVER_PID (TERM, then KILL).
stop_server() {
    local kib
    kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || true)
    if [ -n "$kib" ]; then
        record "$1" "$2" rss 0 "{\"kib\":$kib}"
    else
        record "$1" "$2" rss 0 ""
    fi
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$SERVER_PID" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# measure SERVER MTU NS IP: the transfer and connection-rate figures, RUNS times.
measure() {
    local server=$1 mtu=$2 ns=$3 ip=$4 run line
    local common=(--server-pid "$SERVER_PID" --max-secs "$CAP")
    for run in $(seq 1 "$RUNS"); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "$server (MTU $mtu) died; remaining runs are n/a"
            return
        fi
        line=$(client "$ns" upload "$ip:9" "$BYTES" "${common[@]}")
        record "$server" "$mtu" up1 "$run" "$line"
        line=$(client "$ns" download "$ip:19" "$BYTES" "${common[@]}")
        record "$server" "$mtu" down1 "$run" "$line"
        line=$(client "$ns" upload "$ip:9" "$BYTES" -c "$CONNS" "${common[@]}")
        record "$server" "$mtu" upN "$run" "$line"
        line=$(client "$ns" download "$ip:19" "$BYTES" -c "$CONNS" "${common[@]}")
        record "$server" "$mtu" downN "$run" "$line"
        line=$(client "$ns" connrate "$ip:9" "$COUNT" -c 1 --max-secs "$CAP")
        record "$server" "$mtu" cps_seq "$run" "$line"
        line=$(client "$ns" connrate "$ip:9" "$COUNT" -c "$CONNS" --max-secs "$CAP")
        record "$server" "$mtu" cps_par "$run" "$line"
        log "$server MTU $mtu run $run/$RUNS: $(tail -n 6 "$RAW" | grep -o '"gbps":[0-9.]*\|"conns_per_s":[0-9.]*' | tr '\n' ' ')"
    done
}

# bench_tun SERVER MTU CMD...: a TUN server (answers as 198.18.0.2) in its own namespace.
bench_tun() {
    local server=$1 mtu=$2; shift 2
    local ns="$PFX-$server-$mtu"
    ns_new "$ns"
    log "$server, MTU $mtu"
    start_server "$ns" "$WORK/$server-$mtu.log" "$@"
    if [ -n "$(client "$ns" wait 198.18.0.2:9 --max-secs 10)" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        measure "$server" "$mtu" "$ns" 198.18.0.2
    else
        log "$server (MTU $mtu) did not come up: its figures are n/a. Last log lines:"
        tail -n 5 "$WORK/$server-$mtu.log" >&2 || true
    fi
    stop_server "$server" "$mtu"
    ns_del "$ns"
}

# bench_kernel MTU: kernel-server in one namespace, client in another, joined by veth.
bench_kernel() {
    local mtu=$1
    local a="$PFX-kc-$mtu" s="$PFX-ks-$mtu"
    ns_new "$a"
    ns_new "$s"
    log "kernel (veth), MTU $mtu"
    ip -n "$a" link add veth0 mtu "$mtu" type veth peer name veth1 mtu "$mtu" netns "$s"
    ip -n "$a" addr add 198.18.1.1/24 dev veth0
    ip -n "$s" addr add 198.18.1.2/24 dev veth1
    ip -n "$a" link set veth0 up
    ip -n "$s" link set veth1 up
    start_server "$s" "$WORK/kernel-$mtu.log" "$BIN/kernel-server" --addr 198.18.1.2
    if [ -n "$(client "$a" wait 198.18.1.2:9 --max-secs 10)" ]; then
        measure kernel "$mtu" "$a" 198.18.1.2
    else
        log "kernel-server (MTU $mtu) did not come up"
    fi
    stop_server kernel "$mtu"
    ns_del "$a"
    ns_del "$s"
}

# bench_tunrate MTU: the raw TUN read and write ceilings.
bench_tunrate() {
    local mtu=$1 ns="$PFX-tr-$mtu" run line
    ns_new "$ns"
    log "raw TUN ceiling, MTU $mtu"
    for run in $(seq 1 "$RUNS"); do
        line=$(timeout 30 ip netns exec "$ns" "$BIN/tun-rate" read --name trr0 --mtu "$mtu" --secs "$TUN_SECS" 2>>"$WORK/tun-rate.log" || true)
        record tun "$mtu" tun_read "$run" "$line"
        line=$(timeout 30 ip netns exec "$ns" "$BIN/tun-rate" write --name trw0 --mtu "$mtu" --secs "$TUN_SECS" 2>>"$WORK/tun-rate.log" || true)
        record tun "$mtu" tun_write "$run" "$line"
    done
    ns_del "$ns"
}

START=$(date +%s)
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
log "runs=$RUNS bytes=$BYTES cap=${CAP}s count=$COUNT mtus=$MTUS servers=$SERVERS (load $LOAD)"
IFS=, read -r -a MTU_LIST <<<"$MTUS"
for mtu in "${MTU_LIST[@]}"; do
    case "$mtu" in ''|*[!0-9]*) echo "bench.sh: bad MTU $mtu" >&2; exit 2 ;; esac
    # synack creates, addresses and brings up its own TUN (synack0).
    if has synack; then
        # shellcheck disable=SC2086
        bench_tun synack "$mtu" "$BIN/synack" --mtu "$mtu" ${SYNACK_ARGS:-}
    fi
    if has smoltcp; then
        bench_tun smoltcp "$mtu" "$BIN/smoltcp-server" --name smol0 --mtu "$mtu"
    fi
    if has kernel; then bench_kernel "$mtu"; fi
    if has tun; then bench_tunrate "$mtu"; fi
done
log "measurements done in $(( $(date +%s) - START )) s"

mkdir -p "$OUT"
cp "$RAW" "$OUT/latest.jsonl"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
if ! "$PY" -c 'import matplotlib' 2>/dev/null && command -v apt-get >/dev/null; then
    log "installing python3-matplotlib for the chart"
    apt-get install -y -qq python3-matplotlib >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq python3-matplotlib >/dev/null 2>&1; } ||
        log "could not install python3-matplotlib: no chart"
fi
"$PY" "$ROOT/bench/report.py" "$RAW" "$OUT" --mtus "$MTUS" --runs "$RUNS" --bytes "$BYTES" \
    --cap "$CAP" --conns "$CONNS" --count "$COUNT" --load "$LOAD" \
    --commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" \
    --date "$(date -u '+%Y-%m-%d %H:%M UTC')"
log "wrote $OUT/latest.md, latest.csv, latest.png, latest.jsonl (total $(( $(date +%s) - START )) s)"
