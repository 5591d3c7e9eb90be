#!/usr/bin/env bash
# The compose deployment tested for real: a three-node cell in containers on this machine.
#
#   deploy/test-compose.sh
#
# 1. Builds an image FROM scratch from binaries already built (never runs cargo), starts
#    deploy/compose/docker-compose.yml under a project name of its own with RESP published
#    on free loopback ports, waits until the cell has a leader and every node is ready.
# 2. Writes and reads with redis-cli through every published port.
# 3. `docker kill` of the leader's container while a client writes: both survivors serve
#    within 5 s; `docker start` brings it back and it catches up.
# 4. `docker network disconnect` of one follower: the others keep serving; reconnected, it
#    catches up.
# 5. Rolling restart of the three, one at a time (a leader first hands leadership over with
#    `cellkv-cli cluster step-down`, as docs/operations.md says), while a client writes.
# 6. Backup and restore as docs/operations.md says: a stopped follower's /data copied out,
#    the cell recreated on fresh volumes each holding that copy; it elects a leader and has
#    every write acknowledged before the backup and none after.
# 7. Majority lost for good (leader and a follower killed, their volumes gone): the survivor
#    takes no write; its directory, copied to all three, becomes the cell again with
#    every acknowledged write.
# Throughout, every write a node acknowledged must be readable at the end (losses = 0), and
# a failed write may only be one of the documented retryable outcomes (docs/consistency.md):
# CLUSTERDOWN, TRYAGAIN, UNKNOWN, a refused or dropped connection, a client-side timeout.
# The closing line: `compose: kills=... restarts=... writes=... acknowledged=... losses=...`.
#
# Everything it creates (containers, network, volumes, the image) is removed on exit, failed
# or not. Exits 0 with a message, doing nothing, when no Docker engine answers.
#
# Environment:
#   CELLKV_BIN, CELLKV_CLI  binaries to pack (default ${CARGO_TARGET_DIR:-~/.cache/cellkv/target}/debug/...)
#   CELLKV_KEEP=1           leave the cell running on failure, for a look (prints how to remove it)
#   CELLKV_LOG_LEVEL        the nodes' log filter (e.g. info,openraft=info); CELLKV_LOG_LINES
#                           how many lines per node a failed run prints (default 40)
set -Eeuo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

say() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
fail() { say "FAIL: $*" >&2; exit 1; }
trap 'say "FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR

if ! command -v docker >/dev/null 2>&1 || ! timeout 20 docker info >/dev/null 2>&1; then
    echo "compose test skipped: no Docker engine answers"
    exit 0
fi
if docker compose version >/dev/null 2>&1; then
    compose_cmd=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose_cmd=(docker-compose)
else
    echo "compose test skipped: neither 'docker compose' nor 'docker-compose' is installed"
    exit 0
fi
if ! command -v redis-cli >/dev/null 2>&1; then
    say "installing redis-tools (redis-cli)"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-tools >/dev/null
fi

target="${CARGO_TARGET_DIR:-$HOME/.cache/cellkv/target}"
export CELLKV_BIN="${CELLKV_BIN:-$target/debug/cellkv}"
export CELLKV_CLI="${CELLKV_CLI:-$target/debug/cellkv-cli}"
for f in "$CELLKV_BIN" "$CELLKV_CLI"; do
    [ -x "$f" ] || fail "no binary at $f: build first (cargo test --workspace builds both), or set CELLKV_BIN / CELLKV_CLI"
done

project="cellkvtest$(date +%s)$$"
image="cellkv-test:$project"
work="$(mktemp -d)"
compose_file="$root/deploy/compose/docker-compose.yml"
# The test's own override: name lookups never leave the compose network (Docker's DNS would
# pass a dead container's name on to the host's resolvers); a loopback resolver with nothing
# behind it makes them fail at once instead.
printf 'services:\n' >"$work/override.yml"
for n in 1 2 3; do printf '  node%s:\n    dns: ["127.0.0.1"]\n' "$n" >>"$work/override.yml"; done
compose() { "${compose_cmd[@]}" -p "$project" -f "$compose_file" -f "$work/override.yml" "$@"; }

