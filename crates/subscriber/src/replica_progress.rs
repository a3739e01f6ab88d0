//! A replica's progress over the partitions it reads, as one consumer's: what its metrics
//! and its readiness read.
//!
//! A replica runs one subscriber per owned partition ([`crate::partition_readers`]), and they
//! come and go as ownership moves. Its operators still want one answer to "how far behind is
//! this pod, and is it ready": the events handled by all its readers (counters that never go
//! back, though readers stop), the lag of the partitions it owns now, and caught up once every
//! owned partition has caught up.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::Stats;
use crate::metrics::ConsumerProgress;

/// The partition readers of one replica, seen together.
#[derive(Debug, Default)]
pub struct ReplicaProgress {
    /// The running reader of each owned partition; a placeholder that has done nothing until
    /// the reader's subscriber is open, so a partition just claimed is not caught up.
    readers: Mutex<BTreeMap<u32, Arc<Stats>>>,
    /// The owned partitions whose reader has caught up once since the partition was claimed:
    /// their projections are current, even while a reader started again after a failure
    /// works through what arrived meanwhile.
    replayed: Mutex<BTreeSet<u32>>,
    /// What readers that stopped had done: handled, retried, dead-lettered.
    stopped: [AtomicU64; 3],
}

impl ReplicaProgress {
    /// `partition` is read from now on; its subscriber is not open yet. A read model that
    /// shows the partition's projection before its reader starts calls this first, so that the
    /// projection is never taken for a current one (calling it again is harmless).
    pub fn claimed(&self, partition: u32) {
        self.replayed().remove(&partition);
        self.reading(partition, Arc::new(Stats::default()));
    }

    /// `partition` is read by a subscriber reporting to `stats` (a new one after a failure).
    pub(crate) fn reading(&self, partition: u32, stats: Arc<Stats>) {
        if let Some(before) = self.lock().insert(partition, stats) {
            self.keep_counts(&before);
        }
    }

    /// `partition` is not read by this replica any more.
    pub(crate) fn let_go(&self, partition: u32) {
        self.replayed().remove(&partition);
        if let Some(before) = self.lock().remove(&partition) {
            self.keep_counts(&before);
        }
    }

    /// While `partition`, read here, is replayed from its start or its snapshot after this
    /// replica claimed it: the events it has left. A read model answers from a partition only
    /// once this is `None` (also for a partition not read here), or it answers from the past:
    /// a partition that moves to a running replica is replayed there while that replica
    /// already serves the others.
    pub fn replaying(&self, partition: u32) -> Option<u64> {
        let stats = self.lock().get(&partition).cloned()?;
        let mut replayed = self.replayed();
        if replayed.contains(&partition) {
            return None;
        }
        if stats.is_caught_up() {
            replayed.insert(partition);
            return None;
        }
        Some(stats.pending())
    }

    /// The partitions read now.
    pub fn partitions_read(&self) -> usize {
        self.lock().len()
    }

