# Shared by the bench scripts (sourced from the repository root): the packages they need,
# the release binaries unless CELLKV_BIN (and, with BENCH_NEEDS_CLI=1, CELLKV_CLI) name
# them, a scratch directory and the processes started in it, both gone on exit, and the
# helpers the scripts share.

CELLKV_BENCH_DEPS=1 scripts/ensure-deps
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cellkv/target}"
if [ -z "${CELLKV_BIN:-}" ]; then
    cargo build --release --bin cellkv >&2
    CELLKV_BIN="$CARGO_TARGET_DIR/release/cellkv"
fi
if [ "${BENCH_NEEDS_CLI:-0}" = 1 ] && [ -z "${CELLKV_CLI:-}" ]; then
    cargo build --release --bin cellkv-cli >&2
    CELLKV_CLI="$CARGO_TARGET_DIR/release/cellkv-cli"
fi

# The load of a redis-benchmark run (bench_rps), unless the sourcing script set it first.
REQUESTS="${REQUESTS:-200000}"
CLIENTS="${CLIENTS:-50}"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    # Reap them here, so bash does not report each kill.
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# A loopback port free right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits up to a minute for a PING answer on port $1.
wait_ping() {
    for _ in $(seq 1 600); do
        redis-cli -p "$1" PING >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "server on port $1 did not come up" >&2
    exit 1
}

# Requests per second of one redis-benchmark test against port $1: test $2 at pipeline $3,
# with the sourcing script's $CLIENTS and $REQUESTS, keys drawn from 100 000.
bench_rps() {
    redis-benchmark -h 127.0.0.1 -p "$1" -c "$CLIENTS" -n "$REQUESTS" -P "$3" \
        -r 100000 -t "$2" --csv 2>/dev/null | awk -F'","' 'NR==2 {print $2}' | tr -d '"'
}

# CPU time process $1 has used (user + system), in clock ticks.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# User and system CPU time of process $1 (clock ticks) and the context switches of all its
# threads, voluntary and not: three numbers on one line.
cpu_split() {
    local utime stime switches
    read -r utime stime < <(awk '{print $14, $15}' "/proc/$1/stat")
    switches=$(cat /proc/"$1"/task/*/status 2>/dev/null |
        awk '/^(non)?voluntary_ctxt_switches/ {n += $2} END {print n + 0}')
    echo "$utime $stime $switches"
}

# Picks the ports of a three-node cell on loopback: NODE_PORT (RESP) and RAFT_PORT by node
# id, and the PEERS list every node is started with.
cell_ports() {
    local id
    declare -gA NODE_PORT RAFT_PORT NODE_PID
    for id in 1 2 3; do
        NODE_PORT[$id]=$(free_port)
        RAFT_PORT[$id]=$(free_port)
    done
    PEERS="1@127.0.0.1:${RAFT_PORT[1]},2@127.0.0.1:${RAFT_PORT[2]},3@127.0.0.1:${RAFT_PORT[3]}"
}

# Worker threads of each node of a bench cell. The three nodes and the load generator share
# this machine's two cores, so each node gets one, as an operator who puts a cell's nodes
# on shared cores would set (`io-threads 0` gives each node one per core: six workers on
# two cores here). CELL_IO_THREADS=0 runs the nodes with the default.
CELL_IO_THREADS="${CELL_IO_THREADS:-1}"

# Starts (or restarts) node $1 of the cell of cell_ports with its own data directory,
# $CELL_IO_THREADS workers and any flags in $CELLKV_ARGS; a restart appends to the node's
# output files. Sets NODE_PID.
start_cell_node() {
    local id=$1
    # shellcheck disable=SC2086 # the extra flags are words on purpose
    "$CELLKV_BIN" --node-id "$id" --port "${NODE_PORT[$id]}" --raft-port "${RAFT_PORT[$id]}" \
        --peers "$PEERS" --dir "$WORK/cell$id" --log-level warn \
        --io-threads "$CELL_IO_THREADS" ${CELLKV_ARGS:-} \
        >>"$WORK/cell$id.out" 2>>"$WORK/cell$id.log" &
    NODE_PID[$id]=$!
    PIDS+=($!)
}

# Starts a three-node cell of $CELLKV_BIN, every node with its own fsync, and sets LEADER
# once the cell has elected one (find_leader).
start_cell() {
    local id
    cell_ports
    for id in 1 2 3; do start_cell_node "$id"; done
    for id in 1 2 3; do wait_ping "${NODE_PORT[$id]}"; done
    LEADER=$(find_leader)
}

# Prints the id of the node among NODE_PORT's that reports `role:master`; fails if none
# does within 30 s.
find_leader() {
    local id
    for _ in $(seq 1 300); do
        for id in "${!NODE_PORT[@]}"; do
            if redis-cli -p "${NODE_PORT[$id]}" INFO replication 2>/dev/null | grep -q '^role:master'; then
                echo "$id"
                return 0
            fi
        done
        sleep 0.1
    done
    echo "the cell elected no leader" >&2
    exit 1
}
