# The transparent-relay suite (issue 21), sourced by scripts/bench.sh (`--suite transparent`):
# it uses bench.sh's helpers (ns_new, client, log, PIDS, WORK, BIN, PY, RUNS, BYTES, CAP, COUNT).
#
# One upstream namespace holds the kernel's servers (bench/kernel-server on 198.19.1.10:
# 7 echo, 9 sink, 19 source; bench/hold_server.py, an echo server for many idle connections, on
# 198.19.1.11:7; microsocks on 198.18.8.2:1080 when installed). Three ways reach it, each from
# a namespace of its own:
#   synack   synack --addr any -l '*=direct' --upstream-interface up0 (route 198.19.1.0/24
#            into synack0; up0 is a veth to the upstream namespace); and a second synack
#            with -l '*=socks5:198.18.8.2:1080' through microsocks, in the same run
#   tun2proxy  tun2proxy 0.8.7 --proxy none --max-sessions 20000 (relays directly) on tun0, its own sockets kept off
#            tun0 by a uidrange rule (it cannot bind them); clients run as uid 1000; skipped
#            with a note when tun2proxy-bin is not installed (`cargo install tun2proxy`)
#   direct   the kernel's own path: a veth straight to the upstream namespace (MTU 1500)
# Figures, median of RUNS: upload and download of BYTES over 1 and over 10 connections;
# sequential connect-and-close per second (COUNT); daemon RSS with 10,000 idle relayed
# connections (scripts/echo_clients.py).

T2P_BIN=${TUN2PROXY_BIN:-$(command -v tun2proxy-bin || echo /opt/tun2proxy/bin/tun2proxy-bin)}

