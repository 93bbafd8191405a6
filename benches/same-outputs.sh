#!/usr/bin/env bash
# Checks that two sluice binaries write the same outputs: every file of kept/, dropped/, review/,
# audit/, errors/, oversized/ and manifest.json byte for byte (report.json and report.html hold
# timings and are left out), for `run` and `rethreshold` on the fixtures and on a generated corpus,
# with and without a classifier, at 1 and 2 threads.
#
# Usage: benches/same-outputs.sh OLD [NEW]
#   OLD   a sluice binary, or a git revision (built in a worktree under target-same/)
#   NEW   a sluice binary (default target/release/sluice, built if missing)
#   SIZE  size of the generated corpus (default 200MB)
#   REAL  a directory of real-text shards to add as a scenario (e.g. .cache/real-corpus/corpus
#         from benches/real-corpus.sh)
#   CONFIG_REV  the git revision whose configs/ are used (default: OLD when it is a revision,
#         else HEAD): both binaries must accept them
# Exit 0 when every scenario matches, 1 otherwise (the differing files are listed).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

[ $# -ge 1 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
OLD=$1
NEW=${2:-target/release/sluice}
SIZE=${SIZE:-200MB}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

CONFIG_REV=${CONFIG_REV:-HEAD}
if [ ! -x "$OLD" ]; then
  rev=$(git rev-parse --verify "$OLD^{commit}")
  CONFIG_REV=$rev
  tree=$REPO/target-same/$rev
  if [ ! -x "$tree/target/release/sluice" ]; then
    rm -rf "$tree"
    git worktree add --detach "$tree" "$rev" >/dev/null
    (cd "$tree" && cargo build --release --quiet)
  fi
  OLD=$tree/target/release/sluice
fi
[ -x "$NEW" ] || cargo build --release --quiet
OLD=$(realpath "$OLD")
NEW=$(realpath "$NEW")

# The classifier model of configs/hazard-classifier.toml, trained the same way for both.
MODELS=$WORK/models
"$NEW" train --kind hashed-ngram --data fixtures/labeled/hazard-train.jsonl --positive hazard \
  --output "$MODELS/hazard-ngram" >/dev/null 2>&1

# Configs: the shipped ones, with the model path pointed at $MODELS, plus variants.
CONFIGS=$WORK/configs
mkdir -p "$CONFIGS"
git archive "$CONFIG_REV" configs | tar -x -C "$WORK"
sed -i "s#^model = .*#model = \"$MODELS/hazard-ngram\"#" "$CONFIGS/hazard-classifier.toml"
sed 's/^audit = "flagged"/audit = "matched"/' "$CONFIGS/hazard-cascade.toml" > "$CONFIGS/cascade-matched.toml"
sed 's/^mode = "escalated"/mode = "all"/; s/^audit = "flagged"/audit = "matched"/' \
  "$CONFIGS/hazard-classifier.toml" > "$CONFIGS/classifier-all.toml"
sed 's/^max_line_bytes = .*/max_line_bytes = 4096/; s/^chunk_bytes = .*/chunk_bytes = 65536/' \
  "$CONFIGS/hazard-cascade.toml" > "$CONFIGS/small-chunks.toml"

GEN=$WORK/generated
"$NEW" generate --size "$SIZE" --shards 8 --seed 1 --hit-rate 0.02 \
  --terms configs/lists/hazard-terms.tsv --output "$GEN" >/dev/null 2>&1

failed=0
compare() { # NAME DIR_A DIR_B
  local name=$1 a=$2 b=$3 bad
  if [ ! -f "$a/manifest.json" ] || [ ! -f "$b/manifest.json" ]; then
    printf '%-58s MISSING: %s\n' "$name" "$([ -f "$a/manifest.json" ] || echo "$a") $([ -f "$b/manifest.json" ] || echo "$b")"
    failed=1
    return
  fi
  bad=$(cd "$a" && find . -type f ! -name report.json ! -name report.html | sort | while read -r f; do
    cmp -s "$f" "$b/$f" || echo "$f"
  done)
  bad+=$(cd "$b" && find . -type f ! -name report.json ! -name report.html | sort | while read -r f; do
    [ -e "$a/$f" ] || echo "$f (only in the second)"
  done)
  if [ -z "$bad" ]; then
    printf '%-58s same\n' "$name"
  else
    printf '%-58s DIFFERENT:\n%s\n' "$name" "$bad"
    failed=1
  fi
}
scenario() { # NAME CONFIG INPUT [RETHRESHOLD SETTINGS...]
  local name=$1 config=$CONFIGS/$2 input=$3
  shift 3
  local d=$WORK/out/$name
  "$OLD" run -c "$config" -i "$input" -o "$d/old" -j 2 -q --force >/dev/null 2>&1 || true
  "$NEW" run -c "$config" -i "$input" -o "$d/new" -j 2 -q --force >/dev/null 2>&1 || true
  "$NEW" run -c "$config" -i "$input" -o "$d/new1" -j 1 -q --force >/dev/null 2>&1 || true
  compare "run $name (old, new)" "$d/old" "$d/new"
  compare "run $name (new -j 2, new -j 1)" "$d/new" "$d/new1"
  if [ $# -gt 0 ]; then
    local sets=()
    for s in "$@"; do sets+=(--set "$s"); done
    "$OLD" rethreshold "$d/old" "${sets[@]}" -o "$d/re-old" >/dev/null 2>&1 || true
    "$NEW" rethreshold "$d/new" "${sets[@]}" -o "$d/re-new" >/dev/null 2>&1 || true
    compare "rethreshold $name $* (old, new)" "$d/re-old" "$d/re-new"
  fi
  rm -rf "$d"
}

scenario fixtures-cascade hazard-cascade.toml fixtures/corpus terms.min_distinct=3
scenario fixtures-matched cascade-matched.toml fixtures/corpus terms.min_distinct=1
scenario fixtures-small-chunks small-chunks.toml fixtures/corpus
scenario fixtures-classifier hazard-classifier.toml fixtures/corpus classifier.drop_threshold=0.6
scenario fixtures-classifier-all classifier-all.toml fixtures/corpus \
  terms.min_distinct=1 classifier.review_threshold=0.3
scenario fixtures-c4 c4-badwords.toml fixtures/corpus
scenario "generated-$SIZE-cascade" hazard-cascade.toml "$GEN" terms.min_distinct=3
scenario "generated-$SIZE-classifier" hazard-classifier.toml "$GEN" classifier.drop_threshold=0.6
scenario "generated-$SIZE-classifier-all" classifier-all.toml "$GEN" terms.min_distinct=1
scenario "generated-$SIZE-c4" c4-badwords.toml "$GEN"
if [ -n "${REAL:-}" ]; then
  scenario real-cascade hazard-cascade.toml "$REAL" terms.min_distinct=3
  scenario real-c4 c4-badwords.toml "$REAL"
fi
exit $failed
