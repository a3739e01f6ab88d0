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

/// Events can be stored now: NATS is connected and the streams exist, or the spool has room
/// for them, and the gateway is not stopping. A load balancer sends traffic elsewhere while
/// this answers 503. The body says how deep the spool is.
async fn readyz(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    let spool = gateway.spool.as_ref().map(|s| (s.depth(), s.has_room()));
    let depth = spool.map_or(String::new(), |(depth, _)| {
        format!(" (spool: {} events, {} bytes)", depth.messages, depth.bytes)
    });
    if gateway.is_stopping() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: stopping{depth}\n"),
        );
    }
    match gateway.log.readiness() {
        Ok(()) => (StatusCode::OK, format!("ready{depth}\n")),
        Err(reason) if spool.is_some_and(|(_, room)| room) => (
            StatusCode::OK,
            format!("ready, spooling: {reason}{depth}\n"),
        ),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}{depth}\n"),
        ),
    }
}

async fn metrics(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    gateway
        .metrics
        .nats_connected
        .set(i64::from(gateway.log.is_connected()));
    if let Some(spool) = &gateway.spool {
        let depth = spool.depth();
        gateway.metrics.spool_messages.set(depth.messages as i64);
        gateway.metrics.spool_bytes.set(depth.bytes as i64);
        gateway
            .metrics
            .spool_unreadable_bytes
            .set(spool.unreadable_bytes() as i64);
        gateway
            .metrics
            .spool_set_aside
            .set(spool.set_aside() as i64);
    }
    (
        [(header::CONTENT_TYPE, c2d_telemetry::metrics::CONTENT_TYPE)],
        gateway.metrics.render(),
    )
}
