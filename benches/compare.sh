#!/usr/bin/env bash
# Measures sluice against the physical limit on the same shards and the same machine, in one run:
#   1. `zstd -dc`                                            the decompression limit
#   2. `zstd -dc | rg -i -w -F -f TERMS --count-matches`     a decompress-and-match floor that does
#                                                            strictly less than sluice (no JSON, no outputs)
#   3. sluice run with 1 thread and with every core (zstd in and out)
# and prints MB/s of uncompressed input and the ratios. With DATATROVE=1, also the C4 bad-words
# filter against its peer on the same shards:
#   4. datatrove 0.10.1's C4BadWordsFilter (pinned, from PyPI, in a venv under .cache/; see
#      benches/datatrove/), DT_WORKERS processes, uncompressed output (kept and removed)
#   5. sluice run -c configs/c4-badwords.toml with output.compression = "none", -j DT_WORKERS
# each timed as a whole command, process start included, and prints both MB/s and the ratio.
#
# Usage: benches/compare.sh [SHARD_DIR]
#   SHARD_DIR   *.jsonl.zst shards; by default CORPUS says which
#   CORPUS      generated (default): a corpus generated with SIZE (default 500MB);
#               real: the real-text corpus of benches/real-corpus.sh (built if missing)
#   CONFIG      the sluice config (default benches/hazard-5000.toml: 5,000 terms)
#   SLUICE      the sluice binary (default target/release/sluice, built if missing)
#   REPEAT      runs of each command, alternating; figures are medians (default 3)
#   DATATROVE   1: add the datatrove comparison (needs python3, CPython 3.11, with venv)
#   DT_WORKERS  datatrove workers and sluice threads of that comparison (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=${CONFIG:-benches/hazard-5000.toml}
SIZE=${SIZE:-500MB}
SLUICE=${SLUICE:-target/release/sluice}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

command -v rg >/dev/null || { echo "compare.sh needs ripgrep (apt-get install ripgrep)" >&2; exit 2; }
command -v zstd >/dev/null || { echo "compare.sh needs zstd (apt-get install zstd)" >&2; exit 2; }
[ -x "$SLUICE" ] || cargo build --release --quiet

