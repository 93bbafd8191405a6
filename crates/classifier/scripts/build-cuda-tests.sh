#!/usr/bin/env bash
# Build the fixture reference tests with `--features cuda` on a machine that has no CUDA toolkit
# and no GPU, so the binary can be run on a GPU machine that has the CUDA 13.0 runtime libraries
# but no Rust toolchain. Everything comes from NVIDIA's PyPI wheels (nvcc, headers, and the
# libraries to link against); libcuda.so, which only a driver provides, is replaced by a stub
# that exists only at link time (the real one is loaded on the GPU machine).
#
#   crates/classifier/scripts/build-cuda-tests.sh        # -> target-gpu/reference.xz (~13 MB)
#
# On the GPU machine, from the repository root (the binary looks for fixtures at the absolute path
# of this checkout, so run it from a checkout at the same path):
#   xz -dk target-gpu/reference.xz && cd crates/classifier && \
#     LD_LIBRARY_PATH=/usr/local/cuda/lib64 SLUICE_TEST_DEVICE=cuda:0 ../../target-gpu/reference
#
# CUDA_COMPUTE_CAP defaults to 90 (H100/H200). The toolkit wheels are pinned to CUDA 13.0 so the
# PTX they emit loads on a 13.0 driver. The first build takes ~15 minutes on 2 cores.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/cuda-env.sh"
cd "$crate"

bin="$(nice -n 15 cargo test --features cuda --test reference --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "reference":
        print(m["executable"])' | tail -1)"
mkdir -p "$repo/target-gpu"
cp "$bin" "$repo/target-gpu/reference"
strip "$repo/target-gpu/reference"
rm -f "$repo/target-gpu/reference.xz"
xz -6 -T2 "$repo/target-gpu/reference"
ls -la "$repo/target-gpu/reference.xz"
