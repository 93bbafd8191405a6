#!/usr/bin/env bash
# The GPU figures of `sluice bench` (issue 4), in one short run on a GPU machine. Prepare here
# with benches/gpu/build.sh (-> target-gpu/sluice.xz), then with the device tool:
#
#   run(command = "benches/gpu/run.sh", carry = ["target-gpu"], timeout_s = 540)
#
# It makes a random-weight BERT of all-MiniLM-L6-v2's shape (the real model cannot travel and the
# machine reaches nothing; speed does not depend on weight values), then runs
# benches/hazard-5000.toml's rules and 5,000 terms plus that classifier on every document
# (mode = "all", first window of 256 tokens) over a generated 50 MB corpus, with --device cuda
# and --device cpu (all cores), and the same model through PyTorch on the GPU. Results land in
# $OUT: gpu.txt, bench-cuda.json, bench-cpu.json, torch.json, run.log.
# Rehearse it without a GPU: SLUICE=target/release/sluice DEVICES=cpu PYTHON=<python with numpy,
# safetensors, tokenizers> SIZE=2MB benches/gpu/run.sh (the PyTorch step then fails, saying why).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/sluice-gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1

work=$(mktemp -d)
devices=${DEVICES:-cuda cpu}
size=${SIZE:-50MB}
python=${PYTHON:-python3}
sluice=${SLUICE:-}
if [ -z "$sluice" ]; then
    xz -dc target-gpu/sluice.xz > "$work/sluice" && chmod +x "$work/sluice" || exit 1
    sluice="$work/sluice"
fi
# The cuda build links the driver's libcuda and CUDA 13's cudart, cublas and curand: look where
# the GPU machines keep them (the CUDA install, the driver mount, PyTorch's nvidia wheels).
for dir in /usr/local/cuda/lib64 /usr/local/nvidia/lib64 /usr/local/nvidia/lib \
    $("$python" -c 'import glob, site; print(" ".join(sorted(set(d for p in site.getsitepackages() for d in glob.glob(p + "/nvidia/*/lib")))))' 2>/dev/null); do
    [ -d "$dir" ] && LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export LD_LIBRARY_PATH
ldd "$sluice" | grep "not found" && echo "missing libraries (LD_LIBRARY_PATH=$LD_LIBRARY_PATH)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
nproc >> "$OUT/gpu.txt"

"$sluice" generate --size 20MB --shards 1 --seed 9 --compression none --output "$work/words"
timeout 120 "$python" benches/gpu/make_model.py "$work/words" "$work/model" || exit 1

sed "s#^lists = \[\"terms-5000.tsv\"\]#lists = [\"$PWD/benches/terms-5000.tsv\"]#" \
    benches/hazard-5000.toml > "$work/gpu.toml"
cat >> "$work/gpu.toml" <<EOF

[[stages]]
type = "classifier"
id = "minilm-shape"
model = "$work/model"
label = "hazard"
mode = "all"
max_tokens = 256
aggregate = "first"
batch_size = 128
drop_threshold = 0.99
review_threshold = 0.9
EOF
"$sluice" check -c "$work/gpu.toml" --device "${devices%% *}" || exit 1

for device in $devices; do
    # On the GPU also one worker thread: what one caller gets, and a fallback if many threads
    # sharing the device misbehave.
    threads=0
    [ "$device" = cuda ] && threads=1,0
    echo "== sluice bench --device $device -j $threads"
    timeout 240 "$sluice" bench -c "$work/gpu.toml" --generate "$size" --seed 1 -j "$threads" \
        --device "$device" --json > "$OUT/bench-$device.json"
    echo "exit $?"
done
echo "== PyTorch"
timeout 120 "$python" benches/gpu/torch_speed.py "$work/model" > "$OUT/torch.json"
echo "exit $?"
