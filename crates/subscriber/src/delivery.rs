//! What a handler receives, and what it answers.

use std::error::Error;

use c2d_proto::events::Event;

/// One event, as delivered to a handler.
#[derive(Debug)]
pub struct Delivery {
    pub event: Event,
    /// The event's position in the `CHAT2DESK` stream. Read models keep the last one they
    /// applied, in the same transaction as their change, and skip what they have seen: that
    /// makes at-least-once delivery an exactly-once effect.
    pub stream_sequence: u64,
    /// 1 on the first delivery, more on redeliveries.
    pub delivered: u64,
    /// Events after this one that the consumer has not received yet: 0 means caught up.
    pub pending: u64,
    /// `chat2desk.events.{tenant}.{hook_type}`.
    pub subject: String,
    /// The span this event is handled in, a child of the gateway's span for the webhook. Pass
    /// it on to gRPC calls with [`c2d_telemetry::traceparent`].
    pub span: tracing::Span,
}

/// The error type handlers return.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// Why a handler did not process an event, and so what happens to it.
#[derive(Debug)]
pub enum HandlerError {
    /// Worth another try later (a database or a service unreachable): the event is delivered
    /// again after the backoff delay, and goes to the dead-letter subject after
    /// `max_deliveries`.
    Transient(BoxError),
    /// No retry can help (the event contradicts the handler's rules): it goes to the
    /// dead-letter subject at once, and the events after it keep flowing.
    Permanent(BoxError),
}

impl HandlerError {
    pub fn transient(error: impl Into<BoxError>) -> Self {
        HandlerError::Transient(error.into())
    }

    pub fn permanent(error: impl Into<BoxError>) -> Self {
        HandlerError::Permanent(error.into())
    }
}

/// `?` on any error makes it transient: retrying is the safe default.
impl<E: Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        HandlerError::Transient(Box::new(error))
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandlerError::Transient(error) => write!(f, "transient: {error}"),
            HandlerError::Permanent(error) => write!(f, "permanent: {error}"),
        }
    }
}
