//! Following the event log into the [`Index`]: an ordered consumer (no durable, nothing kept
//! on the server) from `KEEPER_LOOKBACK` ago over every event, for ever. Gaps the index finds
//! go to the runner; `read` is the last stream sequence the index has taken in, and a backfill
//! waits until it reaches the stream's last sequence ([`current`]), so that it never mistakes a
//! message stored but not read yet for a lost one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use c2d_proto::events::{Event, STREAM};
use futures_util::StreamExt as _;
use prost::Message as _;
use tokio::sync::{mpsc, watch};

use crate::backfill::lock;
use crate::gaps::Gap;
use crate::index::Index;

/// What the follower shares with the runner.
pub struct Follower {
    /// Where the log is.
    pub jetstream: jetstream::Context,
    /// What it keeps up to date.
    pub index: Arc<Mutex<Index>>,
    /// Gaps found, with their tenant.
    pub gaps: mpsc::UnboundedSender<(String, Gap)>,
    /// The last stream sequence taken in (or known to hold nothing to take in).
    pub read: watch::Sender<u64>,
    /// Seconds of silence that make a gap.
    pub silence: i64,
    /// How far back it starts reading.
    pub lookback: Duration,
}

impl Follower {
    /// Follows the log until `stop` turns true; reconnects (from where it was) after errors.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let start = time::OffsetDateTime::now_utc() - self.lookback;
        let mut next = DeliverPolicy::ByStartTime { start_time: start };
        while !*stop.borrow() {
            match self.follow(next, &mut stop).await {
                Ok(()) => return,
                Err((sequence, error)) => {
                    tracing::warn!(%error, "following the event log failed; again in a second");
                    if let Some(sequence) = sequence {
                        next = DeliverPolicy::ByStartSequence {
                            start_sequence: sequence + 1,
                        };
                    }
                    tokio::select! {
                        _ = stop.changed() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    /// One consumer's life; the error carries the last sequence read.
    async fn follow(
        &self,
        deliver_policy: DeliverPolicy,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), (Option<u64>, String)> {
        let fail = |e: String| (None, e);
        let stream = self.jetstream.get_stream(STREAM).await.map_err(|e| {
            fail(format!(
                "no stream {STREAM} yet ({e}); c2d-gateway creates it"
            ))
        })?;
        let mut consumer = stream
            .create_consumer(OrderedConfig {
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| fail(e.to_string()))?;
        let info = consumer.info().await.map_err(|e| fail(e.to_string()))?;
        if info.num_pending == 0 {
            // Nothing to read since the start: everything up to here is older than the lookback.
            let last = stream.cached_info().state.last_sequence;
            self.read.send_if_modified(|read| {
                let newer = last > *read;
                *read = (*read).max(last);
                newer
            });
        }
        let mut messages = consumer.messages().await.map_err(|e| fail(e.to_string()))?;
        let mut last = None;
        loop {
            let message = tokio::select! {
                _ = stop.changed() => return Ok(()),
                message = messages.next() => message,
            };
            let Some(message) = message else {
                return Err((last, "the consumer ended".into()));
            };
            let message = message.map_err(|e| (last, e.to_string()))?;
            let info = message.info().map_err(|e| (last, e.to_string()))?;
            last = Some(info.stream_sequence);
            match Event::decode(message.payload.as_ref()) {
                Ok(event) => {
                    if let Some(gap) = lock(&self.index).observe(&event, self.silence) {
                        let _ = self.gaps.send((event.tenant.clone(), gap));
                    }
                }
                Err(error) => tracing::debug!(%error, "not an event; skipped"),
            }
            self.read.send_replace(info.stream_sequence);
        }
    }
}

/// Whether the index has taken in the log up to what it holds now, waiting up to `wait` for
/// it; false when the stream cannot be asked (the backfill then waits for the next round).
pub async fn current(
    jetstream: &jetstream::Context,
    read: &mut watch::Receiver<u64>,
    wait: Duration,
) -> bool {
    let Ok(mut stream) = jetstream.get_stream(STREAM).await else {
        return false;
    };
    let Ok(info) = stream.info().await else {
        return false;
    };
    if info.state.messages == 0 {
        return true;
    }
    let last = info.state.last_sequence;
    matches!(
        tokio::time::timeout(wait, read.wait_for(|seq| *seq >= last)).await,
        Ok(Ok(_))
    )
}
