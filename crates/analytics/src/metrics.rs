//! What c2d-analytics counts, served at `GET /metrics` (Prometheus text) on `ANALYTICS_METRICS_ADDR`: its
//! consumer's progress through the log (`c2d_subscriber::metrics`) and its gRPC calls per
//! method (`c2d_telemetry::metrics::GrpcMetrics`).

use std::sync::Arc;

use c2d_subscriber::metrics::ConsumerProgress;
use c2d_telemetry::metrics::GrpcMetrics;
use prometheus_client::registry::Registry;

/// The registry the endpoint serves, and the gRPC metrics the server records into it: the
/// progress of the one subscriber, or of a replica's partition readers.
pub fn registry(consumer: Arc<dyn ConsumerProgress>) -> (Registry, GrpcMetrics) {
    c2d_subscriber::metrics::service_registry("c2d_analytics", consumer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2d_subscriber::Stats;

    #[test]
    fn the_alert_rules_name_only_metrics_analytics_renders() {
        let (registry, grpc) = registry(Arc::new(Stats::default()));
        // A sample in each labelled family, so that every metric is rendered.
        grpc.observe("Any", tonic::Code::Ok, std::time::Duration::from_millis(1));
        let unknown = c2d_telemetry::metrics::named_by_alert_rules_but_not_exposed(
            env!("CARGO_MANIFEST_DIR"),
            "c2d_analytics_",
            &c2d_telemetry::metrics::render(&registry),
        )
        .unwrap();
        assert!(
            unknown.is_empty(),
            "alert rules name metrics c2d-analytics does not emit: {unknown:?}"
        );
    }
}
