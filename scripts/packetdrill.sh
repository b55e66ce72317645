#!/usr/bin/env bash
# Run packetdrill scripts against synack (the default) or against this machine's Linux.
#
#   scripts/packetdrill.sh [--ip ipv4|ipv6|ipv4-mapped-ipv6|all] [--linux] [SCRIPT.pkt|DIR]...
#
#   --ip VERSION   run each script for this IP version only (default: all, the three of them)
#   --linux        run against this machine's kernel (a fresh private network namespace each)
#   -v, --verbose  print packetdrill's whole output for every run that does not pass
#   SCRIPT|DIR     scripts, or folders searched for *.pkt; default: ../shared/packetdrill/tests
#                  (Linux's corpus, beside the repository) and tests/packetdrill (our own)
#
# Prints one line per script and IP version, PASS, FAIL (with packetdrill's first error line),
# SKIP (--linux only: the script pins an address outside 198.18.0.0/15 and 2001:2::/48),
# XFAIL / XPASS (the run is listed in tests/packetdrill/expected-failures.txt, or
# expected-failures-linux.txt with --linux), then "N passed, N failed". Exit status 0 iff
# none failed. docs/PACKETDRILL.md explains the two modes.
#
# Builds packetdrill (../shared/packetdrill/packetdrill-2c4001c.tar.gz, into target/packetdrill/;
# installs Debian's bison, flex, gcc and make if missing) and libsynack_packetdrill.so if needed.
# Needs root: every run is inside its own network and mount namespaces (unshare -n -m), with
# /proc/sys read-only except the namespace's own /proc/sys/net.
set -euo pipefail

usage() { sed -n '2,21s/^# \{0,1\}//p' "$0"; }

ips=(ipv4 ipv6 ipv4-mapped-ipv6)
linux=false
verbose=false
paths=()
while (($#)); do
    case "$1" in
        --ip)
            (($# >= 2)) || { echo "--ip needs a value: ipv4, ipv6, ipv4-mapped-ipv6 or all" >&2; exit 2; }
            case "$2" in
                all) ips=(ipv4 ipv6 ipv4-mapped-ipv6) ;;
                ipv4 | ipv6 | ipv4-mapped-ipv6) ips=("$2") ;;
                *) echo "--ip $2: expected ipv4, ipv6, ipv4-mapped-ipv6 or all" >&2; exit 2 ;;
            esac
            shift ;;
        --ip=*) set -- --ip "${1#--ip=}" "${@:2}"; continue ;;
        --linux) linux=true ;;
        -v | --verbose) verbose=true ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
        *) paths+=("$1") ;;
    esac
    shift
done

