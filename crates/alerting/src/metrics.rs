//! What c2d-alerting counts, served at `GET /metrics` (Prometheus text) on
//! `ALERTING_METRICS_ADDR`: its consumer's progress through the log
//! (`c2d_subscriber::metrics`), its gRPC calls per method
//! (`c2d_telemetry::metrics::GrpcMetrics`), and the messages to receivers
//! ([`crate::notify::Notifications`]).

use std::sync::Arc;

use c2d_subscriber::Stats;
use c2d_telemetry::metrics::GrpcMetrics;
use prometheus_client::registry::Registry;

use crate::notify::Notifications;

/// The registry the endpoint serves, and what the server and the notifier record into it.
pub fn registry(consumer: Arc<Stats>) -> (Registry, GrpcMetrics, Notifications) {
    let (mut registry, grpc) = c2d_subscriber::metrics::service_registry("c2d_alerting", consumer);
    let notifications = Notifications::register(&mut registry);
    (registry, grpc, notifications)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_rules_name_only_metrics_alerting_renders() {
        let (registry, grpc, notifications) = registry(Arc::new(Stats::default()));
        // A sample in each labelled family, so that every metric is rendered.
        grpc.observe("Any", tonic::Code::Ok, std::time::Duration::from_millis(1));
        notifications.count("ops", "delivered");
        let unknown = c2d_telemetry::metrics::named_by_alert_rules_but_not_exposed(
            env!("CARGO_MANIFEST_DIR"),
            "c2d_alerting_",
            &c2d_telemetry::metrics::render(&registry),
        )
        .unwrap();
        assert!(
            unknown.is_empty(),
            "alert rules name metrics c2d-alerting does not emit: {unknown:?}"
        );
    }
}
