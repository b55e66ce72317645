#!/usr/bin/env bash
# Run synack's whole test suite: unit and property tests (cargo test, and the packetdrill
# library's), the packetdrill scripts against synack (scripts/packetdrill.sh), then the
# end-to-end tests (tests/e2e, pytest) inside a fresh, private network namespace.
#
#   scripts/test.sh                 everything
#   scripts/test.sh --unit-only     cargo test only
#   scripts/test.sh --e2e-only      build, then the end-to-end tests only
#   scripts/test.sh --deps-only     install the system packages the tests need, nothing else
#   scripts/test.sh -- -k http      anything after the options goes to pytest
#
# Needs root (network namespaces and a TUN device). On Debian/Ubuntu it installs what is
# missing (tcpdump, netcat-openbsd, curl, iputils-ping, iproute2, util-linux, apache2-utils,
# bison, flex, gcc and make to build packetdrill,
# libcap2-bin, systemd, man-db, python3-scapy, python3-pytest, chromium, python3-pil,
# python3-prometheus-client, microsocks) with apt-get, and cargo-deb with cargo. Nothing is configured in
# the machine's own namespace; the package test installs synack's .deb with dpkg and removes
# it again.
set -euo pipefail

usage() { sed -n '2,18s/^# \{0,1\}//p' "$0"; }

mode=all
pytest_args=()
while (($#)); do
    case "$1" in
        --unit-only) mode=unit ;;
        --e2e-only) mode=e2e ;;
        --deps-only) mode=deps ;;
        -h | --help) usage; exit 0 ;;
        --) shift; pytest_args+=("$@"); break ;;
        *) pytest_args+=("$1") ;;
    esac
    shift
done

cd "$(dirname "$0")/.."
say() { printf '\n==> %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
    echo "end-to-end tests need root (network namespaces and a TUN device): run as root, e.g. sudo scripts/test.sh" >&2
    exit 1
fi

# The e2e tests use Debian's own Python, where python3-scapy and python3-pytest live.
PYTHON=/usr/bin/python3

install_deps() {
    local missing=()
    command -v tcpdump >/dev/null || missing+=(tcpdump)
    { command -v nc >/dev/null && nc -h 2>&1 | grep -qE '^[[:space:]]+-N'; } || missing+=(netcat-openbsd)
    command -v curl >/dev/null || missing+=(curl)
    command -v ab >/dev/null || missing+=(apache2-utils)
    command -v ping >/dev/null || missing+=(iputils-ping)
    command -v ip >/dev/null || missing+=(iproute2)
    command -v unshare >/dev/null || missing+=(util-linux)
    command -v setpriv >/dev/null || missing+=(util-linux)
    command -v nsenter >/dev/null || missing+=(util-linux)
    # tests/e2e/test_daemon.py: file capabilities, the unit check, the man page, the package.
    command -v setcap >/dev/null || missing+=(libcap2-bin)
    command -v systemd-analyze >/dev/null || missing+=(systemd)
    command -v man >/dev/null || missing+=(man-db)
    command -v dpkg-deb >/dev/null || missing+=(dpkg)
    "$PYTHON" -c 'import scapy' 2>/dev/null || missing+=(python3-scapy)
    "$PYTHON" -c 'import pytest' 2>/dev/null || missing+=(python3-pytest)
    # Issue 18: scripts/packetdrill.sh builds packetdrill from ../shared/packetdrill.
    for tool in bison flex gcc make; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    command -v ssh >/dev/null || missing+=(openssh-client)
    [[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
    # Issue 10: pages in a real browser, screenshots checked with PIL, /metrics parsed.
    command -v chromium >/dev/null || missing+=(chromium)
    "$PYTHON" -c 'import PIL' 2>/dev/null || missing+=(python3-pil)
    "$PYTHON" -c 'import prometheus_client' 2>/dev/null || missing+=(python3-prometheus-client)
    # Issue 21: the transparent relay through a SOCKS5 proxy.
    command -v microsocks >/dev/null || missing+=(microsocks)
    if ((${#missing[@]})); then
        say "installing ${missing[*]}"
        if ! command -v apt-get >/dev/null; then
            echo "missing ${missing[*]} and no apt-get here: install them with your package manager" >&2
            exit 1
        fi
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

# scripts/package.sh (and its test) builds the Debian package with cargo-deb.
install_cargo_deb() {
    cargo deb --version >/dev/null 2>&1 && return
    say "installing cargo-deb (cargo install cargo-deb --locked)"
    cargo install cargo-deb --locked
}

install_deps
if command -v cargo >/dev/null && [[ $mode != unit ]]; then
    install_cargo_deb
fi
[[ $mode == deps ]] && exit 0

if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust (https://rustup.rs) and run this again" >&2
    exit 1
fi

if [[ $mode != e2e ]]; then
    say "unit and property tests: cargo test"
    cargo test
    cargo test -p synack-packetdrill
fi
[[ $mode == unit ]] && exit 0

# Issue 18: Linux's packetdrill corpus (../shared/packetdrill/tests) and ours
# (tests/packetdrill) against synack, on a virtual clock (seconds), with the checked-in
# expected failures.
say "packetdrill scripts against synack: scripts/packetdrill.sh"
scripts/packetdrill.sh

# The end-to-end tests move gigabytes (issue 3), so they run the optimised binary.
say "building synack and the socket-API example (release)"
cargo build --release --bin synack --example echo_server
export SYNACK_BIN=${SYNACK_BIN:-$(pwd)/${CARGO_TARGET_DIR:-target}/release/synack}
export SYNACK_ECHO_EXAMPLE=${SYNACK_ECHO_EXAMPLE:-$(pwd)/${CARGO_TARGET_DIR:-target}/release/examples/echo_server}

say "end-to-end tests in a private network namespace"
export PYTHONDONTWRITEBYTECODE=1
# unshare -n: a new network namespace with only a (down) loopback; it and everything the
# tests create in it disappear when pytest exits. Unix sockets are not per network namespace,
# so the run also gets a private mount namespace with its own tmpfs on /run/synack: the
# daemons' default control sockets can never meet another run's (or a real daemon's).
mkdir -p /run/synack
unshare -n -m --propagation private -- /bin/sh -c \
    'mount -t tmpfs -o mode=0755 synack-test /run/synack && exec "$@"' sh \
    "$PYTHON" -m pytest -v -p no:cacheprovider -rfExX tests/e2e "${pytest_args[@]}"
