#!/usr/bin/env bash
# Issue 16, goal 2: the quickstart pipeline at 100,000 and at 10,000,000 readings, in the same
# run: throughput (readings per second of wall time) and peak RSS (GNU time's %M) of each.
# The readings come from the pipeline's generator (`run --generate N`) and the objects are
# written under a scratch directory, deleted afterwards.
#
#   scripts/bench-scale.sh            # 100k, 10M
#   scripts/bench-scale.sh 1000000 3000000   # 100k, and each N given
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- 10000000
cargo build -q --release --example quickstart
bin=target/release/examples/quickstart
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for n in 100000 "$@"; do
    rm -rf "$out/data"
    /usr/bin/time -f "%e %M" -o "$out/time" "$bin" run --generate "$n" --quiet --out "$out/data" \
        > /dev/null 2> "$out/stderr" || { cat "$out/stderr"; exit 1; }
    read -r secs kib < "$out/time"
    awk -v n="$n" -v s="$secs" -v k="$kib" 'BEGIN {
        printf "%10d readings: %7.2f s, %9.0f readings/s, peak RSS %6.1f MiB\n", n, s, n / s, k / 1024
    }'
done
