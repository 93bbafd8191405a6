#!/usr/bin/env python3
"""Measures the refusal detector and the identity-shift rules.

    benches/screen/refusal.py SLUICE [CORPUS_DIR] [--shards N] [--show]

1. Precision and recall of the refusal rules on fixtures/screen/refusal-eval.jsonl (labelled
   answers: refusals, compliant answers, benign answers, hard negatives).
2. False positives on real text that holds no refusal and no persona prompt: every document of
   the real-text corpus (default .cache/real-corpus/corpus, see benches/real-corpus.sh) that
   either rule pack fires on, per rule, with a few examples (the matched text); `--shards N`
   reads only the first N shards (a sample), `--show` prints the first matches in context.
Runs `SLUICE run` with benches/screen/refusal-detector.toml; prints a summary.
"""
import collections
import glob
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "benches/screen/refusal-detector.toml")


def run(sluice, inputs, out):
    subprocess.run([sluice, "run", "--config", CONFIG, "--output", out, "--quiet", "--input", *inputs],
                   check=True)
    fired = {}
    for path in glob.glob(os.path.join(out, "audit", "*")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                fired[record["id"]] = [(r["stage"], r.get("rule")) for r in record["reasons"]]
    with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    return fired, report["input"]["documents"], report["input"]["bytes"]


def matched_texts(sluice, out, limit=40):
    """The first `limit` matches in context, from `sluice audit OUT export` (records joined with
    their text): `rule: ...before [[match]] after...`."""
    exported = subprocess.run([sluice, "audit", out, "export", "--format", "jsonl"],
                              capture_output=True, text=True, check=True).stdout
    lines = []
    for row in exported.splitlines():
        row = json.loads(row)
        record, text = row.get("record", row), row.get("text") or ""
        data = text.encode("utf-8")
        for stage in record["stages"]:
            for rule in stage.get("rules", []):
                for span in rule["spans"][:1]:
                    before = data[max(span["start"] - 70, 0):span["start"]].decode("utf-8", "replace")
                    match = data[span["start"]:span["end"]].decode("utf-8", "replace")
                    after = data[span["end"]:span["end"] + 70].decode("utf-8", "replace")
                    context = f"{before}[[{match}]]{after}".replace("\n", " ")
                    lines.append(f"  {stage['stage']}/{rule['id']} {record['id']}: {context}")
        if len(lines) >= limit:
            break
    return "\n".join(lines)


def main():
    sluice = sys.argv[1]
    corpus = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, ".cache/real-corpus/corpus")
    with tempfile.TemporaryDirectory() as tmp:
        labelled = os.path.join(ROOT, "fixtures/screen/refusal-eval.jsonl")
        fired, documents, _ = run(sluice, [labelled], os.path.join(tmp, "eval"))
        tp = fp = fn = tn = 0
        with open(labelled, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                said = any(stage == "refusal" for stage, _ in fired.get(r["id"], []))
                is_refusal = r["label"] == "refusal"
                tp += said and is_refusal
                fp += said and not is_refusal
                fn += (not said) and is_refusal
                tn += (not said) and not is_refusal
                if said != is_refusal:
                    print(f"  missed or wrong: {r['label']}: {r['text'][:90]!r}")
        print(f"labelled answers: {documents}: {tp} true positives, {fp} false positives, "
              f"{fn} false negatives, {tn} true negatives: precision {tp / max(tp + fp, 1):.3f}, "
              f"recall {tp / max(tp + fn, 1):.3f}")
        shards = sorted(glob.glob(os.path.join(corpus, "*.jsonl*")))
        if not shards:
            print(f"no corpus under {corpus}: run benches/real-corpus.sh")
            return
        if "--shards" in sys.argv:
            shards = shards[:int(sys.argv[sys.argv.index("--shards") + 1])]
        real = os.path.join(tmp, "real")
        fired, documents, size = run(sluice, shards, real)
        per_rule = collections.Counter()
        examples = collections.defaultdict(list)
        for doc, reasons in fired.items():
            for stage, rule in set(reasons):
                per_rule[f"{stage}/{rule}"] += 1
                if len(examples[f"{stage}/{rule}"]) < 3:
                    examples[f"{stage}/{rule}"].append(doc)
        refusal_docs = sum(any(s == "refusal" for s, _ in r) for r in fired.values())
        identity_docs = sum(any(s == "identity-shift" for s, _ in r) for r in fired.values())
        print(f"real-text corpus, {len(shards)} shards, {documents} documents, {size / 1e6:.0f} MB: "
              f"refusal rules fire on {refusal_docs} "
              f"({100 * refusal_docs / documents:.3f}%), identity-shift rules on {identity_docs} "
              f"({100 * identity_docs / documents:.3f}%)")
        for key, n in per_rule.most_common():
            print(f"  {key}: {n} (e.g. {', '.join(examples[key])})")
        if "--show" in sys.argv:
            print(matched_texts(sluice, real))


if __name__ == "__main__":
    main()
