#!/usr/bin/env bash
# synack benchmark: synack vs smoltcp on a TUN vs the kernel's TCP over veth, plus the raw TUN
# packet-rate ceiling, at MTU 1500 and 9000, with one client program and the same byte counts.
#
# Everything runs inside private network namespaces created here (only 198.18.0.0/15) and
# removed on exit. Needs root. Every wait is bounded. See docs/PERFORMANCE.md.
#
# Usage: scripts/bench.sh [--runs N] [--quick] [--mtu 1500,9000] [--servers synack,smoltcp,kernel,tun]
#                         [--bytes N] [--no-build] [--out DIR] [--suite main|scale|all] [--scale]
#                         [--baseline REV] [--delays 5ms,...] [--scale-conns N] [--scale-bytes N]
#                         [--scale-parts delay,conns,load] [--suite forward|transparent|loss]
#
# The scale suite (issue 9: long fat paths, 100,000 connections, ab) is described in
# docs/PERFORMANCE.md, "Scale"; it writes bench/results/scale.{md,jsonl}.
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
  --out DIR       where latest.{md,csv,png,jsonl} and scale.{md,jsonl} go (default bench/results)
  --suite S       main (the figures above; the default), scale (issue 9's figures), all, or
                  forward (issue 11, runs alone: forward: throughput both ways at MTU 1500
                  next to the same transfer straight to an upstream over the kernel, across
                  a veth at MTU 1500 and over loopback), or transparent (issue 21,
                  runs alone: synack --addr any -l '*=direct' and socks5: against
                  tun2proxy and the kernel's direct path: throughput over 1 and 10
                  connections, new connections/s, RSS with 10,000 idle relayed
                  connections; bench/transparent.sh), or loss (issue 19, runs alone:
                  HTTP flow completion times from synack and from Linux's TCP behind
                  the same impairing bridge (bench/src/bin/impair-bridge.rs): 100 KB
                  and 10 MB at RTT 40 ms with 0, 1 and 3 % loss, 10 MB through a
                  100 Mbit/s bottleneck with a 100-packet queue; 3-5 minutes,
                  --quick about 1; bench/loss.sh)
  --scale         the same as --suite scale
  --baseline REV  also build synack at git revision REV (in a temporary directory) and measure
                  it in the same run: a "baseline" column in the main suite, a second
                  section in the scale suite, baseline columns in the forward suite
  --delays LIST   scale: one-way delays for delay × bandwidth (default 5ms,10ms,20ms,50ms;
                  --quick: 20ms)
  --scale-conns N scale: concurrent echo connections to hold (default 100000; --quick: 10000)
  --scale-bytes N scale: bytes per delayed transfer (default 256 MiB; --quick: 64 MiB)
  --scale-parts L scale: a subset of delay,conns,load,memory,million (default all five)
  --scale-million L scale, million part (issue 23): the totals of concurrent echo connections
                  conn-load holds, in order (default 100000,1000000; --quick: 10000,50000),
                  from one source address per 19,230 connections (52 for a million)
  --scale-churn N scale, million part: short http connections (conn-load --churn, from one
                  source address per 5,000), each leaving synack in TIME-WAIT, all held
                  (--time-wait 30m, --max-time-wait above N; default 1000000; --quick: 50000)
  SYNACK_ARGS     extra arguments for synack (environment variable)
  SYNACK_BIN      the synack binary to measure instead of this tree's (environment variable)
  LOSS_LINUX_CC   loss: the Linux server's congestion control, cubic (default, as synack's)
                  or bbr (this machine's default) (environment variable)
EOF
}

RUNS=""
QUICK=0
MTUS="1500,9000"
SERVERS="synack,smoltcp,kernel,tun"
BYTES=""
BUILD=1
SUITE=main
BASELINE=""
DELAYS=""
SCALE_CONNS=""
SCALE_BYTES=""
SCALE_PARTS=delay,conns,load,memory,million
MILLION_STAGES=""
CHURN=""
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
        --suite) SUITE=$2; shift 2 ;;
        --scale) SUITE=scale; shift ;;
        --baseline) BASELINE=$2; shift 2 ;;
        --delays) DELAYS=$2; shift 2 ;;
        --scale-conns) SCALE_CONNS=$2; shift 2 ;;
        --scale-bytes) SCALE_BYTES=$2; shift 2 ;;
        --scale-parts) SCALE_PARTS=$2; shift 2 ;;
        --scale-million) MILLION_STAGES=$2; shift 2 ;;
        --scale-churn) CHURN=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

