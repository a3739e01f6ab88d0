#!/usr/bin/env python3
"""Every metric an alert rule names must be one that something really emits.

A rule over a metric nobody exports never fires, silently. The rule file may name:
- the NATS exporter's metrics: the list in deploy/observability/nats-exporter-metrics.txt, read
  from the exporter's source at the version deploy/base/nats.yaml runs;
- our services' metrics (c2d_gateway_*, c2d_crm_sync_*, c2d_keeper_*, c2d_analytics_*,
  c2d_alerting_*, c2d_hints_*): the unit tests
  `the_alert_rules_name_only_metrics_*` render each service's registry and check these names;
- nothing else.

Usage: check-alert-metrics.py RULES.yaml EXPORTER-METRICS.txt
"""

import re
import sys

import yaml

PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "rate", "irate", "increase", "by", "without", "on",
    "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "min_over_time",
    "max_over_time", "avg_over_time", "absent", "histogram_quantile", "topk", "bottomk", "offset",
    "humanizePercentage", "humanizeDuration",
}
OURS = ("c2d_gateway_", "c2d_crm_sync_", "c2d_keeper_", "c2d_analytics_", "c2d_alerting_", "c2d_hints_")


def metric_names(expr):
    expr = re.sub(r'"[^"]*"', "", expr)              # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)            # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)           # ranges
    expr = re.sub(r"\b\d+(ms|[smhdwy])\b", "", expr)   # durations (offset 1d)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr))
    return {n for n in names if n not in PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]?", n)}


def main():
    rules_file, exporter_file = sys.argv[1], sys.argv[2]
    exporter = {line.strip() for line in open(exporter_file) if line.strip() and not line.startswith("#")}
    rules = yaml.safe_load(open(rules_file))
    unknown, counted = [], 0
    for group in rules["groups"]:
        for rule in group["rules"]:
            for name in sorted(metric_names(str(rule["expr"]))):
                counted += 1
                if name.startswith(OURS) or name in exporter:
                    continue
                unknown.append(f"{rule['alert']}: {name}")
    if unknown:
        print("alert rules name metrics nothing emits:\n  " + "\n  ".join(unknown), file=sys.stderr)
        return 1
    print(f"deploy/observability: the alert rules name {counted} metrics, each emitted by the NATS exporter or our services")
    return 0


if __name__ == "__main__":
    sys.exit(main())
