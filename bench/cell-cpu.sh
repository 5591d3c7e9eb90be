#!/usr/bin/env bash
# Where a three-node cell spends its CPU on one redis-benchmark test: the user and system
# time of each node per request, and how many log entries carried the requests. On two
# cores the three nodes and the load generator share, the cell's throughput follows the sum
# of the nodes' CPU per request; the entries tell whether a change moved per-entry costs
# (replication messages, fsyncs, reading entries back) or per-request ones.
#
#   bench/cell-cpu.sh                          # SET at -P 1 through the leader
#   TEST=set PIPELINE=16 ROLE=follower bench/cell-cpu.sh
#   SYSCALLS=2 bench/cell-cpu.sh               # also count node 2's syscalls and switches
#   CELL_IO_THREADS=0 bench/cell-cpu.sh         # nodes with the default workers (bench/lib.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
PIPELINE="${PIPELINE:-1}"
TEST="${TEST:-set}"
ROLE="${ROLE:-leader}"

start_cell
TARGET=$LEADER
[ "$ROLE" = follower ] && TARGET=$((LEADER % 3 + 1))

# The leader's commit index: one log entry per gathered batch of writes.
commit_index() {
    redis-cli -p "${NODE_PORT[$LEADER]}" INFO replication |
        awk -F: '/^raft_commit_index:/ {gsub("\r", "", $2); print $2}'
}

# A warm-up, so the keys exist and every connection is established.
redis-benchmark -h 127.0.0.1 -p "${NODE_PORT[$TARGET]}" -c "$CLIENTS" -n 20000 -r 100000 \
    -t "$TEST" -P "$PIPELINE" -q >/dev/null 2>&1
declare -A BEFORE
for id in 1 2 3; do BEFORE[$id]=$(cpu_split "${NODE_PID[$id]}"); done
FIRST=$(commit_index)
if [ -n "${SYSCALLS:-}" ]; then
    events=context-switches
    for call in read write writev recvfrom sendto epoll_wait futex fdatasync; do
        events+=",syscalls:sys_enter_$call"
    done
    perf stat -e "$events" -p "${NODE_PID[$SYSCALLS]}" -o "$WORK/syscalls.txt" &
    PERF_PID=$!
fi
RPS=$(bench_rps "${NODE_PORT[$TARGET]}" "$TEST" "$PIPELINE")
if [ -n "${SYSCALLS:-}" ]; then
    kill -INT "$PERF_PID"
    wait "$PERF_PID" || true
fi
LAST=$(commit_index)
ENTRIES=$((LAST - FIRST))

echo "${TEST^^} -P $PIPELINE through the $ROLE: $RPS req/s, $ENTRIES entries" \
    "($(python3 -c "print(f'{$REQUESTS / max(1, $ENTRIES):.1f}')") requests per entry)"
echo "| node | role | user µs/req | system µs/req | all µs/req | context switches/req |"
echo "|---|---|---|---|---|---|"
for id in 1 2 3; do
    role=follower
    [ "$id" = "$LEADER" ] && role=leader
    [ "$id" = "$TARGET" ] && role+=" (clients here)"
    python3 -c "
hz, n = $(getconf CLK_TCK), $REQUESTS
b, a = [int(x) for x in '${BEFORE[$id]}'.split()], [int(x) for x in '$(cpu_split "${NODE_PID[$id]}")'.split()]
user, system = (a[0] - b[0]) / hz * 1e6 / n, (a[1] - b[1]) / hz * 1e6 / n
print(f'| $id | $role | {user:.1f} | {system:.1f} | {user + system:.1f} | {(a[2] - b[2]) / n:.2f} |')"
done
if [ -n "${SYSCALLS:-}" ]; then
    echo
    echo "node $SYSCALLS, per request:"
    awk -v n="$REQUESTS" '/syscalls:|context-switches/ {gsub(",", "", $1); printf "  %-32s %.3f\n", $2, $1 / n}' \
        "$WORK/syscalls.txt"
fi
