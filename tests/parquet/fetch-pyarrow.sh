#!/usr/bin/env bash
# Installs pyarrow (an independent Parquet writer and reader, from PyPI) for the Parquet tests,
# into <repo>/.cache/python/pyarrow (git-ignored). Nothing is committed; nothing is fetched at
# run time. The CLI tests find it there (tests/cli/parquet.rs).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
version="26.0.1"
dest="$repo/.cache/python/pyarrow"

if [[ -f "$dest/.version" && "$(cat "$dest/.version")" == "$version" ]]; then
    echo "pyarrow $version already in $dest"
    exit 0
fi
pip_cmd=()
if command -v pip3 >/dev/null 2>&1; then pip_cmd=(pip3); elif command -v pip >/dev/null 2>&1; then pip_cmd=(pip);
else pip_cmd=(python3 -m pip); fi

rm -rf "$dest.partial"
"${pip_cmd[@]}" install --quiet --disable-pip-version-check --no-deps --target "$dest.partial" "pyarrow==$version"
echo "$version" > "$dest.partial/.version"
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "pyarrow $version installed into $dest"
