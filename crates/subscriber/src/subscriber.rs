//! The consume loop: pull, decode, handle, ack; retry, dead-letter, stop cleanly.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::pull::{Config as PullConfig, Stream as MessageStream};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, AckKind};
use c2d_proto::events::{Event, STREAM};
use c2d_telemetry::{TRACEPARENT, continue_trace};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt as _, StreamExt as _};
use prost::Message as _;
use tracing::Instrument as _;

use crate::config::{StartAt, SubscriberConfig};
use crate::dead_letter::{self, Poison};
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
        "stream {STREAM} not found: start c2d-gateway once (it creates the stream) or check NATS_URL ({0})"
    )]
    NoStream(String),
    #[error("cannot create the durable consumer {durable}: {reason}")]
    Consumer { durable: String, reason: String },
    #[error("cannot pull messages for {durable}: {reason}")]
    Pull { durable: String, reason: String },
}

/// What a subscriber has done so far.
#[derive(Debug, Default)]
pub struct Stats {
    pub acked: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
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
}

/// A durable JetStream pull consumer of Chat2Desk events.
pub struct Subscriber {
    config: SubscriberConfig,
    jetstream: jetstream::Context,
    consumer: PullConsumer,
    stats: Arc<Stats>,
}

impl Subscriber {
    /// Opens (or creates) the durable consumer `config.durable` on the `CHAT2DESK` stream.
    pub async fn open(
        client: async_nats::Client,
        config: SubscriberConfig,
    ) -> Result<Subscriber, SubscribeError> {
        config.validate().map_err(SubscribeError::Config)?;
        let jetstream = jetstream::new(client);
        let stream = jetstream
            .get_stream(STREAM)
            .await
            .map_err(|error| SubscribeError::NoStream(error.to_string()))?;
        let consumer_error = |reason: String| SubscribeError::Consumer {
            durable: config.durable.clone(),
            reason,
        };
        let consumer = match stream.get_consumer::<PullConfig>(&config.durable).await {
            Ok(existing) => existing,
            Err(_) => stream
                .create_consumer(pull_config(&config))
                .await
                .map_err(|error| consumer_error(error.to_string()))?,
        };
        Ok(Subscriber {
            config,
            jetstream,
            consumer,
            stats: Arc::new(Stats::default()),
        })
    }

