#!/usr/bin/env bash
# Makes sure the PostgreSQL tests can run: a server answers on 127.0.0.1:5432 (or at
# $C2D_TEST_POSTGRES_URL), or initdb is installed so that the tests start a server of their own.
#
# Nothing is started here. When neither is present, Debian's `postgresql` package is installed
# (which needs root and apt); the tests then run initdb and postgres in temporary directories.
set -euo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/5432") 2>/dev/null; }

if [ -n "${C2D_TEST_POSTGRES_URL:-}" ] && [ "${C2D_TEST_POSTGRES_URL}" != own ]; then
    exit 0
fi
if [ "${C2D_TEST_POSTGRES_URL:-}" != own ] && answers; then
    exit 0
fi
if [ -n "${C2D_POSTGRES_BIN:-}" ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "PostgreSQL is needed by the tests: install it (initdb on PATH) or set C2D_TEST_POSTGRES_URL" >&2
    exit 1
fi
echo "installing PostgreSQL (Debian package postgresql) for the tests"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends postgresql >/dev/null
# The package may start a cluster of its own; the tests use it when it answers on 5432.
