//! What a subscriber consumes and how it treats failures, with the defaults written once.

use std::time::{Duration, SystemTime};

use c2d_proto::events::{STREAM, STREAM_SUBJECTS};
use c2d_proto::partitions::{PARTITIONED_STREAM, partition_filter};

/// Where a new durable consumer starts reading. An existing durable resumes where it stopped,
/// whatever this says; [`crate::Subscriber::reset`] drops it to start over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The first event in the stream: what a projection built from the log wants.
    Beginning,
    /// Events stored from now on.
    New,
    /// The event with this stream sequence, and the ones after it.
    Sequence(u64),
    /// Events stored at or after this time.
    Time(SystemTime),
}

/// Who remembers how far a subscriber has read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// A durable consumer on the server, moved by acks: restarts resume where the last run
    /// stopped. The default, and what a service with no state of its own wants.
    Server,
    /// The handler keeps the last applied stream sequence with its state (a projection with
    /// snapshots) and opens at the event after it, `StartAt::Sequence(last + 1)`. The log is
    /// then read by an ordered consumer with no acks: the fastest way to read it, in order.
    Handler,
}

/// How one subscriber consumes.
#[derive(Debug, Clone)]
pub struct SubscriberConfig {
    /// The durable consumer's name: one per service (replicas of a service share it and split
    /// the work). Letters, digits, `-` and `_`.
    pub durable: String,
    /// Subject filters, e.g. `chat2desk.events.*.outbox_status`; default all events.
    pub filters: Vec<String>,
    /// The stream read: `CHAT2DESK`, or `CHAT2DESK_PARTITIONED` for one partition of it
    /// ([`SubscriberConfig::partition`]).
    pub stream: String,
    pub start_at: StartAt,
    /// Deliveries of one event before it goes to the dead-letter subject.
    pub max_deliveries: u64,
    /// Delay before redelivery after the n-th transient failure (the last one repeats).
    pub backoff: Vec<Duration>,
    /// Messages requested from JetStream per pull.
    pub batch: usize,
    /// Events handled at once. 1 (the default) handles them in stream order.
    pub concurrency: usize,
    /// Who keeps the read position.
    pub position: Position,
    /// How long JetStream waits for an ack before redelivering; a handler that runs longer
    /// keeps its event with progress signals, so this only matters when a process dies.
    pub ack_wait: Duration,
    /// How long [`crate::Subscriber::open`] waits for the `CHAT2DESK` stream to exist. The
    /// gateway creates it on start, and when a whole deployment starts at once the consumers
    /// are often first: they wait rather than fail and restart.
    pub stream_wait: Duration,
}

pub const DEFAULT_MAX_DELIVERIES: u64 = 5;
pub const DEFAULT_BATCH: usize = 256;
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
pub const DEFAULT_STREAM_WAIT: Duration = Duration::from_secs(60);

impl SubscriberConfig {
    /// A subscriber named `durable` to every event, from the beginning of the stream.
    pub fn new(durable: impl Into<String>) -> Self {
        SubscriberConfig {
            durable: durable.into(),
            filters: vec![STREAM_SUBJECTS.to_owned()],
            stream: STREAM.to_owned(),
            start_at: StartAt::Beginning,
            max_deliveries: DEFAULT_MAX_DELIVERIES,
            backoff: vec![
                Duration::from_millis(500),
                Duration::from_secs(5),
                Duration::from_secs(30),
                Duration::from_secs(120),
            ],
            batch: DEFAULT_BATCH,
            concurrency: 1,
            position: Position::Server,
            ack_wait: DEFAULT_ACK_WAIT,
            stream_wait: DEFAULT_STREAM_WAIT,
        }
    }

    /// Only events on these subjects (replaces the default of all events).
    pub fn filters<I, S>(mut self, filters: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.filters = filters.into_iter().map(Into::into).collect();
        self
    }

    /// Only the events of one partition, from the partitioned copy of the log
    /// (c2d_proto::partitions): how a replica reads a partition it owns
    /// ([`crate::ownership`]).
    pub fn partition(mut self, partition: u32) -> Self {
        self.stream = PARTITIONED_STREAM.to_owned();
        self.filters = vec![partition_filter(partition)];
        self
    }

    pub fn start_at(mut self, start_at: StartAt) -> Self {
        self.start_at = start_at;
        self
    }

    pub fn max_deliveries(mut self, max_deliveries: u64) -> Self {
        self.max_deliveries = max_deliveries.max(1);
        self
    }

    pub fn backoff(mut self, backoff: Vec<Duration>) -> Self {
        self.backoff = backoff;
        self
    }

    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// The handler keeps its read position with its state: see [`Position::Handler`].
    pub fn position_kept_by_handler(mut self) -> Self {
        self.position = Position::Handler;
        self
    }

    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// How long `open` waits for the stream; zero fails at once when it is missing.
    pub fn stream_wait(mut self, stream_wait: Duration) -> Self {
        self.stream_wait = stream_wait;
        self
    }

    /// The delay before the next delivery, after `delivered` deliveries failed.
    pub fn retry_delay(&self, delivered: u64) -> Duration {
        let index = usize::try_from(delivered.saturating_sub(1)).unwrap_or(usize::MAX);
        self.backoff
            .get(index)
            .or(self.backoff.last())
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }

    /// A durable name NATS accepts.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let name = &self.durable;
        if name.is_empty()
            || name.len() > 128
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "durable name {name:?} must be 1 to 128 letters, digits, '-' or '_'"
            ));
        }
        if self.position == Position::Handler && self.concurrency != 1 {
            return Err("a subscriber whose handler keeps the position reads in order: concurrency must be 1".into());
        }
        if self.filters.is_empty() {
            return Err("at least one subject filter is needed, e.g. chat2desk.events.>".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_follow_the_backoff_and_repeat_the_last() {
        let config = SubscriberConfig::new("x")
            .backoff(vec![Duration::from_millis(10), Duration::from_millis(20)]);
        assert_eq!(config.retry_delay(1), Duration::from_millis(10));
        assert_eq!(config.retry_delay(2), Duration::from_millis(20));
        assert_eq!(config.retry_delay(9), Duration::from_millis(20));
    }

    #[test]
    fn durable_names_are_checked() {
        assert!(SubscriberConfig::new("crm-sync_1").validate().is_ok());
        for bad in ["", "a.b", "a b", "a*"] {
            assert!(SubscriberConfig::new(bad).validate().is_err(), "{bad:?}");
        }
        assert!(
            SubscriberConfig::new("x")
                .filters(Vec::<String>::new())
                .validate()
                .is_err()
        );
    }
}
