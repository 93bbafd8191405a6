#!/usr/bin/env bash
# Builds the `sluice` binary with `--features cuda` here (no GPU, no CUDA install needed: see
# crates/classifier/scripts/cuda-env.sh) for benches/gpu/run.sh to run on a GPU machine:
#
#   benches/gpu/build.sh          # -> target-gpu/sluice.xz (~15-25 minutes the first time, 2 cores)
#
# target-gpu/ is ignored by git; a device session carries it (see benches/gpu/run.sh).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/../../crates/classifier/scripts/cuda-env.sh"
cd "$repo"
nice -n 15 cargo build --release --features cuda --bin sluice
mkdir -p target-gpu
cp "$CARGO_TARGET_DIR/release/sluice" target-gpu/sluice
strip target-gpu/sluice
rm -f target-gpu/sluice.xz
xz -6 -T2 target-gpu/sluice
ls -la target-gpu/sluice.xz
