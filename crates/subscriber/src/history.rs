//! Reading the event log without being one of its consumers: a bounded read from a start to
//! what is there now ([`read`], [`read_between`]), for tools that look back (trying an alert
//! rule on the last hour, replaying a day to a new service, a search), and a tail that follows
//! from a start on ([`follow`]), for a screen that shows events as they come. Neither keeps a
//! position on the server (an ordered consumer that vanishes after use), acknowledges, or
//! dead-letters: a message that is not an event is skipped, as a reader cannot repair it.

use async_nats::jetstream::{self, consumer::pull::OrderedConfig};
use c2d_proto::events::{STREAM, v1::Event};
use futures_util::StreamExt as _;
use prost::Message as _;

use crate::StartAt;
use crate::subscriber::{SubscribeError, deliver_policy, filters};

/// One stored event and where it is in the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub stream_sequence: u64,
    pub event: Event,
}

/// What [`read`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// In stream order.
    pub events: Vec<StoredEvent>,
    /// Messages that were not events (they are skipped, not guessed at).
    pub undecodable: u64,
    /// Whether `limit` stopped the read before the end of the log.
    pub truncated: bool,
}

/// The events from `start` on the subjects `filter` matches (empty: every event), as they are
/// stored, for as long as the stream is polled; messages that are not events are skipped, and
/// an error the ordered consumer cannot get over ends it.
pub async fn follow(
    client: async_nats::Client,
    start: StartAt,
    filter: Option<String>,
) -> Result<impl futures_util::Stream<Item = StoredEvent> + Send + 'static, SubscribeError> {
    let messages = ordered_consumer(client, start, filter, "(tail)")
        .await?
        .messages()
        .await
        .map_err(|error| failed("(tail)", error))?;
    // An ordered consumer recreates itself after a hiccup; an error it reports is one it could
    // not get over (the stream deleted, the permission gone), and ends the tail, so that whoever
    // follows it sees it end instead of waiting forever.
    Ok(messages
        .take_while(|message| std::future::ready(message.is_ok()))
        .filter_map(|message| async move {
            let message = message.ok()?;
            let stream_sequence = message.info().ok()?.stream_sequence;
            let event = Event::decode(message.payload.clone()).ok()?;
            Some(StoredEvent {
                stream_sequence,
                event,
            })
        }))
}

/// Reads the events from `start` (on the subjects `filter` matches; empty: every event) up
/// to the last one stored now, at most `limit`.
pub async fn read(
    client: async_nats::Client,
    start: StartAt,
    filter: Option<String>,
    limit: usize,
) -> Result<History, SubscribeError> {
    read_until(client, start, None, filter, limit).await
}

/// Reads the events with stream sequences `from..=to` that `filter` matches, at most
/// `limit`: one stretch of the log, so a reader that wants the newest events can walk back
/// from the end a stretch at a time instead of reading from the start of a range.
pub async fn read_between(
    client: async_nats::Client,
    from: u64,
    to: u64,
    filter: Option<String>,
    limit: usize,
) -> Result<History, SubscribeError> {
    if from > to {
        return Ok(History::default());
    }
    read_until(client, StartAt::Sequence(from), Some(to), filter, limit).await
}

/// An ordered consumer of the log from `start` on `filter`'s subjects, for the `reader` named
/// in errors: it keeps no position on the server and goes when dropped.
async fn ordered_consumer(
    client: async_nats::Client,
    start: StartAt,
    filter: Option<String>,
    reader: &str,
) -> Result<jetstream::consumer::Consumer<OrderedConfig>, SubscribeError> {
    let stream = jetstream::new(client)
        .get_stream(STREAM)
        .await
        .map_err(|error| {
            SubscribeError::NoStream(format!("stream {STREAM} not found ({error})"))
        })?;
    let (filter_subject, filter_subjects) = filters(filter.as_slice());
    stream
        .create_consumer(OrderedConfig {
            deliver_policy: deliver_policy(start),
            filter_subject,
            filter_subjects,
            ..Default::default()
        })
        .await
        .map_err(|error| failed(reader, error))
}

/// A read that failed, in the words of `reader`.
fn failed(reader: &str, error: impl std::fmt::Display) -> SubscribeError {
    SubscribeError::Pull {
        durable: reader.to_owned(),
        reason: error.to_string(),
    }
}

async fn read_until(
    client: async_nats::Client,
    start: StartAt,
    until: Option<u64>,
    filter: Option<String>,
    limit: usize,
) -> Result<History, SubscribeError> {
    const READER: &str = "(history read)";
    let mut consumer = ordered_consumer(client, start, filter, READER).await?;
    let mut history = History::default();
    let pending = consumer
        .info()
        .await
        .map_err(|error| failed(READER, error))?
        .num_pending;
    if pending == 0 || limit == 0 {
        history.truncated = pending > 0;
        return Ok(history);
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|error| failed(READER, error))?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|error| failed(READER, error))?;
        let info = message.info().map_err(|error| failed(READER, error))?;
        let (stream_sequence, left) = (info.stream_sequence, info.pending);
        if until.is_some_and(|until| stream_sequence > until) {
            break;
        }
        match Event::decode(message.payload.clone()) {
            Ok(event) => history.events.push(StoredEvent {
                stream_sequence,
                event,
            }),
            Err(_) => history.undecodable += 1,
        }
        if left == 0 || until == Some(stream_sequence) {
            break;
        }
        if history.events.len() >= limit {
            history.truncated = true;
            break;
        }
    }
    Ok(history)
}
