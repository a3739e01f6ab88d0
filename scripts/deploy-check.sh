#!/usr/bin/env bash
# `make deploy-check`: everything under deploy/ and proto/ is checked offline.
#
# 1. every overlay renders with kustomize;
# 2. every object validates against the Kubernetes schemas (kubernetes-validate, strict: an
#    unknown field is an error too);
# 3. checkov's policy scan passes (accepted findings are listed, with why, in .checkov.yaml);
# 4. the manifests keep the promise that no event is lost (scripts/check-manifests.py: the
#    gateway's spool outlives its pod, its stop fits its grace period, no replicas under an
#    HPA, NATS required on separate nodes, storage and memory limits consistent), and that
#    check refuses each promise broken;
# 5. the observability files parse, every metric the alert rules name is one something emits
#    (scripts/check-alert-metrics.py), the rules pass their unit tests (promtool), and the
#    Prometheus Operator's PodMonitors and PrometheusRule match deploy/ and the rule file;
# 6. buf lints the protos and finds no breaking change against main;
# 7. and the check proves it can fail: a copy of deploy/ with one broken manifest must be refused.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/install-deploy-tools.sh
tools="$root/tools"
venv="$tools/deploy-venv"
kubectl="kubectl"
if ! command -v kubectl >/dev/null 2>&1 || ! kubectl kustomize --help >/dev/null 2>&1; then
    kubectl="$tools/kube/usr/bin/kubectl"
fi
buf="$tools/npm/node_modules/.bin/buf"
promtool="promtool"
command -v promtool >/dev/null 2>&1 || promtool="$tools/prom/usr/bin/promtool"
KUBERNETES_VERSION="${KUBERNETES_VERSION:-1.33}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# Renders and validates the overlays under $1/overlays; returns non-zero on the first failure.
check_overlays() {
    local deploy="$1" quiet="${2:-}"
    for overlay in "$deploy"/overlays/*/; do
        local name rendered
        name="$(basename "$overlay")"
        rendered="$out/$name.yaml"
        if ! "$kubectl" kustomize "$overlay" >"$rendered" 2>"$out/$name.err"; then
            grep -v '^# Warning' "$out/$name.err" >&2 || true
            echo "overlay $name does not render" >&2
            return 1
        fi
        if ! "$venv/bin/kubernetes-validate" --strict --quiet --no-warn -k "$KUBERNETES_VERSION" "$rendered" >&2; then
            echo "overlay $name has objects that are not valid Kubernetes $KUBERNETES_VERSION" >&2
            return 1
        fi
        if ! "$venv/bin/checkov" --config-file "$root/.checkov.yaml" -f "$rendered" >"$out/$name.checkov" 2>&1; then
            cat "$out/$name.checkov" >&2
            echo "overlay $name fails the policy scan (see .checkov.yaml for the accepted findings)" >&2
            return 1
        fi
        [ -n "$quiet" ] || echo "deploy/overlays/$name: $(grep -c '^kind:' "$rendered") objects render, validate against Kubernetes $KUBERNETES_VERSION and pass checkov"
    done
}

check_overlays deploy
for overlay in dev production; do
    "$venv/bin/python" scripts/check-manifests.py "$overlay" "$out/$overlay.yaml" --self-test
done
# The Job an operator runs on the spool of a gateway that is gone (docs/operations.md).
sed 's/CLAIM/spool-gateway-0/g' deploy/jobs/forward-spool.yaml >"$out/forward-spool.yaml"
"$venv/bin/kubernetes-validate" --strict --quiet --no-warn -k "$KUBERNETES_VERSION" "$out/forward-spool.yaml" >&2
echo "deploy/jobs/forward-spool.yaml: validates against Kubernetes $KUBERNETES_VERSION"

"$venv/bin/python" - <<'PY'
import json, yaml
json.load(open("deploy/observability/grafana-dashboard.json"))
rules = yaml.safe_load(open("deploy/observability/prometheus-rules.yaml"))
count = sum(len(g["rules"]) for g in rules["groups"])
print(f"deploy/observability: the Grafana dashboard and {count} Prometheus alert rules parse")
PY
"$venv/bin/python" scripts/check-alert-metrics.py deploy/observability/prometheus-rules.yaml \
    deploy/observability/nats-exporter-metrics.txt
"$venv/bin/python" scripts/render-prometheus-operator.py --check
"$kubectl" kustomize deploy/observability/prometheus-operator >"$out/prometheus-operator.yaml"
"$promtool" check rules deploy/observability/prometheus-rules.yaml >/dev/null
"$promtool" test rules deploy/observability/prometheus-rules.test.yaml >"$out/promtool.log" 2>&1 \
    || { cat "$out/promtool.log" >&2; echo "the alert rules fail their unit tests" >&2; exit 1; }
echo "deploy/observability: the alert rules pass their unit tests ($(grep -c '^  - name:' deploy/observability/prometheus-rules.test.yaml) cases, promtool)"

"$buf" lint
if git rev-parse --verify --quiet main >/dev/null; then
    "$buf" breaking --against '.git#branch=main,subdir=proto'
    echo "proto/: buf lint passes, no breaking change against main"
else
    echo "proto/: buf lint passes (no main branch here to check breaking changes against)"
fi

# The check must be able to fail: break one manifest in a copy and expect a refusal.
broken="$out/broken"
mkdir -p "$broken"
cp -r deploy/base deploy/overlays "$broken/"
sed -i 's/containerPort: 8080/containerPort: http-8080/' "$broken/base/gateway.yaml"
if check_overlays "$broken" quiet 2>"$out/broken.log"; then
    echo "deploy-check accepted a broken manifest (containerPort: http-8080): the check itself is broken" >&2
    exit 1
fi
echo "self-test: a broken manifest is refused ($(grep -m1 -o "containerPort: 'http-8080' is not of type 'integer'" "$out/broken.log" || head -1 "$out/broken.log"))"
echo "deploy-check passed"
