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

# ns_new NAME: a private namespace with loopback up and the widest client port range.
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

# Per live server: the namespace its client runs in, its PID, the address it answers on, and
# the client-side interface and /24 (for fresh source addresses).
declare -A S_CNS S_PID S_IP S_IFACE S_NET
LIVE=()

# start_server NAME MTU CLIENT_NS SERVER_NS IP IFACE NET CMD...: starts a server and waits
# (at most ~10 s, less if it exits) until it accepts connections; on success NAME joins LIVE,
# otherwise its figures are n/a.
start_server() {
    local name=$1 mtu=$2 cns=$3 sns=$4 ip=$5 iface=$6 net=$7 pid _
    shift 7
    local logf="$WORK/$name-$mtu.log"
    ip netns exec "$sns" "$@" >"$logf" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    S_CNS[$name]=$cns S_PID[$name]=$pid S_IP[$name]=$ip S_IFACE[$name]=$iface S_NET[$name]=$net
    for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || break
        if [ -n "$(client "$cns" wait "$ip:9" --max-secs 0.25)" ]; then
            LIVE+=("$name")
            return 0
        fi
    done
    log "$name (MTU $mtu) did not come up: its figures are n/a. Its log says:"
    grep -m 2 -i 'panicked\|error' "$logf" >&2 || tail -n 5 "$logf" >&2 || true
    stop_server "$name" "$mtu"
}

# stop_server NAME MTU: records its peak RSS, then stops it (TERM, then KILL).
stop_server() {
    local pid=${S_PID[$1]} kib p keep=()
    kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    if [ -n "$kib" ] && is_live "$1"; then
        record "$1" "$2" rss 0 "{\"kib\":$kib}"
    else
        record "$1" "$2" rss 0 ""
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

is_live() {
    local n
    for n in "${LIVE[@]}"; do [ "$n" = "$1" ] && return 0; done
    return 1
}

# fresh_source NS IFACE NET I: adds NET.(100+I)/24 on IFACE in NS and prints it. Each
# connections/s measurement connects from its own address, hence its own port space (closed
# client ports sit in TIME-WAIT for 60 s, and a full run makes tens of thousands).
fresh_source() {
    local addr="$3.$((100 + $4))"
    ip -n "$1" addr add "$addr/24" dev "$2" 2>/dev/null || true
    echo "$addr"
}

# measure_run NAME MTU RUN: one run of the transfer and connection-rate figures.
measure_run() {
    local name=$1 mtu=$2 run=$3 line src
    local ns=${S_CNS[$name]} ip=${S_IP[$name]} iface=${S_IFACE[$name]} net=${S_NET[$name]}
    local common=(--server-pid "${S_PID[$name]}" --max-secs "$CAP")
    local fig
    if ! kill -0 "${S_PID[$name]}" 2>/dev/null; then
        log "$name (MTU $mtu) has died: run $run is n/a"
        for fig in up1 down1 upN downN cps_seq cps_par; do record "$name" "$mtu" "$fig" "$run" ""; done
        return
    fi
    line=$(client "$ns" upload "$ip:9" "$BYTES" "${common[@]}")
    record "$name" "$mtu" up1 "$run" "$line"
    line=$(client "$ns" download "$ip:19" "$BYTES" "${common[@]}")
    record "$name" "$mtu" down1 "$run" "$line"
    line=$(client "$ns" upload "$ip:9" "$BYTES" -c "$CONNS" "${common[@]}")
    record "$name" "$mtu" upN "$run" "$line"
    line=$(client "$ns" download "$ip:19" "$BYTES" -c "$CONNS" "${common[@]}")
    record "$name" "$mtu" downN "$run" "$line"
    src=$(fresh_source "$ns" "$iface" "$net" $((2 * run - 2)))
    line=$(client "$ns" connrate "$ip:9" "$COUNT" -c 1 --bind "$src" "${common[@]}")
    record "$name" "$mtu" cps_seq "$run" "$line"
    src=$(fresh_source "$ns" "$iface" "$net" $((2 * run - 1)))
    line=$(client "$ns" connrate "$ip:9" "$COUNT" -c "$CONNS" --bind "$src" "${common[@]}")
    record "$name" "$mtu" cps_par "$run" "$line"
    log "  $name: $(tail -n 6 "$RAW" | grep -o '"gbps":[0-9.]*\|"conns_per_s":[0-9.]*' |
        sed 's/.*://; s/\(\.[0-9][0-9]\)[0-9]*/\1/' | tr '\n' ' ')(Gbit/s up down upN downN, conn/s seq par)"
}

