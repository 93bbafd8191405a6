#!/usr/bin/env python3
"""datatrove 0.10.1's C4BadWordsFilter over JSONL shards, as configs/c4-badwords.toml runs in sluice.

    c4_filter.py INPUT_DIR OUTPUT_DIR [--workers 2] [--tasks N] [--glob '*.jsonl.zst']

Pipeline: JsonlReader (defaults: text_key "text", id_key "id", compression inferred from the file
name) -> C4BadWordsFilter() (defaults: English list, keep_fraction 0) with an exclusion writer ->
JsonlWriter; both writers uncompressed, so the output is OUTPUT_DIR/kept/RANK.jsonl and
OUTPUT_DIR/removed/RANK.jsonl, with logs and stats under OUTPUT_DIR/logs. One task per input
file unless --tasks says otherwise; --workers processes run them (LocalPipelineExecutor).

Nothing is downloaded: datatrove fetches the LDNOOBW English list from GitHub at commit 25e679f;
here its asset cache (HF_ASSETS_CACHE, default .cache/datatrove-assets) is seeded with --list
(default configs/lists/ldnoobw-en-c4.txt, the file sluice's preset uses, which is that download
byte for byte: a warning says so when --list is another file).
"""

import argparse
import glob
import hashlib
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# SHA-256 of LDNOOBW's `en` at commit 25e679f, the file datatrove 0.10.1 downloads.
UPSTREAM_SHA256 = "a506cbcf8a31935b122299f3bb1d32be6db3d0ad498765d28f365dfc4f4d7b8c"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tasks", type=int, default=0, help="default: one per input file")
    ap.add_argument("--glob", default="*.jsonl*")
    ap.add_argument("--list", default=str(ROOT / "configs/lists/ldnoobw-en-c4.txt"))
    args = ap.parse_args()
    if hashlib.sha256(Path(args.list).read_bytes()).hexdigest() != UPSTREAM_SHA256:
        print(f"warning: {args.list} is not the list datatrove downloads", file=sys.stderr)

    # Before huggingface_hub is imported: it reads these once.
    os.environ.setdefault("HF_ASSETS_CACHE", str(ROOT / ".cache/datatrove-assets"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    from fsspec.core import strip_protocol
    from huggingface_hub import cached_assets_path

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import C4BadWordsFilter
    from datatrove.pipeline.filters.c4_filters import _EN_BADWORDS_URL
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    # Where cached_asset_path_or_download looks (datatrove/io.py), and the ".completed" mark that
    # makes it skip the download.
    assets = cached_assets_path(library_name="datatrove", namespace="filters", subfolder="c4_badwords")
    local = os.path.join(assets, strip_protocol(_EN_BADWORDS_URL).replace("/", "_"))
    if not os.path.exists(local) or Path(local).read_bytes() != Path(args.list).read_bytes():
        shutil.copyfile(args.list, local)
    open(f"{local}.completed", "a").close()

    files = sorted(glob.glob(os.path.join(args.input, "**", args.glob), recursive=True))
    if not files:
        sys.exit(f"no {args.glob} files in {args.input}")
    out = Path(args.output)
    if out.exists():
        shutil.rmtree(out)
    pipeline = [
        JsonlReader(args.input, glob_pattern=args.glob),
        C4BadWordsFilter(exclusion_writer=JsonlWriter(str(out / "removed"), compression=None)),
        JsonlWriter(str(out / "kept"), compression=None),
    ]
    LocalPipelineExecutor(
        pipeline,
        tasks=args.tasks or len(files),
        workers=args.workers,
        logging_dir=str(out / "logs"),
    ).run()


if __name__ == "__main__":
    main()
