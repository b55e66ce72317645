#!/usr/bin/env bash
# A two-minute tour of synack: build it, start it in a private network namespace (nothing on
# the host changes), and watch nc, curl and ping talk to it while tcpdump shows every segment.
#
#   scripts/demo.sh            the tour, then synack is stopped with SIGTERM
#   scripts/demo.sh --shell    the tour, then a shell in that namespace with synack running;
#                              try `nc 198.18.0.2 7`, `curl http://198.18.0.2/`; exit to stop
#
# Needs root (a network namespace and a TUN device).
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ ${1:-} == --inside ]]; then
    shift
    inside=1
else
    inside=0
fi
shell=0
for arg in "$@"; do
    case "$arg" in
        --shell) shell=1 ;;
        -h | --help) sed -n '2,9s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "unknown option: $arg (try --help)" >&2; exit 2 ;;
    esac
done

if ((!inside)); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "the demo needs root (a network namespace and a TUN device): run as root, e.g. sudo scripts/demo.sh" >&2
        exit 1
    fi
    scripts/test.sh --deps-only
    echo "==> building synack"
    cargo build --bin synack
    # Everything from here on happens in a new network namespace that vanishes with it.
    exec unshare -n -- "$0" --inside "$@"
fi

# ---- inside the private namespace

BIN=${SYNACK_BIN:-$(pwd)/${CARGO_TARGET_DIR:-target}/debug/synack}
work=$(mktemp -d /tmp/synack-demo.XXXXXX)
synack_pid=
tcpdump_pid=

bold=$'\e[1m' dim=$'\e[2m' off=$'\e[0m'
[[ -t 1 ]] || bold= dim= off=
say() { printf '\n%s# %s%s\n' "$bold" "$*" "$off"; sleep 0.3; }
show() {
    printf '%s$ %s%s\n' "$bold" "$*" "$off"
    timeout 10 bash -c "$*" || printf '%s(exit status %s)%s\n' "$dim" "$?" "$off"
    sleep 0.4 # let tcpdump's lines land before the next command
}

cleanup() {
    [[ -n $tcpdump_pid ]] && kill "$tcpdump_pid" 2>/dev/null || true
    [[ -n $synack_pid ]] && kill "$synack_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

ip link set lo up

say "Starting synack: it creates the TUN interface synack0 and answers as 198.18.0.2 / 2001:2::2"
"$BIN" >"$work/synack.log" 2>&1 &
synack_pid=$!
ready=0
for _ in $(seq 100); do # up to 10 s
    if ! kill -0 "$synack_pid" 2>/dev/null; then
        cat "$work/synack.log"
        echo "synack exited during startup" >&2
        exit 1
    fi
    if ip -o addr show dev synack0 2>/dev/null | grep -q 198.18.0.1/24 &&
        timeout 1 nc -z 198.18.0.2 7 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.1
done
if ((!ready)); then
    cat "$work/synack.log"
    echo "synack did not become reachable within 10 s" >&2
    exit 1
fi
sed 's/^/    synack | /' "$work/synack.log"
show "ip -br addr show dev synack0"

say "tcpdump shows every TCP segment on synack0 from now on (-S: absolute sequence numbers)"
tcpdump -lni synack0 -S tcp 2>/dev/null | sed -u "s/^/    ${dim}tcpdump | /; s/\$/${off}/" &
tcpdump_pid=$!
sleep 1

say "echo (RFC 862): a 3-way handshake, the line comes back, then a 4-way close"
show "printf 'hello\n' | nc -N 198.18.0.2 7"

say "http over IPv4: the page describes your own connection"
show "curl -s http://198.18.0.2/"

say "http over IPv6"
show "curl -s 'http://[2001:2::2]/'"

say "a port nobody listens on: refused at once by a RST,ACK"
show "nc -z 198.18.0.2 5555 && echo open || echo refused"

say "ping: ICMP echo is answered too"
show "ping -c1 -W2 198.18.0.2"

if ((shell)); then
    say "A shell in the namespace, synack still running. Try: nc 198.18.0.2 7 | curl -v http://198.18.0.2/ | tcpdump -ni synack0 -S tcp. Exit to stop synack."
    kill "$tcpdump_pid" 2>/dev/null || true
    tcpdump_pid=
    PS1='(synack demo) \w# ' bash --norc -i || true
fi

say "Stopping synack with SIGTERM: it closes its connections and exits; synack0 disappears"
sleep 0.5
kill -TERM "$synack_pid"
status=0
wait "$synack_pid" || status=$?
synack_pid=
tail -n 3 "$work/synack.log" | sed 's/^/    synack | /'
echo "synack exited with status $status"
if ip link show synack0 >/dev/null 2>&1; then
    echo "synack0 still exists"
else
    echo "synack0 is gone"
fi
exit "$status"
