"""The Python half of benches/ort/run.sh: picks real texts, runs ONNX Runtime on the token ids
sluice fed its model, checks the embeddings agree and prints both speeds.

    compare.py select CORPUS_DIR TOKENIZER_JSON TEXTS_DIR LENGTHS COUNT
    compare.py fuse PLAIN.onnx FUSED.onnx HEADS HIDDEN
    compare.py time MODEL.onnx VARIANT SIDE_DIR SHAPES THREADS      (one JSON line per shape)
    compare.py report SIDE_DIR                                       (the table)
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def select(corpus_dir, tokenizer_json, texts_dir, lengths, count):
    """Writes texts-T.jsonl for each length T: the first COUNT texts (of every 101st document of
    the corpus shards, in order, so that every source is represented) of at least T tokens,
    cut to 12 bytes per token (sluice tokenizes at most 16 bytes per window token for embed)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(tokenizer_json)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    lengths = [int(t) for t in lengths.split(",")]
    count = int(count)
    chosen = {t: [] for t in lengths}
    shards = sorted(Path(corpus_dir).glob("*.jsonl.zst"))
    if not shards:
        raise SystemExit(f"compare.py: no *.jsonl.zst shards in {corpus_dir}")
    seen = 0
    for shard in shards:
        proc = subprocess.Popen(["zstd", "-dcq", str(shard)], stdout=subprocess.PIPE)
        for line in proc.stdout:
            seen += 1
            if seen % 101:
                continue
            text = json.loads(line)["text"]
            for t in lengths:
                if len(chosen[t]) >= count:
                    continue
                cut = text.encode()[: 12 * t].decode(errors="ignore")
                if len(tokenizer.encode(cut).ids) >= t:
                    chosen[t].append(cut)
            if all(len(c) >= count for c in chosen.values()):
                break
        proc.kill()
        proc.wait()
        if all(len(c) >= count for c in chosen.values()):
            break
    Path(texts_dir).mkdir(parents=True, exist_ok=True)
    for t, texts in chosen.items():
        if len(texts) < count:
            raise SystemExit(f"compare.py: only {len(texts)} texts of {t}+ tokens in {corpus_dir}")
        with open(Path(texts_dir) / f"texts-{t}.jsonl", "w") as f:
            for text in texts:
                f.write(json.dumps({"text": text}) + "\n")
    print(f"texts: {count} per length {lengths} from {seen} documents scanned")


def fuse(plain, fused, heads, hidden):
    """ONNX Runtime's own BERT optimizer (Attention, SkipLayerNormalization, BiasGelu fusions)."""
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(plain, model_type="bert", num_heads=int(heads), hidden_size=int(hidden), opt_level=0)
    stats = {k: v for k, v in model.get_fused_operator_statistics().items() if v}
    model.save_model_to_file(fused)
    print(f"fused graph {fused}: {stats}")


def session(model_path, threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])


def median(values):
    return sorted(values)[len(values) // 2]


def time_ort(model_path, variant, side_dir, shapes, threads):
    runs = int(os.environ.get("SIDE_BY_SIDE_RUNS", "7"))
    min_seconds = float(os.environ.get("SIDE_BY_SIDE_SECONDS", "1"))
    threads = int(threads)
    sess = session(model_path, threads)
    side = Path(side_dir)
    for shape in shapes.split(","):
        ids = np.array(json.loads((side / f"ids-{shape}.json").read_text()), dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        run = lambda: sess.run(["sentence_embedding"], feed)[0]  # noqa: E731
        ort_emb = run()
        agreement = {}
        for path in sorted(side.glob(f"sluice-{shape}-t*.f32")):
            ours = np.fromfile(path, dtype="<f4").reshape(ort_emb.shape)
            cosine = np.sum(ours * ort_emb, 1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ort_emb, axis=1))
            agreement[path.stem.rsplit("-", 1)[1]] = {
                "min_cosine": float(cosine.min()),
                "max_abs_diff": float(np.abs(ours - ort_emb).max()),
            }
        start = time.perf_counter()
        run()
        reps = max(1, int(np.ceil(min_seconds / (time.perf_counter() - start))))
        wall, cpu = [], []
        for _ in range(runs):
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(reps):
                run()
            wall.append((time.perf_counter() - start) / reps)
            cpu.append((time.process_time() - start_cpu) / reps)
        print(json.dumps({
            "shape": shape, "threads": threads, "variant": variant, "tokens": int(ids.size),
            "wall_s": median(wall), "cpu_s": median(cpu), "wall_all_s": wall, "reps": reps,
            "agreement": agreement,
        }))


def report(side_dir):
    rows = [json.loads(line) for line in (Path(side_dir) / "timings.jsonl").read_text().splitlines() if line]
    by_key = {(row["shape"], row["threads"], row.get("variant", "sluice")): row for row in rows}
    ours = [v for v in ("sluice", "sluice-before") if any(k[2] == v for k in by_key)]
    theirs = sorted({k[2] for k in by_key} - set(ours))
    print("\nagreement of the pooled embeddings (sluice vs ONNX Runtime, every text of the batch):")
    worst = 1.0
    for (shape, threads, variant), row in sorted(by_key.items()):
        for sluice_threads, a in sorted(row.get("agreement", {}).items()):
            worst = min(worst, a["min_cosine"])
            print(f"  {shape:>7} {variant:<10} ORT threads {threads} vs sluice {sluice_threads}: "
                  f"min cosine {a['min_cosine']:.7f}, max abs diff {a['max_abs_diff']:.2e}")
    if worst < 0.9999:
        print("DISAGREEMENT: a cosine is below 0.9999")
    print("\ntokens/s from the median wall time per batch [tokens per CPU-second]; ratio = sluice / the faster ORT")
    header = f"{'shape':>7} {'threads':>7}" + "".join(f" {v:>22}" for v in ours + theirs)
    header += "".join(f" {v + ' ratio':>20}" for v in ours)
    print(header)
    for shape, threads in sorted({(k[0], k[1]) for k in by_key}, key=lambda k: (k[1], k[0])):
        line = f"{shape:>7} {threads:>7}"
        for v in ours + theirs:
            row = by_key.get((shape, threads, v))
            cell = f"{row['tokens'] / row['wall_s']:.0f} [{row['tokens'] / row['cpu_s']:.0f}]" if row else "-"
            line += f" {cell:>22}"
        fastest = [by_key[(shape, threads, v)] for v in theirs if (shape, threads, v) in by_key]
        for v in ours:
            row = by_key.get((shape, threads, v))
            if row and fastest:
                wall = min(r["wall_s"] for r in fastest) / row["wall_s"]
                cpu = min(r["cpu_s"] for r in fastest) / row["cpu_s"]
                line += f" {f'{wall:.2f}x [{cpu:.2f}x]':>20}"
            else:
                line += f" {'-':>20}"
        print(line)


def main():
    commands = {"select": (select, 5), "fuse": (fuse, 4), "time": (time_ort, 5), "report": (report, 1)}
    if len(sys.argv) < 2 or sys.argv[1] not in commands or len(sys.argv) - 2 != commands[sys.argv[1]][1]:
        raise SystemExit(__doc__)
    function, _ = commands[sys.argv[1]]
    function(*sys.argv[2:])


if __name__ == "__main__":
    main()
