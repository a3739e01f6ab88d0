//! The subscriber: opening its consumer, pulling messages, and the run loop that hands them
//! to the in-order ([`crate::in_order`]) or concurrent ([`crate::concurrent`]) way of handling.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::pull::{Config as PullConfig, OrderedConfig};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use c2d_proto::events::{STREAM, STREAM_SUBJECTS};
use c2d_proto::partitions::PARTITIONED_STREAM;
use futures_util::{FutureExt as _, Stream, StreamExt as _};

use crate::config::{Position, StartAt, SubscriberConfig};
use crate::delivery::{Delivery, HandlerError};

/// Handles one event. Implemented for every `Fn(Delivery) -> impl Future<Output =
/// Result<(), HandlerError>>`, so a closure is a handler.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, delivery: Delivery) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

impl<F, Fut> Handler for F
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send,
{
    fn handle(&self, delivery: Delivery) -> impl Future<Output = Result<(), HandlerError>> + Send {
        self(delivery)
    }
}

/// Why a subscriber could not start or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("invalid subscriber configuration: {0}")]
    Config(String),
    #[error(
        "{0}: start c2d-gateway once (it creates the streams, and {PARTITIONED_STREAM} when GATEWAY_PARTITIONS is set) or check NATS_URL"
    )]
    NoStream(String),
    #[error("cannot create the durable consumer {durable}: {reason}")]
    Consumer { durable: String, reason: String },
    #[error("cannot pull messages for {durable}: {reason}")]
    Pull { durable: String, reason: String },
}

/// What a subscriber has done so far, and how far behind the log it is: what a service's
/// metrics and readiness read.
#[derive(Debug)]
pub struct Stats {
    pub(crate) acked: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    /// Events done with: handled, or refused and dead-lettered.
    handled: AtomicU64,
    /// Events of the log (within the filters) not handled yet, as JetStream last said.
    pending: AtomicU64,
    /// Set once every event that was in the log when the subscriber started has been handled.
    caught_up: tokio::sync::watch::Sender<bool>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            acked: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            caught_up: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl Stats {
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }
    pub fn retried(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered.load(Ordering::Relaxed)
    }

    /// Events done with since the start: handled, or refused and dead-lettered.
    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }

    /// Events after the last one handled that the subscriber has yet to handle: its lag, as
    /// JetStream reported it with the last event (or when the subscriber started reading).
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Whether the subscriber has once handled everything the log held: a projection that
    /// answers queries before this answers from the past.
    pub fn is_caught_up(&self) -> bool {
        *self.caught_up.borrow()
    }

    /// Completes once the subscriber has caught up with the log (see [`Stats::is_caught_up`]);
    /// what a service waits for before it reports SERVING in gRPC health.
    pub async fn caught_up(&self) {
        let mut caught_up = self.caught_up.subscribe();
        // The sender lives in `self`, so waiting cannot fail.
        let _ = caught_up.wait_for(|caught_up| *caught_up).await;
    }

    /// Counts one event done with, and records how many are left after it.
    pub(crate) fn done_with(&self, pending: u64) {
        self.handled.fetch_add(1, Ordering::Relaxed);
        self.observe_pending(pending);
    }

    /// Records how many events are left after the one just handled (or at the start).
    pub(crate) fn observe_pending(&self, pending: u64) {
        self.pending.store(pending, Ordering::Relaxed);
        if pending == 0 {
            self.caught_up
                .send_if_modified(|caught_up| !std::mem::replace(caught_up, true));
        }
    }
}

/// A durable JetStream pull consumer of Chat2Desk events.
pub struct Subscriber {
    pub(crate) config: SubscriberConfig,
    pub(crate) jetstream: jetstream::Context,
    source: Source,
    pub(crate) stats: Arc<Stats>,
    /// The stream sequence of the last event handled, to resume an ordered read after it.
    pub(crate) handled_through: AtomicU64,
}

