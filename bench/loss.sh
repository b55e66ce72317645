# The loss-recovery suite (issue 19), sourced by scripts/bench.sh (`--suite loss`): flow
# completion times of HTTP downloads from synack and from Linux's own TCP behind the same
# impairing bridge, in the same run, so that only the TCP differs. Uses bench.sh's helpers
# (ns_new, log, PIDS, WORK, BIN, SYN_BIN, PY, QUICK, OUT, COMMIT, DATE, LOAD, PFX).
#
#   client ns (lc)                router ns (lr)                          server ns (ls)
#   curl ── imp0 ═[impair-bridge: loss, delay, bottleneck]═ imp1 ─┬─ synack0 ── synack (TUN)
#   198.18.10.1                                        198.18.11.1 │   198.18.0.1 → 198.18.0.2:80
#                                                                 └─ r0 ══ veth ══ l0: kernel TCP
#                                                                   198.18.12.1    198.18.12.2:80
#                                                                                 (bench/http_server.py)
#
# The client is the kernel's TCP (curl, its time_total: handshake to last byte); imp0 and imp1
# are persistent TUNs the bridge attaches to (bench/src/bin/impair-bridge.rs, restarted per
# condition with its loss, delay and bottleneck); the router namespace forwards to synack's TUN
# or across a veth to the Linux server, which serves the same bytes (`/bytes/N`, synack's
# pattern). Both servers run CUBIC (LOSS_LINUX_CC=bbr: the Linux server runs BBR, this machine's
# default; set on its listening socket, no sysctl changes) with SACK and timestamps; Linux's route metrics cache is off
# (net.ipv4.tcp_no_metrics_save=1) so that one run's ssthresh does not carry into the next, as
# synack keeps none. Runs alternate between the two servers. Counters: `nstat` in the server
# namespace for Linux, `synack stats` through its control socket, each read before and after
# every row. LOSS_PCAP=DIR (environment) keeps a capture of each condition on the client's
# side of the bridge (DIR/<condition>.pcap, 128 bytes a packet). Figures in bench/results/loss.{md,jsonl}; see docs/PERFORMANCE.md.

LOSS_DELAY_MS=20 # one way: RTT 40 ms

