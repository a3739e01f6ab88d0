//! The consume loop: pull, decode, handle, ack; retry, dead-letter, stop cleanly.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::pull::{Config as PullConfig, OrderedConfig};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, AckKind};
use c2d_proto::events::{Event, STREAM};
use c2d_telemetry::{TRACEPARENT, continue_trace};
use futures_util::future::FusedFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt as _, Stream, StreamExt as _};
use prost::Message as _;
use tracing::Instrument as _;

use crate::config::{Position, StartAt, SubscriberConfig};
use crate::dead_letter::{self, Poison};
use crate::delivery::{Delivery, HandlerError};

/// In order, events are acked cumulatively: one ack for this many events...
pub const ACK_EVERY: u64 = 64;
/// ...or for the events handled so far once the stream has been quiet this long.
const QUIET_ACK_DELAY: Duration = Duration::from_millis(20);

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
    source: Source,
    stats: Arc<Stats>,
    /// The stream sequence of the last event handled, to resume an ordered read after it.
    handled_through: AtomicU64,
}

/// Where messages come from.
enum Source {
    /// A durable consumer ([`Position::Server`]).
    Durable(PullConsumer),
    /// Ordered consumers, recreated after the last handled event ([`Position::Handler`]).
    Ordered(jetstream::stream::Stream),
}