if [ $# -ge 1 ]; then
  CORPUS=$1
elif [ "${CORPUS:-generated}" = real ]; then
  CORPUS=.cache/real-corpus/corpus
  [ -f "$CORPUS/real-7.jsonl.zst" ] || benches/real-corpus.sh "$CORPUS" >&2
elif [ "${CORPUS:-generated}" != generated ]; then
  echo "CORPUS is generated or real, not $CORPUS" >&2
  exit 2
else
  CORPUS=$WORK/corpus
  "$SLUICE" generate --size "$SIZE" --shards 8 --seed 1 --hit-rate 0.02 \
    --terms "$(dirname "$CONFIG")/$(sed -n 's/^lists = \["\(.*\)"\]/\1/p' "$CONFIG" | head -1)" \
    --output "$CORPUS" 2>/dev/null
fi
shopt -s nullglob
SHARDS=("$CORPUS"/*.jsonl.zst)
[ ${#SHARDS[@]} -gt 0 ] || { echo "no *.jsonl.zst shards in $CORPUS" >&2; exit 2; }

# The term column of every list of the config's terms stages, for rg.
CONFIG_DIR=$(dirname "$CONFIG")
for list in $(sed -n 's/^lists = \[\(.*\)\]/\1/p' "$CONFIG" | tr -d '" ' | tr ',' ' '); do
  grep -v '^#' "$CONFIG_DIR/$list" | cut -f1 | sed '/^$/d'
done > "$WORK/terms.txt"

BYTES=$(zstd -dc "${SHARDS[@]}" | wc -c)
seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
mbps() { echo "scale=1; $BYTES / 1000000 / $1" | bc -l; }

# Each command runs REPEAT times, the four in turn, so that a slow spell of a shared machine
# falls on all of them alike; each figure is the median of its runs.
REPEAT=${REPEAT:-3}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
Z=(); R=(); ONE=(); ALL=(); DT=(); C4=()
if [ -n "${DATATROVE:-}" ]; then
  DT_WORKERS=${DT_WORKERS:-2}
  . benches/datatrove/env.sh
  # The preset with uncompressed output, its lists beside it (list paths are relative).
  mkdir -p "$WORK/c4"
  cp -r configs/lists "$WORK/c4/lists"
  sed 's/^compression = .*/compression = "none"/' configs/c4-badwords.toml > "$WORK/c4/c4-badwords.toml"
fi
for _ in $(seq "$REPEAT"); do
  Z+=("$(seconds zstd -dc "${SHARDS[@]}")")
  R+=("$(seconds bash -c "zstd -dc ${SHARDS[*]} | rg -i -w -F -f $WORK/terms.txt --count-matches")")
  ONE+=("$(seconds "$SLUICE" run -c "$CONFIG" -i "$CORPUS" -o "$WORK/out1" -j 1 --force -q)")
  ALL+=("$(seconds "$SLUICE" run -c "$CONFIG" -i "$CORPUS" -o "$WORK/outN" -j 0 --force -q)")
  if [ -n "${DATATROVE:-}" ]; then
    DT+=("$(seconds "$DT_PYTHON" benches/datatrove/c4_filter.py "$CORPUS" "$WORK/dt" \
      --workers "$DT_WORKERS" --glob '*.jsonl.zst' 2>/dev/null)")
    C4+=("$(seconds "$SLUICE" run -c "$WORK/c4/c4-badwords.toml" -i "$CORPUS" -o "$WORK/c4out" \
      -j "$DT_WORKERS" --force -q)")
  fi
done
T_ZSTD=$(median "${Z[@]}")
T_RG=$(median "${R[@]}")
T_ONE=$(median "${ONE[@]}")
T_ALL=$(median "${ALL[@]}")

printf 'input: %s shards, %.1f MB uncompressed, %d terms, %s cores, config %s, median of %s runs\n' \
  "${#SHARDS[@]}" "$(echo "$BYTES / 1000000" | bc -l)" "$(wc -l < "$WORK/terms.txt")" "$(nproc)" "$CONFIG" "$REPEAT"
printf '%-44s %8s %8s %10s\n' "command" "seconds" "MB/s" "vs floor"
row() { printf '%-44s %8.2f %8.1f %9.2fx\n' "$1" "$2" "$(mbps "$2")" "$(echo "$T_RG / $2" | bc -l)"; }
row "zstd -dc (decompression limit)" "$T_ZSTD"
row "zstd -dc | rg -i -w -F -f TERMS (floor)" "$T_RG"
row "sluice run -j 1" "$T_ONE"
row "sluice run -j $(nproc)" "$T_ALL"
printf 'thread scaling (end to end): %.2fx\n' "$(echo "$T_ONE / $T_ALL" | bc -l)"
printf 'each run, sluice -j %s vs floor:' "$(nproc)"
for i in "${!R[@]}"; do printf ' %.2fx' "$(echo "${R[$i]} / ${ALL[$i]}" | bc -l)"; done
echo
if [ -n "${DATATROVE:-}" ]; then
  T_DT=$(median "${DT[@]}")
  T_C4=$(median "${C4[@]}")
  kept_dt=$(cat "$WORK"/dt/kept/*.jsonl | wc -l)
  kept_c4=$(cat "$WORK"/c4out/kept/* | wc -l)
  echo
  printf 'C4 bad-words filter, %s workers / threads, uncompressed output, process start included:\n' "$DT_WORKERS"
  printf '%-44s %8s %8s %10s\n' "command" "seconds" "MB/s" "vs datatrove"
  printf '%-44s %8.2f %8.1f %9.2fx\n' "datatrove 0.10.1 C4BadWordsFilter" "$T_DT" "$(mbps "$T_DT")" 1
  printf '%-44s %8.2f %8.1f %9.2fx\n' "sluice run -c configs/c4-badwords.toml" "$T_C4" "$(mbps "$T_C4")" \
    "$(echo "$T_DT / $T_C4" | bc -l)"
  printf 'each run, sluice vs datatrove:'
  for i in "${!DT[@]}"; do printf ' %.1fx' "$(echo "${DT[$i]} / ${C4[$i]}" | bc -l)"; done
  echo
  printf 'documents kept: datatrove %s, sluice %s (sluice also keeps empty texts, which datatrove skips)\n' \
    "$kept_dt" "$kept_c4"
fi
