#!/usr/bin/env bash
# Measures the language stage on the real-text corpus (benches/real-corpus.sh): for each engine
# and prefix length, the agreement with each document's source language
# (benches/language_accuracy.py) and the stage's own speed on one core (`sluice bench`), beside
# the text stages of configs/hazard-cascade.toml without and with the language stage first.
#
# Usage: benches/language.sh [CORPUS_DIR]   (default .cache/real-corpus/corpus, built if missing)
#   SLUICE      the sluice binary (default target/release/sluice, built if missing)
#   PREFIXES    max_bytes values (default "100 200 500 1000")
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${1:-.cache/real-corpus/corpus}
SLUICE=${SLUICE:-target/release/sluice}
PREFIXES=${PREFIXES:-100 200 500 1000}
[ -d "$CORPUS" ] || benches/real-corpus.sh "$CORPUS"
[ -x "$SLUICE" ] || cargo build --release --quiet
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

stage() { # ENGINE MAX_BYTES
  printf '[[stages]]\ntype = "language"\nid = "language"\nlanguages = ["en"]\nengine = "%s"\nmax_bytes = %s\naction = "drop"\n' "$1" "$2"
}
mbps() { # BENCH_OUTPUT STEP
  sed -n "s/^  $2 *[0-9.]* *[0-9.]*% *\([0-9.]*\)$/\1/p" "$1" | head -1
}

for engine in whichlang whatlang; do
  for bytes in $PREFIXES; do
    config=$WORK/$engine-$bytes.toml
    { printf '[input]\nid_field = "id"\n[output]\naudit = "matched"\ncompression = "none"\n'; stage "$engine" "$bytes"; } > "$config"
    "$SLUICE" run -c "$config" -i "$CORPUS" -o "$WORK/out" -q --force
    echo "== engine $engine, max_bytes $bytes"
    python3 benches/language_accuracy.py "$WORK/out"
    "$SLUICE" bench -c "$config" -i "$CORPUS" -j 1 > "$WORK/bench.txt" 2>&1
    echo "stage alone: $(mbps "$WORK/bench.txt" stage:language) MB/s per core"
  done
done

# The text stages without and with the language stage first (default engine and prefix).
sed 's#lists = \["lists/#lists = ["'"$PWD"'/configs/lists/#' configs/hazard-cascade.toml > "$WORK/cascade.toml"
python3 - "$WORK/cascade.toml" "$WORK/with-language.toml" <<'PY'
import sys
text = open(sys.argv[1]).read()
stage = '[[stages]]\ntype = "language"\nid = "language"\nlanguages = ["en"]\naction = "drop"\n\n'
i = text.index("\n[[stages]]\n") + 1
open(sys.argv[2], "w").write(text[:i] + stage + text[i:])
PY
for config in cascade with-language; do
  "$SLUICE" bench -c "$WORK/$config.toml" -i "$CORPUS" -j 1 > "$WORK/bench.txt" 2>&1
  echo "== hazard cascade, $config: $(sed -n 's/^threads 1: \([0-9.]*\) MB\/s end to end.*/\1/p' "$WORK/bench.txt") MB/s end to end"
  grep -E '^  stage:' "$WORK/bench.txt"
done
