//! What c2d-keeper counts, served at `GET /metrics` (Prometheus text) on `KEEPER_ADDR`, with
//! `GET /healthz`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    tenant: String,
    kind: String,
}

/// The keeper's metrics.
pub struct Metrics {
    registry: Registry,
    repairs: Family<KindLabels, Counter>,
    gaps: Family<TenantLabels, Counter>,
    backfilled: Family<TenantLabels, Counter>,
    already_stored: Family<TenantLabels, Counter>,
    api_errors: Family<KindLabels, Counter>,
    pending: Family<TenantLabels, Gauge>,
    indexed: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("c2d_keeper");
        let metrics = Metrics {
            repairs: Family::default(),
            gaps: Family::default(),
            backfilled: Family::default(),
            already_stored: Family::default(),
            api_errors: Family::default(),
            pending: Family::default(),
            indexed: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "webhook_repairs",
            "Webhooks re-registered or re-enabled, by what was wrong (disabled, missing, changed)",
            metrics.repairs.clone(),
        );
        registry.register(
            "gaps",
            "Gaps in webhook deliveries found",
            metrics.gaps.clone(),
        );
        registry.register(
            "backfilled_messages",
            "Messages stored from Chat2Desk's API for a gap",
            metrics.backfilled.clone(),
        );
        registry.register(
            "backfill_already_stored",
            "Messages a backfill listed that were in the log already (not stored again)",
            metrics.already_stored.clone(),
        );
        registry.register(
            "api_errors",
            "Failed Chat2Desk API calls, by kind (unauthorized, rate_limited, server_error, malformed, unreachable, refused)",
            metrics.api_errors.clone(),
        );
        registry.register(
            "pending_gaps",
            "Gaps whose backfill is not complete",
            metrics.pending.clone(),
        );
        registry.register(
            "indexed_messages",
            "Message ids of the log the index holds",
            metrics.indexed.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }
}

fn tenant(tenant: &str) -> TenantLabels {
    TenantLabels {
        tenant: tenant.to_owned(),
    }
}

fn kind(tenant: &str, kind: &str) -> KindLabels {
    KindLabels {
        tenant: tenant.to_owned(),
        kind: kind.to_owned(),
    }
}

impl Metrics {
    /// A webhook repaired.
    pub fn repaired(&self, tenant_name: &str, problem: &str) {
        self.repairs
            .get_or_create(&kind(tenant_name, problem))
            .inc();
    }

    /// A gap found.
    pub fn gap(&self, tenant_name: &str) {
        self.gaps.get_or_create(&tenant(tenant_name)).inc();
    }

    /// What one backfill pass did.
    pub fn backfill(&self, tenant_name: &str, stored: u64, skipped: u64) {
        self.backfilled
            .get_or_create(&tenant(tenant_name))
            .inc_by(stored);
        self.already_stored
            .get_or_create(&tenant(tenant_name))
            .inc_by(skipped);
    }

    /// A failed API call.
    pub fn api_error(&self, tenant_name: &str, error_kind: &str) {
        self.api_errors
            .get_or_create(&kind(tenant_name, error_kind))
            .inc();
    }

    /// Gaps pending of a tenant, and the index's size.
    pub fn pending(&self, tenant_name: &str, pending: usize, indexed: usize) {
        self.pending
            .get_or_create(&tenant(tenant_name))
            .set(pending as i64);
        self.indexed.set(indexed as i64);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        c2d_telemetry::metrics::render(&self.registry)
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, c2d_telemetry::metrics::CONTENT_TYPE)],
        metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_rules_name_only_metrics_the_keeper_renders() {
        let metrics = Metrics::default();
        // A sample in each labelled family, so that every metric is rendered.
        metrics.repaired("acme", "disabled");
        metrics.gap("acme");
        metrics.backfill("acme", 1, 1);
        metrics.api_error("acme", "unauthorized");
        metrics.pending("acme", 1, 1);
        let unknown = c2d_telemetry::metrics::named_by_alert_rules_but_not_exposed(
            env!("CARGO_MANIFEST_DIR"),
            "c2d_keeper_",
            &metrics.render(),
        )
        .unwrap();
        assert!(
            unknown.is_empty(),
            "alert rules name metrics the keeper does not emit: {unknown:?}"
        );
    }
}
