//! The webhook gateway: Chat2Desk deliveries in, protobuf events on NATS JetStream out.
//!
//! A delivery is answered 2xx only once JetStream has stored it, so a 2xx means the event is
//! safe; anything else makes Chat2Desk retry, and the retry is recognised by its deterministic
//! event id and stored once. The binary (`main.rs`) only reads the configuration, starts
//! telemetry and calls [`Gateway::start`] and [`Gateway::serve`]; tests drive the same calls.
//!
//! - [`cfg`]: environment variables and their defaults.
//! - [`tenants`]: which accounts may post, with which secrets.
//! - [`webhook`]: the delivery route, step by step.
//! - [`event_log`]: JetStream streams and appends.
//! - [`http`], [`metrics`], [`hints`], [`error`]: the rest of the HTTP surface.

pub mod cfg;
pub mod error;
pub mod event_log;
pub mod hints;
pub mod http;
pub mod metrics;
pub mod tenants;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::net::TcpListener;

pub use cfg::Config;
use event_log::{AppendError, Appended, EventLog, StreamError};
use metrics::Metrics;

/// A running gateway: its configuration, its connection to the event log, its metrics.
pub struct Gateway {
    pub config: Config,
    pub log: Arc<EventLog>,
    pub metrics: Metrics,
}

impl Gateway {
    /// Connects to NATS (in the background when it is not up yet) and keeps the streams
    /// present. Returns at once: readiness is reported by `/readyz`.
    pub async fn start(config: Config) -> Result<Arc<Gateway>, StreamError> {
        // An event holds the raw body and the fields read from it: at most about twice the body.
        let largest_message = 2 * config.max_body_bytes + 64 * 1024;
        let log = EventLog::connect(
            &config.nats_url,
            config.stream.clone(),
            config.publish_timeout,
            largest_message,
        )
        .await?;
        log.spawn_keeper();
        Ok(Arc::new(Gateway {
            config,
            log,
            metrics: Metrics::default(),
        }))
    }

    /// Serves HTTP on `listener` until `shutdown` completes, then lets in-flight requests
    /// finish for at most the configured grace period.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (began_tx, began_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            shutdown.await;
            let _ = began_tx.send(());
        };
        let grace = self.config.shutdown_grace;
        let server = axum::serve(listener, http::router(Arc::clone(&self)))
            .with_graceful_shutdown(shutdown)
            .into_future();
        let deadline = async move {
            if began_rx.await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            served = server => served?,
            () = deadline => tracing::warn!(?grace, "in-flight requests did not finish within the grace period; they were not answered, so Chat2Desk retries them"),
        }
        self.log.flush().await;
        Ok(())
    }

    /// Appends one message to the event log, timing the acknowledgement.
    async fn append(
        &self,
        subject: String,
        msg_id: &str,
        traceparent: &str,
        payload: Bytes,
    ) -> Result<Appended, AppendError> {
        let started = Instant::now();
        let appended = self.log.append(subject, msg_id, traceparent, payload).await;
        if appended.is_ok() {
            self.metrics
                .publish_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        appended
    }
}