case "$SUITE" in main|scale|all|forward|transparent|loss) ;; *) echo "bench.sh: --suite must be main, scale, all, forward, transparent or loss" >&2; exit 2 ;; esac
if [ "$QUICK" = 1 ]; then
    : "${RUNS:=3}" "${BYTES:=67108864}"
    : "${DELAYS:=20ms}" "${SCALE_CONNS:=10000}" "${SCALE_BYTES:=67108864}" "${MILLION_STAGES:=10000,50000}" "${CHURN:=50000}"
    SCAP=20        # seconds at most per delayed transfer
    CAP=3          # seconds at most per transfer
    COUNT=1000     # connect-and-close per connections/s measurement
    TUN_SECS=0.5
else
    : "${RUNS:=5}" "${BYTES:=1073741824}"
    : "${DELAYS:=5ms,10ms,20ms,50ms}" "${SCALE_CONNS:=100000}" "${SCALE_BYTES:=268435456}" "${MILLION_STAGES:=100000,1000000}" "${CHURN:=1000000}"
    SCAP=45
    CAP=6
    COUNT=5000
    TUN_SECS=2
fi
CONNS=4            # parallel connections (throughput and connections/s)
case "$RUNS" in ''|*[!0-9]*) echo "bench.sh: --runs needs a number" >&2; exit 2 ;; esac
[ "$RUNS" -ge 1 ] && [ "$RUNS" -le 50 ] || { echo "bench.sh: --runs must be 1..50" >&2; exit 2; }
case "$SCALE_CONNS" in ''|*[!0-9]*) echo "bench.sh: --scale-conns needs a number" >&2; exit 2 ;; esac
[ "$SCALE_CONNS" -ge 1000 ] && [ "$SCALE_CONNS" -le 200000 ] ||
    { echo "bench.sh: --scale-conns must be 1000..200000" >&2; exit 2; }
[ -n "$BASELINE" ] && SERVERS="$SERVERS,baseline"

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
for b in bench-client smoltcp-server kernel-server tun-rate conn-load; do
    [ -x "$BIN/$b" ] || { echo "bench.sh: $BIN/$b not built" >&2; exit 1; }
done
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
SYN_BIN=${SYNACK_BIN:-$BIN/synack}

WORK=$(mktemp -d /tmp/synack-bench.XXXXXX)
RAW="$WORK/raw.jsonl"
SRAW="$WORK/scale.jsonl"
: >"$RAW"
: >"$SRAW"
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
            "$SYN_BIN" --mtu "$mtu" --control "$WORK/synack-$mtu.sock" ${SYNACK_ARGS:-}
    fi
    if has baseline && [ -n "$BASE_BIN" ]; then
        ns_new "$PFX-baseline-$mtu"
        # shellcheck disable=SC2086
        start_server baseline "$mtu" "$PFX-baseline-$mtu" "$PFX-baseline-$mtu" 198.18.0.2 synack0 198.18.0 \
            "$BASE_BIN" --mtu "$mtu" --control "$WORK/baseline-$mtu.sock" ${SYNACK_ARGS:-}
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

# The baseline: REV's tree (git archive: no worktree, nothing written to the repository) built
# in the work directory. Its target directory starts as a copy of ours, so that only what
# differs is rebuilt.
BASE_BIN=""
if [ -n "$BASELINE" ]; then
    BASE_REV=$(git -C "$ROOT" rev-parse --short "$BASELINE^{commit}" 2>/dev/null) ||
        { echo "bench.sh: --baseline $BASELINE is not a git revision here" >&2; exit 2; }
    log "building the baseline synack at $BASE_REV"
    mkdir -p "$WORK/baseline-src" "$WORK/baseline-target"
    # tar -m: the files get the time of extraction, newer than anything in the copied target
    # directory, so cargo rebuilds synack from them (with the commit's times it would take our
    # own build for up to date).
    git -C "$ROOT" archive "$BASE_REV" | tar -x -m -C "$WORK/baseline-src"
    cp -a "$BIN" "$WORK/baseline-target/release"
    if (cd "$WORK/baseline-src" &&
        CARGO_TARGET_DIR="$WORK/baseline-target" cargo build --release --quiet --bin synack); then
        BASE_BIN="$WORK/baseline-target/release/synack"
        if cmp -s "$BASE_BIN" "$SYN_BIN"; then
            log "note: the baseline's binary is identical to this tree's"
        fi
    else
        log "the baseline ($BASE_REV) failed to build: its figures will be n/a"
    fi
