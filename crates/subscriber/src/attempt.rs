//! One event from message to outcome: read it, run the handler in its trace, keep the event
//! while the handler works, and put poison aside on the dead-letter subject.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use c2d_proto::events::Event;
use c2d_telemetry::{TRACEPARENT, continue_trace};
use futures_util::FutureExt as _;
use prost::Message as _;
use tracing::Instrument as _;

use crate::dead_letter::{self, Poison};
use crate::delivery::{Delivery, HandlerError};
use crate::subscriber::{Handler, Subscriber};

/// An event with more than this many events after it not yet delivered to the consumer is
/// part of a replay: a rebuild, a new subscriber starting from the beginning, or a backlog
/// after an outage. Its `consume` span is at DEBUG level instead of INFO. A span costs more
/// than most handlers (with the default log setup, c2d-analytics rebuilt a quarter slower
/// with a span per event), and the trace of an event handled hours after its webhook
/// explains nothing about the webhook; `RUST_LOG=debug` brings those spans back.
pub const REPLAY_PENDING: u64 = 1_000;

impl Subscriber {
    /// Reads a message's event; a message that is no event, or an event delivered more often
    /// than allowed without an answer, is poison.
    pub(crate) fn open_message(&self, message: &jetstream::Message, meta: Meta) -> Opened {
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
    pub(crate) async fn attempt<H: Handler>(
        &self,
        handler: &H,
        message: &jetstream::Message,
        meta: &Meta,
        event: Event,
        delivered: u64,
    ) -> Attempt {
        let subject = message.subject.as_str();
        macro_rules! consume_span {
            ($level:expr) => {
                tracing::span!(
                    $level,
                    "consume",
                    consumer = %self.config.durable,
                    %subject,
                    stream_sequence = meta.stream_sequence,
                    delivered,
                    event_id = %event.event_id,
                    tenant = %event.tenant,
                    hook_type = %event.hook_type,
                )
            };
        }
        let span = if meta.pending > REPLAY_PENDING {
            consume_span!(tracing::Level::DEBUG)
        } else {
            consume_span!(tracing::Level::INFO)
        };
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
        let attempt = match self.keep_alive(message, handled).instrument(span).await {
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
        };
        // Done with, one way or the other (a refused event goes to the dead letters next).
        if !matches!(
            attempt,
            Attempt::Failed {
                transient: true,
                ..
            }
        ) {
            self.stats.done_with(meta.pending);
        }
        attempt
    }

    /// Runs `work`, telling JetStream every half `ack_wait` that the event is still in hand.
    pub(crate) async fn keep_alive<T>(
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

    /// Stores the event on the dead-letter subject; false when that failed, and the event
    /// must be kept for a later try.
    pub(crate) async fn store_dead_letter(
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
                self.stats.observe_pending(meta.pending);
                true
            }
            Err(error) => {
                tracing::error!(%error, "cannot store the dead letter (is the CHAT2DESK_DLQ stream there? c2d-gateway creates it); keeping the event for a later try");
                false
            }
        }
    }
}

/// Where an event stands in the stream and in its deliveries, read once per message from its
/// reply subject.
#[derive(Clone, Copy)]
pub(crate) struct Meta {
    pub(crate) stream_sequence: u64,
    /// The consumer's number of this delivery, to see a lost one.
    pub(crate) delivery: u64,
    pub(crate) delivered: u64,
    pub(crate) pending: u64,
}

impl Meta {
    /// `None` for a message without JetStream metadata, which no consumer should deliver; it
    /// is ignored, with a warning.
    pub(crate) fn of(message: &jetstream::Message) -> Option<Meta> {
        match message.info() {
            Ok(info) => Some(Meta {
                stream_sequence: info.stream_sequence,
                delivery: info.consumer_sequence,
                delivered: info.delivered.max(1) as u64,
                pending: info.pending,
            }),
            Err(error) => {
                tracing::warn!(%error, subject = %message.subject, "a message without JetStream metadata; ignored");
                None
            }
        }
    }
}

/// A message as read from the stream.
// Lives for one call on the stack; boxing the event would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Opened {
    Event(Meta, Event),
    /// To be dead-lettered: `names` are the event id and tenant, when it decoded.
    Poison {
        meta: Meta,
        names: Option<(String, String)>,
        reason: String,
    },
}

/// The result of one run of the handler.
pub(crate) enum Attempt {
    Handled,
    Failed { transient: bool, reason: String },
}
