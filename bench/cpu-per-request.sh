#!/usr/bin/env bash
# CPU time the server spends per request, cellkv beside redis-server (`appendfsync always`),
# read from /proc/PID/stat around one redis-benchmark run per test, split into user and
# system time, with the context switches of the server's threads. On two cores shared with
# the load generator, throughput follows this figure, and unlike req/s it hardly moves with
# what else the machine is doing, so it is the number to watch when changing the write path.
#
#   bench/cpu-per-request.sh                    # SET, GET, INCR, LPUSH, HSET at -P 1
#   TESTS="set" PIPELINE=16 bench/cpu-per-request.sh
#   CELLKV_BIN=path/to/cellkv REDIS=0 bench/cpu-per-request.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
PIPELINE="${PIPELINE:-1}"
TESTS="${TESTS:-set get incr lpush hset}"

# One line: test, req/s, microseconds of server CPU per request (all, user, system) and
# the server's context switches per request.
measure() {
    local name=$1 pid=$2 port=$3 test=$4
    local before after rps
    before=$(cpu_split "$pid")
    rps=$(bench_rps "$port" "$test" "$PIPELINE")
    after=$(cpu_split "$pid")
    python3 -c "
hz, n = $(getconf CLK_TCK), $REQUESTS
b, a = [int(x) for x in '$before'.split()], [int(x) for x in '$after'.split()]
user, system = (a[0] - b[0]) / hz * 1e6 / n, (a[1] - b[1]) / hz * 1e6 / n
switches = (a[2] - b[2]) / n
print(f'| $name | ${test^^} | $PIPELINE | {float(\"$rps\"):.0f} | {user + system:.1f} | {user:.1f} | {system:.1f} | {switches:.2f} |')"
}

echo "| server | test | pipeline | req/s | CPU µs per request | user | system | context switches per request |"
echo "|---|---|---|---|---|---|---|---|"
if [ "${REDIS:-1}" = 1 ]; then
    REDIS_PORT=$(free_port)
    mkdir -p "$WORK/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save "" \
        --appendonly yes --appendfsync always --daemonize no >"$WORK/redis.log" 2>&1 &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    wait_ping "$REDIS_PORT"
    for test in $TESTS; do measure redis "$REDIS_PID" "$REDIS_PORT" "$test"; done
fi
PORT=$(free_port)
"$CELLKV_BIN" --port "$PORT" --raft-port "$(free_port)" --dir "$WORK/cellkv" --log-level warn \
    ${CELLKV_ARGS:-} >"$WORK/cellkv.out" 2>"$WORK/cellkv.log" &
CELLKV_PID=$!
PIDS+=("$CELLKV_PID")
wait_ping "$PORT"
for test in $TESTS; do measure cellkv "$CELLKV_PID" "$PORT" "$test"; done
