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
//! - [`spool`]: where events wait, on disk, while JetStream cannot take them.
//! - [`http`], [`metrics`], [`hints`], [`error`]: the rest of the HTTP surface; [`drift`]:
//!   what Chat2Desk sends that the parser does not know.
//! - [`server`]: connections, and stopping as a phase: readiness false, new deliveries refused,
//!   in-flight requests finished and the spool forwarded before the process exits.

pub mod cfg;
pub mod drift;
pub mod error;
pub mod event_log;
pub mod hints;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod spool;
pub mod tenants;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use c2d_proto::events::Subject;
use tokio::net::TcpListener;

pub use cfg::Config;
use event_log::{AppendError, Appended, EventLog, StreamError};
use metrics::Metrics;
use spool::{Spool, SpoolError};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Hints(#[from] hints::HintsUrlError),
}

/// A running gateway: its configuration, its connection to the event log, its metrics.
pub struct Gateway {
    pub config: Config,
    pub log: Arc<EventLog>,
    /// Shared with the spool's forwarder, which counts the events it stores.
    pub metrics: Arc<Metrics>,
    /// Where events wait while JetStream cannot take them.
    pub spool: Option<Arc<Spool>>,
    pub limits: Arc<limits::TenantLimits>,
    /// Asked for the answer to ai_hints_requested.
    pub hints: hints::Hints,
    /// Set once the process was told to stop: readiness fails and deliveries get 503, so that
    /// Chat2Desk retries them on a gateway that is staying.
    stopping: AtomicBool,
}

impl Gateway {
    /// Connects to NATS (in the background when it is not up yet) and keeps the streams
    /// present. Returns at once: readiness is reported by `/readyz`.
    pub async fn start(config: Config) -> Result<Arc<Gateway>, StartError> {
        // An event holds the raw body and the fields read from it: at most about twice the body.
        let largest_message = 2 * config.max_body_bytes + 64 * 1024;
        let log = EventLog::connect(
            &config.nats_url,
            &config.nats_credentials,
            config.stream.clone(),
            config.publish_timeout,
            largest_message,
        )
        .await?;
        log.spawn_keeper();
        let metrics = Arc::new(Metrics::default());
        let spool = match &config.spool_dir {
            Some(dir) => {
                let spool = Spool::open(dir, config.spool_max_bytes)?;
                tokio::spawn(spool::forward(Arc::clone(&spool), {
                    let log = Arc::clone(&log);
                    let metrics = Arc::clone(&metrics);
                    move |records: Vec<spool::record::Record>| {
                        let (log, metrics) = (Arc::clone(&log), Arc::clone(&metrics));
                        async move { forward_batch(&log, &metrics, records).await }
                    }
                }));
                Some(spool)
            }
            None => None,
        };
        if let Some(spool) = &spool {
            metrics.spool_inherited.set(spool.inherited() as i64);
        }
        let hints = hints::Hints::new(config.hints_url.as_deref(), config.hints_deadline)?;
        Ok(Arc::new(Gateway {
            hints,
            limits: limits::TenantLimits::new(config.limits.clone()),
            config,
            log,
            metrics,
            spool,
            stopping: AtomicBool::new(false),
        }))
    }