cleanup() {
    local status=$?
    [ -f "$work/stop" ] || touch "$work/stop"
    wait 2>/dev/null || true
    if [ "$status" -ne 0 ] && [ "${CELLKV_KEEP:-0}" = 1 ]; then
        say "left running: ${compose_cmd[*]} -p $project -f $compose_file down -v; docker image rm $image"
        return
    fi
    if [ "$status" -ne 0 ]; then
        say "logs of the failed run (last 40 lines per node):" >&2
        compose logs --no-color --tail "${CELLKV_LOG_LINES:-40}" >&2 2>&1 || true
    fi
    compose down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
    # Whatever `down` missed (a container started by hand, a network left connected).
    docker ps -aq --filter "label=com.docker.compose.project=$project" | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker network ls -q --filter "label=com.docker.compose.project=$project" | xargs -r docker network rm >/dev/null 2>&1 || true
    docker volume ls -q --filter "label=com.docker.compose.project=$project" | xargs -r docker volume rm >/dev/null 2>&1 || true
    docker image rm -f "$image" >/dev/null 2>&1 || true
    rm -rf "$work"
    say "removed project $project and image $image"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free loopback ports for the three RESP ports, chosen now (never the fixed 6379..6381).
read -r p1 p2 p3 < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
')
export CELLKV_IMAGE="$image" CELLKV_PORT_1="$p1" CELLKV_PORT_2="$p2" CELLKV_PORT_3="$p3" CELLKV_PUBLISH_ADDR=127.0.0.1
ports=("" "$p1" "$p2" "$p3")

say "building $image from $CELLKV_BIN"
CELLKV_IMAGE_LABEL="cellkv.test=$project" deploy/docker/build-local-image.sh "$image"
say "starting project $project (${compose_cmd[*]}), RESP on 127.0.0.1:$p1,$p2,$p3"
compose up -d >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; fail "compose up"; }

# Container ids, looked up once the cell is up: they stay the same across kill, start,
# restart and network changes (and `compose ps` of v2 would leave out a stopped one).
containers=()
container() { echo "${containers[$1]}"; }
# redis-cli against node N's published port; a hung call is cut after a few seconds.
rcli() { local n="$1"; shift; timeout 10 redis-cli -h 127.0.0.1 -p "${ports[$n]}" "$@" 2>&1; }
# The leader's id as node N sees it (empty when it answers nothing useful).
leader_seen_by() {
    rcli "$1" INFO replication | tr -d '\r' | awk -F: '$1 == "raft_leader_id" && $2 > 0 { print $2 }'
}
# Waits until every listed node reports the same leader, which is one of them; prints its id.
wait_leader() {
    local deadline=$((SECONDS + $1)); shift
    while [ $SECONDS -lt $deadline ]; do
        local seen=() n
        for n in "$@"; do seen+=("$(leader_seen_by "$n")"); done
        local first="${seen[0]}" same=1
        for n in "${seen[@]}"; do [ -n "$n" ] && [ "$n" = "$first" ] || same=0; done
        if [ "$same" = 1 ] && [[ " $* " == *" $first "* ]]; then echo "$first"; return 0; fi
        sleep 0.2
    done
    return 1
}
# Waits until node N's own readiness probe (`cellkv-cli ready`, run inside its container)
# passes: a leader, and caught up with it.
wait_ready() {
    local n="$1" deadline=$((SECONDS + $2)) out=""
    while [ $SECONDS -lt $deadline ]; do
        out="$(docker exec "$(container "$n")" cellkv-cli --node 127.0.0.1:6379 --connect-timeout 2 --timeout 3 ready 2>&1)" && return 0
        sleep 0.5
    done
    say "node $n not ready after $2 s: $out" >&2
    return 1
}

# --- The writer: SET w:<phase>:<i> i in a loop on the given nodes, round robin, until
# $work/stop-<phase> exists. Each outcome is one line of $work/<phase>.log:
#   ack KEY | retry KIND KEY | bad KEY REPLY
writer() {
    local phase="$1"; shift
    local nodes=("$@") i=0 n key out code kind
    while [ ! -e "$work/stop-$phase" ] && [ ! -e "$work/stop" ]; do
        i=$((i + 1))
        n="${nodes[$((i % ${#nodes[@]}))]}"
        key="w:$phase:$i"
        code=0
        out="$(timeout 12 redis-cli -h 127.0.0.1 -p "${ports[$n]}" SET "$key" "$i" 2>&1)" || code=$?
        out="${out#(error) }"
        if [ "$code" = 0 ] && [ "$out" = "OK" ]; then
            echo "ack $key"
            continue
        fi
        case "$out" in
            CLUSTERDOWN*) kind=clusterdown ;;
            TRYAGAIN*) kind=tryagain ;;
            UNKNOWN*) kind=unknown ;;
            *"Connection refused"*|*"Could not connect"*) kind=refused ;;
            *"Server closed the connection"*|*"Connection reset"*|*"Broken pipe"*|"") kind=dropped ;;
            *) if [ "$code" = 124 ]; then kind=timeout; else kind=""; fi ;;
        esac
        if [ -n "$kind" ]; then
            echo "retry $kind $key"
            sleep 0.05
        else
            echo "bad $key $(echo "$out" | tr '\n' ' ')"
        fi
    done >"$work/$phase.log"
}
start_writer() { local phase="$1"; shift; writer "$phase" "$@" & writer_pid=$!; }
stop_writer() { touch "$work/stop-$1"; wait "$writer_pid" || true; }