/// Messages as they arrive, whatever the source.
type MessageStream = Pin<Box<dyn Stream<Item = Result<jetstream::Message, String>> + Send>>;

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
    ///
    /// With `concurrency` 1 the events are handled strictly in stream order: a transient
    /// failure is retried in place, after the backoff delay, before the next event, and acks are
    /// cumulative (one per [`ACK_EVERY`] events or when the stream goes quiet). With more,
    /// events are handled concurrently, acked one by one, and a failed one is redelivered
    /// later by JetStream while the others go on.
    pub async fn run<H: Handler>(
        self,
        handler: H,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<Arc<Stats>, SubscribeError> {
        let mut shutdown = std::pin::pin!(shutdown.fuse());
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
        tracing::info!(subscriber = %self.config.durable, acked = self.stats.acked(), "subscriber stopped");
        Ok(Arc::clone(&self.stats))
    }

    /// A continuous pull: JetStream keeps up to `batch` messages on the way.
    async fn pull(&self) -> Result<MessageStream, SubscribeError> {
        let failed = |error: &dyn std::fmt::Display| SubscribeError::Pull {
            durable: self.config.durable.clone(),
            reason: error.to_string(),
        };
        match &self.source {
            Source::Durable(consumer) => {
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
                let (filter_subject, filter_subjects) = filters(&self.config);
                let consumer = stream
                    .create_consumer(OrderedConfig {
                        deliver_policy: deliver_policy(start_at),
                        filter_subject,
                        filter_subjects,
                        ..Default::default()
                    })
                    .await
                    .map_err(|error| failed(&error))?;
                let messages = consumer.messages().await.map_err(|error| failed(&error))?;
                Ok(Box::pin(
                    messages.map(|m| m.map_err(|error| error.to_string())),
                ))
            }
        }
    }

    /// Whether this subscriber acks (a durable consumer) or keeps no server-side position.
    fn acks(&self) -> bool {
        matches!(self.source, Source::Durable(_))
    }

    fn in_order(&self) -> bool {
        self.config.concurrency == 1
    }

    async fn run_in_order<H: Handler, S: FusedFuture<Output = ()>>(
        &self,
        handler: &H,
        shutdown: &mut Pin<&mut S>,
    ) -> Result<(), SubscribeError> {
        let mut messages: Option<MessageStream> = None;
        // The last handled event not acked yet, and how many are handled since the last ack.
        let mut unacked: Option<jetstream::Message> = None;
        let mut handled_since_ack = 0;
        loop {
            if messages.is_none() {
                messages = Some(self.pull().await?);
            }
            let next = tokio::select! {
                biased;
                () = &mut *shutdown => break,
                () = tokio::time::sleep(QUIET_ACK_DELAY), if unacked.is_some() => {
                    self.ack_through(unacked.take(), &mut handled_since_ack).await;
                    continue;
                }
                next = next_message(&mut messages) => next,
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    self.pull_failed(error, &mut messages).await;
                    continue;
                }
                None => {
                    messages = None;
                    continue;
                }
            };
            match self.handle_in_order(handler, &message, shutdown).await {
                Handled::Done => handled_since_ack += 1,
                Handled::DeadLettered | Handled::Skipped => {}
                Handled::Interrupted => break,
            }
            if let Ok(info) = message.info() {
                self.handled_through
                    .store(info.stream_sequence, Ordering::Relaxed);
            }
            if !self.acks() {
                self.stats
                    .acked
                    .fetch_add(std::mem::take(&mut handled_since_ack), Ordering::Relaxed);
                continue;
            }
            // Acked with the next cumulative ack, dead-lettered or not.
            unacked = Some(message);
            if handled_since_ack >= ACK_EVERY {
                self.ack_through(unacked.take(), &mut handled_since_ack)
                    .await;
            }
        }
        self.ack_through(unacked.take(), &mut handled_since_ack)
            .await;
        Ok(())
    }

    /// One event, retried in place until it is handled, dead-lettered, or the subscriber stops.
    async fn handle_in_order<H: Handler, S: FusedFuture<Output = ()>>(
        &self,
        handler: &H,
        message: &jetstream::Message,
        shutdown: &mut Pin<&mut S>,
    ) -> Handled {
        let (meta, mut event) = match self.open_message(message) {
            Opened::Event(meta, event) => (meta, event),
            Opened::Poison {
                meta,
                names,
                reason,
            } => {
                let delivered = meta.delivered;
                return self
                    .dead_letter_in_order(message, &meta, delivered, names, reason, shutdown)
                    .await;
            }
            Opened::Ignored => return Handled::Skipped,
        };
        let mut delivered = meta.delivered;
        loop {
            let names = (event.event_id.clone(), event.tenant.clone());
            let reason = match self
                .attempt(handler, message, &meta, event, delivered)
                .await
            {
                Attempt::Handled => return Handled::Done,
                Attempt::Failed {
                    transient: true,
                    reason,
                } if delivered < self.config.max_deliveries => {
                    let delay = self.config.retry_delay(delivered);
                    tracing::warn!(stream_sequence = meta.stream_sequence, %reason, ?delay, "handler failed; retrying in place");
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    tokio::select! {
                        () = &mut *shutdown => return Handled::Interrupted,
                        () = tokio::time::sleep(delay) => {}
                    }
                    delivered += 1;
                    // The same bytes decoded the first time.
                    event = Event::decode(message.payload.clone()).unwrap_or_default();
                    continue;
                }
                Attempt::Failed { reason, .. } => reason,
            };
            return self
                .dead_letter_in_order(message, &meta, delivered, Some(names), reason, shutdown)
                .await;
        }
    }

    /// In order, nothing after a poison event is acked before its dead letter is stored: the
    /// store is retried until it succeeds or the subscriber stops.
    async fn dead_letter_in_order<S: FusedFuture<Output = ()>>(
        &self,
        message: &jetstream::Message,
        meta: &Meta,
        delivered: u64,
        names: Option<(String, String)>,
        reason: String,
        shutdown: &mut Pin<&mut S>,
    ) -> Handled {
        loop {
            if self
                .store_dead_letter(message, meta, delivered, names.as_ref(), reason.clone())
                .await
            {
                return Handled::DeadLettered;
            }
            tokio::select! {
                () = &mut *shutdown => return Handled::Interrupted,
                () = tokio::time::sleep(self.config.retry_delay(delivered)) => {}
            }
        }
    }

    async fn run_concurrently<H: Handler, S: FusedFuture<Output = ()>>(
        &self,
        handler: Arc<H>,
        shutdown: &mut Pin<&mut S>,
    ) -> Result<(), SubscribeError> {
        let mut messages: Option<MessageStream> = None;
        let mut in_flight = FuturesUnordered::new();
        loop {
            let stopping = shutdown.is_terminated();
            if stopping && in_flight.is_empty() {
                break;
            }
            if messages.is_none() && !stopping {
                messages = Some(self.pull().await?);
            }
            let room = in_flight.len() < self.config.concurrency;
            tokio::select! {
                biased;
                () = &mut *shutdown, if !stopping => {
                    tracing::info!(subscriber = %self.config.durable, in_flight = in_flight.len(), "stopping: finishing the events in hand");
                    messages = None;
                }
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                next = next_message(&mut messages), if room && !stopping => match next {
                    Some(Ok(message)) => in_flight.push(self.handle_alone(Arc::clone(&handler), message)),
                    Some(Err(error)) => self.pull_failed(error, &mut messages).await,
                    None => messages = None,
                },
            }
        }
        Ok(())
    }

    /// One event of a concurrent subscriber: acked, nak'ed for redelivery, or dead-lettered.
    async fn handle_alone<H: Handler>(&self, handler: Arc<H>, message: jetstream::Message) {
        let (meta, names, reason) = match self.open_message(&message) {
            Opened::Event(meta, event) => {
                let names = (event.event_id.clone(), event.tenant.clone());
                match self
                    .attempt(&*handler, &message, &meta, event, meta.delivered)
                    .await
                {
                    Attempt::Handled => {
                        self.ack(&message).await;
                        return;
                    }
                    Attempt::Failed {
                        transient: true,
                        reason,
                    } if meta.delivered < self.config.max_deliveries => {
                        let delay = self.config.retry_delay(meta.delivered);
                        tracing::warn!(stream_sequence = meta.stream_sequence, %reason, ?delay, "handler failed; the event will be delivered again");
                        self.stats.retried.fetch_add(1, Ordering::Relaxed);
                        if let Err(error) = message.ack_with(AckKind::Nak(Some(delay))).await {
                            tracing::warn!(%error, "nak failed; the event comes back after ack_wait");
                        }
                        return;
                    }
                    Attempt::Failed { reason, .. } => (meta, Some(names), reason),
                }
            }
            Opened::Poison {
                meta,
                names,
                reason,
            } => (meta, names, reason),
            Opened::Ignored => return,
        };
        if self
            .store_dead_letter(&message, &meta, meta.delivered, names.as_ref(), reason)
            .await
        {
            if let Err(error) = message.ack_with(AckKind::Term).await {
                tracing::warn!(%error, "could not terminate a dead-lettered event; it may be dead-lettered twice (stored once)");
            }
        } else {
            let _ = message
                .ack_with(AckKind::Nak(Some(self.config.retry_delay(meta.delivered))))
                .await;
        }
    }

    /// Reads a message's metadata and event; a message that is no event, or an event
    /// delivered more often than allowed without an answer, is poison.
    fn open_message(&self, message: &jetstream::Message) -> Opened {
        let meta = match message.info() {
            Ok(info) => Meta {
                stream_sequence: info.stream_sequence,
                delivered: info.delivered.max(1) as u64,
                pending: info.pending,
            },
            Err(error) => {
                tracing::warn!(%error, subject = %message.subject, "a message without JetStream metadata; ignored");
                return Opened::Ignored;
            }
        };
        let event = match Event::decode(message.payload.clone()) {
            Ok(event) => event,
            Err(error) => {
                let reason = format!("not a chat2desk.events.v1.Event: {error}");
                return Opened::Poison {
                    meta,
                    names: None,
                    reason,
                };
            }
        };
        if meta.delivered > self.config.max_deliveries {
            let reason = format!(
                "delivered {} times without an answer (the handler hung or the process died)",
                meta.delivered
            );
            return Opened::Poison {
                meta,
                names: Some((event.event_id, event.tenant)),
                reason,
            };
        }
        Opened::Event(meta, event)
    }

    /// Runs the handler once on `event`, in a `consume` span that continues the trace of the
    /// webhook, catching panics.
    async fn attempt<H: Handler>(
        &self,
        handler: &H,
        message: &jetstream::Message,
        meta: &Meta,
        event: Event,
        delivered: u64,
    ) -> Attempt {
        let subject = message.subject.as_str();
        let span = tracing::info_span!(
            "consume",
            consumer = %self.config.durable,
            %subject,
            stream_sequence = meta.stream_sequence,
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
        let delivery = Delivery {
            event,
            stream_sequence: meta.stream_sequence,
            delivered,
            pending: meta.pending,
            subject: subject.to_owned(),
            span: span.clone(),
        };
        let handled = AssertUnwindSafe(handler.handle(delivery)).catch_unwind();
        match self.keep_alive(message, handled).instrument(span).await {
            Ok(Ok(())) => Attempt::Handled,
            Ok(Err(HandlerError::Transient(error))) => Attempt::Failed {
                transient: true,
                reason: format!("failed {delivered} deliveries, the last with: {error}"),
            },
            Ok(Err(HandlerError::Permanent(error))) => Attempt::Failed {
                transient: false,
                reason: format!("rejected by the handler: {error}"),
            },
            Err(panic) => {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".to_owned());
                Attempt::Failed {
                    transient: false,
                    reason: format!("the handler panicked: {text}"),
                }
            }
        }
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

    async fn ack(&self, message: &jetstream::Message) {
        match message.ack().await {
            Ok(()) => {
                self.stats.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => tracing::warn!(%error, "ack failed; the event will be delivered again"),
        }
    }

    /// Acks `last` and, the consumer acking cumulatively, every event before it.
    async fn ack_through(&self, last: Option<jetstream::Message>, handled: &mut u64) {
        let Some(last) = last else { return };
        match last.ack().await {
            Ok(()) => {
                self.stats.acked.fetch_add(*handled, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(%error, "ack failed; these events will be delivered again")
            }
        }
        *handled = 0;
    }

    /// Stores the event on the dead-letter subject; false when that failed, and the event
    /// must be kept for a later try.
    async fn store_dead_letter(
        &self,
        message: &jetstream::Message,
        meta: &Meta,
        delivered: u64,
        names: Option<&(String, String)>,
        reason: String,
    ) -> bool {
        tracing::error!(subscriber = %self.config.durable, stream_sequence = meta.stream_sequence, %reason, "dead-lettering an event");
        let poison = Poison {
            durable: &self.config.durable,
            subject: message.subject.as_str(),
            stream_sequence: meta.stream_sequence,
            delivered,
            event_id: names.map_or("", |(event_id, _)| event_id.as_str()),
            tenant: names.map_or("", |(_, tenant)| tenant.as_str()),
            payload: message.payload.clone(),
            reason,
        };
        match dead_letter::store(&self.jetstream, poison).await {
            Ok(()) => {
                self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(error) => {
                tracing::error!(%error, "cannot store the dead letter (is the CHAT2DESK_DLQ stream there? c2d-gateway creates it); keeping the event for a later try");
                false
            }
        }
    }

    async fn pull_failed(&self, error: String, messages: &mut Option<MessageStream>) {
        tracing::warn!(subscriber = %self.config.durable, %error, "pulling messages failed; pulling again");
        *messages = None;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Where an event stands in the stream and in its deliveries.
struct Meta {
    stream_sequence: u64,
    delivered: u64,
    pending: u64,
}

/// A message as read from the stream.
// Lives for one call on the stack; boxing the event would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
enum Opened {
    Event(Meta, Event),
    /// To be dead-lettered: `names` are the event id and tenant, when it decoded.
    Poison {
        meta: Meta,
        names: Option<(String, String)>,
        reason: String,
    },
    Ignored,
}

/// The result of one run of the handler.
enum Attempt {
    Handled,
    Failed { transient: bool, reason: String },
}

/// The result of handling one event in order.
#[derive(PartialEq, Eq)]
enum Handled {
    Done,
    /// Stored on the dead-letter subject; acked with the events after it.
    DeadLettered,
    /// Not an event delivery at all; acked with the events after it.
    Skipped,
    /// The subscriber was stopped while the event waited for a retry: it is not acked.
    Interrupted,
}

async fn next_message(
    messages: &mut Option<MessageStream>,
) -> Option<Result<jetstream::Message, String>> {
    match messages {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

fn ack_policy(config: &SubscriberConfig) -> AckPolicy {
    if config.concurrency == 1 {
        AckPolicy::All
    } else {
        AckPolicy::Explicit
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
            if policy != ack_policy(config) {
                return Err(consumer_error(format!(
                    "it exists with ack policy {policy:?}, made for concurrency {}; reset it \
                     (Subscriber::reset) or open it with the concurrency it was created with",
                    if policy == AckPolicy::All {
                        "1"
                    } else {
                        "above 1"
                    }
                )));
            }
            Ok(existing)
        }
        Err(_) => stream
            .create_consumer(pull_config(config))
            .await
            .map_err(|error| consumer_error(error.to_string())),
    }
}

fn deliver_policy(start_at: StartAt) -> DeliverPolicy {
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
fn filters(config: &SubscriberConfig) -> (String, Vec<String>) {
    match config.filters.as_slice() {
        [one] => (one.clone(), Vec::new()),
        many => (String::new(), many.to_vec()),
    }
}

fn pull_config(config: &SubscriberConfig) -> PullConfig {
    let (filter_subject, filter_subjects) = filters(config);
    PullConfig {
        durable_name: Some(config.durable.clone()),
        description: Some("c2d-subscriber".to_owned()),
        deliver_policy: deliver_policy(config.start_at),
        // In order, one ack confirms every event before it; concurrently, each its own.
        ack_policy: ack_policy(config),
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