/// Where messages come from.
enum Source {
    /// A durable consumer ([`Position::Server`]).
    Durable(PullConsumer),
    /// Ordered consumers, recreated after the last handled event ([`Position::Handler`]).
    Ordered(jetstream::stream::Stream),
}

/// Messages as they arrive, whatever the source.
pub(crate) type MessageStream =
    Pin<Box<dyn Stream<Item = Result<jetstream::Message, String>> + Send>>;

impl Subscriber {
    /// Opens (or creates) the durable consumer `config.durable` on the `CHAT2DESK` stream.
    pub async fn open(
        client: async_nats::Client,
        config: SubscriberConfig,
    ) -> Result<Subscriber, SubscribeError> {
        config.validate().map_err(SubscribeError::Config)?;
        let jetstream = jetstream::new(client);
        let stream = stream(&jetstream, &config).await?;
        let source = match config.position {
            Position::Handler => Source::Ordered(stream),
            Position::Server => Source::Durable(durable(&stream, &config).await?),
        };
        Ok(Subscriber {
            config,
            jetstream,
            source,
            stats: Arc::new(Stats::default()),
            handled_through: AtomicU64::new(0),
        })
    }

    /// Deletes the durable consumer `durable`, so the next [`Subscriber::open`] starts at its
    /// `StartAt` again: how a projection is dropped and rebuilt from the log.
    pub async fn reset(client: async_nats::Client, durable: &str) -> Result<(), SubscribeError> {
        let jetstream = jetstream::new(client);
        let stream = jetstream.get_stream(STREAM).await.map_err(|error| {
            SubscribeError::NoStream(format!("stream {STREAM} not found ({error})"))
        })?;
        if stream.consumer_info(durable).await.is_ok() {
            stream
                .delete_consumer(durable)
                .await
                .map_err(|error| SubscribeError::Consumer {
                    durable: durable.to_owned(),
                    reason: error.to_string(),
                })?;
        }
        Ok(())
    }

