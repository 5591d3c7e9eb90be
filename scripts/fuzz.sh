#!/usr/bin/env bash
# Runs the cargo-fuzz targets of node/fuzz (issue 9): the RESP request decoder, the reply
# decoder and command parsing with apply. Each target starts from its checked-in corpus
# (node/fuzz/corpus/TARGET, replayed by `cargo test` too) and writes what it discovers to a
# scratch corpus, so the repository only holds the seeds and inputs added after a fix.
#
#   scripts/fuzz.sh                          # every target, 600 s each
#   FUZZ_SECONDS=60 scripts/fuzz.sh command  # one target, one minute
#
# Prints libFuzzer's closing figures (executions, coverage) per target; exits non-zero when
# a target crashes, leaving the input under node/fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# cargo-fuzz passes nightly-only flags (-Zsanitizer, sancov passes); the stable toolchain
# accepts them when told it is bootstrapping, and no other toolchain can be fetched here.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cellkv/target}-fuzz"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-600}"
SCRATCH="${FUZZ_SCRATCH:-$HOME/.cache/cellkv/fuzz-corpus}"
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(resp_request resp_reply command)
cd node
status=0
for target in "${targets[@]}"; do
    mkdir -p "$SCRATCH/$target"
    log="$SCRATCH/$target.log"
    echo "== $target: ${SECONDS_PER_TARGET}s" >&2
    if ! cargo fuzz run "$target" "$SCRATCH/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096 -timeout=30 \
        -print_final_stats=1 >"$log" 2>&1; then
        status=1
        echo "$target: CRASH (see $log and fuzz/artifacts/$target/)" >&2
        tail -40 "$log" >&2
    fi
    # The last status line carries coverage and corpus size; the final stats the totals.
    echo "$target: $(grep -E '^#[0-9]+' "$log" | tail -1)"
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" |
        sed "s/^/$target: /"
done
exit $status
