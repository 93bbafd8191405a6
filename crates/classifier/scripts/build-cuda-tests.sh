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

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
crate="$(cd "$here/.." && pwd)"
repo="$(cd "$crate/../.." && pwd)"
tools="${SLUICE_CUDA_TOOLS:-/work/.cuda-build}"
target="${CARGO_TARGET_DIR:-/work/target-classifier-cuda}"
pip_cmd=(python3 -m pip)

if [[ ! -x "$tools/tk/nvidia/cu13/bin/nvcc" ]]; then
    "${pip_cmd[@]}" install -q --target "$tools/tk" --no-deps \
        "nvidia-cuda-nvcc==13.0.88" "nvidia-nvvm==13.0.88" "nvidia-cuda-crt==13.0.88" \
        "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cccl==13.0.85"
    "${pip_cmd[@]}" install -q --target "$tools/libs" --no-deps \
        "nvidia-cublas==13.0.2.14" "nvidia-cuda-nvrtc==13.0.88" "nvidia-curand==10.4.0.35"
fi
tk="$tools/tk/nvidia/cu13"
link="$tools/link"
mkdir -p "$link"
ln -sf "$tk/lib/libcudart.so.13" "$tk/lib/libcudart.so"
for l in cublas cublasLt nvrtc; do ln -sf "$tools/libs/nvidia/cu13/lib/lib$l.so.13" "$link/lib$l.so"; done
ln -sf "$tools/libs/nvidia/cu13/lib/libcurand.so.10" "$link/libcurand.so"

export PATH="$tk/bin:$PATH" CUDA_HOME="$tk" CUDA_PATH="$tk" LIBRARY_PATH="$link:$tk/lib"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}" CARGO_PROFILE_DEV_DEBUG=0 CARGO_TARGET_DIR="$target"
cd "$crate"

# A stub libcuda.so exporting every driver-API symbol the Rust objects and kernels reference.
if [[ ! -f "$link/libcuda.so" ]]; then
    echo 'void __sluice_stub(void){}' > "$link/stub.c"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 "$link/stub.c" -o "$link/libcuda.so"
    nice -n 15 cargo test --features cuda --test reference --no-run >/dev/null 2>&1 || true
    for f in "$target"/debug/deps/*.rlib "$target"/debug/build/candle-kernels-*/out/*.a; do
        nm -u "$f" 2>/dev/null || true
    done | awk '{print $NF}' | grep -E '^cu[A-Z]' | grep -vE '^cu(blas|rand)' | sort -u \
        | sed 's/.*/void &(void){}/' > "$link/stub.c"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 "$link/stub.c" -o "$link/libcuda.so"
fi

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