    /// Counters of acks, retries and dead letters, shared with the running loop.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Hands every event to `handler` until `shutdown` completes; then finishes the events in
    /// hand, acks them, and returns.
    ///
    /// With `concurrency` 1 the events are handled strictly in stream order: a transient
    /// failure is retried in place, after the backoff delay, before the next event, and acks are
    /// cumulative (one per [`ACK_EVERY`] events or when the stream goes quiet). With more,
    /// events are handled concurrently: a failed one is retried in its slot while the others
    /// go on, and acks are cumulative up to the oldest event still in hand (see
    /// [`crate::concurrent`] for consumers made by earlier versions).
    pub async fn run<H: Handler>(
        self,
        handler: H,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<Arc<Stats>, SubscribeError> {
        let mut shutdown = std::pin::pin!(shutdown.fuse());
        if let Some(left) = self.left_in_hand() {
            // A cumulative ack of a new event would cover them: JetStream must deliver them
            // again first, which it does once their ack_wait is over.
            tracing::warn!(subscriber = %self.config.durable, left, ack_wait = ?self.config.ack_wait,
                "events were left unacked by an instance that stopped without finishing them; waiting ack_wait for JetStream to deliver them again before anything new");
            tokio::select! {
                () = &mut shutdown => return Ok(Arc::clone(&self.stats)),
                () = tokio::time::sleep(self.config.ack_wait) => {}
            }
        }
        tracing::info!(
            subscriber = %self.config.durable,
            filters = ?self.config.filters,
            in_order = self.in_order(),
            "subscriber running"
        );
        if self.in_order() {
            self.run_in_order(&handler, &mut shutdown).await?;
        } else {
            self.run_concurrently(Arc::new(handler), &mut shutdown)
                .await?;
        }
        // The last acks are on their way: they reach the server before `run` returns, so
        // that a process exiting next does not leave its handled events to be delivered again.
        if let Err(error) = self.jetstream.client().flush().await {
            tracing::warn!(%error, "the last acks may not have reached NATS; those events will be delivered again");
        }
        tracing::info!(subscriber = %self.config.durable, acked = self.stats.acked(), "subscriber stopped");
        Ok(Arc::clone(&self.stats))
    }

    /// A continuous pull: JetStream keeps up to `batch` messages on the way.
    pub(crate) async fn pull(&self) -> Result<MessageStream, SubscribeError> {
        let failed = |error: &dyn std::fmt::Display| SubscribeError::Pull {
            durable: self.config.durable.clone(),
            reason: error.to_string(),
        };
        match &self.source {
            Source::Durable(consumer) => {
                let info = consumer.get_info().await.map_err(|error| failed(&error))?;
                self.stats
                    .observe_pending(info.num_pending + info.num_ack_pending as u64);
                let messages = consumer
                    .stream()
                    .max_messages_per_batch(self.config.batch)
                    .heartbeat(Duration::from_secs(5))
                    .expires(Duration::from_secs(30))
                    .messages()
                    .await
                    .map_err(|error| failed(&error))?;
                Ok(Box::pin(
                    messages.map(|m| m.map_err(|error| error.to_string())),
                ))
            }
            Source::Ordered(stream) => {
                let after = self.handled_through.load(Ordering::Relaxed);
                let start_at = if after == 0 {
                    self.config.start_at
                } else {
                    StartAt::Sequence(after + 1)
                };
                let (filter_subject, filter_subjects) = filters(&self.config.filters);
                let consumer = stream
                    .create_consumer(OrderedConfig {
                        deliver_policy: deliver_policy(start_at),
                        filter_subject,
                        filter_subjects,
                        ..Default::default()
                    })
                    .await
                    .map_err(|error| failed(&error))?;
                self.stats
                    .observe_pending(consumer.cached_info().num_pending);
                let messages = consumer.messages().await.map_err(|error| failed(&error))?;
                Ok(Box::pin(
                    messages.map(|m| m.map_err(|error| error.to_string())),
                ))
            }
        }
    }

    /// Whether this subscriber acks (a durable consumer) or keeps no server-side position.
    pub(crate) fn acks(&self) -> bool {
        matches!(self.source, Source::Durable(_))
    }

    /// Whether one ack confirms every event before it (`AckPolicy::All`): every consumer this
    /// SDK creates; a concurrent consumer made by an earlier version acks each event alone.
    pub(crate) fn acks_cumulatively(&self) -> bool {
        match &self.source {
            Source::Durable(consumer) => consumer.cached_info().config.ack_policy == AckPolicy::All,
            Source::Ordered(_) => false,
        }
    }

    /// How many events an earlier instance had in hand, unacked, when this consumer was opened
    /// (it stopped without finishing them: killed, or cut off from NATS).
    fn left_in_hand(&self) -> Option<usize> {
        match &self.source {
            Source::Durable(consumer) if self.acks_cumulatively() => {
                let left = consumer.cached_info().num_ack_pending;
                (left > 0).then_some(left)
            }
            _ => None,
        }
    }

    fn in_order(&self) -> bool {
        self.config.concurrency == 1
    }

    pub(crate) async fn pull_failed(&self, error: String, messages: &mut Option<MessageStream>) {
        tracing::warn!(subscriber = %self.config.durable, %error, "pulling messages failed; pulling again");
        *messages = None;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The `CHAT2DESK` stream, waited for up to `config.stream_wait` (see there).
/// How many NATS servers keep `stream`, 0 when it does not exist (yet): the replicas a
/// service gives the KV buckets it creates beside the log (leases, calendars), so that they
/// survive what the log survives.
pub async fn replicas_of(jetstream: &jetstream::Context, stream: &str) -> usize {
    match jetstream.get_stream(stream).await {
        Ok(mut stream) => stream
            .info()
            .await
            .map_or(0, |info| info.config.num_replicas),
        Err(_) => 0,
    }
}

async fn stream(
    jetstream: &jetstream::Context,
    config: &SubscriberConfig,
) -> Result<jetstream::stream::Stream, SubscribeError> {
    let deadline = tokio::time::Instant::now() + config.stream_wait;
    let mut waiting = false;
    loop {
        match jetstream.get_stream(&config.stream).await {
            Ok(stream) => {
                if waiting {
                    tracing::info!(subscriber = %config.durable, stream = %config.stream, "the stream is there");
                }
                return Ok(stream);
            }
            Err(error) if tokio::time::Instant::now() < deadline => {
                if !waiting {
                    tracing::warn!(subscriber = %config.durable, %error, wait = ?config.stream_wait,
                        stream = %config.stream, "the stream is not there yet; waiting for c2d-gateway to create it");
                    waiting = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => {
                return Err(SubscribeError::NoStream(format!(
                    "stream {} not found ({error})",
                    config.stream
                )));
            }
        }
    }
}

pub(crate) async fn next_message(
    messages: &mut Option<MessageStream>,
) -> Option<Result<jetstream::Message, String>> {
    match messages {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// Opens the durable consumer, or creates it at the configured start.
async fn durable(
    stream: &jetstream::stream::Stream,
    config: &SubscriberConfig,
) -> Result<PullConsumer, SubscribeError> {
    let consumer_error = |reason: String| SubscribeError::Consumer {
        durable: config.durable.clone(),
        reason,
    };
    match stream.get_consumer::<PullConfig>(&config.durable).await {
        Ok(existing) => {
            let policy = existing.cached_info().config.ack_policy;
            if config.concurrency == 1 && policy != AckPolicy::All {
                // Only a concurrent subscriber of an earlier version made it so.
                return Err(consumer_error(format!(
                    "it exists with ack policy {policy:?}, made by an earlier version for \
                     concurrency above 1; open it with that concurrency, or reset it \
                     (Subscriber::reset) to read it in order"
                )));
            }
            if policy != AckPolicy::All {
                tracing::info!(durable = %config.durable, ?policy, "a consumer made by an earlier version: each event is acked alone");
            }
            Ok(existing)
        }
        Err(_) => stream
            .create_consumer(pull_config(config))
            .await
            .map_err(|error| consumer_error(error.to_string())),
    }
}

pub(crate) fn deliver_policy(start_at: StartAt) -> DeliverPolicy {
    match start_at {
        StartAt::Beginning => DeliverPolicy::All,
        StartAt::New => DeliverPolicy::New,
        StartAt::Sequence(start_sequence) => DeliverPolicy::ByStartSequence {
            start_sequence: start_sequence.max(1),
        },
        StartAt::Time(at) => DeliverPolicy::ByStartTime {
            start_time: time::OffsetDateTime::from(at),
        },
    }
}

/// The consumer's filter: one subject, or several.
pub(crate) fn filters(filters: &[String]) -> (String, Vec<String>) {
    match filters {
        // The whole stream: no filter, so the server matches nothing per message.
        [all] if all == STREAM_SUBJECTS => (String::new(), Vec::new()),
        [one] => (one.clone(), Vec::new()),
        many => (String::new(), many.to_vec()),
    }
}

fn pull_config(config: &SubscriberConfig) -> PullConfig {
    let (filter_subject, filter_subjects) = filters(&config.filters);
    PullConfig {
        durable_name: Some(config.durable.clone()),
        description: Some("c2d-subscriber".to_owned()),
        deliver_policy: deliver_policy(config.start_at),
        // One ack confirms every event before it, in order or not (see crate::ack_floor).
        ack_policy: AckPolicy::All,
        ack_wait: config.ack_wait,
        // The subscriber counts deliveries itself and dead-letters at its own limit, so the
        // server never silently gives up on an event.
        max_deliver: -1,
        filter_subject,
        filter_subjects,
        max_ack_pending: (config.batch * 4).max(config.concurrency * 2) as i64,
        ..Default::default()
    }
}
