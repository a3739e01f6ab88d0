//! Subscribe a service to Chat2Desk events: the five-minute way, and the way every consumer in
//! this workspace does it.
//!
//! ```no_run
//! use c2d_proto::events::Payload;
//! use c2d_subscriber::{Delivery, HandlerError, Subscriber, SubscriberConfig};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // NATS_USER and NATS_PASSWORD, when set, say who the service is to NATS.
//! let client = c2d_subscriber::connect("delivery-failures", "nats://127.0.0.1:4222").await?;
//! let config = SubscriberConfig::new("delivery-failures")
//!     .filters(["chat2desk.events.*.outbox_status"]);
//! let subscriber = Subscriber::open(client, config).await?;
//! subscriber
//!     .run(
//!         |delivery: Delivery| async move {
//!             if let Some(Payload::OutboxStatus(status)) = delivery.event.payload {
//!                 tracing::warn!(error = ?status.error, "message not delivered");
//!             }
//!             Ok::<(), HandlerError>(())
//!         },
//!         async { let _ = tokio::signal::ctrl_c().await; },
//!     )
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! What it guarantees:
//! - **At-least-once**: an event is acked only after the handler returned `Ok`. A crash, a
//!   restart or a lost connection redelivers what was not acked.
//! - **Retries with backoff**: a [`HandlerError::Transient`] has the event handled again
//!   after the configured delay (in place, or in its slot when handling concurrently); after
//!   `max_deliveries` it goes to the dead-letter subject.
//! - **No poison stalls the stream**: an event that cannot be decoded, that the handler
//!   rejects ([`HandlerError::Permanent`]) or panics on, is stored on
//!   `chat2desk.dlq.consumer.{durable}` with the reason, and the next events flow.
//! - **Backpressure**: at most `concurrency` events are handled at once (1 by default, in
//!   stream order), and JetStream sends no more than a few batches ahead.
//! - **Any start order**: [`Subscriber::open`] waits up to `stream_wait` (60 s by default)
//!   for the `CHAT2DESK` stream, which c2d-gateway creates on start, so a deployment whose
//!   consumers start first converges without restarts.
//! - **Clean stop**: when the shutdown future completes, the events in hand are finished and
//!   acked before `run` returns.
//! - **Replay**: [`StartAt`] chooses where a new durable starts (beginning, a sequence, a
//!   time, new events only); [`Subscriber::reset`] drops a durable to rebuild a projection;
//!   [`history::read`] reads a bounded stretch of the log without a durable (to look back).
//! - **One trace**: each event is handled in a `consume` span whose parent is the gateway's
//!   span for the webhook (the `traceparent` header). Live events get it at INFO level;
//!   events of a replay (more than [`REPLAY_PENDING`] behind) at DEBUG, so that a rebuild
//!   does not pay for a span per event.
//!
//! # The idempotency rule
//! Delivery is at least once, so every read model makes redelivery harmless, in one of two ways:
//! keep the last applied [`Delivery::stream_sequence`] in the same transaction as the change
//! and skip events at or below it (projections that apply events in order), or key each write
//! by `event.event_id` so a second write is a no-op (stores of independent facts). Either way,
//! dropping the state and replaying the stream from the beginning rebuilds it exactly.

mod ack_floor;
mod attempt;
pub mod bucket;
mod concurrent;
mod config;
pub mod connect;
pub mod dead_letter;
mod delivery;
pub mod history;
mod in_order;
pub mod log_position;
pub mod metrics;
pub mod ownership;
pub mod partition_readers;
mod quiet_ack;
pub mod replica_progress;
mod subscriber;

pub use attempt::REPLAY_PENDING;
pub use config::{
    DEFAULT_ACK_WAIT, DEFAULT_BATCH, DEFAULT_MAX_DELIVERIES, DEFAULT_STREAM_WAIT, Position,
    StartAt, SubscriberConfig,
};
pub use connect::{ConnectError, connect};
pub use delivery::{BoxError, Delivery, HandlerError};
pub use in_order::ACK_EVERY;
pub use subscriber::{Handler, Stats, SubscribeError, Subscriber, replicas_of};
