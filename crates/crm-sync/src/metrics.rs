//! What c2d-crm-sync counts, served at `GET /metrics` (Prometheus text) on `CRM_METRICS_ADDR`,
//! beside `GET /healthz`.
//!
//! Queue depths and dead letters are read from the store at scrape time, so they are right
//! whichever replica or restart queued the changes; the rest counts this process's work.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;

use c2d_telemetry::metrics::GrpcMetrics;

use crate::outbox;
use crate::runner::Shared;

/// A connector, and what became of one delivery attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub connector: String,
    /// delivered, retry, dead.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectorLabels {
    pub connector: String,
}

/// Every metric of c2d-crm-sync.
pub struct Metrics {
    registry: Registry,
    pub events_applied: Counter,
    pub apply_seconds: Histogram,
    pub lag: Gauge,
    pub applied_sequence: Gauge,
    pub changes_queued: Family<ConnectorLabels, Counter>,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub queue_depth: Family<ConnectorLabels, Gauge>,
    pub dead_letters: Family<ConnectorLabels, Gauge>,
    /// CrmService's calls, per method.
    pub grpc: GrpcMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("c2d_crm_sync");
        let metrics = Metrics {
            registry: Registry::default(),
            events_applied: Counter::default(),
            // 50 µs to ~1.6 s.
            apply_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            lag: Gauge::default(),
            applied_sequence: Gauge::default(),
            changes_queued: Family::default(),
            deliveries: Family::default(),
            queue_depth: Family::default(),
            dead_letters: Family::default(),
            grpc: GrpcMetrics::register(&mut registry),
        };
        registry.register(
            "events_applied",
            "Events of the stream applied to the directory",
            metrics.events_applied.clone(),
        );
        registry.register_with_unit(
            "apply_duration",
            "Time to apply one event (one store transaction)",
            Unit::Seconds,
            metrics.apply_seconds.clone(),
        );
        registry.register(
            "consumer_lag_events",
            "Events in the stream not handled yet",
            metrics.lag.clone(),
        );
        registry.register(
            "applied_sequence",
            "The last stream sequence handled",
            metrics.applied_sequence.clone(),
        );
        registry.register(
            "changes_queued",
            "Client changes queued for a connector",
            metrics.changes_queued.clone(),
        );
        registry.register(
            "deliveries",
            "Delivery attempts by connector and outcome (delivered, retry, dead)",
            metrics.deliveries.clone(),
        );
        registry.register(
            "queue_depth",
            "Changes waiting in a connector's queue",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "dead_letters",
            "Changes a connector gave up on, waiting for an operator",
            metrics.dead_letters.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    /// Counts one delivery attempt.
    pub fn delivery(&self, connector: &str, outcome: &'static str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                connector: connector.to_owned(),
                outcome,
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        c2d_telemetry::metrics::render(&self.registry)
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(shared);
    tracing::info!(addr = %listener.local_addr()?, "metrics at /metrics");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn scrape(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let metrics = &shared.metrics;
    metrics.lag.set(shared.lag() as i64);
    if let Ok(sequence) = shared.applied_sequence().await {
        metrics.applied_sequence.set(sequence as i64);
    }
    for connector in &shared.connectors {
        if let Ok(queue) = outbox::status(&shared.store, &connector.name).await {
            let labels = ConnectorLabels {
                connector: connector.name.clone(),
            };
            metrics
                .queue_depth
                .get_or_create(&labels)
                .set(queue.pending as i64);
            metrics
                .dead_letters
                .get_or_create(&labels)
                .set(queue.dead as i64);
        }
    }
    (
        [(header::CONTENT_TYPE, c2d_telemetry::metrics::CONTENT_TYPE)],
        metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_rules_name_only_metrics_crm_sync_renders() {
        let metrics = Metrics::default();
        // A sample in each labelled family, so that every metric is rendered.
        let connector = ConnectorLabels {
            connector: "hubspot".into(),
        };
        metrics.changes_queued.get_or_create(&connector).inc();
        metrics.grpc.observe(
            "GetClient",
            tonic::Code::Ok,
            std::time::Duration::from_millis(1),
        );
        metrics.queue_depth.get_or_create(&connector).set(1);
        metrics.dead_letters.get_or_create(&connector).set(0);
        metrics
            .deliveries
            .get_or_create(&DeliveryLabels {
                connector: "hubspot".into(),
                outcome: "delivered",
            })
            .inc();
        let unknown = c2d_telemetry::metrics::named_by_alert_rules_but_not_exposed(
            env!("CARGO_MANIFEST_DIR"),
            "c2d_crm_sync_",
            &metrics.render(),
        )
        .unwrap();
        assert!(
            unknown.is_empty(),
            "alert rules name metrics crm-sync does not emit: {unknown:?}"
        );
    }

    #[test]
    fn renders_deliveries_by_connector_and_outcome() {
        let metrics = Metrics::default();
        metrics.delivery("hubspot", "retry");
        metrics.delivery("hubspot", "delivered");
        metrics.events_applied.inc();
        let text = metrics.render();
        for line in [
            r#"c2d_crm_sync_deliveries_total{connector="hubspot",outcome="retry"} 1"#,
            r#"c2d_crm_sync_deliveries_total{connector="hubspot",outcome="delivered"} 1"#,
            "c2d_crm_sync_events_applied_total 1",
            "c2d_crm_sync_apply_duration_seconds_bucket",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