transparent_suite() {
    local up="$PFX-tup" syn="$PFX-tsyn" dc="$PFX-tdc" t2p="$PFX-tt2p" tj="$WORK/transparent.jsonl"
    : >"$tj"
    ns_new "$up"
    ns_new "$syn"
    ip -n "$up" link add up1 type veth peer name up0 netns "$syn" 2>/dev/null ||
        { log "transparent: cannot create the veth"; return; }
    ip -n "$up" addr add 198.19.1.10/16 dev up1
    ip -n "$up" addr add 198.19.1.11/16 dev up1
    ip -n "$up" addr add 198.19.1.20/16 dev up1
    ip -n "$up" link set up1 up
    ip -n "$syn" addr add 198.19.0.1/16 dev up0
    ip -n "$syn" link set up0 up
    # The direct path: a veth from the client namespace to the upstream's.
    ns_new "$dc"
    link_to_upstream "$dc" dc "$up" 198.18.5
    ip -n "$dc" route add 198.19.1.0/24 via 198.18.5.2
    # 64 workers a port: tun2proxy keeps its upstream sockets open after its clients are gone
    # (ten a run on each port), and with 16 they took the workers, so in later runs the
    # relays' connections waited in the accept queue, their buffers full, and the clients'
    # connects timed out (the 10-connection figures of everyone after tun2proxy suffered).
    ip netns exec "$up" "$BIN/kernel-server" --addr 198.19.1.10 --workers 64 >"$WORK/t-upstream.log" 2>&1 &
    PIDS+=("$!")
    local upstream_pid=$!
    ip netns exec "$up" "$PY" "$ROOT/bench/hold_server.py" 198.19.1.11 7 >"$WORK/t-hold.log" 2>&1 &
    PIDS+=("$!")
    # synack relaying every port of 198.19.1.0/24 directly; a second synack, in a namespace of
    # its own, relaying the same through microsocks (on 198.18.8.2, across a veth of its own).
    local spid="" ppid="" sp="$PFX-tsp"
    if start_relay "$syn" t -l '*=direct' --upstream-interface up0; then
        spid=$RELAY_PID
    else
        log "transparent: synack does not relay: its figures are n/a"
    fi
    if command -v microsocks >/dev/null; then
        ns_new "$sp"
        link_to_upstream "$sp" sp "$up" 198.18.8
        ip netns exec "$up" microsocks -i 198.18.8.2 -p 1080 >/dev/null 2>&1 &
        PIDS+=("$!")
        if start_relay "$sp" tsocks -l '*=socks5:198.18.8.2:1080' --upstream-interface sp0; then
            ppid=$RELAY_PID
        else
            log "transparent: synack through microsocks does not relay: its figures are n/a"
        fi
    fi
    # tun2proxy, when installed.
    local tpid="" tuser=()
    if [ -x "$T2P_BIN" ]; then
        ns_new "$t2p"
        link_to_upstream "$t2p" t "$up" 198.18.6
        ip -n "$t2p" route add 198.19.1.0/24 via 198.18.6.2
        start_with_link "$t2p" tun0 "$WORK/t-tun2proxy.log" \
            "$T2P_BIN" --tun tun0 --proxy none --tcp-mss 1460 --max-sessions 20000
        tpid=$BG_PID
        ip -n "$t2p" link set tun0 up 2>/dev/null || true
        ip -n "$t2p" addr add 198.18.7.1/24 dev tun0 2>/dev/null || true
        # Clients (uid 1000) route into tun0; tun2proxy (root) goes out through t0.
        ip -n "$t2p" rule add uidrange 1000-1000 lookup 100
        ip -n "$t2p" route add 198.19.1.0/24 dev tun0 table 100
        tuser=(setpriv --reuid 1000 --regid 1000 --clear-groups)
        ok=""
        for _ in $(seq 1 40); do
            [ -n "$(t_client "$t2p" wait 198.19.1.10:9 --max-secs 0.25 tun2proxy)" ] && { ok=1; break; }
            sleep 0.05
        done
        [ -n "$ok" ] || { log "transparent: tun2proxy does not relay (see $WORK/t-tun2proxy.log)"; tpid=""; }
    else
        log "transparent: tun2proxy-bin not found (cargo install tun2proxy --version 0.8.7): its figures are n/a"
    fi
    local run label ns pid conns dir port r
    # RSS with 10,000 idle relayed connections, first, while each daemon is fresh: after the
    # throughput runs a daemon's RSS holds what those transfers left in its allocator
    # (tun2proxy buffers hundreds of megabytes of an upload), which says nothing about what an
    # idle connection costs. rss0_kib is the RSS before the connections. tun2proxy's clients
    # run as uid 1000, the only traffic its rule routes into tun0 (until 2026-12-07 they ran
    # as root here and went around tun2proxy: its figure was its RSS after the throughput
    # runs, not what 10,000 connections cost it).
    local kib0 idle_user
    for target in ${spid:+"synack $syn $spid"} ${tpid:+"tun2proxy $t2p $tpid"}; do
        read -r label ns pid <<<"$target"
        idle_user=()
        [ "$label" = tun2proxy ] && idle_user=("${tuser[@]}")
        kib0=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo null)
        r=$(timeout 300 ip netns exec "$ns" ${idle_user[@]+"${idle_user[@]}"} "$PY" "$ROOT/scripts/echo_clients.py" \
            --addr 198.19.1.11 --port 7 --stages 10000 --procs 2 --timeout 120 --rss-pid "$pid" \
            2>>"$WORK/client.log" | grep '"step": "open"' | tail -1 || true)
        printf '{"path":"%s","fig":"idle10k","run":1,"r":%s,"rss0_kib":%s}\n' "$label" "${r:-null}" "$kib0" >>"$tj"
    done
    log "transparent: idle connections measured"
    for run in $(seq 1 "$RUNS"); do
        for target in ${spid:+"synack $syn $spid 198.19.1.10 9 19"} ${ppid:+"socks5 $sp $ppid 198.19.1.10 9 19"} \
                      "direct $dc $upstream_pid 198.19.1.10 9 19" ${tpid:+"tun2proxy $t2p $tpid 198.19.1.10 9 19"}; do
            read -r label ns pid ip p_up p_down <<<"$target"
            for conns in 1 10; do
                r=$(t_client "$ns" upload "$ip:$p_up" "$BYTES" -c "$conns" --server-pid "$pid" --max-secs "$CAP" "$label")
                printf '{"path":"%s","fig":"up%s","run":%s,"r":%s}\n' "$label" "$conns" "$run" "${r:-null}" >>"$tj"
                r=$(t_client "$ns" download "$ip:$p_down" "$BYTES" -c "$conns" --server-pid "$pid" --max-secs "$CAP" "$label")
                printf '{"path":"%s","fig":"down%s","run":%s,"r":%s}\n' "$label" "$conns" "$run" "${r:-null}" >>"$tj"
            done
            [ "$label" = socks5 ] && continue
            r=$(t_client "$ns" connrate "$ip:7" "$COUNT" --max-secs "$CAP" "$label")
            printf '{"path":"%s","fig":"connrate","run":%s,"r":%s}\n' "$label" "$run" "${r:-null}" >>"$tj"
        done
        log "transparent: run $run/$RUNS done"
    done
    cp "$tj" "$OUT/transparent.jsonl"
    "$PY" "$ROOT/bench/transparent_report.py" "$tj" "$OUT/transparent.md" "$BYTES" "$COUNT" \
        "$COMMIT" "$DATE" "$LOAD"
}

