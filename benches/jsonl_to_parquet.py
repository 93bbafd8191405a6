#!/usr/bin/env python3
"""Writes the documents of a JSONL corpus (plain, .zst or .gz shards) as Parquet shards with
pyarrow, shard for shard and row for row: the same documents in both formats, for comparing
`sluice bench` on each (benches/parquet.sh).

    PYTHONPATH=.cache/python/pyarrow python3 benches/jsonl_to_parquet.py IN_DIR OUT_DIR \\
        [--row-group-rows N] [--block-bytes N] [--compression zstd|snappy|...]

Every field of the JSON objects becomes a column (pyarrow's JSON reader infers the types).
"""
import argparse
import os
import subprocess
import tempfile

import pyarrow.json as pj
import pyarrow.parquet as pq


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--row-group-rows", type=int, default=100_000)
    parser.add_argument(
        "--block-bytes", type=int, default=64 << 20,
        help="JSON read per step (a row group never spans two): bounds this script's memory",
    )
    parser.add_argument("--compression", default="zstd")
    args = parser.parse_args()
    os.makedirs(args.output, exist_ok=True)
    for name in sorted(os.listdir(args.input)):
        path = os.path.join(args.input, name)
        stem = name
        for ext in (".zst", ".zstd", ".gz"):
            stem = stem.removesuffix(ext)
        stem = stem.removesuffix(".jsonl")
        out = os.path.join(args.output, stem + ".parquet")
        rows = 0
        with tempfile.NamedTemporaryFile(suffix=".jsonl") as plain:
            if name.endswith((".zst", ".zstd")):
                subprocess.run(["zstd", "-dcq", path], stdout=plain, check=True)
            elif name.endswith(".gz"):
                subprocess.run(["gzip", "-dc", path], stdout=plain, check=True)
            else:
                subprocess.run(["cat", path], stdout=plain, check=True)
            plain.flush()
            reader = pj.open_json(plain.name, read_options=pj.ReadOptions(block_size=args.block_bytes))
            with pq.ParquetWriter(out, reader.schema, compression=args.compression) as writer:
                for batch in reader:
                    writer.write_batch(batch, row_group_size=args.row_group_rows)
                    rows += batch.num_rows
        print(f"{out}: {rows} rows, {pq.ParquetFile(out).metadata.num_row_groups} row groups")


if __name__ == "__main__":
    main()
