//! Events a handler could not process, kept on `chat2desk.dlq.consumer.{durable}`.
//!
//! A dead letter is stored in the `CHAT2DESK_DLQ` stream before the original is terminated, so
//! nothing is lost: an operator reads the reason, fixes the cause, and republishes the raw
//! event. The message id is `{durable}-{stream sequence}`, so a dead letter written twice (a
//! crash between the two steps) is stored once.

use std::time::SystemTime;

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self};
use bytes::Bytes;
use c2d_proto::events::{DeadLetter, consumer_dlq_subject};
use prost::Message as _;

/// Headers that tell where a dead letter came from.
pub const HEADER_CONSUMER: &str = "C2d-Consumer";
pub const HEADER_STREAM_SEQUENCE: &str = "C2d-Stream-Sequence";
pub const HEADER_SUBJECT: &str = "C2d-Subject";
pub const HEADER_DELIVERIES: &str = "C2d-Deliveries";

/// The content type recorded for dead letters that hold an encoded event.
pub const EVENT_CONTENT_TYPE: &str = "application/protobuf; proto=chat2desk.events.v1.Event";

/// One event to put aside, and why.
pub(crate) struct Poison<'a> {
    pub durable: &'a str,
    pub subject: &'a str,
    pub stream_sequence: u64,
    pub delivered: u64,
    pub event_id: &'a str,
    pub tenant: &'a str,
    pub payload: Bytes,
    pub reason: String,
}

/// Stores the dead letter and waits for JetStream's acknowledgement.
pub(crate) async fn store(
    jetstream: &jetstream::Context,
    poison: Poison<'_>,
) -> Result<(), async_nats::Error> {
    let letter = DeadLetter {
        event_id: poison.event_id.to_owned(),
        tenant: poison.tenant.to_owned(),
        reason: poison.reason,
        raw: poison.payload,
        content_type: EVENT_CONTENT_TYPE.to_owned(),
        received_at: Some(prost_types::Timestamp::from(SystemTime::now())),
    };
    let publish = PublishMessage::build()
        .payload(letter.encode_to_vec().into())
        .message_id(format!("{}-{}", poison.durable, poison.stream_sequence))
        .header(HEADER_CONSUMER, poison.durable)
        .header(HEADER_STREAM_SEQUENCE, poison.stream_sequence.to_string())
        .header(HEADER_SUBJECT, poison.subject)
        .header(HEADER_DELIVERIES, poison.delivered.to_string());
    jetstream
        .send_publish(consumer_dlq_subject(poison.durable), publish)
        .await?
        .await?;
    Ok(())
}
