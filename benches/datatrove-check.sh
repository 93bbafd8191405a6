#!/usr/bin/env bash
# Checks configs/c4-badwords.toml against datatrove 0.10.1's C4BadWordsFilter itself, on the
# boundary cases of benches/datatrove/cases.py (LDNOOBW words between combining marks, ZWJ, `‿`,
# `²`, `_`, `İ`, `ſ`, final sigma, other scripts' digits...): prints how many documents each
# keeps and every document on which sluice and datatrove disagree, for the preset as it is and
# for the preset of commit 7248d7f (before `case`, `word_chars`, `boundary`).
#
# Usage: benches/datatrove-check.sh
#   SLUICE   the sluice binary (default target/release/sluice, built if missing)
# Needs python3 (CPython 3.11) with venv; datatrove comes from PyPI into .cache/venv-datatrove
# (benches/datatrove/env.sh). Exit 0 when the preset agrees on every document, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
SLUICE=${SLUICE:-target/release/sluice}
[ -x "$SLUICE" ] || cargo build --release --quiet
. benches/datatrove/env.sh
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

mkdir -p "$WORK/in"
python3 benches/datatrove/cases.py > "$WORK/in/cases.jsonl"
"$DT_PYTHON" benches/datatrove/c4_filter.py "$WORK/in" "$WORK/dt" --workers 1 >"$WORK/dt.log" 2>&1 \
  || { cat "$WORK/dt.log" >&2; exit 3; }

mkdir -p "$WORK/old"
cp -r configs/lists "$WORK/old/lists"
git show 7248d7f:configs/c4-badwords.toml > "$WORK/old/c4-badwords.toml"
"$SLUICE" run -c configs/c4-badwords.toml -i "$WORK/in" -o "$WORK/new" -q --force || true
"$SLUICE" run -c "$WORK/old/c4-badwords.toml" -i "$WORK/in" -o "$WORK/prev" -q --force || true

python3 - "$WORK" <<'PY'
import glob, json, sys
work = sys.argv[1]
def ids(pattern):
    out = set()
    for path in glob.glob(pattern):
        with open(path, encoding="utf-8") as f:
            out.update(json.loads(line)["id"] for line in f if line.strip())
    return out
texts = {}
with open(f"{work}/in/cases.jsonl", encoding="utf-8") as f:
    for line in f:
        try:
            d = json.loads(line)
            texts[d["id"]] = d["text"]
        except ValueError:
            pass
dt = ids(f"{work}/dt/kept/*.jsonl")
dt_removed = ids(f"{work}/dt/removed/*.jsonl")
print(f"{len(texts)} documents; datatrove kept {len(dt)}, removed {len(dt_removed)}, "
      f"skipped {len(texts) - len(dt) - len(dt_removed)} (empty text or unreadable)")
bad = 0
for name, label in (("new", "configs/c4-badwords.toml"), ("prev", "the preset of 7248d7f")):
    kept = ids(f"{work}/{name}/kept/*.jsonl")
    errors = sum(1 for p in glob.glob(f"{work}/{name}/errors/*.jsonl") for _ in open(p))
    # Known and documented: datatrove's reader skips empty texts, sluice keeps them.
    empty = sorted(i for i in kept - dt if texts.get(i) == "")
    differ = sorted((kept ^ dt) - set(empty))
    print(f"sluice, {label}: kept {len(kept)}, {errors} in errors/; differs from datatrove on {len(differ)}"
          f" (and keeps {len(empty)} empty text{'s' if len(empty) != 1 else ''}, which datatrove skips)")
    for i in differ[:40]:
        side = "sluice keeps" if i in kept else "datatrove keeps"
        print(f"  {i}: {side} {texts.get(i)!r}")
    if name == "new":
        bad = len(differ)
sys.exit(1 if bad else 0)
PY
