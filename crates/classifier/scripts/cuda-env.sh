# Sourced by build-cuda-tests.sh and benches/gpu/build.sh: a CUDA 13.0 toolkit from NVIDIA's PyPI
# wheels (nvcc, headers, link-time libraries) and a stub libcuda.so, so that `--features cuda`
# builds and links on a machine with no CUDA install and no GPU. Sets PATH, CUDA_HOME,
# LIBRARY_PATH, CUDA_COMPUTE_CAP (default 90: H100/H200) and CARGO_TARGET_DIR, and `repo`.
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

# A stub libcuda.so exporting every driver-API symbol the Rust objects and kernels reference.
if [[ ! -f "$link/libcuda.so" ]]; then
    echo 'void __sluice_stub(void){}' > "$link/stub.c"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 "$link/stub.c" -o "$link/libcuda.so"
    (cd "$crate" && nice -n 15 cargo test --features cuda --test reference --no-run >/dev/null 2>&1) || true
    for f in "$target"/debug/deps/*.rlib "$target"/debug/build/candle-kernels-*/out/*.a; do
        nm -u "$f" 2>/dev/null || true
    done | awk '{print $NF}' | grep -E '^cu[A-Z]' | grep -vE '^cu(blas|rand)' | sort -u \
        | sed 's/.*/void &(void){}/' > "$link/stub.c"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 "$link/stub.c" -o "$link/libcuda.so"
fi

