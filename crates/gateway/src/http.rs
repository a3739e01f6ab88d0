//! The gateway's HTTP surface: the webhook route and the operational endpoints.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};

use crate::Gateway;
use crate::webhook;

/// Every route of the gateway.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/hooks/chat2desk/{tenant}", post(webhook::receive))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        // The webhook handler enforces its own, configurable limit while reading.
        .layer(DefaultBodyLimit::disable())
        .with_state(gateway)
}

/// The process is up and serving HTTP.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Events can be stored now: NATS is connected and the streams exist. A load balancer sends
/// traffic elsewhere while this answers 503.
async fn readyz(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    match gateway.log.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

async fn metrics(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    gateway
        .metrics
        .nats_connected
        .set(i64::from(gateway.log.is_connected()));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        gateway.metrics.render(),
    )
}
