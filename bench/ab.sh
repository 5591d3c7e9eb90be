#!/usr/bin/env bash
# Compares two cellkv binaries on one redis-benchmark test, alternating A and B over several
# rounds, each round a fresh server and data directory, and prints every run and the median
# of each: on a two-core machine shared with the load generator single runs of the same
# binary differ by up to a fifth (docs/benchmarks.md), so a change shows only against such
# a series.
#
#   bench/ab.sh OLD_BINARY NEW_BINARY                 # SET, pipeline 1, 5 rounds
#   TEST=hset PIPELINE=16 ROUNDS=7 bench/ab.sh a b
#   WARM=1500000 bench/ab.sh a b       # that many SETs (-P 16) before each measured run
#   ARGS_B="--io-threads 1" bench/ab.sh bin bin        # one binary, two sets of flags
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 2 ]; then
    echo "usage: bench/ab.sh BINARY_A BINARY_B" >&2
    exit 2
fi
BIN_A=$(realpath "$1")
BIN_B=$(realpath "$2")
# Both binaries are given: lib.sh builds nothing.
CELLKV_BIN=$BIN_A
# shellcheck source=bench/lib.sh
source bench/lib.sh

TEST="${TEST:-set}"
PIPELINE="${PIPELINE:-1}"
ROUNDS="${ROUNDS:-5}"
WARM="${WARM:-0}"

# One measured run of binary $2 with extra flags $3: prints "req/s CPU-µs-per-request".
run_once() {
    local label=$1 bin=$2 flags=$3
    local dir port pid before after rps
    dir="$WORK/$label.$RANDOM"
    port=$(free_port)
    # shellcheck disable=SC2086 # the flags are words on purpose
    "$bin" --port "$port" --raft-port "$(free_port)" --dir "$dir" --log-level warn $flags \
        >"$dir.out" 2>"$dir.log" &
    pid=$!
    PIDS+=("$pid")
    wait_ping "$port"
    if [ "$WARM" -gt 0 ]; then
        redis-benchmark -h 127.0.0.1 -p "$port" -c "$CLIENTS" -n "$WARM" -P 16 -r 100000 \
            -t set -q >/dev/null 2>&1
    fi
    before=$(cpu_ticks "$pid")
    rps=$(bench_rps "$port" "$TEST" "$PIPELINE")
    after=$(cpu_ticks "$pid")
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
    python3 -c "print(f'{float(\"$rps\"):.0f}', f'{($after - $before) / $(getconf CLK_TCK) * 1e6 / $REQUESTS:.1f}')"
}

declare -a RPS_A RPS_B CPU_A CPU_B
echo "| round | A req/s | A CPU µs/req | B req/s | B CPU µs/req |"
echo "|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
    read -r rps_a cpu_a <<<"$(run_once a "$BIN_A" "${ARGS_A:-}")"
    read -r rps_b cpu_b <<<"$(run_once b "$BIN_B" "${ARGS_B:-}")"
    RPS_A+=("$rps_a") CPU_A+=("$cpu_a") RPS_B+=("$rps_b") CPU_B+=("$cpu_b")
    echo "| $round | $rps_a | $cpu_a | $rps_b | $cpu_b |"
done
python3 - "${RPS_A[*]}" "${CPU_A[*]}" "${RPS_B[*]}" "${CPU_B[*]}" <<'EOF'
import statistics, sys
rps_a, cpu_a, rps_b, cpu_b = ([float(x) for x in arg.split()] for arg in sys.argv[1:])
ma, mb = statistics.median(rps_a), statistics.median(rps_b)
print(f"| median | {ma:.0f} | {statistics.median(cpu_a):.1f} | {mb:.0f} | {statistics.median(cpu_b):.1f} |")
print(f"B / A, median req/s: {mb / ma:.2f}; B's runs above A's median: "
      f"{sum(r > ma for r in rps_b)} of {len(rps_b)}")
EOF