# tunrate_run NS MTU RUN: one run of the raw TUN read and write ceilings.
tunrate_run() {
    local ns=$1 mtu=$2 run=$3 line
    line=$(timeout 30 ip netns exec "$ns" "$BIN/tun-rate" read --name trr0 --mtu "$mtu" \
        --secs "$TUN_SECS" 2>>"$WORK/tun-rate.log" || true)
    record tun "$mtu" tun_read "$run" "$line"
    line=$(timeout 30 ip netns exec "$ns" "$BIN/tun-rate" write --name trw0 --mtu "$mtu" \
        --secs "$TUN_SECS" 2>>"$WORK/tun-rate.log" || true)
    record tun "$mtu" tun_write "$run" "$line"
    # The same with the TUN's offloads (64 KiB super-packets), as synack opens its TUN.
    line=$(timeout 30 ip netns exec "$ns" "$BIN/tun-rate" read --offload --name tro0 --mtu "$mtu" \
        --secs "$TUN_SECS" 2>>"$WORK/tun-rate.log" || true)
    record tun "$mtu" tun_read_offload "$run" "$line"
    line=$(timeout 30 ip netns exec "$ns" "$BIN/tun-rate" write --offload --name two0 --mtu "$mtu" \
        --secs "$TUN_SECS" 2>>"$WORK/tun-rate.log" || true)
    record tun "$mtu" tun_write_offload "$run" "$line"
    log "  tun: $(tail -n 4 "$RAW" | grep -o '"gbps":[0-9.]*' | sed 's/.*://; s/\(\.[0-9][0-9]\)[0-9]*/\1/' |
        tr '\n' ' ')(Gbit/s read write, with offload read write)"
}

# bench_mtu MTU: starts every selected server at this MTU, each in its own namespace(s), then
# runs the measurements round-robin (run 1 of each, run 2 of each, ...) so that a busy moment
# of the machine hits all of them alike, then stops them.
bench_mtu() {
    local mtu=$1 name run n
    LIVE=()
    if has synack; then
        # synack creates, addresses and brings up its own TUN (synack0). Its control socket
        # goes in the work directory: the default, /run/synack/synack0.sock, is shared by every
        # synack on the machine (namespaces do not separate paths), and a daemon already
        # running there (a test, another worktree's benchmark) would make this one refuse
        # to start.
        ns_new "$PFX-synack-$mtu"
        # shellcheck disable=SC2086
        start_server synack "$mtu" "$PFX-synack-$mtu" "$PFX-synack-$mtu" 198.18.0.2 synack0 198.18.0 \
            "$BIN/synack" --mtu "$mtu" --control "$WORK/synack-$mtu.sock" ${SYNACK_ARGS:-}
    fi
    if has smoltcp; then
        ns_new "$PFX-smoltcp-$mtu"
        start_server smoltcp "$mtu" "$PFX-smoltcp-$mtu" "$PFX-smoltcp-$mtu" 198.18.0.2 smol0 198.18.0 \
            "$BIN/smoltcp-server" --name smol0 --mtu "$mtu"
    fi
    if has kernel; then
        local a="$PFX-kc-$mtu" s="$PFX-ks-$mtu"
        ns_new "$a"
        ns_new "$s"
        if ip -n "$a" link add veth0 mtu "$mtu" type veth peer name veth1 mtu "$mtu" netns "$s" &&
            ip -n "$a" addr add 198.18.1.1/24 dev veth0 &&
            ip -n "$s" addr add 198.18.1.2/24 dev veth1 &&
            ip -n "$a" link set veth0 up &&
            ip -n "$s" link set veth1 up; then
            start_server kernel "$mtu" "$a" "$s" 198.18.1.2 veth0 198.18.1 \
                "$BIN/kernel-server" --addr 198.18.1.2
        else
            log "could not set up the veth pair at MTU $mtu: kernel figures are n/a"
        fi
    fi
    if has tun; then ns_new "$PFX-tr-$mtu"; fi
    for run in $(seq 1 "$RUNS"); do
        log "MTU $mtu, run $run/$RUNS"
        for name in "${LIVE[@]}"; do measure_run "$name" "$mtu" "$run"; done
        if has tun; then tunrate_run "$PFX-tr-$mtu" "$mtu" "$run"; fi
    done
    for name in "${LIVE[@]}"; do stop_server "$name" "$mtu"; done
    for n in "${NAMESPACES[@]}"; do ns_del "$n"; done
}

START=$(date +%s)
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
log "runs=$RUNS bytes=$BYTES cap=${CAP}s count=$COUNT mtus=$MTUS servers=$SERVERS (load $LOAD)"
if awk -v l="${LOAD%% *}" 'BEGIN { exit !(l > 0.7) }'; then
    log "warning: the machine is busy (1-minute load ${LOAD%% *}): figures will be noisy"
fi
IFS=, read -r -a MTU_LIST <<<"$MTUS"
for mtu in "${MTU_LIST[@]}"; do
    case "$mtu" in ''|*[!0-9]*) echo "bench.sh: bad MTU $mtu" >&2; exit 2 ;; esac
    bench_mtu "$mtu"
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
