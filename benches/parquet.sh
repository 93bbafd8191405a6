#!/usr/bin/env bash
# `sluice bench` on the same documents as JSONL (zstd) and as Parquet (zstd inside, written by
# pyarrow: benches/jsonl_to_parquet.py), then peak RSS of one large Parquet shard.
#
#   benches/parquet.sh                 # SIZE=500MB SHARDS=8 BIG=2GB REPEAT=2 WORK=/tmp/sluice-parquet-bench
#
# Needs a release build and pyarrow (tests/parquet/fetch-pyarrow.sh); figures in benches/RESULTS.md.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
size="${SIZE:-500MB}" shards="${SHARDS:-8}" big="${BIG:-2GB}" repeat="${REPEAT:-2}"
work="${WORK:-/tmp/sluice-parquet-bench}"
sluice=target/release/sluice
export PYTHONPATH="$repo/.cache/python/pyarrow"
[[ -x $sluice ]] || { echo "cargo build --release first" >&2; exit 1; }
mkdir -p "$work"
[[ -d $work/jsonl ]] || $sluice generate --size "$size" --shards "$shards" --seed 1 --output "$work/jsonl"
[[ -d $work/parquet ]] || python3 benches/jsonl_to_parquet.py "$work/jsonl" "$work/parquet" --row-group-rows 10000
for i in $(seq "$repeat"); do
  for format in jsonl parquet; do
    $sluice bench -c configs/hazard-cascade.toml -i "$work/$format" -j 1,2 --json > "$work/bench-$format-$i.json"
  done
done
python3 - "$work" "$repeat" <<'PY'
import json, sys
work, repeat = sys.argv[1], int(sys.argv[2])
print("| format | run | threads | wall s | docs/s | docs per CPU-second | peak RSS MB |")
print("|---|---|---|---|---|---|---|")
for fmt in ["jsonl", "parquet"]:
    for i in range(1, repeat + 1):
        r = json.load(open(f"{work}/bench-{fmt}-{i}.json"))
        for x in r["runs"]:
            cpu = sum(s["cpu_seconds"] for s in x["steps"])
            print(f"| {fmt} | {i} | {x['threads']} | {x['wall_seconds']:.2f} | {x['docs_per_second']:,.0f} "
                  f"| {r['input']['documents'] / cpu:,.0f} | {x['peak_memory_bytes'] / 1e6:.0f} |")
PY
# One large shard: 2 GB of documents in row groups of ~200 MB (uncompressed).
[[ -d $work/big-jsonl ]] || $sluice generate --size "$big" --shards 1 --seed 7 --output "$work/big-jsonl"
[[ -d $work/big-parquet ]] || python3 benches/jsonl_to_parquet.py "$work/big-jsonl" "$work/big-parquet" \
  --row-group-rows 1000000 --block-bytes 201326592
for format in big-jsonl big-parquet; do
  for threads in 1 2; do
    rm -rf "$work/out"
    /usr/bin/time -f "$format -j $threads: %e s, peak RSS %M KB" \
      $sluice run -q -c configs/hazard-cascade.toml -i "$work/$format" -o "$work/out" -j "$threads"
  done
done
