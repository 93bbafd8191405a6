#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the browser tests (tests/cli/audit.rs: report.html;
# tests/cli/review.rs: the review page, driven with the keyboard through chromedriver): Debian's
# `chromium` and `chromium-driver`, installed by apt when missing (what .ci/run calls). The two
# come from one source package, so their versions match. Nothing else is downloaded.
set -euo pipefail

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if ((${#missing[@]})); then
    sudo=()
    [[ $(id -u) -ne 0 ]] && sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
chromium --version
chromedriver --version