    /// Deletes the durable consumer `durable`, so the next [`Subscriber::open`] starts at its
    /// `StartAt` again: how a projection is dropped and rebuilt from the log.
    pub async fn reset(client: async_nats::Client, durable: &str) -> Result<(), SubscribeError> {
        let jetstream = jetstream::new(client);
        let stream = jetstream
            .get_stream(STREAM)
            .await
            .map_err(|error| SubscribeError::NoStream(error.to_string()))?;
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
    pub async fn run<H: Handler>(
        self,
        handler: H,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<Arc<Stats>, SubscribeError> {
        let handler = Arc::new(handler);
        let mut shutdown = std::pin::pin!(shutdown);
        let mut stopping = false;
        let mut messages: Option<MessageStream> = None;
        let mut in_flight = FuturesUnordered::new();
        tracing::info!(durable = %self.config.durable, filters = ?self.config.filters, "subscriber running");

        loop {
            if messages.is_none() && !stopping {
                messages = Some(self.pull().await?);
            }
            let room = in_flight.len() < self.config.concurrency;
            tokio::select! {
                biased;
                () = &mut shutdown, if !stopping => {
                    tracing::info!(durable = %self.config.durable, in_flight = in_flight.len(), "stopping: finishing the events in hand");
                    stopping = true;
                    messages = None;
                }
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                next = next_message(&mut messages), if room && !stopping => match next {
                    Some(Ok(message)) => in_flight.push(self.process(Arc::clone(&handler), message)),
                    Some(Err(error)) => {
                        tracing::warn!(durable = %self.config.durable, %error, "pulling messages failed; pulling again");
                        messages = None;
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    None => messages = None,
                },
                else => break,
            }
            if stopping && in_flight.is_empty() {
                break;
            }
        }
        drop(in_flight);
        tracing::info!(durable = %self.config.durable, acked = self.stats.acked(), "subscriber stopped");
        Ok(Arc::clone(&self.stats))
    }

    async fn pull(&self) -> Result<MessageStream, SubscribeError> {
        self.consumer
            .stream()
            .max_messages_per_batch(self.config.batch)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|error| SubscribeError::Pull {
                durable: self.config.durable.clone(),
                reason: error.to_string(),
            })
    }

    /// One message from decode to ack.
    async fn process<H: Handler>(&self, handler: Arc<H>, message: jetstream::Message) {
        let (stream_sequence, delivered, pending) = match message.info() {
            Ok(info) => (
                info.stream_sequence,
                info.delivered.max(1) as u64,
                info.pending,
            ),
            Err(error) => {
                tracing::warn!(%error, subject = %message.subject, "a message without JetStream metadata; ignored");
                return;
            }
        };
        let subject = message.subject.to_string();
        let event = match Event::decode(message.payload.clone()) {
            Ok(event) => event,
            Err(error) => {
                let reason = format!("not a chat2desk.events.v1.Event: {error}");
                self.dead_letter(&message, &subject, stream_sequence, delivered, None, reason)
                    .await;
                return;
            }
        };

        if delivered > self.config.max_deliveries {
            let reason = format!(
                "delivered {delivered} times without an answer (the handler hung or the process died)"
            );
            let named = Named {
                event_id: &event.event_id,
                tenant: &event.tenant,
            };
            self.dead_letter(
                &message,
                &subject,
                stream_sequence,
                delivered,
                Some(named),
                reason,
            )
            .await;
            return;
        }

        let span = tracing::info_span!(
            "consume",
            consumer = %self.config.durable,
            %subject,
            stream_sequence,
            delivered,
            event_id = %event.event_id,
            tenant = %event.tenant,
            hook_type = %event.hook_type,
        );
        if !span.is_disabled() {
            let traceparent = message
                .headers
                .as_ref()
                .and_then(|h| h.get(TRACEPARENT))
                .map(|v| v.as_str());
            continue_trace(&span, traceparent);
        }

        // What a dead letter needs to name the event, kept before the event moves to the handler.
        let (event_id, tenant) = (event.event_id.clone(), event.tenant.clone());
        let delivery = Delivery {
            event,
            stream_sequence,
            delivered,
            pending,
            subject,
            span: span.clone(),
        };
        let handled = self.keep_alive(
            &message,
            AssertUnwindSafe(handler.handle(delivery)).catch_unwind(),
        );
        let outcome = handled.instrument(span.clone()).await;
        let _entered = span.enter();
        let subject = message.subject.as_str();
        let reason = match outcome {
            Ok(Ok(())) => {
                if let Err(error) = message.ack().await {
                    tracing::warn!(%error, "ack failed; the event will be delivered again");
                } else {
                    self.stats.acked.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            Ok(Err(HandlerError::Transient(error))) if delivered < self.config.max_deliveries => {
                let delay = self.config.retry_delay(delivered);
                tracing::warn!(%error, ?delay, "handler failed; the event will be delivered again");
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                if let Err(error) = message.ack_with(AckKind::Nak(Some(delay))).await {
                    tracing::warn!(%error, "nak failed; the event comes back after ack_wait");
                }
                return;
            }
            Ok(Err(HandlerError::Transient(error))) => {
                format!("failed {delivered} deliveries, the last with: {error}")
            }
            Ok(Err(HandlerError::Permanent(error))) => format!("rejected by the handler: {error}"),
            Err(panic) => {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".to_owned());
                format!("the handler panicked: {text}")
            }
        };
        let named = Named {
            event_id: &event_id,
            tenant: &tenant,
        };
        self.dead_letter(
            &message,
            subject,
            stream_sequence,
            delivered,
            Some(named),
            reason,
        )
        .await;
    }

    /// Runs `work`, telling JetStream every half `ack_wait` that the event is still in hand.
    async fn keep_alive<T>(
        &self,
        message: &jetstream::Message,
        work: impl Future<Output = T>,
    ) -> T {
        let mut work = std::pin::pin!(work);
        // Most handlers finish without waiting: no timer for them.
        if let Some(done) = (&mut work).now_or_never() {
            return done;
        }
        let period = (self.config.ack_wait / 2).max(Duration::from_millis(100));
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                done = &mut work => return done,
                _ = ticks.tick() => {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
            }
        }
    }

    /// Stores the event on the dead-letter subject, then terminates it; when the dead letter
    /// cannot be stored, the event is kept for a later try instead.
    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        subject: &str,
        stream_sequence: u64,
        delivered: u64,
        event: Option<Named<'_>>,
        reason: String,
    ) {
        tracing::error!(durable = %self.config.durable, stream_sequence, %reason, "dead-lettering an event");
        let poison = Poison {
            durable: &self.config.durable,
            subject,
            stream_sequence,
            delivered,
            event_id: event.map_or("", |e| e.event_id),
            tenant: event.map_or("", |e| e.tenant),
            payload: message.payload.clone(),
            reason,
        };
        match dead_letter::store(&self.jetstream, poison).await {
            Ok(()) => {
                self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                if let Err(error) = message.ack_with(AckKind::Term).await {
                    tracing::warn!(%error, "could not terminate a dead-lettered event; it may be dead-lettered twice (stored once)");
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot store the dead letter (is the CHAT2DESK_DLQ stream there?); keeping the event for a later try");
                let _ = message
                    .ack_with(AckKind::Nak(Some(self.config.retry_delay(delivered))))
                    .await;
            }
        }
    }
}

/// The names of an event a dead letter carries.
#[derive(Clone, Copy)]
struct Named<'a> {
    event_id: &'a str,
    tenant: &'a str,
}

async fn next_message(
    messages: &mut Option<MessageStream>,
) -> Option<Result<jetstream::Message, async_nats::jetstream::consumer::pull::MessagesError>> {
    match messages {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

fn pull_config(config: &SubscriberConfig) -> PullConfig {
    let deliver_policy = match config.start_at {
        StartAt::Beginning => DeliverPolicy::All,
        StartAt::New => DeliverPolicy::New,
        StartAt::Sequence(start_sequence) => DeliverPolicy::ByStartSequence {
            start_sequence: start_sequence.max(1),
        },
        StartAt::Time(at) => DeliverPolicy::ByStartTime {
            start_time: time::OffsetDateTime::from(at),
        },
    };
    let (filter_subject, filter_subjects) = match config.filters.as_slice() {
        [one] => (one.clone(), Vec::new()),
        many => (String::new(), many.to_vec()),
    };
    PullConfig {
        durable_name: Some(config.durable.clone()),
        description: Some("c2d-subscriber".to_owned()),
        deliver_policy,
        ack_policy: AckPolicy::Explicit,
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