    /// Completes once [`ConsumerProgress::is_caught_up`]: what the replica waits for before it
    /// reports SERVING. Checked every 100 ms, since readers come and go.
    pub async fn caught_up(&self) {
        while !self.is_caught_up() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every `every` in which events were handled, one INFO line until `stop` completes: how
    /// many, over how many partitions, and their lag. A replica's log then shows it working,
    /// as a reader of the whole log shows its sequence.
    pub async fn log_every(&self, every: Duration, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let mut last = self.handled();
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = ticks.tick() => {}
            }
            let now = self.handled();
            if now != last {
                tracing::info!(
                    handled = now - last,
                    partitions = self.partitions_read(),
                    lag = self.pending(),
                    "events handled in the last {} s",
                    every.as_secs()
                );
                last = now;
            }
        }
    }

    fn keep_counts(&self, stats: &Stats) {
        for (kept, count) in
            self.stopped
                .iter()
                .zip([stats.handled(), stats.retried(), stats.dead_lettered()])
        {
            kept.fetch_add(count, Ordering::Relaxed);
        }
    }

    fn total(&self, kept: usize, count: fn(&Stats) -> u64) -> u64 {
        // Under the lock, so a reader moving to `stopped` is not counted twice or missed.
        let readers = self.lock();
        self.stopped[kept].load(Ordering::Relaxed) + readers.values().map(|s| count(s)).sum::<u64>()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Arc<Stats>>> {
        self.readers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn replayed(&self) -> std::sync::MutexGuard<'_, BTreeSet<u32>> {
        self.replayed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The replica's readers together, as the metrics and readiness read one consumer.
impl ConsumerProgress for ReplicaProgress {
    /// Events done with by this replica's readers since it started.
    fn handled(&self) -> u64 {
        self.total(0, Stats::handled)
    }

    fn retried(&self) -> u64 {
        self.total(1, Stats::retried)
    }

    fn dead_lettered(&self) -> u64 {
        self.total(2, Stats::dead_lettered)
    }

    /// Events of the owned partitions not handled yet.
    fn pending(&self) -> u64 {
        self.lock().values().map(|stats| stats.pending()).sum()
    }

    /// Whether this replica reads at least one partition and every one it reads has caught
    /// up: its answers for the tenants it owns are current.
    fn is_caught_up(&self) -> bool {
        let readers = self.lock();
        !readers.is_empty() && readers.values().all(|stats| stats.is_caught_up())
    }

    fn partitions(&self) -> Option<usize> {
        Some(self.partitions_read())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_survive_readers_and_caught_up_needs_every_owned_partition() {
        let progress = ReplicaProgress::default();
        assert!(!progress.is_caught_up(), "nothing owned yet");
        progress.claimed(1);
        progress.claimed(2);
        let one = Arc::new(Stats::default());
        progress.reading(1, Arc::clone(&one));
        one.observe_pending(2);
        one.done_with(1);
        one.done_with(0);
        assert!(!progress.is_caught_up(), "partition 2 has not started");
        let two = Arc::new(Stats::default());
        progress.reading(2, Arc::clone(&two));
        two.observe_pending(5);
        assert_eq!(progress.pending(), 5);
        two.done_with(0);
        assert!(progress.is_caught_up());
        assert_eq!(progress.handled(), 3);

        progress.let_go(1);
        assert_eq!(progress.handled(), 3, "a stopped reader's count is kept");
        assert_eq!(progress.partitions_read(), 1);
        // A new subscriber of partition 2 after a failure starts its counts afresh.
        progress.reading(2, Arc::new(Stats::default()));
        assert_eq!(progress.handled(), 3);
        assert!(!progress.is_caught_up());
    }

    #[test]
    fn a_claimed_partition_is_replaying_until_its_reader_first_catches_up() {
        let progress = ReplicaProgress::default();
        assert_eq!(progress.replaying(3), None, "not read here");
        progress.claimed(3);
        assert_eq!(
            progress.replaying(3),
            Some(0),
            "its subscriber is not open yet"
        );
        let reader = Arc::new(Stats::default());
        progress.reading(3, Arc::clone(&reader));
        reader.observe_pending(40);
        reader.done_with(39);
        assert_eq!(progress.replaying(3), Some(39));
        reader.done_with(0);
        assert_eq!(progress.replaying(3), None);
        // A reader started again after a failure has events to catch up with, but the
        // partition's projection stayed current.
        let again = Arc::new(Stats::default());
        progress.reading(3, Arc::clone(&again));
        again.observe_pending(7);
        assert_eq!(progress.replaying(3), None);
        // Claimed anew (it moved away and back): replayed again.
        progress.let_go(3);
        progress.claimed(3);
        assert_eq!(progress.replaying(3), Some(0));
    }

    /// Log lines written to memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_line_for_each_interval_in_which_events_were_handled() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_writer(move || writer.clone())
            .finish();
        let _logging_here = tracing::subscriber::set_default(subscriber);
        let progress = Arc::new(ReplicaProgress::default());
        let stats = Arc::new(Stats::default());
        progress.reading(3, Arc::clone(&stats));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let logging = tokio::spawn({
            let progress = Arc::clone(&progress);
            async move {
                let stopped = async {
                    let _ = stopped.await;
                };
                progress.log_every(Duration::from_secs(10), stopped).await;
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        stats.done_with(3);
        stats.done_with(2);
        // The first interval handled two events; the second none, and says nothing.
        tokio::time::sleep(Duration::from_secs(24)).await;
        stop.send(()).unwrap();
        logging.await.unwrap();

        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text.trim(),
            "INFO c2d_subscriber::replica_progress: events handled in the last 10 s handled=2 partitions=1 lag=2"
        );
    }
}