# link_to_upstream NS NAME UPSTREAM-NS NET: a veth NAME0 (NET.1/24, in NS) to NAME1 (NET.2/24,
# in the upstream namespace), both up.
link_to_upstream() {
    local ns=$1 name=$2 up=$3 net=$4
    ip -n "$ns" link add "${name}0" type veth peer name "${name}1" netns "$up"
    ip -n "$ns" addr add "$net.1/24" dev "${name}0"
    ip -n "$up" addr add "$net.2/24" dev "${name}1"
    ip -n "$ns" link set "${name}0" up
    ip -n "$up" link set "${name}1" up
}

# start_with_link NS IFACE LOG CMD...: runs CMD in NS in the background (its PID in BG_PID and
# PIDS, its output in LOG) and waits (at most 3 s) for it to create IFACE.
start_with_link() {
    local ns=$1 iface=$2 logf=$3
    shift 3
    ip netns exec "$ns" "$@" >"$logf" 2>&1 &
    BG_PID=$!
    PIDS+=("$BG_PID")
    for _ in $(seq 1 60); do
        ip -n "$ns" link show "$iface" >/dev/null 2>&1 && break
        sleep 0.05
    done
}

# start_relay NS NAME SYNACK-ARGS...: synack --addr any in NS (its own control socket), with
# 198.19.1.0/24 routed into synack0; sets RELAY_PID once it relays to 198.19.1.10:9, fails
# otherwise.
start_relay() {
    local ns=$1 name=$2 pid
    shift 2
    # shellcheck disable=SC2086
    start_with_link "$ns" synack0 "$WORK/$name-synack.log" \
        "$SYN_BIN" --addr any --control "$WORK/$name.sock" -l 7=echo "$@" ${SYNACK_ARGS:-}
    pid=$BG_PID
    ip -n "$ns" route add 198.19.1.0/24 dev synack0 2>/dev/null || return 1
    for _ in $(seq 1 40); do
        if [ -n "$(t_client "$ns" wait 198.19.1.10:9 --max-secs 0.25 synack)" ]; then
            RELAY_PID=$pid
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# t_client NS ARGS... LABEL: bench-client in NS; as uid 1000 for tun2proxy (its rule).
t_client() {
    local ns=$1 label=${*: -1}
    shift
    set -- "${@:1:$(($# - 1))}"
    if [ "$label" = tun2proxy ]; then
        timeout $((CAP + 30)) ip netns exec "$ns" setpriv --reuid 1000 --regid 1000 --clear-groups \
            "$BIN/bench-client" "$@" 2>>"$WORK/client.log" || true
    else
        timeout $((CAP + 30)) ip netns exec "$ns" "$BIN/bench-client" "$@" 2>>"$WORK/client.log" || true
    fi
}
