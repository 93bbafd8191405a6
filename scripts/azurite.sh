#!/usr/bin/env bash
# A real Azure Blob Storage emulator on 127.0.0.1 for the az:// tests: Azurite (Microsoft's
# storage emulator) from npm, pinned, and the Python azure-storage-blob SDK (an uploader
# independent of sluice, which also creates the container), both under <repo>/.cache/azurite
# (git-ignored). Only the blob service runs; it binds 127.0.0.1; telemetry is off; nothing leaves
# the machine.
#
#   scripts/azurite.sh install   npm package and venv (idempotent; what start calls first)
#   scripts/azurite.sh start     start it (data under .cache/azurite/data), create the container,
#                                wait until it answers, write the client env to .cache/azurite/env
#   scripts/azurite.sh stop      stop it (pid file .cache/azurite/azurite.pid)
#   scripts/azurite.sh env       print the client environment
#
# The client environment is the standard one object_store reads (AZURE_STORAGE_USE_EMULATOR,
# AZURITE_BLOB_STORAGE_URL, AZURE_STORAGE_ACCOUNT_NAME/KEY): the account key is Azurite's
# published development key, not a secret. SLUICE_AZURITE_PORT (default 18400) is the blob port.
set -euo pipefail
# shellcheck source=lib/pidfile.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/pidfile.sh"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
state="$repo/.cache/azurite"
venv="$state/venv"
version="3.35.0"
port="${SLUICE_AZURITE_PORT:-18400}"
container="sluice-test"
account="devstoreaccount1"
# Azurite's well-known development account key (documented by Microsoft).
account_key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

install() {
    if [[ -f "$state/.version" && "$(cat "$state/.version")" == "$version" ]]; then
        return 0
    fi
    rm -rf "$state/npm" "$venv"
    mkdir -p "$state/npm"
    npm install --silent --no-audit --no-fund --prefix "$state/npm" "azurite@$version" >/dev/null
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "azure-storage-blob==12.*"
    echo "$version" > "$state/.version"
    echo "azurite $version and azure-storage-blob installed into $state"
}

client_env() {
    cat <<ENV
export AZURE_STORAGE_USE_EMULATOR=true
export AZURITE_BLOB_STORAGE_URL=http://127.0.0.1:$port
export AZURE_STORAGE_ACCOUNT_NAME=$account
export AZURE_STORAGE_ACCOUNT_KEY=$account_key
export SLUICE_TEST_AZURE_CONTAINER=$container
export SLUICE_TEST_AZURE_PYTHON=$venv/bin/python
ENV
}

running() {
    pid_running "$state/azurite.pid"
}

ready() {
    # A signed request that creates the container (or finds it): the service is up and usable.
    (eval "$(client_env)"; "$venv/bin/python" - <<'PY'
import os, sys
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
url = os.environ["AZURITE_BLOB_STORAGE_URL"] + "/" + os.environ["AZURE_STORAGE_ACCOUNT_NAME"]
service = BlobServiceClient(url, credential={"account_name": os.environ["AZURE_STORAGE_ACCOUNT_NAME"],
                                             "account_key": os.environ["AZURE_STORAGE_ACCOUNT_KEY"]},
                            retry_total=0, connection_timeout=1, read_timeout=2)
try:
    service.create_container(os.environ["SLUICE_TEST_AZURE_CONTAINER"])
except ResourceExistsError:
    pass
except Exception:
    sys.exit(1)
PY
    ) 2>/dev/null
}

start() {
    install
    if running; then
        echo "azurite already running (pid $(cat "$state/azurite.pid"))"
        return 0
    fi
    mkdir -p "$state/data"
    client_env > "$state/env"
    setsid "$state/npm/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$port" \
        --location "$state/data" --skipApiVersionCheck --disableTelemetry --silent \
        > "$state/azurite.log" 2>&1 < /dev/null &
    echo $! > "$state/azurite.pid"
    for _ in $(seq 1 120); do
        if ready; then
            echo "azurite on 127.0.0.1:$port (pid $(cat "$state/azurite.pid")), container $container"
            return 0
        fi
        if ! running; then
            echo "azurite exited; its log:" >&2
            tail -20 "$state/azurite.log" >&2
            exit 1
        fi
        sleep 0.25
    done
    echo "azurite did not answer within 30 s; its log: $state/azurite.log" >&2
    exit 1
}

stop() {
    pid_stop "$state/azurite.pid"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    env) client_env ;;
    *) echo "usage: $0 install|start|stop|env" >&2; exit 2 ;;
esac