fi

# ---------------------------------------------------------------------------------------------
# The scale suite (issue 9). Every figure is one run, against synack and (with --baseline) the
# baseline, each part in namespaces of its own.

SOCK_N=0
declare -A S_BIN
# scale_start LABEL BINARY PART ARGS...: a fresh namespace NS_SCALE with the client settings of
# the scale suite, and synack (BINARY) in it with ARGS and a private control socket (CTL).
scale_start() {
    local label=$1 bin=$2 part=$3
    shift 3
    NS_SCALE="$PFX-sc-$label-$part"
    S_BIN[$label]=$bin
    SOCK_N=$((SOCK_N + 1))
    CTL="$WORK/scale-$SOCK_N.sock"
    ns_new "$NS_SCALE"
    # The client may grow its buffers to 32 MiB, as the issue's figures assume.
    ip netns exec "$NS_SCALE" sysctl -qw net.ipv4.tcp_rmem="4096 131072 33554432" \
        net.ipv4.tcp_wmem="4096 16384 33554432" >/dev/null
    LIVE=()
    # shellcheck disable=SC2086
    start_server "$label" "$part" "$NS_SCALE" "$NS_SCALE" 198.18.0.2 synack0 198.18.0 \
        "$bin" --control "$CTL" "$@" ${SYNACK_ARGS:-}
    is_live "$label"
}

# scale_stop LABEL PART: records synack's counters (for the reader of scale.jsonl), then stops it.
scale_stop() {
    local stats
    stats=$(timeout 10 "${S_BIN[$1]}" --control "$CTL" stats --json 2>/dev/null |
        "$PY" -c 'import json, sys; print(json.dumps(json.load(sys.stdin)))' 2>/dev/null || true)
    srecord "$1" stats "$2" "$stats"
    # The kernel's side of the TUN: packets it dropped because synack did not read them in
    # time show up as TX drops of synack0.
    srecord "$1" tun_link "$2" "$(ip -n "$NS_SCALE" -j -s link show synack0 2>/dev/null || true)"
    stop_server "$1" "$2"
    ns_del "$NS_SCALE"
}

# srecord SERVER FIGURE PARAM JSON-or-empty
srecord() {
    printf '{"server":"%s","figure":"%s","param":"%s","r":%s}\n' "$1" "$2" "$3" "${4:-null}" >>"$SRAW"
}

# scale_delay LABEL BINARY: 256 MiB up and down at each delay, with the window polled.
scale_delay() {
    local label=$1 bin=$2 d dir port figure line poll ppid
    IFS=, read -r -a dl <<<"$DELAYS"
    for d in "${dl[@]}"; do
        if ! scale_start "$label" "$bin" "d$d" --impair "delay=$d"; then
            srecord "$label" delay_up "$d" ""; srecord "$label" delay_down "$d" ""
            ns_del "$NS_SCALE"; continue
        fi
        for dir in upload download; do
            if [ "$dir" = upload ]; then port=9 figure=delay_up; else port=19 figure=delay_down; fi
            poll="$WORK/poll.json"
            "$PY" "$ROOT/bench/scale.py" poll --synack "$bin" --control "$CTL" \
                --max-secs $((SCAP + 20)) >"$poll" 2>>"$WORK/client.log" &
            ppid=$!
            line=$(timeout $((SCAP + 30)) ip netns exec "$NS_SCALE" "$BIN/bench-client" "$dir" \
                "198.18.0.2:$port" "$SCALE_BYTES" --max-secs "$SCAP" 2>>"$WORK/client.log" || true)
            kill -TERM "$ppid" 2>/dev/null || true
            wait "$ppid" 2>/dev/null || true
            srecord "$label" "$figure" "$d" "{\"transfer\":${line:-null},\"window\":$(head -c 4096 "$poll" | grep . || echo null)}"
        done
        log "  $label delay=$d: $(tail -n 2 "$SRAW" | grep -o '"gbps":[0-9.]*' | sed 's/.*://; s/\(\.[0-9][0-9]\)[0-9]*/\1/' | tr '\n' ' ')(Gbit/s up down)"
        scale_stop "$label" "d$d"
    done
}

