#!/usr/bin/env bash
# Builds the real-text benchmark corpus: ~400 MB of JSONL ({"id", "text"} per line) in 8 zstd
# shards, from public text in Debian 12 packages: dictionaries (GCIDE, WordNet, FOLDOC, Jargon
# File, The Devil's Dictionary), fortunes in nine languages, manual pages in ten languages,
# documentation (Linux kernel, Python, Perl, PostgreSQL, Django, SQLAlchemy, Sphinx, git, Vim,
# Emacs, Octave, Maxima, LibreOffice help in four languages, GNOME help in 41 languages, the Debian
# Administrator's Handbook, Debian Reference in four languages). No news and no fiction beyond
# fortunes and Bierce: the registries reachable here have no such corpus in a package.
#
# Usage: benches/real-corpus.sh [OUTPUT_DIR]     (default .cache/real-corpus/corpus)
#
# Rebuilds byte for byte: the packages are pinned by version and SHA-256 (benches/real-corpus.lock),
# benches/real_corpus.py reads them in sorted order with nothing random or dated, and zstd runs at
# level 3 on one thread. It prints the SHA-256 of the uncompressed shards (what must match
# anywhere) and of the .zst files (the same with the same zstd version; made with zstd 1.5.4).
# Needs apt-get (after `apt-get update`), dpkg-deb, python3 (3.8 or later, standard library only)
# and zstd. Downloads (~280 MB of .deb) are cached under .cache/real-corpus/debs.
# A pinned version that the archive no longer serves (a later point release replaced it) is
# reported; REAL_CORPUS_UNPINNED=1 takes the version apt offers instead (the corpus then differs).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-.cache/real-corpus/corpus}
CACHE=.cache/real-corpus
DEBS=$CACHE/debs
UNPACKED=$CACHE/unpacked
for tool in apt-get dpkg-deb python3 zstd sha256sum; do
  command -v "$tool" >/dev/null || { echo "real-corpus.sh needs $tool" >&2; exit 2; }
done
mkdir -p "$DEBS"

# deb_for NAME: the cached .deb of package NAME, if any.
deb_for() {
  local f
  for f in "$DEBS"/"$1"_*.deb; do
    [ -e "$f" ] && [ "$(dpkg-deb -f "$f" Package)" = "$1" ] && { echo "$f"; return; }
  done
  return 0
}

failed=0
rm -rf "$UNPACKED"
mkdir -p "$UNPACKED"
while read -r name version sha; do
  case "$name" in ''|'#'*) continue ;; esac
  deb=$(deb_for "$name")
  if [ -n "$deb" ] && [ "$(dpkg-deb -f "$deb" Version)" != "$version" ] && [ -z "${REAL_CORPUS_UNPINNED:-}" ]; then
    rm -f "$deb"
    deb=
  fi
  if [ -z "$deb" ]; then
    want="$name=$version"
    [ -n "${REAL_CORPUS_UNPINNED:-}" ] && want=$name
    if ! (cd "$DEBS" && apt-get download -q "$want" >/dev/null 2>&1); then
      echo "cannot download $want (run apt-get update; or REAL_CORPUS_UNPINNED=1 for what apt has now)" >&2
      failed=1
      continue
    fi
    deb=$(deb_for "$name")
  fi
  got=$(sha256sum "$deb" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    echo "$deb: SHA-256 $got, the lock says $sha" >&2
    [ -n "${REAL_CORPUS_UNPINNED:-}" ] || failed=1
  fi
  mkdir -p "$UNPACKED/$name"
  dpkg-deb -x "$deb" "$UNPACKED/$name"
done < benches/real-corpus.lock
[ "$failed" = 0 ] || exit 1

rm -rf "$OUT"
mkdir -p "$OUT"
python3 benches/real_corpus.py "$UNPACKED" "$OUT"
echo "sha256 of the uncompressed shards (cat real-0.jsonl .. real-7.jsonl):"
cat "$OUT"/real-{0..7}.jsonl | sha256sum | cut -d' ' -f1
for i in 0 1 2 3 4 5 6 7; do
  zstd -q -3 --single-thread --rm "$OUT/real-$i.jsonl" -o "$OUT/real-$i.jsonl.zst"
done
echo "sha256 of the zstd shards ($(zstd -V | grep -o 'v[0-9.]*')):"
cat "$OUT"/real-{0..7}.jsonl.zst | sha256sum | cut -d' ' -f1
rm -rf "$UNPACKED"
du -sh "$OUT"
