#!/usr/bin/env bash
# sluice's CPU encoder side by side with ONNX Runtime 1.31 on all-MiniLM-L6-v2: same token ids
# (real text from the real-text corpus, tokenized by sluice), same batch shapes, same threads.
#
#   benches/ort/run.sh                          # shapes 32x128,32x256; threads 1 and 2
#   SHAPES=32x128,8x512 THREADS="1" benches/ort/run.sh
#
# Steps: a venv under .cache/venv-ort with the pinned packages of requirements.txt; the ONNX
# graph built once from model.safetensors + config.json (export_minilm.py, no PyTorch) and a
# second one through ONNX Runtime's own BERT optimizer (fused Attention, SkipLayerNormalization,
# BiasGelu); COUNT texts per length picked from the corpus; then, per thread count, sluice's
# `side_by_side` example (Classifier::embed, tokenizing included) and ONNX Runtime on the ids it
# fed its model (graph optimizations ALL, sequential execution, intra_op_num_threads = threads),
# checking that the pooled embeddings agree (cosine >= 0.9999). Prints tokens/s (median wall
# time, and tokens per CPU-second) and the ratio. Nothing downloads at run time except the venv's
# packages and, if absent, the model (crates/classifier/scripts/fetch-minilm.sh).
#
# Environment: SLUICE_MODEL_CACHE (models root, default .cache/models), CORPUS (directory of
# *.jsonl.zst shards, default .cache/real-corpus/corpus: benches/real-corpus.sh builds it), SHAPES,
# THREADS, COUNT (texts per length, default the largest batch), SIDE_BY_SIDE_RUNS (passes per
# figure, default 7), SIDE_BY_SIDE_SECONDS (minimum seconds per pass, default 1), OUT (results
# directory, default .cache/ort/run-<time>), BEFORE (another build of the example, e.g. from an
# earlier commit: timed too, as `sluice-before`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="$repo/.cache"
venv="$cache/venv-ort"
models="${SLUICE_MODEL_CACHE:-$cache/models}"
model="$models/all-MiniLM-L6-v2"
corpus="${CORPUS:-$cache/real-corpus/corpus}"
shapes="${SHAPES:-32x128,32x256}"
threads_list="${THREADS:-1 2}"
work="$cache/ort"
out="${OUT:-$work/run-$(date -u +%Y%m%dT%H%M%S)}"

largest_batch=$(tr ',' '\n' <<<"$shapes" | cut -dx -f1 | sort -n | tail -1)
count="${COUNT:-$largest_batch}"
lengths=$(tr ',' '\n' <<<"$shapes" | cut -dx -f2 | sort -un | paste -sd,)

command -v zstd >/dev/null || { echo "run.sh: needs the zstd command (apt-get install zstd)" >&2; exit 1; }
if ! ls "$corpus"/*.jsonl.zst >/dev/null 2>&1; then
    echo "run.sh: no *.jsonl.zst shards in $corpus: build the real-text corpus with benches/real-corpus.sh or set CORPUS" >&2
    exit 1
fi
if [[ ! -f "$model/model.safetensors" ]]; then
    SLUICE_MODEL_CACHE="$models" "$repo/crates/classifier/scripts/fetch-minilm.sh"
fi

stamp="$venv/.requirements"
if [[ ! -x "$venv/bin/python" ]] || ! cmp -s "$here/requirements.txt" "$stamp"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
fi
py="$venv/bin/python"

mkdir -p "$work"
plain="$work/minilm.onnx"
fused="$work/minilm-fused.onnx"
if [[ ! -f "$plain" || "$model/model.safetensors" -nt "$plain" || "$here/export_minilm.py" -nt "$plain" ]]; then
    "$py" "$here/export_minilm.py" "$model" "$plain"
    rm -f "$fused"
fi
if [[ ! -f "$fused" ]]; then
    "$py" "$here/compare.py" fuse "$plain" "$fused" 12 384 2> >(grep -v "producer not matched" >&2)
fi
texts="$work/texts-$count-${lengths//,/-}"
if [[ ! -d "$texts" ]]; then
    "$py" "$here/compare.py" select "$corpus" "$model/tokenizer.json" "$texts.partial" "$lengths" "$count"
    mv "$texts.partial" "$texts"
fi

(cd "$repo" && cargo build --release --quiet -p sluice-classifier --example side_by_side)
side_by_side="$repo/target/release/examples/side_by_side"

mkdir -p "$out"
echo "results in $out; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for threads in $threads_list; do
    RAYON_NUM_THREADS="$threads" "$side_by_side" "$model" "$texts" "$out" "$shapes" | tee -a "$out/timings.jsonl"
    if [[ -n "${BEFORE:-}" ]]; then
        mkdir -p "$out/before"
        RAYON_NUM_THREADS="$threads" "$BEFORE" "$model" "$texts" "$out/before" "$shapes" \
            | sed 's/^{/{"variant":"sluice-before",/' | tee -a "$out/timings.jsonl"
    fi
    "$py" "$here/compare.py" time "$plain" ort "$out" "$shapes" "$threads" | tee -a "$out/timings.jsonl"
    "$py" "$here/compare.py" time "$fused" ort-fused "$out" "$shapes" "$threads" | tee -a "$out/timings.jsonl"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
"$py" "$here/compare.py" report "$out" | tee "$out/report.txt"
