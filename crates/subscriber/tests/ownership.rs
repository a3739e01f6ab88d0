//! Partition ownership among replicas, against a real nats-server: every partition owned,
//! fair shares, ownership moving when a replica dies or joins, and never two owners at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use c2d_subscriber::ownership::{Ownership, OwnershipConfig};
use c2d_testkit::{NatsServer, eventually};
use tokio::sync::watch;

const PARTITIONS: u32 = 16;

/// What each live replica owns, as it sees it.
type Owned = Arc<Mutex<BTreeMap<String, watch::Receiver<BTreeSet<u32>>>>>;

/// A replica whose leases are kept by a task, until it is stopped or killed.
struct Replica {
    name: String,
    ownership: Ownership,
    task: tokio::task::JoinHandle<()>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn replica(nats: &NatsServer, name: &str) -> Replica {
    let mut config = OwnershipConfig::new("analytics", name, &format!("{name}:50052"), PARTITIONS);
    config.lease = Duration::from_secs(2);
    let ownership = Ownership::join(nats.client().await, config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = ownership.clone();
    let task = tokio::spawn(async move {
        running
            .run(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Replica {
        name: name.to_owned(),
        ownership,
        task,
        stop: Some(stop),
    }
}

/// Watches every live replica's owned set and records any partition two of them hold at the
/// same moment.
fn watch_for_two_owners(owned: Owned) -> Arc<Mutex<Vec<String>>> {
    let conflicts = Arc::new(Mutex::new(Vec::new()));
    let found = conflicts.clone();
    tokio::spawn(async move {
        loop {
            {
                let owned = owned.lock().unwrap();
                let mut holders = BTreeMap::<u32, Vec<&str>>::new();
                for (name, receiver) in owned.iter() {
                    for &partition in receiver.borrow().iter() {
                        holders.entry(partition).or_default().push(name);
                    }
                }
                for (partition, names) in holders {
                    if names.len() > 1 {
                        found
                            .lock()
                            .unwrap()
                            .push(format!("partition {partition} owned by {names:?}"));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    conflicts
}

async fn shares_settle(owned: &Owned, what: &str, fair: std::ops::RangeInclusive<usize>) {
    eventually(what, Duration::from_secs(30), || {
        let owned = owned.lock().unwrap();
        let shares: BTreeMap<String, BTreeSet<u32>> = owned
            .iter()
            .map(|(name, receiver)| (name.clone(), receiver.borrow().clone()))
            .collect();
        let all: BTreeSet<u32> = shares.values().flatten().copied().collect();
        let fair = fair.clone();
        async move {
            let settled = all.len() == PARTITIONS as usize
                && shares.values().all(|share| fair.contains(&share.len()));
            settled.then_some(()).ok_or(format!("{shares:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_move_when_a_replica_dies_or_joins_and_never_have_two_owners() {
    let nats = NatsServer::start().await.unwrap();
    let owned = Arc::new(Mutex::new(BTreeMap::new()));
    let conflicts = watch_for_two_owners(owned.clone());
    let mut replicas = Vec::new();
    for name in ["analytics-0", "analytics-1", "analytics-2"] {
        let replica = replica(&nats, name).await;
        owned
            .lock()
            .unwrap()
            .insert(name.to_owned(), replica.ownership.owned());
        replicas.push(replica);
    }
    shares_settle(&owned, "16 partitions over 3 replicas", 4..=6).await;
    let members = replicas[0].ownership.members().await.unwrap();
    assert_eq!(members.len(), 3);
    let some = *owned.lock().unwrap()["analytics-1"]
        .borrow()
        .first()
        .unwrap();
    let owner = replicas[0].ownership.owner_of(some).await.unwrap().unwrap();
    assert_eq!(
        (owner.replica.as_str(), owner.address.as_str()),
        ("analytics-1", "analytics-1:50052"),
        "any replica finds a partition's owner and its address"
    );

    // analytics-1 dies: no release, its leases lapse.
    let dead = replicas.remove(1);
    dead.task.abort();
    owned.lock().unwrap().remove(&dead.name);
    shares_settle(&owned, "16 partitions over the 2 survivors", 8..=8).await;

    // analytics-3 joins.
    let joined = replica(&nats, "analytics-3").await;
    owned
        .lock()
        .unwrap()
        .insert(joined.name.clone(), joined.ownership.owned());
    replicas.push(joined);
    shares_settle(&owned, "16 partitions over 3 replicas again", 4..=6).await;

    // analytics-0 stops cleanly and releases: the others take over without waiting a lease.
    let mut leaving = replicas.remove(0);
    let _ = leaving.stop.take().unwrap().send(());
    leaving.task.await.unwrap();
    assert!(leaving.ownership.owned().borrow().is_empty());
    leaving.ownership.release().await;
    owned.lock().unwrap().remove(&leaving.name);
    shares_settle(&owned, "16 partitions over the last 2", 8..=8).await;

    let conflicts = conflicts.lock().unwrap();
    assert!(conflicts.is_empty(), "two owners at once: {conflicts:?}");
}

/// Services of a deployment start together and ask for a bucket with configurations of their
/// own (another version, another replica count): each must come up on the one bucket the
/// first of them created, whichever that was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_racing_to_create_a_bucket_all_open_the_same_one() {
    use async_nats::jetstream::kv;
    let nats = NatsServer::start().await.unwrap();
    let jetstream = nats.jetstream().await;
    let racers: Vec<_> = (1..=8)
        .map(|history| {
            let jetstream = jetstream.clone();
            tokio::spawn(async move {
                c2d_subscriber::bucket::open_or_create(
                    &jetstream,
                    kv::Config {
                        bucket: "RACE".into(),
                        history,
                        ..Default::default()
                    },
                )
                .await
            })
        })
        .collect();
    let mut histories = BTreeSet::new();
    for racer in racers {
        let store = racer.await.unwrap().expect("every racer opens the bucket");
        histories.insert(store.status().await.unwrap().history());
        store.put("seen", "yes".into()).await.unwrap();
    }
    assert_eq!(histories.len(), 1, "one bucket for all: {histories:?}");
}