loss_suite() {
    local c="$PFX-lc" r="$PFX-lr" l="$PFX-ls" lj="$WORK/loss.jsonl"
    : >"$lj"
    ns_new "$c"
    ns_new "$r"
    ns_new "$l"
    ip netns exec "$c" sysctl -qw net.ipv4.tcp_no_metrics_save=1 >/dev/null
    ip netns exec "$l" sysctl -qw net.ipv4.tcp_no_metrics_save=1 >/dev/null
    ip netns exec "$r" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
        net.ipv4.conf.default.rp_filter=0 >/dev/null
    # The two persistent TUNs of the bridge, configured once.
    # A TUN's transmit ring holds txqueuelen packets (500 by default): when the bridge is off
    # the CPU for a moment, a burst beyond it is dropped, losses that are not the configured
    # ones (they hit Linux's larger bursts harder). 20,000 as synack's own TUN.
    ip -n "$c" tuntap add dev imp0 mode tun
    ip -n "$c" link set imp0 txqueuelen 20000
    ip -n "$c" addr add 198.18.10.1/24 dev imp0
    ip -n "$c" link set imp0 up
    ip -n "$c" route add 198.18.0.0/15 dev imp0
    ip -n "$r" tuntap add dev imp1 mode tun
    ip -n "$r" link set imp1 txqueuelen 20000
    ip -n "$r" addr add 198.18.11.1/24 dev imp1
    ip -n "$r" link set imp1 up
    ip -n "$r" route add 198.18.10.0/24 dev imp1
    # The Linux server behind a veth.
    ip -n "$r" link add r0 type veth peer name l0 netns "$l"
    ip -n "$r" addr add 198.18.12.1/24 dev r0
    ip -n "$l" addr add 198.18.12.2/24 dev l0
    ip -n "$r" link set r0 up
    ip -n "$l" link set l0 up
    ip -n "$l" route add 198.18.10.0/24 via 198.18.12.1
    local cc=${LOSS_LINUX_CC:-cubic}
    ip netns exec "$l" "$PY" "$ROOT/bench/http_server.py" 198.18.12.2 80 "$cc" >"$WORK/loss-http.log" 2>&1 &
    PIDS+=("$!")
    # synack on its own TUN in the router namespace.
    local sock="$WORK/loss-synack.sock"
    ip netns exec "$r" "$SYN_BIN" --control "$sock" -l 80=http ${SYNACK_ARGS:-} \
        >"$WORK/loss-synack.log" 2>&1 &
    PIDS+=("$!")
    local spid=$!

    # Conditions: name, loss %, bottleneck Mbit/s (0: none), then "size:runs" rows.
    local conds
    if [ "$QUICK" = 1 ]; then
        conds=("loss0 0 0 100000:5" "loss1 1 0 100000:10 1000000:2" "loss3 3 0 100000:10 1000000:2"
            "bottleneck 0 100 10000000:1")
    else
        conds=("loss0 0 0 100000:30" "loss1 1 0 100000:30 10000000:5" "loss3 3 0 100000:30 10000000:5"
            "bottleneck 0 100 10000000:5")
    fi
    # LOSS_CONDS (environment): other conditions, ';'-separated, e.g. "loss1 1 0 1000000:3".
    [ -n "${LOSS_CONDS:-}" ] && IFS=';' read -r -a conds <<<"$LOSS_CONDS"
    local cond name loss rate rows row size runs run srv order bpid cap t0 total=0 done_n=0
    for cond in "${conds[@]}"; do
        read -r name loss rate rows <<<"$cond"
        for row in $rows; do total=$((total + 2 * ${row#*:})); done
    done
    log "loss: $total downloads (RTT $((2 * LOSS_DELAY_MS)) ms)"
    t0=$(date +%s)
    for cond in "${conds[@]}"; do
        read -r name loss rate rows <<<"$cond"
        bridge_start "$c" "$r" --loss "$loss" --seed 19 --delay-ms "$LOSS_DELAY_MS" \
            --rate-mbit "$rate" --queue 100 || { log "loss: the bridge did not come up"; break; }
        bpid=$BRIDGE_PID
        local dump=""
        if [ -n "${LOSS_PCAP:-}" ]; then
            # The client's side of the bridge: what the client sends and what reaches it.
            mkdir -p "$LOSS_PCAP"
            ip netns exec "$c" tcpdump -i imp0 -s 128 -U -w "$LOSS_PCAP/$name.pcap" 2>/dev/null &
            dump=$!
            PIDS+=("$dump")
        fi
        if [ "$name" = loss0 ]; then
            # Both servers answer before anything is measured.
            wait_http "$c" 198.18.0.2 || log "loss: synack does not answer over HTTP (see $WORK/loss-synack.log)"
            wait_http "$c" 198.18.12.2 || log "loss: the Linux server does not answer (see $WORK/loss-http.log)"
        fi
        for row in $rows; do
            size=${row%:*} runs=${row#*:}
            cap=$((size / 100000 + 15))
            counters_json "$l" "$sock" >"$WORK/loss-before.json"
            for run in $(seq 1 "$runs"); do
                # Alternate which server goes first.
                if [ $((run % 2)) = 1 ]; then order="synack linux"; else order="linux synack"; fi
                for srv in $order; do
                    local ip=198.18.0.2
                    [ "$srv" = linux ] && ip=198.18.12.2
                    # What the kernel says the Linux server's connection runs (`ss -ti`),
                    # read during its first download.
                    [ "$srv" = linux ] && [ ! -e "$WORK/loss-cc-seen" ] && cc_probe "$l" &
                    local out
                    out=$(timeout $((cap + 5)) ip netns exec "$c" curl -s -o /dev/null --max-time "$cap" \
                        -w '%{time_total} %{size_download} %{http_code}' "http://$ip/bytes/$size" 2>/dev/null || true)
                    local fct bytes code
                    read -r fct bytes code <<<"$out"
                    if [ "${code:-}" = 200 ] && [ "${bytes:-0}" = "$size" ]; then
                        printf '{"cond":"%s","size":%s,"server":"%s","run":%s,"fct":%s}\n' \
                            "$name" "$size" "$srv" "$run" "$fct" >>"$lj"
                    else
                        printf '{"cond":"%s","size":%s,"server":"%s","run":%s,"fct":null}\n' \
                            "$name" "$size" "$srv" "$run" >>"$lj"
                        log "loss: $name $size B from $srv failed (${out:-no answer})"
                    fi
                    done_n=$((done_n + 1))
                done
            done
            counters_json "$l" "$sock" >"$WORK/loss-after.json"
            printf '{"cond":"%s","size":%s,"runs":%s,"counters":{"before":%s,"after":%s}}\n' "$name" "$size" \
                "$runs" "$(cat "$WORK/loss-before.json")" "$(cat "$WORK/loss-after.json")" >>"$lj"
            log "loss: $name ${size} B × $runs done ($done_n/$total downloads, $(($(date +%s) - t0)) s)"
        done
        bridge_stop "$bpid" "$name" >>"$lj"
        # Packets the TUNs dropped before the bridge read them (cumulative; the report takes
        # differences): they must stay 0 for the bridge not to be the bottleneck.
        printf '{"cond":"%s","tun_drops":%s}\n' "$name" \
            "$(( $(tun_tx_dropped "$c" imp0) + $(tun_tx_dropped "$r" imp1) ))" >>"$lj"
        [ -n "$dump" ] && kill -INT "$dump" 2>/dev/null
    done
    kill -0 "$spid" 2>/dev/null || log "loss: synack has died (see $WORK/loss-synack.log)"
    cp "$lj" "$OUT/loss.jsonl"
    "$PY" "$ROOT/bench/loss_report.py" "$lj" "$OUT/loss.md" --commit "$COMMIT" --date "$DATE" \
        --load "$LOAD" --load-end "$(cut -d' ' -f1-3 /proc/loadavg)" --rtt-ms $((2 * LOSS_DELAY_MS)) \
        --linux-cc "$cc" --linux-cc-seen "$(cat "$WORK/loss-cc-seen" 2>/dev/null || echo '?')"
}

# bridge_start CLIENT-NS ROUTER-NS ARGS...: impair-bridge between imp0 and imp1; sets
# BRIDGE_PID once both TUNs have carrier (at most ~3 s).
bridge_start() {
    local c=$1 r=$2 pid
    shift 2
    ip netns exec "$r" "$BIN/impair-bridge" --a "$c:imp0" --b "$r:imp1" "$@" \
        >"$WORK/loss-bridge.out" 2>"$WORK/loss-bridge.err" &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 60); do
        if ! ip -n "$c" link show imp0 | grep -q NO-CARRIER &&
            ! ip -n "$r" link show imp1 | grep -q NO-CARRIER; then
            BRIDGE_PID=$pid
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    cat "$WORK/loss-bridge.err" >&2
    return 1
}

# bridge_stop PID COND: stops the bridge and prints its report as a JSON line.
bridge_stop() {
    local pid=$1 keep=() p
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
    printf '{"cond":"%s","bridge":%s}\n' "$2" "$(tail -n 1 "$WORK/loss-bridge.out" | grep '^{' || echo null)"
}

# tun_tx_dropped NS DEV: the TX dropped count of DEV (what its ring could not hold).
tun_tx_dropped() {
    ip -n "$1" -s link show "$2" | awk '/TX:/ { getline; print $4; exit }' | grep -E '^[0-9]+$' || echo 0
}

# cc_probe LINUX-NS: polls `ss -ti` in the Linux server's namespace (at most ~3 s) until an
# established connection on port 80 shows, and writes its congestion control to loss-cc-seen.
cc_probe() {
    local seen
    : >"$WORK/loss-cc-seen"
    for _ in $(seq 1 150); do
        seen=$(ip netns exec "$1" ss -tinH state established '( sport = :80 )' 2>/dev/null |
            grep -oE '(^|[[:space:]])(cubic|bbr|reno)([[:space:]]|$)' | tr -d '[:space:]' | head -c 16 || true)
        if [ -n "$seen" ]; then
            echo "$seen" >"$WORK/loss-cc-seen"
            return 0
        fi
        sleep 0.02
    done
    echo "?" >"$WORK/loss-cc-seen"
}

# wait_http CLIENT-NS IP: until a 1-byte download works (at most ~10 s).
wait_http() {
    for _ in $(seq 1 20); do
        [ "$(timeout 3 ip netns exec "$1" curl -s -o /dev/null --max-time 0.5 -w '%{http_code}' \
            "http://$2/bytes/1" 2>/dev/null)" = 200 ] && return 0
        sleep 0.2
    done
    return 1
}

# counters_json LINUX-NS SYNACK-SOCK: {"linux": {nstat name: value}, "synack": {name: value}},
# synack's counters under Linux's name where it has one.
counters_json() {
    {
        echo '#linux'
        ip netns exec "$1" nstat -asz 2>/dev/null || true
        echo '#synack'
        "$SYN_BIN" stats --control "$2" 2>/dev/null || true
    } | "$PY" -c '
import json, sys
out, cur = {"linux": {}, "synack": {}}, None
for line in sys.stdin:
    f = line.split()
    if line.startswith("#linux"): cur = "linux"; continue
    if line.startswith("#synack"): cur = "synack"; continue
    if cur is None or len(f) < 2 or line.startswith("#"): continue
    try:
        v = int(f[-1] if cur == "synack" else f[1])
    except ValueError:
        continue
    out[cur][f[-2] if cur == "synack" else f[0]] = v
print(json.dumps(out))'
}
