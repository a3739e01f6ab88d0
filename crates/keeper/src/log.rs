//! Writing to the event log as the gateway does: each event on its subject
//! (`chat2desk.events.{tenant}.{hook_type}`), protobuf, with `Nats-Msg-Id` = event id and a
//! `traceparent`, done only once JetStream acknowledged it. The ids are deterministic, so a
//! write repeated (a retry, a backfill run again) is stored once.

use async_nats::jetstream::{self, message::PublishMessage};
use c2d_proto::events::{Event, event_subject};
use c2d_telemetry::TRACEPARENT;
use prost::Message as _;

/// A write the log did not take.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot store {event_id} on {subject}: {message}; is NATS up and the CHAT2DESK stream there? (c2d-gateway creates it)"
)]
pub struct AppendError {
    /// The event's id.
    pub event_id: String,
    /// Where it was to go.
    pub subject: String,
    /// What NATS said.
    pub message: String,
}

/// The keeper's handle on the event log.
#[derive(Clone)]
pub struct EventLog {
    jetstream: jetstream::Context,
}

impl EventLog {
    /// Writes through `jetstream`.
    pub fn new(jetstream: jetstream::Context) -> EventLog {
        EventLog { jetstream }
    }

    /// Stores `event`; true when JetStream held it already (the same id within its duplicate
    /// window).
    pub async fn append(&self, event: &Event) -> Result<bool, AppendError> {
        let subject = event_subject(&event.tenant, &event.hook_type);
        let failed = |message: String| AppendError {
            event_id: event.event_id.clone(),
            subject: subject.clone(),
            message,
        };
        let span =
            tracing::info_span!("append", tenant = %event.tenant, hook_type = %event.hook_type);
        let publish = PublishMessage::build()
            .payload(event.encode_to_vec().into())
            .message_id(&event.event_id)
            .header(TRACEPARENT, c2d_telemetry::traceparent(&span));
        let ack = self
            .jetstream
            .send_publish(subject.clone(), publish)
            .await
            .map_err(|e| failed(e.to_string()))?
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok(ack.duplicate)
    }
}
