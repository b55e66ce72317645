#!/usr/bin/env bash
# Run every cargo-fuzz target for a bounded time each.
#
#   scripts/fuzz.sh [SECONDS]     (default: 30 seconds per target)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). On a stable toolchain the
# sanitizer flags are unlocked with RUSTC_BOOTSTRAP=1. New corpus entries go to a
# temporary directory, so the committed seeds in fuzz/corpus/ are read but never changed.
# Exits non-zero if any target finds a crash (the input is left in fuzz/artifacts/).
set -euo pipefail

secs="${1:-30}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
    echo "usage: $0 [SECONDS]  (a positive whole number of seconds per target)" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: run 'cargo install cargo-fuzz --locked'" >&2
    exit 2
fi

cd "$(dirname "$0")/../fuzz"
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

for target in $(cargo fuzz list); do
    echo "== fuzzing '$target' for ${secs}s"
    mkdir -p "$scratch/$target" "corpus/$target"
    cargo fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048
done
echo "== all fuzz targets ran ${secs}s without a crash"
