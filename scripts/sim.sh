#!/usr/bin/env bash
# Deterministic simulation of a three-node cell (docs/simulation.md).
#
#   scripts/sim.sh                       # 200 seeds from seed 1
#   scripts/sim.sh --seeds 5000          # a long run
#   scripts/sim.sh --seed 1234 --verbose # replay one seed (alone: --seeds 1), with its faults
#   scripts/sim.sh --seeds 20 --check-determinism
#
# Every option is passed to cellkv-sim (`scripts/sim.sh --help` lists them); --seeds defaults
# to 200 here. Each seed runs in its own process, --jobs at a time (default: one per core).
# A failing seed prints what went wrong and the command that replays it; the last line
# lists every failing seed, and the exit status is non-zero if there was one.
#
# The build uses RUSTFLAGS="--cfg madsim" (tokio, tonic, time, network and randomness are
# madsim's), leaves RocksDB out, and goes to its own target directory:
# CELLKV_SIM_TARGET_DIR, default ~/.cache/cellkv/target-sim. The `sim` profile is release
# with debug assertions; CELLKV_SIM_PROFILE=dev builds sooner and runs about ten times slower.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${CELLKV_SIM_TARGET_DIR:-$HOME/.cache/cellkv/target-sim}"
profile="${CELLKV_SIM_PROFILE:-sim}"
out_dir="$profile"
[ "$profile" = dev ] && out_dir=debug

args=("$@")
has() { local f; for f in "${args[@]}"; do [ "$f" = "$1" ] && return 0; done; return 1; }
if ! has --seeds && ! has --help && ! has -h; then
    # One given seed is a replay; otherwise a batch.
    if has --seed; then args+=(--seeds 1); else args+=(--seeds 200); fi
fi
has --jobs || args+=(--jobs "$(nproc 2>/dev/null || echo 2)")

RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR="$target_dir" \
    cargo build --quiet --profile "$profile" -p cellkv-sim-tests --bin cellkv-sim
exec "$target_dir/$out_dir/cellkv-sim" "${args[@]}"
