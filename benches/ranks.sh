#!/usr/bin/env bash
# One process against W ranks on this machine, and merge time for many shards:
#
#   benches/ranks.sh            # 200 MB in 16 uneven shards; 1 process vs 2 and 4 ranks; merge of 2,000 shards
#
# Needs a release build (cargo build --release). Prints one line per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/sluice}
WORK=${WORK:-$(mktemp -d /tmp/sluice-ranks.XXXXXX)}
CONFIG=configs/hazard-cascade.toml
SIZE=${SIZE:-200MB}
SMALL_SHARDS=${SMALL_SHARDS:-2000}
trap 'rm -rf "$WORK"' EXIT

now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }

# Uneven shards: two generated corpora of different shard sizes side by side.
$BIN generate --size "$SIZE" --shards 12 --seed 1 --output "$WORK/corpus/a" 2>/dev/null
$BIN generate --size 50MB --shards 4 --seed 2 --output "$WORK/corpus/b" 2>/dev/null

t=$(now); $BIN run -c $CONFIG -i "$WORK/corpus" -o "$WORK/one" -q; one=$(elapsed "$t")
echo "one process, -j 0 (all cores): ${one}s"
for world in 2 4; do
  out="$WORK/ranks-$world"
  t=$(now)
  for ((r = 0; r < world; r++)); do
    $BIN run -c $CONFIG -i "$WORK/corpus" -o "$out" -q -j 1 --rank $r --world-size $world &
  done
  wait
  run=$(elapsed "$t")
  t=$(now); $BIN merge "$out" -q; merge=$(elapsed "$t")
  cmp -s "$WORK/one/manifest.json" "$out/manifest.json" || { echo "manifests differ" >&2; exit 1; }
  echo "$world ranks, -j 1 each: ${run}s, merge ${merge}s"
done

# Merge cost per shard: many tiny shards.
mkdir -p "$WORK/small"
for ((i = 0; i < SMALL_SHARDS; i++)); do
  printf '{"id":"%d","text":"a small document number %d"}\n' "$i" "$i" >"$WORK/small/s-$(printf %05d $i).jsonl"
done
out="$WORK/small-out"
t=$(now)
for r in 0 1 2 3; do
  $BIN run -c $CONFIG -i "$WORK/small" -o "$out" -q -j 1 --rank $r --world-size 4 &
done
wait
run=$(elapsed "$t")
t=$(now); $BIN merge "$out" -q; merge=$(elapsed "$t")
records=$(du -sk "$out/ranks/done" | cut -f1)
echo "$SMALL_SHARDS tiny shards over 4 ranks: run ${run}s, merge ${merge}s; completion records ${records} kB, manifest $(($(stat -c %s "$out/manifest.json") / 1024)) kB"