total_writes=0 total_acks=0 total_retry=0 total_bad=0 total_lost=0
# Checks a phase's log: no write outside the documented outcomes, and every acknowledged
# key reads back (through node N) with its value.
check_phase() {
    local phase="$1" n="$2" log="$work/$1.log"
    local writes acks retry bad lost
    writes=$(wc -l <"$log")
    acks=$(grep -c '^ack ' "$log" || true)
    retry=$(grep -c '^retry ' "$log" || true)
    bad=$(grep -c '^bad ' "$log" || true)
    awk '$1 == "ack" { print $2 }' "$log" >"$work/$phase.acked"
    # MGET in batches; every acknowledged key must hold its own index.
    lost=0
    if [ -s "$work/$phase.acked" ]; then
        lost=$(xargs -n 500 timeout 30 redis-cli -h 127.0.0.1 -p "${ports[$n]}" --raw MGET <"$work/$phase.acked" \
            | paste -d' ' "$work/$phase.acked" - \
            | awk '{ split($1, k, ":"); if ($2 != k[3]) { print > "/dev/stderr"; lost++ } } END { print lost + 0 }' 2>"$work/$phase.lost")
    fi
    local kinds
    kinds=$(awk '$1 == "retry" { c[$2]++ } END { for (k in c) { printf "%s%s=%d", sep, k, c[k]; sep = " " } }' "$log")
    say "$phase: writes=$writes acknowledged=$acks retryable=$retry (${kinds:-none}) other-errors=$bad lost=$lost"
    total_writes=$((total_writes + writes)); total_acks=$((total_acks + acks))
    total_retry=$((total_retry + retry)); total_bad=$((total_bad + bad)); total_lost=$((total_lost + lost))
    if [ "$bad" -gt 0 ]; then awk '$1 == "bad"' "$log" | head -5 >&2; fail "$phase: $bad writes failed with an undocumented error"; fi
    if [ "$lost" -gt 0 ]; then head -5 "$work/$phase.lost" >&2; fail "$phase: $lost acknowledged writes lost"; fi
    [ "$acks" -gt 0 ] || fail "$phase: no write was acknowledged"
}
# Node N holds the value of the last acknowledged write of a phase (read on N itself).
wait_caught_up() {
    local n="$1" phase="$2" deadline=$((SECONDS + $3)) key want got
    key=$(tail -1 "$work/$phase.acked"); want="${key##*:}"
    while [ $SECONDS -lt $deadline ]; do
        got=$(docker exec "$(container "$n")" cellkv-cli --node 127.0.0.1:6379 --timeout 3 raw get "$key" 2>/dev/null | tr -d '"') || true
        [ "$got" = "$want" ] && return 0
        sleep 0.3
    done
    fail "node $n did not catch up with $key=$want (has '$got')"
}

# --- 1. The cell forms by itself.
containers=("")
for n in 1 2 3; do
    containers+=("$(compose ps -q "node$n")")
    [ -n "${containers[$n]}" ] || fail "no container for node$n"
done
leader=$(wait_leader 90 1 2 3) || fail "no leader within 90 s"
for n in 1 2 3; do wait_ready "$n" 60 || fail "node $n never became ready"; done
say "cell formed: leader node $leader, all three ready"

# --- 2. Write through each published port, read through each.
for n in 1 2 3; do
    [ "$(rcli "$n" SET "port:$n" "via-${ports[$n]}")" = OK ] || fail "SET through node $n"
done
for n in 1 2 3; do
    for m in 1 2 3; do
        got=$(rcli "$n" GET "port:$m")
        [ "$got" = "via-${ports[$m]}" ] || fail "GET port:$m through node $n gave '$got'"
    done
done
say "writes and reads through ports $p1, $p2, $p3: every node sees every write"

