//! Replicas reading the partitions they own, against a real nats-server and gateway: a replica
//! killed (its whole runtime dropped, as a pod is) and another added while events flow, and
//! every event applied exactly once, in each partition's order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use c2d_subscriber::ownership::{Ownership, OwnershipConfig};
use c2d_subscriber::partition_readers::read_owned_partitions;
use c2d_subscriber::{Delivery, HandlerError, StartAt, Subscriber, SubscriberConfig};
use c2d_testkit::{Pipeline, eventually, inbox};
use tokio::sync::oneshot;

const PARTITIONS: u32 = 8;
const TENANTS: usize = 20;

/// A read model every replica writes to, as crm-sync's PostgreSQL directory is: per partition
/// the last applied sequence (the idempotency rule), and how often each event was applied.
#[derive(Default)]
struct Shared {
    last: BTreeMap<u32, u64>,
    applied: BTreeMap<String, u32>,
    by_replica: BTreeMap<String, u64>,
}

/// A replica on its own runtime, so that killing it stops everything it runs at once.
struct Replica {
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<()>>,
}

fn start_replica(nats_url: String, name: &'static str, shared: Arc<Mutex<Shared>>) -> Replica {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = runtime.spawn(async move {
        let client = async_nats::connect(&nats_url).await.unwrap();
        let mut config = OwnershipConfig::new("readers", name, name, PARTITIONS);
        config.lease = Duration::from_secs(2);
        let ownership = Ownership::join(client.clone(), config).await.unwrap();
        let shutdown = async move {
            let _ = stopped.await;
        };
        read_owned_partitions(ownership, shutdown, move |partition, stop| {
            let (client, shared) = (client.clone(), shared.clone());
            let replica = name.to_owned();
            async move {
                let after = shared.lock().unwrap().last.get(&partition).copied();
                let start_at = after.map_or(StartAt::Beginning, |last| StartAt::Sequence(last + 1));
                let config = SubscriberConfig::new(format!("{replica}-{partition}"))
                    .partition(partition)
                    .start_at(start_at)
                    .position_kept_by_handler();
                let subscriber = Subscriber::open(client, config).await.unwrap();
                let handler = move |delivery: Delivery| {
                    let (shared, replica) = (shared.clone(), replica.clone());
                    async move {
                        let mut shared = shared.lock().unwrap();
                        let last = shared.last.entry(partition).or_default();
                        if delivery.stream_sequence <= *last {
                            return Ok::<(), HandlerError>(());
                        }
                        *last = delivery.stream_sequence;
                        *shared.applied.entry(delivery.event.event_id).or_default() += 1;
                        *shared.by_replica.entry(replica).or_default() += 1;
                        Ok(())
                    }
                };
                subscriber.run(handler, stop).await.unwrap();
            }
        })
        .await;
    });
    Replica {
        runtime: Some(runtime),
        stop: Some(stop),
        running: Some(running),
    }
}

impl Replica {
    /// Gone at once, as a pod killed: no reader finishes, no lease is released.
    fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Replica {
    /// A clean stop, as a pod's SIGTERM: the readers finish, then the leases are released.
    fn drop(&mut self) {
        let (Some(stop), Some(runtime), Some(running)) =
            (self.stop.take(), self.runtime.take(), self.running.take())
        else {
            return;
        };
        let _ = stop.send(());
        tokio::task::block_in_place(|| {
            let _ = runtime.block_on(running);
        });
        runtime.shutdown_background();
    }
}

async fn post(pipeline: &Pipeline, range: std::ops::Range<u64>) {
    for n in range {
        let tenant = format!("tenant-{}", n % TENANTS as u64);
        pipeline.post_as(&tenant, inbox(n)).await;
    }
}

async fn all_applied(shared: &Arc<Mutex<Shared>>, count: usize, what: &str) {
    eventually(what, Duration::from_secs(60), || {
        let applied = shared.lock().unwrap().applied.len();
        async move {
            (applied == count)
                .then_some(())
                .ok_or(format!("{applied} of {count} applied"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_killed_and_added_apply_every_event_once() {
    let pipeline = Pipeline::start_partitioned(PARTITIONS, TENANTS).await;
    let shared = Arc::new(Mutex::new(Shared::default()));
    let url = pipeline.nats.url();
    let first = start_replica(url.clone(), "reader-0", shared.clone());
    let second = start_replica(url.clone(), "reader-1", shared.clone());

    post(&pipeline, 0..100).await;
    all_applied(&shared, 100, "the first 100 events, over two replicas").await;

    first.kill();
    post(&pipeline, 100..200).await;
    all_applied(&shared, 200, "200 events, the survivor taking over").await;

    let third = start_replica(url, "reader-2", shared.clone());
    // The third replica gets its share once the survivor lets partitions lapse.
    eventually(
        "the added replica reads its share",
        Duration::from_secs(30),
        || {
            let shared = shared.clone();
            let pipeline = &pipeline;
            async move {
                let n = shared.lock().unwrap().applied.len() as u64;
                post(pipeline, n..n + 20).await;
                let by_third = shared.lock().unwrap().by_replica.get("reader-2").copied();
                by_third
                    .filter(|&n| n > 0)
                    .map(|_| ())
                    .ok_or("nothing yet".to_owned())
            }
        },
    )
    .await;
    let posted = {
        let stream = pipeline.nats.jetstream().await;
        let mut events = stream.get_stream("CHAT2DESK").await.unwrap();
        events.info().await.unwrap().state.messages as usize
    };
    all_applied(&shared, posted, "every posted event").await;
    drop(second);
    drop(third);

    let shared = shared.lock().unwrap();
    let twice: Vec<_> = shared.applied.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "applied more than once: {twice:?}");
    println!(
        "{} events applied once each; by replica: {:?}",
        shared.applied.len(),
        shared.by_replica
    );
}
