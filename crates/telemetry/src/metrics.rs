//! What a service counts, exposed to Prometheus the same way by every service that serves
//! `GET /metrics`: the text format of a `prometheus_client` registry, with its content type.

use prometheus_client::registry::Registry;

mod endpoint;
mod grpc;

pub use endpoint::{serve, spawn};
pub use grpc::{CallLabels, GrpcMetrics, MethodLabels};

/// The content type of the Prometheus text exposition (format 0.0.4), which every Prometheus
/// and compatible scraper reads.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The text exposition of every metric in `registry`.
pub fn render(registry: &Registry) -> String {
    let mut text = String::with_capacity(4096);
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

/// The metric names an exposition offers: for each `# TYPE` line, the names its samples carry
/// (`_total` for a counter, `_bucket`, `_sum` and `_count` for a histogram). A family with no
/// labelled sample yet is not described at all: give each one a sample before rendering.
pub fn exposed_names(exposition: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for line in exposition.lines() {
        let mut words = line.split_whitespace();
        let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
    }
    names
}

/// The names with `prefix` that a Prometheus rule file (or any text) mentions: what a test
/// checks against [`exposed_names`], so that no alert is written over a metric nobody emits.
pub fn names_mentioned(text: &str, prefix: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// The metrics with `prefix` that the pipeline's alert rules
/// (`deploy/observability/prometheus-rules.yaml`, found from a service crate's manifest
/// directory) name but `exposition` does not offer: what a service's test asserts is empty,
/// so that no alert is written over a metric nobody emits.
pub fn named_by_alert_rules_but_not_exposed(
    manifest_dir: &str,
    prefix: &str,
    exposition: &str,
) -> std::io::Result<Vec<String>> {
    let rules = std::fs::read_to_string(
        std::path::Path::new(manifest_dir).join("../../deploy/observability/prometheus-rules.yaml"),
    )?;
    let exposed = exposed_names(exposition);
    let named = names_mentioned(&rules, prefix);
    if named.is_empty() {
        return Err(std::io::Error::other(format!(
            "no alert rule names a metric starting with {prefix}"
        )));
    }
    Ok(named.difference(&exposed).cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exposition_offers_the_names_its_samples_carry() {
        let text = "# HELP c2d_x_requests Requests.\n# TYPE c2d_x_requests counter\n\
                    # TYPE c2d_x_seconds histogram\n# TYPE c2d_x_depth gauge\n# EOF\n";
        let names: Vec<String> = exposed_names(text).into_iter().collect();
        assert_eq!(
            names,
            [
                "c2d_x_depth",
                "c2d_x_requests_total",
                "c2d_x_seconds_bucket",
                "c2d_x_seconds_count",
                "c2d_x_seconds_sum"
            ]
        );
        let mentioned = names_mentioned(
            "expr: sum(rate(c2d_x_requests_total{outcome=\"x\"}[5m])) > c2d_y_other",
            "c2d_x_",
        );
        assert_eq!(
            mentioned.into_iter().collect::<Vec<_>>(),
            ["c2d_x_requests_total"]
        );
    }
}
