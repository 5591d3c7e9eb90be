#!/usr/bin/env bash
# Write latency on a three-node cell's leader while a snapshot of 1 000 000 keys is built
# and shipped (issue 5: p99 at most 3x its idle value).
#
# A cell of three release nodes on loopback is filled with KEYS string keys. Then
# redis-benchmark runs the same SET load against the leader (CLIENTS clients, pipeline 1)
# three times and reads p50/p99/max from its CSV:
#   1. idle: nothing else happens;
#   2. build: the leader is told to snapshot (cellkv-cli ... cluster snapshot) at the start;
#   3. ship: a follower that was stopped while the leader snapshotted and purged its log
#      is restarted, so the leader streams it the whole snapshot and it installs it.
# Prints a table and, with BENCH_OUT=path, appends it to that file.
#
#   bench/snapshot-p99.sh
#   KEYS=200000 CELLKV_BIN=... CELLKV_CLI=... bench/snapshot-p99.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CELLKV_BENCH_DEPS=1 scripts/ensure-deps
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cellkv/target}"
if [ -z "${CELLKV_BIN:-}" ] || [ -z "${CELLKV_CLI:-}" ]; then
    cargo build --release --bin cellkv --bin cellkv-cli >&2
    CELLKV_BIN="$CARGO_TARGET_DIR/release/cellkv"
    CELLKV_CLI="$CARGO_TARGET_DIR/release/cellkv-cli"
fi
KEYS="${KEYS:-1000000}"
CLIENTS="${CLIENTS:-10}"
REQUESTS="${REQUESTS:-60000}"
WORK="$(mktemp -d)"
PIDS=()
declare -A PID_OF
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_ping() {
    for _ in $(seq 1 600); do
        redis-cli -p "$1" PING >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "server on port $1 did not come up" >&2
    exit 1
}

read -r -a RAFT_PORTS <<<"$(free_port) $(free_port) $(free_port)"
PEERS="1@127.0.0.1:${RAFT_PORTS[0]},2@127.0.0.1:${RAFT_PORTS[1]},3@127.0.0.1:${RAFT_PORTS[2]}"
declare -A NODE_PORT
for id in 1 2 3; do NODE_PORT[$id]=$(free_port); done

start_node() {
    local id=$1
    # Snapshots only when told, so each phase measures the one it asks for.
    "$CELLKV_BIN" --node-id "$id" --port "${NODE_PORT[$id]}" \
        --raft-port "${RAFT_PORTS[$((id - 1))]}" --peers "$PEERS" --dir "$WORK/n$id" \
        --snapshot-entries 1000000000 --snapshot-interval 1000000s --log-level warn \
        >>"$WORK/n$id.out" 2>>"$WORK/n$id.log" &
    PID_OF[$id]=$!
    PIDS+=($!)
}

leader() {
    for _ in $(seq 1 300); do
        for id in 1 2 3; do
            if redis-cli -p "${NODE_PORT[$id]}" INFO replication 2>/dev/null | grep -q '^role:master'; then
                echo "$id"
                return 0
            fi
        done
        sleep 0.1
    done
    echo "no leader" >&2
    exit 1
}

for id in 1 2 3; do start_node "$id"; done
for id in 1 2 3; do wait_ping "${NODE_PORT[$id]}"; done
LEADER=$(leader)
LPORT=${NODE_PORT[$LEADER]}
FOLLOWER=$(( LEADER % 3 + 1 ))

# The keys: 10 000 per script call, one log entry each.
FILL='for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do redis.call("SET", "key:" .. i, "value-" .. i) end return 1'
echo "filling $KEYS keys..." >&2
for ((from = 1; from <= KEYS; from += 10000)); do
    to=$(( from + 9999 < KEYS ? from + 9999 : KEYS ))
    redis-cli -p "$LPORT" EVAL "$FILL" 0 "$from" "$to" >/dev/null