# echo_clients NS SECS ARGS...: scripts/echo_clients.py in NS, bounded, one JSON line per step.
echo_clients() {
    local ns=$1 secs=$2
    shift 2
    timeout "$secs" ip netns exec "$ns" "$PY" "$ROOT/scripts/echo_clients.py" "$@" \
        2>>"$WORK/client.log" || true
}

# scale_conns LABEL BINARY: SCALE_CONNS concurrent echo connections, RSS at 1k, 10k and all.
scale_conns() {
    local label=$1 bin=$2 stages="" n srcs="" i line step
    for n in 1000 10000; do [ "$n" -lt "$SCALE_CONNS" ] && stages="$stages$n,"; done
    stages="$stages$SCALE_CONNS"
    # --max-connections is a safety valve above the default 65,536 only when this many are held.
    if ! scale_start "$label" "$bin" conns --max-connections $((SCALE_CONNS + 1000)); then
        srecord "$label" conns_echo "" ""; ns_del "$NS_SCALE"; return
    fi
    # One kernel-side source address per 40,000 connections, each with its own port space.
    for i in $(seq 1 $(( (SCALE_CONNS + 39999) / 40000 ))); do
        ip -n "$NS_SCALE" addr add "198.18.0.$((10 + i))/24" dev synack0
        srcs="$srcs${srcs:+,}198.18.0.$((10 + i))"
    done
    while read -r line; do
        step=$(printf '%s' "$line" | grep -o '"step": "[a-z]*"' | sed 's/.*"\([a-z]*\)"$/\1/')
        [ -n "$step" ] && srecord "$label" "conns_$step" "" "$line"
    done < <(echo_clients "$NS_SCALE" 900 --stages "$stages" --bind "$srcs" --timeout 240 \
        --rss-pid "${S_PID[$label]}")
    log "  $label: $(grep "\"server\":\"$label\",\"figure\":\"conns_" "$SRAW" |
        grep -o '"conns": [0-9]*\|"rss_kib": [0-9]*\|"ok": [0-9]*' | tr '\n' ' ')"
    scale_stop "$label" conns
}

# scale_memory LABEL BINARY: daemon RSS per service (issue 22): SCALE_CONNS connections to echo
# (one line each), to http (one keep-alive `GET /` each), and to http with `Connection: close`
# (each then in TIME-WAIT on synack's side); each held, then closed, and RSS once they are gone
# (--time-wait 10s, so TIME-WAIT is over by then).
scale_memory() {
    local label=$1 bin=$2 srcs="" i line step kind port mode
    for kind in echo http time-wait; do
        case $kind in
            echo) port=7 mode= ;;
            http) port=80 mode=--http ;;
            time-wait) port=80 mode=--http-close ;;
        esac
        if ! scale_start "$label" "$bin" "mem-$kind" --max-connections $((SCALE_CONNS + 1000)) \
            --max-time-wait $((SCALE_CONNS + 1000)) --time-wait 10s; then
            srecord "$label" "mem_${kind}_echo" "" ""; ns_del "$NS_SCALE"; continue
        fi
        srcs=""
        for i in $(seq 1 $(( (SCALE_CONNS + 39999) / 40000 ))); do
            ip -n "$NS_SCALE" addr add "198.18.0.$((10 + i))/24" dev synack0
            srcs="$srcs${srcs:+,}198.18.0.$((10 + i))"
        done
        while read -r line; do
            step=$(printf '%s' "$line" | grep -o '"step": "[a-z]*"' | sed 's/.*"\([a-z]*\)"$/\1/')
            [ -n "$step" ] && srecord "$label" "mem_${kind}_$step" "" "$line"
        done < <(echo_clients "$NS_SCALE" 900 --port "$port" $mode --stages "$SCALE_CONNS" \
            --bind "$srcs" --timeout 240 --settle 15 --rss-pid "${S_PID[$label]}")
        log "  $label $kind: $(grep "\"server\":\"$label\",\"figure\":\"mem_${kind}_" "$SRAW" |
            grep -o '"step": "[a-z]*"\|"rss_kib": [0-9]*\|"ok": [0-9]*' | tr '\n' ' ')"
        scale_stop "$label" "mem-$kind"
    done
}

