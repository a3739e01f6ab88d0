//! What c2d-analytics counts, served at `GET /metrics` (Prometheus text) on `ANALYTICS_METRICS_ADDR`: its
//! consumer's progress through the log (`c2d_subscriber::metrics`), its gRPC calls per
//! method (`c2d_telemetry::metrics::GrpcMetrics`), and a replica's failures to use the
//! shared partition snapshots.

use std::sync::Arc;

use c2d_subscriber::metrics::ConsumerProgress;
use c2d_telemetry::metrics::GrpcMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The registry the endpoint serves, and what the service records into it: the gRPC metrics,
/// and the shared snapshots' failures. The consumer is the one subscriber, or a replica's
/// partition readers.
pub fn registry(
    consumer: Arc<dyn ConsumerProgress>,
) -> (Registry, GrpcMetrics, SharedSnapshotFailures) {
    let (mut registry, grpc) = c2d_subscriber::metrics::service_registry("c2d_analytics", consumer);
    let failures = SharedSnapshotFailures::register(&mut registry);
    (registry, grpc, failures)
}

/// What was tried with the shared snapshots: `read` (a partition taken waits while this
/// fails), `write` (its next owner would replay more of the log) or `sweep`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SnapshotOperation {
    pub operation: &'static str,
}

/// `c2d_analytics_shared_snapshot_failures_total{operation}`: a replica that cannot use the
/// bucket `C2D_ANALYTICS` says so in its log every time; this lets an alert rule say so once.
#[derive(Clone, Debug, Default)]
pub struct SharedSnapshotFailures(Family<SnapshotOperation, Counter>);

impl SharedSnapshotFailures {
    /// Registers the family in `registry`.
    pub fn register(registry: &mut Registry) -> SharedSnapshotFailures {
        let failures = SharedSnapshotFailures::default();
        registry.register(
            "shared_snapshot_failures",
            "Failures to read, write or sweep the partitions' shared snapshots (C2D_ANALYTICS)",
            failures.0.clone(),
        );
        failures
    }

    pub(crate) fn count(&self, operation: &'static str) {
        self.0.get_or_create(&SnapshotOperation { operation }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2d_subscriber::Stats;

    #[test]
    fn the_alert_rules_name_only_metrics_analytics_renders() {
        let (registry, grpc, failures) = registry(Arc::new(Stats::default()));
        // A sample in each labelled family, so that every metric is rendered.
        grpc.observe("Any", tonic::Code::Ok, std::time::Duration::from_millis(1));
        failures.count("write");
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
