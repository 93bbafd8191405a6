#!/usr/bin/env bash
# Classifier quality on real labeled text: `sluice train --kind head` (all-MiniLM-L6-v2) and
# `--kind hashed-ngram`, scored as the classifier stage scores them, against a TF-IDF + logistic
# regression baseline, all on one fixed train/test split.
#
# Usage: benches/train-quality.sh [NAME]        (NAME labels the results, default "run")
#
# 1. The data (benches/train-quality/make_data.py): 800 train and 400 test documents of real text
#    from the real-text corpus of benches/real-corpus.sh (.cache/real-corpus/corpus), each
#    2,500-6,000 characters (several 512-token windows) with one inserted passage at a random
#    place: from the Python documentation ("python", 40%) or from Perl's, git's or the C library's
#    documentation ("other"). Rebuilt byte for byte from the corpus and the seed.
# 2. all-MiniLM-L6-v2 from $SLUICE_MODEL_CACHE (default .cache/models; fetched with
#    crates/classifier/scripts/fetch-minilm.sh when missing).
# 3. `sluice train` of both kinds on train.jsonl (--validation 0, seed 0, defaults otherwise).
# 4. `sluice eval` of a config holding only that model's classifier stage (mode = "all", drop and
#    review at 0.5, every other key at its default) on test.jsonl: precision, recall and F1 of
#    "flagged" (score >= 0.5), and ROC AUC.
# 5. TF-IDF + LR (scikit-learn, pinned in benches/train-quality/requirements.txt, in a venv under
#    .cache/venv-train-quality) on the same files.
# Prints a Markdown table; everything lands in .cache/train-quality/NAME/.
#
# SLUICE (default target/release/sluice) is the binary measured; TRAIN_ARGS adds options to both
# `sluice train` runs (e.g. TRAIN_ARGS="--max-tokens 256"); TASK=natural measures the natural
# documents of the same sources instead (see make_data.py).
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:-run}
SLUICE=${SLUICE:-target/release/sluice}
CORPUS=${REAL_CORPUS:-.cache/real-corpus/corpus}
MODELS=${SLUICE_MODEL_CACHE:-$PWD/.cache/models}
ROOT=.cache/train-quality
OUT=$ROOT/$NAME
VENV=${TQ_VENV:-$PWD/.cache/venv-train-quality}
[ -x "$SLUICE" ] || { echo "no $SLUICE (cargo build --release)" >&2; exit 2; }
ls "$CORPUS"/real-*.jsonl.zst >/dev/null 2>&1 || { echo "no corpus in $CORPUS (benches/real-corpus.sh)" >&2; exit 2; }

if [ ! -x "$VENV/bin/python" ] || ! cmp -s benches/train-quality/requirements.txt "$VENV/requirements.txt"; then
  echo "making $VENV (scikit-learn from PyPI)" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r benches/train-quality/requirements.txt
  cp benches/train-quality/requirements.txt "$VENV/requirements.txt"
fi
ENCODER=$MODELS/all-MiniLM-L6-v2
[ -f "$ENCODER/model.safetensors" ] || SLUICE_MODEL_CACHE=$MODELS crates/classifier/scripts/fetch-minilm.sh

TASK=${TASK:-passage}
DATA=$ROOT/data
[ "$TASK" = passage ] || DATA=$ROOT/data-$TASK
python3 benches/train-quality/make_data.py "$CORPUS" "$DATA" --task "$TASK"
sha256sum "$DATA"/train.jsonl "$DATA"/test.jsonl

rm -rf "$OUT"
mkdir -p "$OUT"
cache=$ROOT/embeddings
# shellcheck disable=SC2086
/usr/bin/time -f "%e s wall" -o "$OUT/head.time" "$SLUICE" train --kind head --encoder "$ENCODER" \
  --data "$DATA/train.jsonl" --positive python --validation 0 --cache-dir "$cache" \
  --output "$OUT/head" --quiet --force ${TRAIN_ARGS:-}
# shellcheck disable=SC2086
/usr/bin/time -f "%e s wall" -o "$OUT/hashed.time" "$SLUICE" train --kind hashed-ngram \
  --data "$DATA/train.jsonl" --positive python --validation 0 \
  --output "$OUT/hashed" --quiet --force ${TRAIN_ARGS:-}
for model in head hashed; do
  cat > "$OUT/$model.toml" <<TOML
[input]
paths = []
[[stages]]
type = "classifier"
id = "$model"
model = "$model"
mode = "all"
drop_threshold = 0.5
review_threshold = 0.5
TOML
  /usr/bin/time -f "%e s wall" -o "$OUT/$model-eval.time" "$SLUICE" eval \
    --config "$OUT/$model.toml" --data "$DATA/test.jsonl" --positive python \
    --thresholds 0.5 --json "$OUT/$model-eval.json" >/dev/null
done
"$VENV/bin/python" benches/train-quality/tfidf_lr.py "$DATA/train.jsonl" "$DATA/test.jsonl" python \
  "$OUT/tfidf.json" >/dev/null

python3 - "$OUT" "$NAME" "$DATA" <<'PY'
import json, sys
out, name, data = sys.argv[1:4]
def fmt(x):
    return "-" if x is None else f"{x:.3f}"
test = [json.loads(line)["label"] for line in open(f"{data}/test.jsonl")]
print(f"\n{name}: test split, {len(test)} documents ({test.count('python')} python), flagged at score >= 0.5\n")
print("| model | precision | recall | F1 | ROC AUC | train | eval |")
print("|---|---|---|---|---|---|---|")
for model, label in (("head", "`--kind head` (all-MiniLM-L6-v2)"), ("hashed", "`--kind hashed-ngram`")):
    e = json.load(open(f"{out}/{model}-eval.json"))
    m = e["cascade"]["metrics"]
    t = open(f"{out}/{model}.time").read().split()[0]
    te = open(f"{out}/{model}-eval.time").read().split()[0]
    print(f"| {label} | {fmt(m['precision'])} | {fmt(m['recall'])} | {fmt(m['f1'])} | "
          f"{fmt(e['classifier']['roc_auc'])} | {t} s | {te} s |")
b = json.load(open(f"{out}/tfidf.json"))
print(f"| TF-IDF + LR (scikit-learn) | {fmt(b['precision'])} | {fmt(b['recall'])} | {fmt(b['f1'])} | "
      f"{fmt(b['roc_auc'])} | | |")
PY
