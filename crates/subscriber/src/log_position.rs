//! Where replicas that share the partitions stand in the whole log.
//!
//! Operators and status calls speak of `CHAT2DESK` sequences: "everything up to event 41,200
//! of the log is in the directory". Replicas read `CHAT2DESK_PARTITIONED` instead, whose
//! sequences are its own and whose partitions move on independently, each with its own
//! position. The whole log's position is the event just before the earliest one that some
//! partition has not handled yet: that event exists in the partitioned copy, and nats-server
//! stamps every sourced copy with the `CHAT2DESK` sequence it came from (the
//! `Nats-Stream-Source` header), so one direct get per partition answers the question. When no
//! partition has anything left, everything copied so far is handled, and the copy's last event
//! names how far that is.
//!
//! A reader that leaves no position behind for events it ignores (crm-sync reads 11 of the 14
//! hook types) says which subjects it acts on, and those it ignores are stepped over.

use async_nats::jetstream::{self, stream::DirectGetErrorKind};
use c2d_proto::partitions::{PARTITIONED_STREAM, partition_filter};

/// Events of ignored subjects stepped over in one partition before settling for a lower bound:
/// enough for any ordinary tail, and a bound on the calls a long run of ignored events costs.
const MAX_STEPPED_OVER: usize = 256;

/// The header nats-server sets on a sourced copy: `{stream} {sequence} {filter} {transform}`.
const SOURCE_HEADER: &str = "Nats-Stream-Source";

/// Why the whole log's position could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum LogPositionError {
    #[error(
        "cannot read {PARTITIONED_STREAM} from NATS: {0}; check NATS_URL, and that c2d-gateway runs with GATEWAY_PARTITIONS set"
    )]
    Stream(String),
    #[error(
        "event {sequence} of {PARTITIONED_STREAM} has no {SOURCE_HEADER} header naming its place in the log; the stream must source CHAT2DESK as c2d-gateway creates it"
    )]
    NoSource { sequence: u64 },
}

/// The last `CHAT2DESK` sequence through which every event is handled, when partition `p` is
/// handled through `CHAT2DESK_PARTITIONED` sequence `handled[p]` and the readers act on the
/// subjects `acts_on` accepts (events on the others move no position and are stepped over).
/// 0 when nothing is handled yet.
pub async fn log_sequence_handled(
    jetstream: &jetstream::Context,
    handled: &[u64],
    acts_on: impl Fn(&str) -> bool,
) -> Result<u64, LogPositionError> {
    let stream = jetstream
        .get_stream(PARTITIONED_STREAM)
        .await
        .map_err(|error| LogPositionError::Stream(error.to_string()))?;
    let mut earliest_unhandled: Option<u64> = None;
    for (partition, &through) in handled.iter().enumerate() {
        let filter = partition_filter(partition as u32);
        if let Some(next) = next_acted_on(&stream, &filter, through + 1, &acts_on).await? {
            earliest_unhandled = Some(earliest_unhandled.map_or(next, |seen| seen.min(next)));
        }
    }
    match earliest_unhandled {
        Some(next) => Ok(next.saturating_sub(1)),
        None => last_copied(&stream).await,
    }
}

/// The `CHAT2DESK` sequence of the first event at or after `from` on `filter` that the readers
/// act on, or of the event where stepping over stopped; `None` when there is none.
async fn next_acted_on(
    stream: &jetstream::stream::Stream,
    filter: &str,
    mut from: u64,
    acts_on: &impl Fn(&str) -> bool,
) -> Result<Option<u64>, LogPositionError> {
    let mut stepped_over = 0;
    loop {
        let message = match stream.direct_get_next_for_subject(filter, Some(from)).await {
            Ok(message) => message,
            Err(error) if error.kind() == DirectGetErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(LogPositionError::Stream(error.to_string())),
        };
        if stepped_over == MAX_STEPPED_OVER || acts_on(message.subject.as_str()) {
            return source_sequence(&message).map(Some);
        }
        stepped_over += 1;
        from = message.sequence + 1;
    }
}

/// The `CHAT2DESK` sequence of the copy's last event when `stream` was looked up: everything
/// copied by then, when every partition is handled to its end.
async fn last_copied(stream: &jetstream::stream::Stream) -> Result<u64, LogPositionError> {
    let last = stream.cached_info().state.last_sequence;
    if last == 0 {
        return Ok(0);
    }
    match stream.direct_get(last).await {
        Ok(message) => source_sequence(&message),
        Err(error) => Err(LogPositionError::Stream(error.to_string())),
    }
}

fn source_sequence(message: &jetstream::message::StreamMessage) -> Result<u64, LogPositionError> {
    message
        .headers
        .get(SOURCE_HEADER)
        .and_then(|value| parse_source(value.as_str()))
        .ok_or(LogPositionError::NoSource {
            sequence: message.sequence,
        })
}

/// The sequence in `{stream} {sequence} ...`, the `Nats-Stream-Source` header's value.
fn parse_source(value: &str) -> Option<u64> {
    value.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_header_names_the_stream_then_the_sequence() {
        assert_eq!(
            parse_source(
                "CHAT2DESK 4120 chat2desk.events.*.* chat2desk.partitioned.{{partition(16,1)}}.{{wildcard(1)}}.{{wildcard(2)}}"
            ),
            Some(4120)
        );
        assert_eq!(parse_source("CHAT2DESK:a1b2c3 7"), Some(7));
        assert_eq!(parse_source("CHAT2DESK"), None);
        assert_eq!(parse_source("CHAT2DESK seven"), None);
        assert_eq!(parse_source(""), None);
    }
}
