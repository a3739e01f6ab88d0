//! One reader per partition this replica owns, started and stopped as ownership moves.
//!
//! A partition leaving the owned set must stop being read before its lease can lapse and
//! another replica claims it ([`crate::ownership`]): its reader is told to stop, and the
//! partition counts as let go once the reader has finished the events in hand and returned.
//! At shutdown every reader stops the same way, and only then are the leases released, so the
//! other replicas take the partitions over at once and never while this one still reads them.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::FusedFuture as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{StartAt, SubscriberConfig};
use crate::ownership::Ownership;
use crate::replica_progress::ReplicaProgress;
use crate::subscriber::{Handler, Subscriber};

/// Completes when the partition's reader must stop (the partition moved, or the replica
/// stops): pass it as the `shutdown` of [`crate::Subscriber::run`].
pub type PartitionStop =
    futures_util::future::Map<oneshot::Receiver<()>, fn(Result<(), oneshot::error::RecvError>)>;

/// Keeps `ownership`'s leases and runs `read(partition, stop)` for each owned partition until
/// `shutdown` completes; then stops every reader and releases the leases.
pub async fn read_owned_partitions<R, F>(
    ownership: Ownership,
    shutdown: impl Future<Output = ()> + Send + 'static,
    mut read: R,
) where
    R: FnMut(u32, PartitionStop) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut owned = ownership.owned();
    let (stop_leases, leases_stopped) = oneshot::channel::<()>();
    let keeper = ownership.clone();
    let leases = tokio::spawn(async move {
        keeper
            .run(async move {
                let _ = leases_stopped.await;
            })
            .await;
    });
    let mut readers: BTreeMap<u32, (oneshot::Sender<()>, JoinHandle<()>)> = BTreeMap::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let wanted = owned.borrow_and_update().clone();
        let gone: Vec<u32> = readers
            .keys()
            .filter(|partition| !wanted.contains(partition))
            .copied()
            .collect();
        let leaving = gone
            .into_iter()
            .filter_map(|partition| Some((partition, readers.remove(&partition)?)));
        stop_all(leaving).await;
        for &partition in &wanted {
            readers.entry(partition).or_insert_with(|| {
                let (stop, stopped) = oneshot::channel();
                let stopped: PartitionStop = stopped.map(|_| ());
                tracing::info!(partition, "reading a partition");
                (stop, tokio::spawn(read(partition, stopped)))
            });
        }
        tokio::select! {
            () = &mut shutdown => break,
            changed = owned.changed() => if changed.is_err() { break },
        }
    }
    stop_all(std::mem::take(&mut readers)).await;
    let _ = stop_leases.send(());
    let _ = leases.await;
    ownership.release().await;
}

/// Tells the partitions' readers to stop, all at once, and waits until every one has: a
/// reader's last round (a snapshot saved, say) does not hold back the others' within the
/// lease.
async fn stop_all(readers: impl IntoIterator<Item = (u32, (oneshot::Sender<()>, JoinHandle<()>))>) {
    let stopping: Vec<(u32, JoinHandle<()>)> = readers
        .into_iter()
        .map(|(partition, (stop, reader))| {
            let _ = stop.send(());
            (partition, reader)
        })
        .collect();
    for (partition, reader) in stopping {
        if let Err(error) = reader.await {
            tracing::error!(partition, %error, "a partition's reader failed");
        }
        tracing::info!(partition, "partition let go");
    }
}

/// Reads one owned partition with `handler` until `stop`: a subscriber made from
/// `SubscriberConfig::partition(partition)` of `config` (position kept by the handler) that
/// starts after the sequence `position()` gives, and starts again a second after a failure,
/// so that a partition stays read for as long as it is owned. `position()` is `None` when the
/// read model cannot tell now (its store is down): then it is asked again. The reader reports
/// to `progress`, the replica's metrics and readiness.
pub async fn follow_partition<H, P, Fut>(
    client: async_nats::Client,
    partition: u32,
    config: SubscriberConfig,
    position: P,
    handler: H,
    progress: Arc<ReplicaProgress>,
    stop: PartitionStop,
) where
    H: Handler + Clone,
    P: Fn() -> Fut,
    Fut: Future<Output = Option<u64>>,
{
    let config = config.partition(partition);
    progress.claimed(partition);
    let mut stop = stop.fuse();
    loop {
        // The read model may take a while to tell (a snapshot to fetch): not past a stop.
        let position = tokio::select! {
            position = position() => position,
            () = &mut stop => break,
        };
        let read = match position {
            Some(after) => {
                let start_at = if after == 0 {
                    StartAt::Beginning
                } else {
                    StartAt::Sequence(after + 1)
                };
                match Subscriber::open(client.clone(), config.clone().start_at(start_at)).await {
                    Ok(subscriber) => {
                        progress.reading(partition, subscriber.stats());
                        subscriber
                            .run(handler.clone(), &mut stop)
                            .await
                            .map(|_| ())
                            .map_err(|error| error.to_string())
                    }
                    Err(error) => Err(error.to_string()),
                }
            }
            None => Err("the read model's position cannot be read".to_owned()),
        };
        if stop.is_terminated() {
            break;
        }
        if let Err(error) = read {
            tracing::warn!(subscriber = %config.durable, %error, "reading the partition failed; trying again");
        }
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    progress.let_go(partition);
}
