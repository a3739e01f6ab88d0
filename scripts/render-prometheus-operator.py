#!/usr/bin/env python3
"""The Prometheus Operator's objects for the pipeline, rendered from what the rest of deploy/
already says, so that they cannot drift from it:

- a PodMonitor per component that serves /metrics, selecting the pods by the label the base
  gives them and scraping the container port named as the base names it;
- a PrometheusRule holding deploy/observability/prometheus-rules.yaml, the rule file promtool
  tests, unchanged.

Usage: render-prometheus-operator.py            writes deploy/observability/prometheus-operator/
       render-prometheus-operator.py --check    fails if those files are not what it would write
"""

import os
import sys

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "deploy/observability/prometheus-operator")

# Component: the container port that serves /metrics (its name in deploy/base).
SCRAPED = {
    "gateway": "http",
    "crm-sync": "metrics",
    "analytics": "metrics",
    "alerting": "metrics",
    "hints": "metrics",
    "keeper": "metrics",
    "nats": "metrics",
}

HEADER = "# Rendered by scripts/render-prometheus-operator.py from deploy/; do not edit by hand.\n"


def pod_monitors():
    monitors = []
    for component, port in SCRAPED.items():
        monitors.append({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": {"name": f"c2d-{component}", "labels": {"app.kubernetes.io/part-of": "chat2desk-events"}},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": component}},
                "podMetricsEndpoints": [{"port": port, "path": "/metrics", "interval": "30s"}],
            },
        })
    return monitors


def prometheus_rule():
    rules = yaml.safe_load(open(os.path.join(ROOT, "deploy/observability/prometheus-rules.yaml")))
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "chat2desk-events", "labels": {"app.kubernetes.io/part-of": "chat2desk-events"}},
        "spec": rules,
    }


def rendered():
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "chat2desk-events",
        "resources": ["podmonitors.yaml", "prometheusrule.yaml"],
    }
    return {
        "kustomization.yaml": HEADER + "# kubectl apply -k deploy/observability/prometheus-operator (needs the Operator's CRDs)\n"
        + yaml.safe_dump(kustomization, sort_keys=False),
        "podmonitors.yaml": HEADER + yaml.safe_dump_all(pod_monitors(), sort_keys=False),
        "prometheusrule.yaml": HEADER + yaml.safe_dump(prometheus_rule(), sort_keys=False, width=100),
    }


def check_ports():
    """Each scraped port is one the component's pod really names."""
    for component, port in SCRAPED.items():
        manifest = list(yaml.safe_load_all(open(os.path.join(ROOT, f"deploy/base/{component}.yaml"))))
        names = set()
        for obj in manifest:
            if obj and obj.get("kind") in ("Deployment", "StatefulSet"):
                for container in obj["spec"]["template"]["spec"]["containers"]:
                    names |= {p.get("name") for p in container.get("ports", [])}
        if port not in names:
            sys.exit(f"deploy/base/{component}.yaml names no container port {port!r} to scrape")


def main():
    check_ports()
    files = rendered()
    if "--check" in sys.argv:
        # Compared as YAML, not text: another PyYAML may lay the same objects out otherwise.
        def objects(text):
            return [o for o in yaml.safe_load_all(text) if o]

        stale = [name for name, text in files.items()
                 if not os.path.exists(os.path.join(OUT, name))
                 or objects(open(os.path.join(OUT, name)).read()) != objects(text)]
        if stale:
            sys.exit(f"deploy/observability/prometheus-operator/{', '.join(stale)} out of date: run scripts/render-prometheus-operator.py")
        print(f"deploy/observability/prometheus-operator: {len(SCRAPED)} PodMonitors and the PrometheusRule match deploy/")
        return
    os.makedirs(OUT, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(OUT, name), "w") as out:
            out.write(text)


if __name__ == "__main__":
    main()