    /// Whether the gateway is stopping (see [`Gateway::serve`]).
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Serves HTTP on `listener` until `shutdown` completes, then stops without losing an
    /// event, within `GATEWAY_SHUTDOWN_GRACE_SECS`: readiness fails and new deliveries are
    /// answered 503 at once (Chat2Desk retries them, on another replica), the requests in flight
    /// finish, and the spool is forwarded to JetStream. What the spool still holds then stays
    /// on its disk, said in the log, and is forwarded by the next gateway started on it.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let grace = self.config.shutdown_grace;
        let stopping = {
            let gateway = Arc::clone(&self);
            async move {
                shutdown.await;
                gateway.stop_taking_deliveries(grace);
            }
        };
        let drain = {
            let gateway = Arc::clone(&self);
            async move {
                if let Some(spool) = &gateway.spool {
                    spool.drained().await;
                }
            }
        };
        let stopped = server::serve(
            listener,
            http::router(Arc::clone(&self)),
            self.config.header_timeout,
            stopping,
            grace,
            drain,
        )
        .await;
        if !stopped.in_flight_finished {
            tracing::warn!(
                ?grace,
                "in-flight requests did not finish within the grace period; they were not answered, so Chat2Desk retries them"
            );
        }
        self.log.flush().await;
        self.report_spool_at_stop();
        Ok(())
    }

    /// The first step of stopping: from now on readiness fails and deliveries get 503.
    fn stop_taking_deliveries(&self, grace: Duration) {
        self.stopping.store(true, Ordering::Release);
        self.metrics.stopping.set(1);
        let waiting = self
            .spool
            .as_ref()
            .map_or(0, |spool| spool.depth().messages);
        tracing::info!(
            ?grace,
            spooled = waiting,
            "stopping: readiness fails and new deliveries are answered 503 (Chat2Desk retries them); finishing the requests in flight and forwarding the spool first"
        );
    }

    /// Says what a stop leaves in the spool: events answered 2xx that wait on this disk for
    /// the next gateway started on it.
    fn report_spool_at_stop(&self) {
        let Some(spool) = &self.spool else {
            return;
        };
        let depth = spool.depth();
        self.metrics.spool_messages.set(depth.messages as i64);
        if depth.bytes > 0 {
            tracing::error!(
                messages = depth.messages,
                bytes = depth.bytes,
                dir = %spool.dir().display(),
                "stopped with events still in the spool (JetStream did not take them within GATEWAY_SHUTDOWN_GRACE_SECS); \
                 they are kept there and forwarded first when a gateway starts on this directory again: keep its volume (docs/operations.md)"
            );
        } else {
            tracing::info!(
                "stopped with the spool empty: every event answered 2xx is in JetStream"
            );
        }
        if spool.set_aside() > 0 {
            tracing::error!(
                dir = %spool.dir().display(),
                "events set aside in spool.rejected stay on this disk; raise max_payload in the NATS configuration, then start a gateway on it"
            );
        }
    }

    /// Forwards what the spool holds and returns, for a spool whose gateway is gone for good
    /// (`c2d-gateway --forward-spool` on its volume). Returns how many events are set aside
    /// because JetStream refuses them as they are.
    pub async fn forward_spool(&self) -> u64 {
        let Some(spool) = &self.spool else {
            return 0;
        };
        spool.drained().await;
        spool.set_aside()
    }

    /// Appends one message to the event log, timing the acknowledgement; when JetStream cannot
    /// take it now, or older messages wait in the spool, it goes to the spool.
    async fn append(
        &self,
        subject: String,
        msg_id: &str,
        traceparent: &str,
        payload: Bytes,
    ) -> Result<Appended, AppendError> {
        let spool = self.spool.as_ref();
        if spool.is_some_and(|s| s.has_backlog()) {
            return self.spool(subject, msg_id, traceparent, payload).await;
        }
        let started = Instant::now();
        let appended = self
            .log
            .append(subject.clone(), msg_id, traceparent, payload.clone())
            .await;
        match appended {
            Ok(appended) => {
                self.metrics
                    .publish_seconds
                    .observe(started.elapsed().as_secs_f64());
                Ok(appended)
            }
            Err(error) if spool.is_some() && error.is_transient() => {
                tracing::warn!(%error, "JetStream cannot take the event now: spooled");
                self.spool(subject, msg_id, traceparent, payload).await
            }
            Err(error) => Err(error),
        }
    }

    async fn spool(
        &self,
        subject: String,
        msg_id: &str,
        traceparent: &str,
        payload: Bytes,
    ) -> Result<Appended, AppendError> {
        let Some(spool) = &self.spool else {
            return Err(AppendError::Unavailable("no spool".into()));
        };
        // An event NATS would refuse is not acknowledged now only to be stuck in the spool.
        if self
            .log
            .refuses_as_too_large(payload.len(), msg_id, traceparent)
        {
            return Err(AppendError::TooLarge {
                size: payload.len(),
            });
        }
        let record = spool::record::Record {
            subject,
            msg_id: msg_id.to_owned(),
            traceparent: traceparent.to_owned(),
            payload: payload.to_vec(),
        };
        spool.append(&record).await?;
        self.metrics.spooled.inc();
        Ok(Appended {
            sequence: 0,
            duplicate: false,
            spooled: true,
        })
    }
}

/// Forwards spooled messages in order: all are handed to JetStream one after the other, then
/// their acknowledgements are read, so a backlog drains at JetStream's pace rather than one
/// round trip per event. Says how many of the first ones are stored; the rest are tried again
/// later. Nothing is ever dropped: each of these events was answered 2xx. An event JetStream
/// refuses stays first in the spool, with an error in the log that says why, until the cause
/// is fixed (a NATS disk full, say), except one larger than the server accepts (spooled before
/// the gateway first reached NATS and learned its max_payload, or with max_payload lowered
/// since), which no retry can store: the spool sets that one aside instead.
async fn forward_batch(
    log: &EventLog,
    metrics: &Metrics,
    records: Vec<spool::record::Record>,
) -> spool::Sent {
    let mut sent = Vec::with_capacity(records.len());
    for record in records {
        let attempt = log
            .send(
                record.subject.clone(),
                &record.msg_id,
                &record.traceparent,
                record.payload.into(),
            )
            .await;
        let failed = attempt.is_err();
        sent.push((record.subject, record.msg_id, attempt));
        if failed {
            break;
        }
    }
    let mut forwarded = spool::Sent::default();
    for (subject, msg_id, attempt) in sent {
        let outcome = match attempt {
            Ok(sent) => log.acknowledged(sent).await,
            Err(error) => Err(error),
        };
        match outcome {
            Ok(appended) => {
                // Always one of the gateway's own subjects.
                if let Some(stored_on) = Subject::parse(&subject) {
                    metrics.stored(stored_on, appended.duplicate);
                }
                forwarded.stored += 1;
            }
            Err(error @ AppendError::TooLarge { .. }) => {
                forwarded.never = Some(format!("event {msg_id}: {error}"));
                break;
            }
            Err(error) => {
                if !error.is_transient() {
                    tracing::error!(%error, event_id = %msg_id, "JetStream refuses a spooled event; it stays first in the spool and is tried again (fix the cause named here)");
                }
                break;
            }
        }
    }
    forwarded
}
