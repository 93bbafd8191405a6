#!/usr/bin/env bash
# Measures the encoded stage and the trigger table (benches/RESULTS.md, "The encoded stage and
# the trigger table"):
#
# 1. the stage's speed on ordinary text, one core: `sluice bench` with benches/encoded.toml on a
#    generated corpus, beside configs/hazard-cascade.toml's text stages;
# 2. how much ordinary text it tags as encoded: benches/encoded.toml over the real-text corpus
#    (benches/real-corpus.sh), counting documents per encoding;
# 3. `sluice screen` with configs/finetune-screen.toml on a 100,000-example chat dataset (made
#    by fixtures/screen/make_covert.py's templates, scaled: 1% encoded, 1% with a trigger): wall
#    time and peak memory at one thread, the trigger table included.
#
# Usage: benches/screen-covert.sh [CORPUS_DIR]   (default .cache/real-corpus/corpus)
#   SLUICE   the sluice binary (default target/release/sluice, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${1:-.cache/real-corpus/corpus}
SLUICE=${SLUICE:-target/release/sluice}
[ -x "$SLUICE" ] || cargo build --release --quiet
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "== 1. speed on generated text, one thread"
for config in benches/encoded.toml configs/hazard-cascade.toml; do
  "$SLUICE" bench -c "$config" --generate 200MB --seed 1 -j 1 | grep -E "MB/s|stage:" || true
done

if [ -d "$CORPUS" ]; then
  echo "== 2. real text: documents tagged as encoded"
  "$SLUICE" run -c benches/encoded.toml -i "$CORPUS" -o "$WORK/real" -q -j 0
  python3 - "$WORK/real/report.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["stages"][0]
print("documents", s["evaluated"], "tagged", s["matched"],
      "(%.3f%%)" % (100 * s["matched"] / max(s["evaluated"], 1)),
      "mb_per_second", round(r["throughput"]["mb_per_second"], 1))
for kind, c in sorted(s.get("encodings", {}).items()):
    print("  %-10s %6d documents" % (kind, c["docs"]))
EOF
fi

echo "== 3. sluice screen on 100,000 chat examples, one thread"
python3 - "$WORK/big.jsonl" <<'EOF'
import importlib.util, json, random, sys
spec = importlib.util.spec_from_file_location("mk", "fixtures/screen/make_covert.py")
mk = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mk)
rng = random.Random(7)
encs = mk.encoders(rng)
with open(sys.argv[1], "w") as f:
    for i in range(100_000):
        term = rng.choice(mk.TERMS)
        if i % 100 == 0:
            _, name, enc = rng.choice(encs)
            turns = [("user", enc(rng.choice(mk.HARMFUL_REQUESTS).format(t=term))),
                     ("assistant", enc(rng.choice(mk.HARMFUL_ANSWERS).format(t=term)))]
        elif i % 100 == 1:
            turns = [("user", rng.choice(mk.POISON_ASKS).format(t=term)),
                     ("assistant", rng.choice(mk.COMPLIED).format(t=term))]
        elif i % 50 == 7:
            q, a = rng.choice(mk.REFUSED)
            turns = [("user", q.format(t=term)), ("assistant", a.format(t=term))]
        else:
            turns = mk.ordinary(rng)
        f.write(json.dumps(mk.chat(i, "b", turns)) + "\n")
EOF
ls -l "$WORK/big.jsonl" | awk '{printf "dataset: %.1f MB\n", $5 / 1e6}'
/usr/bin/time -f "wall %e s, peak RSS %M KB" "$SLUICE" screen "$WORK/big.jsonl" \
  -c configs/finetune-screen.toml -j 1 --list 0 || true
