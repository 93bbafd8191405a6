# Sourced by benches/datatrove-check.sh and benches/compare.sh: makes (once) a venv under
# .cache/venv-datatrove with datatrove 0.10.1 and its pinned dependencies from PyPI
# (benches/datatrove/requirements.txt), and sets DT_PYTHON to its python.
# Needs python3 (CPython 3.11, the version the C4 preset's tables reproduce) with venv and pip.
DT_VENV=${DT_VENV:-$PWD/.cache/venv-datatrove}
DT_PYTHON=$DT_VENV/bin/python
if [ ! -x "$DT_PYTHON" ] || ! cmp -s benches/datatrove/requirements.txt "$DT_VENV/requirements.txt"; then
  echo "making $DT_VENV (datatrove from PyPI)" >&2
  rm -rf "$DT_VENV"
  python3 -m venv "$DT_VENV"
  "$DT_VENV/bin/pip" install --quiet --disable-pip-version-check -r benches/datatrove/requirements.txt
  cp benches/datatrove/requirements.txt "$DT_VENV/requirements.txt"
fi
case "$("$DT_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" in
  3.11) ;;
  *) echo "note: $DT_PYTHON is not CPython 3.11; the C4 preset reproduces 3.11's Unicode 14.0 tables" >&2 ;;
esac
export DT_PYTHON
