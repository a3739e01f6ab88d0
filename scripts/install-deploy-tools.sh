#!/usr/bin/env bash
# Installs what `make deploy-check` needs into tools/, from package registries only:
# - kubectl with kustomize: the one on PATH when it renders, else Debian's kubernetes-client
#   unpacked into tools/kube (no root needed);
# - kubernetes-validate (offline Kubernetes schemas) and checkov (policy scan) from PyPI into
#   tools/deploy-venv;
# - buf (proto lint and breaking-change check) from npm into tools/npm;
# - promtool (alert rule tests) from Debian's prometheus package, unpacked into tools/prom
#   (the one on PATH when there is one).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/tools"
mkdir -p "$tools"

KUBERNETES_VALIDATE_VERSION=1.37.0
CHECKOV_VERSION=3.3.30
BUF_VERSION=1.75.0

if ! command -v kubectl >/dev/null 2>&1 || ! kubectl kustomize --help >/dev/null 2>&1; then
    if [ ! -x "$tools/kube/usr/bin/kubectl" ]; then
        echo "installing kubectl (Debian kubernetes-client) into tools/kube"
        work="$(mktemp -d)"
        (cd "$work" && apt-get download kubernetes-client >/dev/null)
        dpkg -x "$work"/kubernetes-client_*.deb "$tools/kube"
        rm -rf "$work"
    fi
fi

venv="$tools/deploy-venv"
if [ ! -x "$venv/bin/checkov" ] || [ ! -x "$venv/bin/kubernetes-validate" ]; then
    echo "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION and checkov $CHECKOV_VERSION into tools/deploy-venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "checkov==$CHECKOV_VERSION"
fi

if [ ! -x "$tools/npm/node_modules/.bin/buf" ]; then
    echo "installing buf $BUF_VERSION into tools/npm"
    npm install --silent --no-audit --no-fund --prefix "$tools/npm" "@bufbuild/buf@$BUF_VERSION"
fi

if ! command -v promtool >/dev/null 2>&1 && [ ! -x "$tools/prom/usr/bin/promtool" ]; then
    echo "installing promtool (Debian prometheus) into tools/prom"
    work="$(mktemp -d)"
    # A fresh machine may have no package lists yet: read them once, then try again.
    if ! (cd "$work" && apt-get download prometheus >/dev/null 2>&1); then
        apt-get update -qq
        (cd "$work" && apt-get download prometheus >/dev/null)
    fi
    dpkg -x "$work"/prometheus_*.deb "$tools/prom"
    rm -rf "$work"
fi