# scale_load LABEL BINARY: every default: 20,000 concurrent echo connections, then ab.
scale_load() {
    local label=$1 bin=$2 line step
    if scale_start "$label" "$bin" load; then
        while read -r line; do
            step=$(printf '%s' "$line" | grep -o '"step": "[a-z]*"' | sed 's/.*"\([a-z]*\)"$/\1/')
            [ -n "$step" ] && srecord "$label" "load_$step" "" "$line"
        done < <(echo_clients "$NS_SCALE" 400 --stages 20000 --procs 4 --timeout 120)
        scale_stop "$label" load
    fi
    if scale_start "$label" "$bin" ab; then
        line=$(timeout 300 ip netns exec "$NS_SCALE" ab -l -n 20000 -c 100 -s 20 http://198.18.0.2/ 2>&1 |
            "$PY" "$ROOT/bench/scale.py" ab-parse || true)
        srecord "$label" ab "" "$line"
        log "  $label: ab $(printf '%s' "$line" | grep -o '"complete": [0-9.]*\|"rps": [0-9.]*\|"longest_ms": [0-9]*' | tr '\n' ' ')"
        scale_stop "$label" ab
    else
        srecord "$label" ab "" ""
    fi
}

# scale_million LABEL BINARY (issue 23): conn-load holds MILLION_STAGES echo connections, then
# echoes a line on each and measures synack's CPU over 30 s with all idle. Each step records
# synack's RSS, the TUN's TX drops (packets the kernel dropped because synack did not read them
# in time) and the kernel's slab (the client sockets' cost; machine-wide, so other work on the
# machine shows in it). Then the TIME-WAIT variant: CHURN short HTTP requests with
# `Connection: close` (conn-load --churn), synack closing each first and holding all of them
# in TIME-WAIT (issue 23: the compact record), with its RSS before and after.
scale_million() {
    local label=$1 bin=$2 total srcs="" i n line step
    total=${MILLION_STAGES##*,}
    if ! scale_start "$label" "$bin" million --max-connections $((total + 10000)) \
        --max-time-wait $((total + 10000)); then
        srecord "$label" million_open "" ""; ns_del "$NS_SCALE"; return
    fi
    ip netns exec "$NS_SCALE" sysctl -qw net.ipv4.ip_local_port_range="10000 65535" >/dev/null
    n=$(( (total + 19229) / 19230 ))
    for i in $(seq 1 "$n"); do
        ip -n "$NS_SCALE" addr add "198.18.0.$((10 + i))/24" dev synack0
        srcs="$srcs${srcs:+,}198.18.0.$((10 + i))"
    done
    srecord "$label" million_before "" "{\"slab_kib\": $(awk '/^Slab:/ {print $2}' /proc/meminfo), \"rss_kib\": $(awk '/^VmRSS:/ {print $2}' "/proc/${S_PID[$label]}/status")}"
    while read -r line; do
        step=$(printf '%s' "$line" | grep -o '"step": *"[a-z]*"' | sed 's/.*"\([a-z]*\)"$/\1/' || true)
        [ -n "$step" ] && srecord "$label" "million_$step" "" "$line"
    done < <(timeout 1800 ip netns exec "$NS_SCALE" "$BIN/conn-load" --addr 198.18.0.2 --port 7 \
        --stages "$MILLION_STAGES" --bind "$srcs" --in-flight 64 --timeout 600 --idle 30 \
        --tun synack0 --rss-pid "${S_PID[$label]}" 2>>"$WORK/client.log" || true)
    log "  $label: $(grep "\"server\":\"$label\",\"figure\":\"million_" "$SRAW" |
        grep -o '"step": *"[a-z]*"\|"conns": *[0-9]*\|"rss_kib": *[0-9]*\|"tun_tx_dropped": *[0-9]*\|"cpu_pct": *[0-9.]*' | tr '\n' ' ')"
    scale_stop "$label" million
    if scale_start "$label" "$bin" churn --time-wait 30m --max-time-wait $((CHURN + 10000)); then
        ip netns exec "$NS_SCALE" sysctl -qw net.ipv4.ip_local_port_range="10000 65535" >/dev/null
        # One source address per 5,000: the client closes second and keeps no TIME-WAIT, so
        # the kernel would soon pick a port again, and a 4-tuple used twice reopens synack's
        # record (RFC 6191) instead of adding one (19,230 an address kept 81 % of 50,000).
        srcs=""
        n=$(( (CHURN + 4999) / 5000 ))
        [ "$n" -gt 240 ] && n=240
        for i in $(seq 1 "$n"); do
            ip -n "$NS_SCALE" addr add "198.18.0.$((10 + i))/24" dev synack0
            srcs="$srcs${srcs:+,}198.18.0.$((10 + i))"
        done
        local rss0
        rss0=$(awk '/^VmRSS:/ {print $2}' "/proc/${S_PID[$label]}/status")
        line=$(timeout 1800 ip netns exec "$NS_SCALE" "$BIN/conn-load" --addr 198.18.0.2 --port 80 \
            --churn "$CHURN" --bind "$srcs" --in-flight 64 --timeout 1200 --tun synack0 \
            --rss-pid "${S_PID[$label]}" 2>>"$WORK/client.log" | grep '"step":"churn"' | tail -n 1 || true)
        local tw
        tw=$(timeout 60 "${S_BIN[$label]}" --control "$CTL" status --json 2>/dev/null |
            "$PY" -c 'import json, sys; print(sum(1 for r in json.load(sys.stdin) if r.get("state") == "TIME-WAIT"))' 2>/dev/null || echo null)
        srecord "$label" churn "" "{\"load\": ${line:-null}, \"rss0_kib\": ${rss0:-null}, \"time_wait\": ${tw:-null}, \"rss_kib\": $(awk '/^VmRSS:/ {print $2}' "/proc/${S_PID[$label]}/status")}"
        log "  $label churn: $(tail -n 1 "$SRAW" | grep -o '"done": *[0-9]*\|"per_s": *[0-9.]*\|"time_wait": *[0-9]*\|"rss_kib": *[0-9]*' | tr '\n' ' ')"
        scale_stop "$label" churn
    fi
}

