#!/usr/bin/env bash
# The README's screenshots of the review page (docs/review-*.png), from the fixture queues:
#   docs/review-terms.png  the hazard cascade on fixtures/corpus (marked terms, their evidence)
#   docs/review-chat.png   `sluice screen --output` of fixtures/chat/chat.jsonl (parts and roles)
# Headless Chromium takes them from a real `sluice review` on 127.0.0.1. Run from anywhere:
#   scripts/review-screenshots.sh [path/to/sluice]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sluice="${1:-$repo/target/debug/sluice}"
tmp="$(mktemp -d)"
server=""
cleanup() {
    [[ -n "$server" ]] && kill "$server" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
cd "$repo"

shoot() { # OUT_DIR PNG
    "$sluice" review "$1" --reviewer demo >"$tmp/url" 2>"$tmp/err" &
    server=$!
    for _ in $(seq 100); do [[ -s "$tmp/url" ]] && break; sleep 0.1; done
    chromium --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
        --user-data-dir="$tmp/profile" --window-size=1200,720 --virtual-time-budget=5000 \
        --screenshot="$2" "$(head -1 "$tmp/url")" 2>/dev/null
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=""
}

"$sluice" run -c configs/hazard-cascade.toml -i fixtures/corpus -o "$tmp/run" -q
shoot "$tmp/run" docs/review-terms.png
"$sluice" screen fixtures/chat/chat.jsonl --config configs/finetune-screen.toml --output "$tmp/screen" >/dev/null || true
shoot "$tmp/screen" docs/review-chat.png
ls -l docs/review-*.png