repo=$(cd "$(dirname "$0")/.." && pwd)
# Paths given are relative to where we were started; the runs use them relative to the
# repository (the default ones are).
for i in "${!paths[@]}"; do
    [[ ${paths[i]} == /* ]] || paths[i]=$(realpath -m --relative-to="$repo" "${paths[i]}")
done
cd "$repo"
((${#paths[@]})) || paths=(../shared/packetdrill/tests tests/packetdrill)

if [[ $(id -u) -ne 0 ]]; then
    echo "packetdrill runs need root (a network namespace and, with --linux, a TUN device): run as root" >&2
    exit 1
fi

target=$(realpath -m "${CARGO_TARGET_DIR:-$repo/target}")
pd_dir=$target/packetdrill
pd_bin=$pd_dir/packetdrill
tarball=${SYNACK_PACKETDRILL_TARBALL:-$repo/../shared/packetdrill/packetdrill-2c4001c.tar.gz}

# --- building --------------------------------------------------------------------------------

install_build_deps() {
    local missing=()
    for tool in bison flex gcc make; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    ((${#missing[@]})) || return 0
    if ! command -v apt-get >/dev/null; then
        echo "packetdrill needs ${missing[*]} to build: install them with your package manager" >&2
        exit 1
    fi
    echo "installing ${missing[*]} (to build packetdrill)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

# packetdrill is a GPLv2 test tool: it is built from the pinned tarball into target/ and never
# copied into this repository.
build_packetdrill() {
    if [[ -x $pd_bin && ! $tarball -nt $pd_bin ]]; then
        return
    fi
    if [[ ! -f $tarball ]]; then
        echo "packetdrill's source is missing: expected $tarball (shared/ beside the repository; or set SYNACK_PACKETDRILL_TARBALL)" >&2
        exit 1
    fi
    install_build_deps
    echo "building packetdrill from $tarball into $pd_dir" >&2
    rm -rf "$pd_dir/src"
    mkdir -p "$pd_dir/src"
    tar xzf "$tarball" -C "$pd_dir/src"
    if ! (cd "$pd_dir/src/gtests/net/packetdrill" && ./configure && make -j2 packetdrill) >"$pd_dir/build.log" 2>&1; then
        echo "building packetdrill failed; see $pd_dir/build.log" >&2
        exit 1
    fi
    cp "$pd_dir/src/gtests/net/packetdrill/packetdrill" "$pd_bin"
}

build_library() {
    if ! cargo build --quiet --release -p synack-packetdrill >&2; then
        echo "building the packetdrill library failed (see above)" >&2
        exit 1
    fi
    lib=$target/release/libsynack_packetdrill.so
}

scripts=()
for path in "${paths[@]}"; do
    if [[ -d $path ]]; then
        while IFS= read -r -d '' f; do scripts+=("$f"); done < <(find "$path" -name '*.pkt' -type f -print0 | sort -z)
    elif [[ -f $path ]]; then
        scripts+=("$path")
    elif [[ $path == ../shared/* ]]; then
        echo "no $path: Linux's packetdrill corpus is expected in shared/ beside the repository ($(realpath -m ../shared))" >&2
        exit 2
    else
        echo "no such script or folder: $path" >&2
        exit 2
    fi
done

build_packetdrill
lib=
$linux || build_library

# --- addresses -------------------------------------------------------------------------------

# The addresses every run uses (packetdrill's --local_ip etc.), inside the benchmarking ranges
# 198.18.0.0/15 and 2001:2::/48 only: the stack under test is "local", packetdrill's peer is
# "remote", reached through "gateway".
v4_local=198.18.0.1 v4_gateway=198.18.0.2 v4_netmask=255.255.0.0 v4_remote=198.19.0.1
v6_local=2001:2::1 v6_gateway=2001:2::2 v6_remote=2001:2:0:1::1

# in_ranges ADDRESS: true iff ADDRESS (optionally with /prefix) is in 198.18.0.0/15 or 2001:2::/48.
in_ranges() {
    /usr/bin/python3 - "$1" <<'EOF'
import ipaddress, sys
net = ipaddress.ip_network(sys.argv[1], strict=False)
ok = any(net.version == r.version and net.subnet_of(r)
         for r in map(ipaddress.ip_network, ("198.18.0.0/15", "2001:2::/48")))
sys.exit(0 if ok else 1)
EOF
}

# pinned_option SCRIPT NAME: the value of a `--NAME=VALUE` line the script sets for itself.
pinned_option() {
    sed -n "s/^[[:space:]]*--$2=\([^[:space:]]*\).*/\1/p" "$1" | tail -n 1
}

# --- expected failures -----------------------------------------------------------------------

# Lines "PATH IP REASON..." (PATH relative to the repository, IP one of the three or "all");
# '#' starts a comment.
if $linux; then
    xfail_file=tests/packetdrill/expected-failures-linux.txt
else
    xfail_file=tests/packetdrill/expected-failures.txt
fi
declare -A xfail=()
if [[ -f $xfail_file ]]; then
    while read -r xpath xip reason; do
        [[ -z $xpath || $xpath == \#* ]] && continue
        xfail["$xpath $xip"]=$reason
    done <"$xfail_file"
fi

expected_failure() { # PATH IP: prints the reason and succeeds if the run is listed
    local key
    for key in "$1 $2" "$1 all"; do
        if [[ -n ${xfail[$key]+set} ]]; then
            printf '%s' "${xfail[$key]}"
            return 0
        fi
    done
    return 1
}

# --- running ---------------------------------------------------------------------------------

run_dir=$pd_dir/run
mkdir -p "$run_dir"
shims=$run_dir/shims

# In synack's mode the scripts' shell commands (sysctl, tc, ip, ethtool) must not touch the host, and
# there is no tun0: these stand-ins, first on PATH, record sysctl settings for the library to
# map onto synack's configuration and say that the rest is ignored.
write_shims() {
    mkdir -p "$shims"
    cat >"$shims/sysctl" <<'EOF'
#!/bin/sh
# synack's packetdrill mode: record "key=value" settings for libsynack_packetdrill.so, which
# maps them onto synack's configuration (and says which it ignores) at the next socket call.
for arg in "$@"; do
    case "$arg" in
        -*) ;;
        *=*) printf '%s\n' "$arg" >>"$SYNACK_PD_SYSCTL_FILE" ;;
        *) echo "synack-packetdrill: note: sysctl $arg: reading is not mapped, ignored" >&2 ;;
    esac
done
exit 0
EOF
    for tool in tc ip ethtool; do
        cat >"$shims/$tool" <<EOF
#!/bin/sh
echo "synack-packetdrill: note: ignored: $tool \$* (no device, qdiscs, routes or TCP metrics in synack's mode)" >&2
exit 0
EOF
    done
    chmod +x "$shims"/*
}
$linux || write_shims

# The namespace every run is in: a private network namespace (only lo, and with --linux
# packetdrill's tun0), /proc/sys read-only except this namespace's own /proc/sys/net (every
# sysctl in there is per network namespace: the kernel hides global net.* sysctls in a new
# namespace).
export SYNACK_PD_IP=$(command -v ip)
sandbox=(unshare -n -m --propagation private -- /bin/sh -c '
    mount --bind /proc/sys /proc/sys &&
    mount --bind /proc/sys/net /proc/sys/net &&
    mount -o remount,bind,ro /proc/sys &&
    "$SYNACK_PD_IP" link set lo up &&
    exec "$@"' sh)

# first_error OUTPUT_FILE SCRIPT STATUS: packetdrill's first error line, which names the script
# ("name.pkt:13: error handling packet: ..."); else the first line that is not one of the
# library's notes (a script's own commands may print harmless complaints before it). When the
# library ended the script (synack will never send the packet packetdrill waits for, and
# packetdrill is handed one it cannot parse), the library's explanation replaces packetdrill's
# complaint about that packet.
first_error() {
    local line name ours
    name=$(basename "$2")
    line=$(grep -F -e "$name:" "$1" | head -n 1 || true)
    ours=$(sed -n 's/^synack-packetdrill: error: //p' "$1" | head -n 1)
    if [[ -n $ours ]]; then
        line="$(sed -n 's/^\([^ ]*\.pkt:[0-9]*:\).*/\1/p' <<<"$line")${line:+ }$ours"
    fi
    [[ -n $line ]] || line=$(grep -v -e '^synack-packetdrill: note' -e '^[[:space:]]*$' "$1" | head -n 1 || true)
    [[ -n $line ]] || line="packetdrill exited with status $3 and printed nothing"
    printf '%s' "$line"
}