# --- 3. docker kill the leader while a client writes through all three ports.
kills=0
start_writer kill 1 2 3
sleep 3
killed=$leader
survivors=()
for n in 1 2 3; do [ "$n" = "$killed" ] || survivors+=("$n"); done
say "docker kill node $killed (the leader)"
t0=$(date +%s.%N)
docker kill "$(container "$killed")" >/dev/null
kills=$((kills + 1))
# Both survivors must take a write and read it back within 5 s of the kill.
served=""
for n in "${survivors[@]}"; do
    while :; do
        now=$(date +%s.%N)
        if awk -v a="$t0" -v b="$now" 'BEGIN { exit !(b - a > 5) }'; then
            fail "node $n did not serve within 5 s of the kill"
        fi
        if [ "$(rcli "$n" SET "after-kill:$n" yes)" = OK ] && [ "$(rcli "$n" GET "after-kill:$n")" = yes ]; then
            break
        fi
        sleep 0.1
    done
    served="$served node $n at +$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2fs", b - a }')"
done
say "survivors serve:$served"
sleep 2
new_leader=$(wait_leader 15 "${survivors[@]}") || fail "the survivors agree on no leader"
say "docker start node $killed (new leader: node $new_leader)"
docker start "$(container "$killed")" >/dev/null
wait_ready "$killed" 90 || fail "node $killed did not come back"
sleep 2
stop_writer kill
check_phase kill "${survivors[0]}"
wait_caught_up "$killed" kill 30
say "node $killed restarted and caught up"

# --- 4. Cut one follower off its network, then reconnect it.
leader=$(wait_leader 15 1 2 3) || fail "no leader after the restart"
cut=""
for n in 3 2 1; do [ "$n" = "$leader" ] || { cut=$n; break; }; done
others=()
for n in 1 2 3; do [ "$n" = "$cut" ] || others+=("$n"); done
network=$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$(container "$cut")" | awk '{ print $1 }')
start_writer partition "${others[@]}"
sleep 1
say "docker network disconnect $network node $cut"
docker network disconnect "$network" "$(container "$cut")"
sleep 6
# The cut-off node has no leader's link any more: it must not claim to be ready.
if docker exec "$(container "$cut")" cellkv-cli --node 127.0.0.1:6379 --connect-timeout 2 --timeout 3 ready >/dev/null 2>&1; then
    fail "node $cut says it is ready while cut off"
fi
say "node $cut cut off and not ready; nodes ${others[*]} keep taking writes"
docker network connect --alias "node$cut" "$network" "$(container "$cut")"
say "reconnected node $cut"
wait_ready "$cut" 60 || fail "node $cut did not rejoin"
sleep 1
stop_writer partition
check_phase partition "${others[0]}"
wait_caught_up "$cut" partition 30
got=$(rcli "$cut" GET "$(tail -1 "$work/partition.acked")") || true
say "node $cut caught up (its published port reads '$got' for the last write)"

# --- 5. Rolling restart of all three while a client writes through all three ports.
restarts=0
start_writer rolling 1 2 3
sleep 2
for n in 1 2 3; do
    c=$(container "$n")
    if [ "$(leader_seen_by "$n")" = "$n" ]; then
        out=$(docker exec "$c" cellkv-cli --node 127.0.0.1:16379 cluster step-down 2>&1) || fail "step-down on node $n: $out"
        say "node $n led: $(echo "$out" | head -1)"
    fi
    say "docker restart node $n"
    docker restart -t 30 "$c" >/dev/null
    restarts=$((restarts + 1))
    wait_ready "$n" 90 || fail "node $n not ready after its restart"
    sleep 2
done
stop_writer rolling
leader=$(wait_leader 15 1 2 3) || fail "no leader after the rolling restart"
check_phase rolling "$leader"
for n in 1 2 3; do wait_caught_up "$n" rolling 30; done
say "rolling restart done; leader node $leader; every node has the last write"

# --- 6. Backup and restore as docs/operations.md says: a cold copy of one follower's data
# directory, then the whole cell rebuilt on fresh volumes holding that copy.
f=""
for n in 3 2 1; do [ "$n" = "$leader" ] || { f=$n; break; }; done
docker exec "$(container "$f")" cellkv-cli --node 127.0.0.1:16379 cluster snapshot >/dev/null
docker stop -t 30 "$(container "$f")" >/dev/null
docker cp "$(container "$f"):/data" "$work/backup"
docker start "$(container "$f")" >/dev/null
say "backup: node $f stopped, its /data copied ($(du -sh "$work/backup" | cut -f1)), started again"
wait_ready "$f" 60 || fail "node $f not ready after the backup"
[ "$(rcli "$leader" SET after-backup yes)" = OK ] || fail "write after the backup"
compose down -v -t 30 >/dev/null 2>&1
compose up --no-start >/dev/null 2>&1
# Into each new (not yet started) container's volume, owned by the image's user 10001: a tar
# stream keeps the owner its headers name (`docker cp -a` would look the user up with tools
# a scratch image lacks).
containers=("")
for n in 1 2 3; do
    containers+=("$(compose ps -q "node$n")")
    tar -C "$work/backup" -cf - --owner=10001 --group=10001 --numeric-owner . | docker cp - "${containers[$n]}:/data/"
