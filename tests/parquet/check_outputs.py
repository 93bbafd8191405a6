#!/usr/bin/env python3
"""Reads a sluice output directory's Parquet outputs back with pyarrow and checks them against
the inputs: every shard's kept/, dropped/ and review/ files have the input's schema (types,
nullability, field and key-value metadata) and hold exactly the input rows the records send
there, in input order; with the rows its errors/ records name, they are the input, whole.

    PYTHONPATH=.cache/python/pyarrow python3 tests/parquet/check_outputs.py OUT [MAX_ROW_GROUP_ROWS CODEC]

Exits non-zero naming the first difference. Run by tests/cli/parquet.rs.
"""
import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def has_dictionary(data_type):
    if pa.types.is_dictionary(data_type):
        return True
    return any(has_dictionary(data_type.field(i).type) for i in range(data_type.num_fields))


def decoded(table):
    """`table` with dictionary columns as their values: the type stays in the schema (checked
    apart), but which dictionary holds the values is the writer's business. A dictionary nested
    in a list or struct (a chat turn's `from`) is compared by value."""
    columns = []
    for column in table.columns:
        if pa.types.is_dictionary(column.type):
            column = pa.chunked_array(
                [chunk.dictionary_decode() for chunk in column.chunks],
                type=column.type.value_type,
            )
        elif has_dictionary(column.type):
            column = pa.chunked_array([pa.array([json.dumps(v) for v in column.to_pylist()])])
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def records(path):
    if path.endswith(".zst"):
        data = subprocess.run(["zstd", "-dcq", path], check=True, capture_output=True).stdout
    elif path.endswith(".gz"):
        data = subprocess.run(["gzip", "-dc", path], check=True, capture_output=True).stdout
    else:
        data = open(path, "rb").read()
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


def main():
    out = sys.argv[1]
    max_rows = int(sys.argv[2]) if len(sys.argv) > 2 else None
    codec = sys.argv[3] if len(sys.argv) > 3 else None
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    checked = 0
    for entry in manifest["shards"]:
        name = entry.get("output_name", "")
        if entry["status"] != "done" or not name.endswith(".parquet"):
            continue
        table = pq.read_table(entry["path"])
        destination = ["kept"] * table.num_rows
        for record in records(os.path.join(out, "audit", entry["records_name"])):
            assert record["line"] == record["row"] + 1, record
            destination[record["row"]] = record["decision"]
        errors = records(os.path.join(out, "errors", entry["records_name"]))
        for record in errors:
            assert destination[record["row"]] == "kept", f"row {record['row']} twice"
            destination[record["row"]] = "errors"
        total = len(errors)
        for stream in ["kept", "dropped", "review"]:
            path = os.path.join(out, stream, name)
            written = pq.read_table(path)
            if not written.schema.equals(table.schema, check_metadata=True):
                sys.exit(f"{path}: schema differs:\n{written.schema}\nvs the input's\n{table.schema}")
            rows = [i for i, d in enumerate(destination) if d == stream]
            expected = table.take(pa.array(rows, type=pa.int64()))
            if not decoded(written).equals(decoded(expected)):
                sys.exit(f"{path}: rows differ from input rows {rows[:20]}...")
            meta = pq.ParquetFile(path).metadata
            for g in range(meta.num_row_groups):
                group = meta.row_group(g)
                if max_rows is not None and group.num_rows > max_rows:
                    sys.exit(f"{path}: row group {g} has {group.num_rows} rows, over {max_rows}")
                if codec is not None and group.num_columns:
                    actual = group.column(0).compression
                    if actual != codec:
                        sys.exit(f"{path}: compressed with {actual}, not {codec}")
            total += written.num_rows
        if total != table.num_rows:
            sys.exit(f"{entry['name']}: {total} rows out of {table.num_rows}")
        if entry["stats"]["input"]["documents"] != table.num_rows:
            sys.exit(f"{entry['name']}: the manifest counts {entry['stats']['input']['documents']} rows")
        checked += 1
    if checked == 0:
        sys.exit("no parquet shard in the output")
    print(f"{checked} passed, 0 failed")


if __name__ == "__main__":
    main()
