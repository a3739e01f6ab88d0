#!/usr/bin/env bash
# Headless Chromium and its WebDriver, for the console's browser tests: Debian's `chromium` and
# `chromium-driver` packages (the tests drive them over WebDriver; nothing is downloaded at run
# time). Skipped when both are installed already.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "the console's browser tests need chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
echo "installing Debian's chromium and chromium-driver (the console's browser tests)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