part() { case ",$SCALE_PARTS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

scale_suite() {
    local label bin
    command -v ab >/dev/null || log "ab (apache2-utils) is missing: the ab figure will be n/a"
    for label in synack baseline; do
        if [ "$label" = synack ]; then bin=$SYN_BIN; else bin=$BASE_BIN; fi
        [ "$label" = baseline ] && [ -z "$BASELINE" ] && continue
        if [ -z "$bin" ] || [ ! -x "$bin" ]; then log "$label: no binary, figures n/a"; continue; fi
        if part delay; then
            log "scale: $label, delay × bandwidth ($DELAYS; $SCALE_BYTES bytes each way)"
            scale_delay "$label" "$bin"
        fi
        if part conns; then
            log "scale: $label, $SCALE_CONNS concurrent echo connections"
            scale_conns "$label" "$bin"
        fi
        if part load; then
            log "scale: $label, 20,000 concurrent connections and ab, every default"
            scale_load "$label" "$bin"
        fi
        if part memory; then
            log "scale: $label, daemon RSS for $SCALE_CONNS connections per service and after"
            scale_memory "$label" "$bin"
        fi
        if part million; then
            log "scale: $label, $MILLION_STAGES concurrent echo connections (conn-load), then $CHURN in TIME-WAIT"
            scale_million "$label" "$bin"
        fi
    done
}

# The forward suite (issue 11): in one namespace, the kernel's discard (9) and chargen (19) on
# 127.0.0.1 as the upstream, and synack with 9=forward:127.0.0.1:9 and 19=forward:127.0.0.1:19
# behind its TUN at MTU 1500. Each run uploads and downloads BYTES through synack, and the same
# straight to an upstream over the kernel: "direct", across a veth pair at MTU 1500 (a client
# namespace and the upstream's), the figure the target is set against; and "loopback", to
# 127.0.0.1 in synack's namespace (MTU 65536), for reference. With --baseline, the baseline's
# synack does the same in a namespace of its own, in the same runs (interleaved, so machine
# noise falls on all alike).
forward_suite() {
    local run up label ns ip spid
    local -A UPSTREAM_PID=()
    local labels="forward"
    [ -n "${BASE_BIN:-}" ] && labels="forward baseline"
    for label in $labels; do
        ns="$PFX-$label"
        ns_new "$ns"
        ip netns exec "$ns" "$BIN/kernel-server" --addr 127.0.0.1 >"$WORK/$label-upstream.log" 2>&1 &
        UPSTREAM_PID[$label]=$!
        PIDS+=("$!")
        local bin="$SYN_BIN"
        [ "$label" = baseline ] && bin="$BASE_BIN"
        # shellcheck disable=SC2086
        start_server "$label" 1500 "$ns" "$ns" 198.18.0.2 synack0 198.18.0 \
            "$bin" --mtu 1500 --control "$WORK/$label.sock" -l 7=echo \
            -l 9=forward:127.0.0.1:9 -l 19=forward:127.0.0.1:19 ${SYNACK_ARGS:-}
        is_live "$label" || log "$label: synack did not come up"
    done
    is_live forward || return
    # The direct path at MTU 1500: the client's namespace and the upstream's, a veth between.
    local dc="$PFX-fwd-client" ds="$PFX-fwd-upstream" direct=""
    ns_new "$dc"
    ns_new "$ds"
    if ip -n "$dc" link add veth0 mtu 1500 type veth peer name veth1 mtu 1500 netns "$ds" &&
        ip -n "$dc" addr add 198.18.2.1/24 dev veth0 &&
        ip -n "$ds" addr add 198.18.2.2/24 dev veth1 &&
        ip -n "$dc" link set veth0 up && ip -n "$ds" link set veth1 up; then
        ip netns exec "$ds" "$BIN/kernel-server" --addr 198.18.2.2 >"$WORK/direct-upstream.log" 2>&1 &
        UPSTREAM_PID[direct]=$!
        PIDS+=("$!")
        for _ in $(seq 1 40); do
            if [ -n "$(client "$dc" wait 198.18.2.2:9 --max-secs 0.25)" ]; then
                direct="direct 198.18.2.2 ${UPSTREAM_PID[direct]} $dc"
                break
            fi
            sleep 0.05
        done
    fi
    [ -n "$direct" ] || log "forward: the veth path at MTU 1500 did not come up: direct figures are n/a"
    : >"$WORK/fwd.jsonl"
    for run in $(seq 1 "$RUNS"); do
        local targets=("forward 198.18.0.2 ${S_PID[forward]} $PFX-forward"
                       "loopback 127.0.0.1 ${UPSTREAM_PID[forward]} $PFX-forward")
        [ -n "$direct" ] && targets+=("$direct")
        is_live baseline && targets+=("baseline 198.18.0.2 ${S_PID[baseline]} $PFX-baseline")
        for target in "${targets[@]}"; do
            read -r label ip spid ns <<<"$target"
            up=$(client "$ns" upload "$ip:9" "$BYTES" --server-pid "$spid" --max-secs "$CAP")
            printf '{"path":"%s","dir":"up","run":%s,"r":%s}\n' "$label" "$run" "${up:-null}" >>"$WORK/fwd.jsonl"
            up=$(client "$ns" download "$ip:19" "$BYTES" --server-pid "$spid" --max-secs "$CAP")
            printf '{"path":"%s","dir":"down","run":%s,"r":%s}\n' "$label" "$run" "${up:-null}" >>"$WORK/fwd.jsonl"
        done
        log "forward: run $run/$RUNS done"
    done
    for label in $labels; do is_live "$label" && stop_server "$label" 1500; done
    cp "$WORK/fwd.jsonl" "$OUT/forward.jsonl"
    "$PY" - "$WORK/fwd.jsonl" "$OUT/forward.md" "$BYTES" "${BASE_REV:-}" "$COMMIT" "$DATE" "$LOAD" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base, commit, date, load = sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
def med(path, d):
    v = [r["r"]["gbps"] for r in rows if r["path"] == path and r["dir"] == d and r["r"]]
    return statistics.median(v) if v else None
fmt = lambda x: "n/a" if x is None else f"{x:.2f} Gbit/s"
ratio = lambda a, b: "n/a" if not (a and b) else f"{a / b:.2f}"
head = ("| direction | through synack (forward:) | direct, veth MTU 1500 | ratio (target ≥ 0.5)"
        " | loopback, MTU 65536 | ratio |")
rule = "|---|---|---|---|---|---|"
if base:
    head += f" baseline {base} through synack | its ratio to direct |"
    rule += "---|---|"
lines = ["# forward: throughput (issue 11), MTU 1500", "",
         f"{date}; commit {commit}; load at start {load}.",
         f"{sys.argv[3]} bytes per transfer, median of {max(r['run'] for r in rows)} runs.", "",
         head, rule]
for d, name in (("up", "client → upstream (upload)"), ("down", "upstream → client (download)")):
    f, k, lo = med("forward", d), med("direct", d), med("loopback", d)
    line = f"| {name} | {fmt(f)} | {fmt(k)} | {ratio(f, k)} | {fmt(lo)} | {ratio(f, lo)} |"
    if base:
        b = med("baseline", d)
        line += f" {fmt(b)} | {ratio(b, k)} |"
    lines.append(line)
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PYEOF
}

START=$(date +%s)
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
[ -n "${SYNACK_BIN:-}" ] && COMMIT="$SYNACK_BIN (SYNACK_BIN)"
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
if awk -v l="${LOAD%% *}" 'BEGIN { exit !(l > 0.7) }'; then
    log "warning: the machine is busy (1-minute load ${LOAD%% *}): figures will be noisy"
fi
mkdir -p "$OUT"

if [ "$SUITE" = transparent ]; then
    # shellcheck source=bench/transparent.sh
    . "$ROOT/bench/transparent.sh"
    log "transparent suite: runs=$RUNS bytes=$BYTES count=$COUNT (load $LOAD)"
    transparent_suite
    log "wrote $OUT/transparent.md, transparent.jsonl ($(( $(date +%s) - START )) s)"
    exit 0
fi

if [ "$SUITE" = loss ]; then
    # shellcheck source=bench/loss.sh
    . "$ROOT/bench/loss.sh"
    for tool in curl nstat; do
        command -v "$tool" >/dev/null || { echo "bench.sh: the loss suite needs $tool" >&2; exit 1; }
    done
    [ -x "$BIN/impair-bridge" ] || { echo "bench.sh: $BIN/impair-bridge not built" >&2; exit 1; }
    log "loss suite (load $LOAD)"
    loss_suite
    log "wrote $OUT/loss.md, loss.jsonl ($(( $(date +%s) - START )) s)"
    exit 0
fi

if [ "$SUITE" = forward ]; then
    log "forward suite: runs=$RUNS bytes=$BYTES (load $LOAD)"
    forward_suite
    log "wrote $OUT/forward.md, forward.jsonl ($(( $(date +%s) - START )) s)"
    exit 0
fi

if [ "$SUITE" != scale ]; then
    log "runs=$RUNS bytes=$BYTES cap=${CAP}s count=$COUNT mtus=$MTUS servers=$SERVERS (load $LOAD)"
    IFS=, read -r -a MTU_LIST <<<"$MTUS"
    for mtu in "${MTU_LIST[@]}"; do
        case "$mtu" in ''|*[!0-9]*) echo "bench.sh: bad MTU $mtu" >&2; exit 2 ;; esac
        bench_mtu "$mtu"
    done
    log "measurements done in $(( $(date +%s) - START )) s"

    cp "$RAW" "$OUT/latest.jsonl"
    if ! "$PY" -c 'import matplotlib' 2>/dev/null && command -v apt-get >/dev/null; then
        log "installing python3-matplotlib for the chart"
        apt-get install -y -qq python3-matplotlib >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq python3-matplotlib >/dev/null 2>&1; } ||
            log "could not install python3-matplotlib: no chart"
    fi
    "$PY" "$ROOT/bench/report.py" "$RAW" "$OUT" --mtus "$MTUS" --runs "$RUNS" --bytes "$BYTES" \
        --cap "$CAP" --conns "$CONNS" --count "$COUNT" --load "$LOAD" \
        --commit "$COMMIT" --date "$DATE" --baseline "${BASE_REV:-}"
    log "wrote $OUT/latest.md, latest.csv, latest.png, latest.jsonl ($(( $(date +%s) - START )) s so far)"
fi

if [ "$SUITE" != main ]; then
    log "scale suite: delays=$DELAYS bytes=$SCALE_BYTES cap=${SCAP}s conns=$SCALE_CONNS baseline=${BASE_REV:-none} (load $LOAD)"
    scale_suite
    "$PY" "$ROOT/bench/scale.py" report "$SRAW" "$OUT" --commit "$COMMIT" --date "$DATE" \
        --load "$LOAD" --bytes "$SCALE_BYTES" --cap "$SCAP" --baseline "${BASE_REV:-}"
    log "wrote $OUT/scale.md, scale.jsonl (total $(( $(date +%s) - START )) s)"
fi