done
have=$(redis-cli -p "$LPORT" DBSIZE)
[ "$have" -ge "$KEYS" ] || { echo "only $have keys" >&2; exit 1; }

# One run of the SET load on the leader: prints "p50 p99 max" in ms.
load() {
    redis-benchmark -h 127.0.0.1 -p "$LPORT" -c "$CLIENTS" -n "$REQUESTS" -P 1 -r 1000000 \
        -t set --csv 2>/dev/null |
        awk -F'","' 'NR==2 {print $5, $7, $8}' | tr -d '"'
}

# A counter of INFO persistence on the node at port $1 (since that node started).
persistence_field() {
    redis-cli -p "$1" INFO persistence | tr -d '\r' | sed -n "s/^$2:\(.*\)/\1/p"
}

echo "idle..." >&2
read -r IDLE50 IDLE99 IDLEMAX <<<"$(load)"

echo "snapshot build on the leader..." >&2
before=$(persistence_field "$LPORT" raft_snapshots_built)
( sleep 0.5; "$CELLKV_CLI" --node "127.0.0.1:${RAFT_PORTS[$((LEADER - 1))]}" cluster snapshot >"$WORK/snap1.out" 2>&1 ) &
read -r BUILD50 BUILD99 BUILDMAX <<<"$(load)"
wait $! || true
after=$(persistence_field "$LPORT" raft_snapshots_built)

echo "snapshot shipped to a follower that fell behind..." >&2
kill -9 "${PID_OF[$FOLLOWER]}"
wait "${PID_OF[$FOLLOWER]}" 2>/dev/null || true
redis-benchmark -h 127.0.0.1 -p "$LPORT" -c 10 -n 5000 -r 1000000 -t set -q >/dev/null 2>&1
"$CELLKV_CLI" --node "127.0.0.1:${RAFT_PORTS[$((LEADER - 1))]}" cluster snapshot >"$WORK/snap2.out" 2>&1
( sleep 0.5; start_node "$FOLLOWER" ) &
read -r SHIP50 SHIP99 SHIPMAX <<<"$(load)"
wait $! || true
wait_ping "${NODE_PORT[$FOLLOWER]}"
for _ in $(seq 1 600); do
    [ "$(redis-cli -p "${NODE_PORT[$FOLLOWER]}" DBSIZE 2>/dev/null)" -ge "$KEYS" ] 2>/dev/null && break
    sleep 0.1
done
follower_keys=$(redis-cli -p "${NODE_PORT[$FOLLOWER]}" DBSIZE)
installed=$(persistence_field "${NODE_PORT[$FOLLOWER]}" raft_snapshots_installed)

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
table=$(cat <<EOF

## Snapshot of $KEYS keys under write load (issue 5)

Generated by \`bench/snapshot-p99.sh\` on $(date -u +%F) ($(nproc) cores): a three-node
release cell on loopback holding $KEYS string keys; redis-benchmark SET on the leader,
$CLIENTS clients, pipeline 1, $REQUESTS requests per phase. Latencies in ms as
redis-benchmark reports them. Target: p99 during a snapshot at most 3x idle.

| phase | p50 | p99 | max | p99 / idle p99 |
|---|---|---|---|---|
| idle | $IDLE50 | $IDLE99 | $IDLEMAX | 1.00 |
| leader builds a snapshot | $BUILD50 | $BUILD99 | $BUILDMAX | $(ratio "$BUILD99" "$IDLE99") |
| leader ships it to a follower that fell behind | $SHIP50 | $SHIP99 | $SHIPMAX | $(ratio "$SHIP99" "$IDLE99") |

Snapshots built by the leader during the build phase: $((after - before)). The follower
restarted behind the leader's purged log and holds $follower_keys keys afterwards
(snapshots it installed since its restart: $installed).
EOF
)
echo "$table"
if [ -n "${BENCH_OUT:-}" ]; then
    echo "$table" >>"$BENCH_OUT"
fi