done
compose start >/dev/null 2>&1
restored_leader=$(wait_leader 60 1 2 3) || fail "no leader in the restored cell"
for n in 1 2 3; do wait_ready "$n" 60 || fail "node $n not ready after the restore"; done
missing=$(xargs -n 500 timeout 30 redis-cli -h 127.0.0.1 -p "${ports[$restored_leader]}" --raw MGET <"$work/rolling.acked" \
    | paste -d' ' "$work/rolling.acked" - | awk '{ split($1, k, ":"); if ($2 != k[3]) m++ } END { print m + 0 }')
[ "$missing" = 0 ] || fail "the restored cell lacks $missing writes acknowledged before the backup"
total_lost=$((total_lost + missing))
[ -z "$(rcli "$restored_leader" GET after-backup)" ] || fail "the restored cell has a write made after the backup"
[ "$(rcli 1 SET after-restore yes)" = OK ] && [ "$(rcli 3 GET after-restore)" = yes ] || fail "the restored cell does not take writes"
say "restore: fresh volumes with the copy; leader node $restored_leader; all $(wc -l <"$work/rolling.acked") writes acknowledged before the backup are there, the one after it is not; new writes work"

# --- 7. Majority lost for good: kill -9 the leader and one follower, and lose their volumes.
# As docs/operations.md says, the survivor's directory becomes the whole cell again.
leader=$(wait_leader 30 1 2 3) || fail "no leader before the majority loss"
survivor=""
for n in 3 2 1; do [ "$n" = "$leader" ] || { survivor=$n; break; }; done
[ "$(rcli "$survivor" SET before-loss yes)" = OK ] || fail "write before the majority loss"
for n in 1 2 3; do
    [ "$n" = "$survivor" ] || { docker kill "$(container "$n")" >/dev/null; kills=$((kills + 1)); }
done
# Without a majority no write may succeed: the first may still be forwarded to the dead
# leader (-UNKNOWN), the next find no leader (-CLUSTERDOWN).
for attempt in 1 2; do
    out=$(rcli "$survivor" SET "during-loss:$attempt" yes)
    case "$out" in
        CLUSTERDOWN*|UNKNOWN*|TRYAGAIN*) ;;
        *) fail "the survivor answered '$out' to a write without a majority" ;;
    esac
done
docker stop -t 30 "$(container "$survivor")" >/dev/null
rm -rf "$work/backup"
docker cp "$(container "$survivor"):/data" "$work/backup"
compose down -v -t 30 >/dev/null 2>&1
compose up --no-start >/dev/null 2>&1
containers=("")
for n in 1 2 3; do
    containers+=("$(compose ps -q "node$n")")
    tar -C "$work/backup" -cf - --owner=10001 --group=10001 --numeric-owner . | docker cp - "${containers[$n]}:/data/"
done
compose start >/dev/null 2>&1
recovered=$(wait_leader 60 1 2 3) || fail "no leader after recovering from the survivor"
for n in 1 2 3; do wait_ready "$n" 60 || fail "node $n not ready after the recovery"; done
missing=$(xargs -n 500 timeout 30 redis-cli -h 127.0.0.1 -p "${ports[$recovered]}" --raw MGET <"$work/rolling.acked" \
    | paste -d' ' "$work/rolling.acked" - | awk '{ split($1, k, ":"); if ($2 != k[3]) m++ } END { print m + 0 }')
[ "$missing" = 0 ] && [ "$(rcli "$recovered" GET before-loss)" = yes ] || fail "the recovered cell lost acknowledged writes ($missing of the rolling phase)"
[ "$(rcli 2 SET after-recovery yes)" = OK ] && [ "$(rcli 1 GET after-recovery)" = yes ] || fail "the recovered cell does not take writes"
say "majority loss: nodes other than $survivor killed with their volumes; the survivor refused writes ($(echo "$out" | cut -d' ' -f1)); rebuilt from its directory: leader node $recovered, no acknowledged write missing, new writes work"

echo "compose: kills=$kills restarts=$restarts writes=$total_writes acknowledged=$total_acks retryable=$total_retry other-errors=$total_bad losses=$total_lost"