passed=0 failed=0 xfailed=0 skipped=0

run_one() { # SCRIPT IP
    local script=$1 ip=$2 local_ip remote_ip gateway_ip netmask_ip opt addr out status
    # As upstream's run_all.py runs the corpus: IPv6 with a 1520-byte MTU (so the MSS is 1460
    # as in IPv4), and the same -D definitions.
    local args=(--ip_version="$ip" --send_omit_free)
    local v4=true
    if [[ $ip == ipv6 ]]; then
        v4=false
        args+=(--mtu=1520 -D TFO_COOKIE=c1d1e9742a47a9bc -D CMSG_LEVEL_IP=SOL_IPV6 -D CMSG_TYPE_RECVERR=IPV6_RECVERR)
    elif [[ $ip == ipv4 ]]; then
        args+=(-D TFO_COOKIE=3021b9d889017eeb -D CODE=host_unreachable -D CMSG_LEVEL_IP=SOL_IP -D CMSG_TYPE_RECVERR=IP_RECVERR)
    else
        args+=(-D TFO_COOKIE=3021b9d889017eeb -D CODE=host_unreachable -D CMSG_LEVEL_IP=SOL_IPV6 -D CMSG_TYPE_RECVERR=IPV6_RECVERR)
    fi

    if $linux; then
        for opt in local_ip remote_ip gateway_ip; do
            addr=$(pinned_option "$script" "$opt")
            if [[ -n $addr ]] && ! in_ranges "$addr"; then
                echo "SKIP $script ($ip): pins $addr"
                skipped=$((skipped + 1))
                return
            fi
        done
        if $v4; then
            args+=(--local_ip="$v4_local" --gateway_ip="$v4_gateway" --netmask_ip="$v4_netmask" --remote_ip="$v4_remote")
        else
            args+=(--local_ip="$v6_local" --gateway_ip="$v6_gateway" --remote_ip="$v6_remote")
        fi
    else
        # No packet touches an interface: a script's own addresses are used as they are.
        local_ip=$(pinned_option "$script" local_ip)
        remote_ip=$(pinned_option "$script" remote_ip)
        if $v4; then
            local_ip=${local_ip:-$v4_local}
            args+=(--local_ip="$local_ip" --remote_ip="${remote_ip:-$v4_remote}")
            args+=(--gateway_ip="$v4_gateway" --netmask_ip="$v4_netmask")
        else
            local_ip=${local_ip:-$v6_local}
            args+=(--local_ip="$local_ip" --remote_ip="${remote_ip:-$v6_remote}" --gateway_ip="$v6_gateway")
        fi
        : >"$run_dir/sysctl"
        local mtu=1500
        $v4 || mtu=1520
        args+=(--so_filename="$lib" --so_flags="local_ip=$local_ip,mtu=$mtu,sysctl_file=$run_dir/sysctl")
    fi

    out=$run_dir/output
    status=0
    (
        cd "$(dirname "$script")"
        if $linux; then
            exec timeout 300 "${sandbox[@]}" "$pd_bin" "${args[@]}" "$(basename "$script")"
        else
            # Preloaded into packetdrill alone: its %{ }% blocks read TCP_INFO through the C
            # library's getsockopt(), and it closes the sockets a script left open with the C
            # library's close(); the library answers both for its own descriptors.
            exec env PATH="$shims:$PATH" SYNACK_PD_SYSCTL_FILE="$run_dir/sysctl" \
                timeout 60 "${sandbox[@]}" env LD_PRELOAD="$lib" "$pd_bin" "${args[@]}" "$(basename "$script")"
        fi
    ) >"$out" 2>&1 || status=$?

    local rel reason
    rel=$(realpath -m --relative-to="$repo" "$script")
    if ((status == 0)); then
        if reason=$(expected_failure "$rel" "$ip"); then
            echo "XPASS $script ($ip): listed as an expected failure ($reason): remove it from $xfail_file"
        else
            echo "PASS $script ($ip)"
        fi
        passed=$((passed + 1))
    else
        local error
        error=$(first_error "$out" "$script" "$status")
        ((status == 124)) && error="timed out (wall clock); last line: $error"
        if reason=$(expected_failure "$rel" "$ip"); then
            echo "XFAIL $script ($ip): $reason"
            xfailed=$((xfailed + 1))
        else
            echo "FAIL $script ($ip): $error"
            failed=$((failed + 1))
        fi
        if $verbose; then
            sed 's/^/    /' "$out"
        fi
    fi
}

for script in "${scripts[@]}"; do
    for ip in "${ips[@]}"; do
        run_one "$script" "$ip"
    done
done

extra=()
((xfailed)) && extra+=("$xfailed expected failures")
((skipped)) && extra+=("$skipped skipped")
if ((${#extra[@]})); then
    (IFS=','; echo "(${extra[*]/#/ })" | sed 's/( /(/')
fi
echo "$passed passed, $failed failed"
((failed == 0))
