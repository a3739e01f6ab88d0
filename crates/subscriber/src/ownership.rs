//! Which replica of a service reads which partitions of the log (c2d_proto::partitions):
//! leases in a JetStream KV bucket, so that ownership moves when a replica dies or is added,
//! and no partition has two owners at once.
//!
//! The bucket [`LEASES_BUCKET`] keeps each entry for one lease (`max_age`), so an entry that is
//! not written again vanishes by the server's clock, not by any replica's. In it, per group
//! (the service's name):
//! - `{group}.member.{replica}` = the replica's address: who is alive, and where it answers
//!   queries for the partitions it owns;
//! - `{group}.partition.{n}` = the owning replica.
//!
//! Every third of a lease each replica writes its member entry, counts the live members,
//! renews the partitions it owns up to its fair share (⌈partitions / members⌉), and claims
//! free ones up to that share with a create, which fails if another replica got there first.
//! Renewals are compare-and-set on the entry's revision, so a replica that lost a partition
//! learns it at its next renewal. A replica starting waits a fifth of a lease between writing
//! its member entry and its first claim, so that replicas started together share at once.
//!
//! No two owners at once: a replica gives a partition up *locally first* (it stops reading it)
//! and lets the entry lapse; another replica can claim it only once the entry has vanished, a
//! whole lease after its last renewal. A replica whose renewals fail (cut off from NATS) gives
//! up its partitions two thirds of a lease after its last successful renewal, before they can
//! lapse. Partitions are preferred by rendezvous hashing (the replica's and the partition's
//! names hashed together), so a partition tends to go back to the same replica after a restart,
//! where its snapshot is.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use c2d_proto::partitions::PARTITIONED_STREAM;
use futures_util::StreamExt as _;
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;

/// The KV bucket of every group's members and partition leases.
pub const LEASES_BUCKET: &str = "C2D_PARTITIONS";
/// How long a lease lasts without renewal, by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// Who this replica is among its group.
#[derive(Debug, Clone)]
pub struct OwnershipConfig {
    /// The service whose replicas share the partitions, e.g. `analytics`.
    pub group: String,
    /// This replica's name, unique in the group and stable across restarts (the pod's name in
    /// a StatefulSet), so that its partitions come back to it.
    pub replica: String,
    /// Where this replica answers queries, told to the others so they can forward to it.
    pub address: String,
    /// Partitions of the log (the gateway's `GATEWAY_PARTITIONS`).
    pub partitions: u32,
    /// How long a lease lasts without renewal; a dead replica's partitions move after it.
    pub lease: Duration,
    /// Replicas of the bucket when this replica creates it, at least: it takes those of the
    /// partitioned log (3 on a production cluster) when that exists.
    pub bucket_replicas: usize,
}

impl OwnershipConfig {
    /// `replica` of `group`, answering at `address`, over `partitions` partitions.
    pub fn new(group: &str, replica: &str, address: &str, partitions: u32) -> Self {
        OwnershipConfig {
            group: group.to_owned(),
            replica: replica.to_owned(),
            address: address.to_owned(),
            partitions,
            lease: DEFAULT_LEASE,
            bucket_replicas: 1,
        }
    }

    fn validate(&self) -> Result<(), OwnershipError> {
        let name_ok = |name: &str| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !name_ok(&self.group) || !name_ok(&self.replica) {
            return Err(OwnershipError::Config(format!(
                "group {:?} and replica {:?} must be letters, digits, '-' or '_' (a pod name is)",
                self.group, self.replica
            )));
        }
        if self.partitions == 0 {
            return Err(OwnershipError::Config(
                "no partitions: set the gateway's GATEWAY_PARTITIONS and the same count here"
                    .into(),
            ));
        }
        if self.lease < Duration::from_secs(1) {
            return Err(OwnershipError::Config(
                "a lease must last at least a second".into(),
            ));
        }
        Ok(())
    }
}

/// Why ownership could not be taken part in.
#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    #[error("invalid partition ownership configuration: {0}")]
    Config(String),
    #[error(
        "cannot open the KV bucket {LEASES_BUCKET} (is JetStream enabled, and may this NATS user use $JS.API.> and $KV.{LEASES_BUCKET}.>?): {0}"
    )]
    Bucket(String),
    #[error("cannot read the partition leases in {LEASES_BUCKET}: {0}")]
    Read(String),
}

/// A replica of the group, as the others see it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    pub replica: String,
    pub address: String,
}

/// This replica's part in its group: the partitions it owns, kept up by [`Ownership::run`].
#[derive(Clone)]
pub struct Ownership {
    inner: Arc<Inner>,
}

struct Inner {
    config: OwnershipConfig,
    kv: kv::Store,
    owned: watch::Sender<BTreeSet<u32>>,
    /// Per owned partition: its entry's revision, and when it was last written.
    leases: Mutex<std::collections::BTreeMap<u32, (u64, Instant)>>,
}

impl Ownership {
    /// Opens (or creates) the leases bucket; owns nothing until [`Ownership::run`] runs.
    pub async fn join(
        client: async_nats::Client,
        config: OwnershipConfig,
    ) -> Result<Ownership, OwnershipError> {
        config.validate()?;
        let jetstream = jetstream::new(client);
        let kv = crate::bucket::open_or_create(
            &jetstream,
            kv::Config {
                bucket: LEASES_BUCKET.into(),
                description: "partition leases of the services' replicas".into(),
                history: 1,
                max_age: config.lease,
                // As many as the partitioned log it divides (three on a production
                // cluster), so that losing a NATS node loses no lease.
                num_replicas: crate::replicas_of(&jetstream, PARTITIONED_STREAM)
                    .await
                    .max(config.bucket_replicas),
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| OwnershipError::Bucket(e.to_string()))?;
        // Entries vanish after the bucket's max_age, whoever created it: that is the lease
        // every replica times its renewals and fencing by.
        let mut config = config;
        let max_age = kv
            .status()
            .await
            .map_err(|e| OwnershipError::Bucket(e.to_string()))?
            .max_age();
        if max_age != config.lease && !max_age.is_zero() {
            tracing::warn!(group = %config.group, configured = ?config.lease, bucket = ?max_age,
                "the leases bucket {LEASES_BUCKET} keeps entries for another time than this replica's lease; using the bucket's (give every service the same lease, or delete the bucket while no replica runs)");
            config.lease = max_age;
        }
        let (owned, _) = watch::channel(BTreeSet::new());
        Ok(Ownership {
            inner: Arc::new(Inner {
                config,
                kv,
                owned,
                leases: Mutex::default(),
            }),
        })
    }

    /// The partitions this replica owns now; changes as ownership moves. A partition leaving
    /// this set must stop being read at once (its lease lapses a lease later).
    pub fn owned(&self) -> watch::Receiver<BTreeSet<u32>> {
        self.inner.owned.subscribe()
    }

    /// Keeps this replica's leases until `shutdown` completes; then owns nothing. Call
    /// [`Ownership::release`] once the partitions' readers have stopped, so that others take
    /// them over at once instead of a lease later.
    ///
    /// Before its first claim a replica makes itself seen and waits a fifth of a lease, so
    /// that replicas started together (a rollout, a whole deployment restarted) count each
    /// other and claim their shares at once, instead of the first one claiming everything
    /// and the others waiting a lease for the surplus to lapse.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let period = self.inner.config.lease / 3;
        let mut shutdown = std::pin::pin!(shutdown);
        let mut last_error = String::new();
        if self.announce().await.is_ok() {
            tokio::select! {
                () = &mut shutdown => {
                    self.inner.owned.send_replace(BTreeSet::new());
                    return;
                }
                () = tokio::time::sleep(self.inner.config.lease / 5) => {}
            }
        }
        loop {
            match self.tick().await {
                Ok(()) => last_error.clear(),
                Err(error) => {
                    let error = error.to_string();
                    if error != last_error {
                        tracing::warn!(group = %self.inner.config.group, %error, "partition leases not renewed; retrying");
                        last_error = error;
                    }
                }
            }
            self.fence().await;
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(period) => {}
            }
        }
        self.inner.owned.send_replace(BTreeSet::new());
    }

    /// Gives up every lease this replica holds, and its membership: call only once nothing
    /// of those partitions is being read any more.
    pub async fn release(&self) {
        let config = &self.inner.config;
        let leases = std::mem::take(&mut *self.inner.leases.lock().await);
        self.inner.owned.send_replace(BTreeSet::new());
        for (partition, (revision, _)) in leases {
            // Only if still ours: a revision check, then a delete.
            let key = partition_key(&config.group, partition);
            if let Ok(Some(entry)) = self.inner.kv.entry(&key).await
                && entry.revision == revision
            {
                let _ = self.inner.kv.delete(&key).await;
            }
        }
        let _ = self
            .inner
            .kv
            .delete(member_key(&config.group, &config.replica))
            .await;
        tracing::info!(group = %config.group, replica = %config.replica, "partitions released");
    }

    /// The live replicas of the group.
    pub async fn members(&self) -> Result<Vec<Member>, OwnershipError> {
        let prefix = format!("{}.member.", self.inner.config.group);
        let mut keys = self
            .inner
            .kv
            .keys()
            .await
            .map_err(|e| OwnershipError::Read(e.to_string()))?;
        let mut members = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| OwnershipError::Read(e.to_string()))?;
            let Some(replica) = key.strip_prefix(&prefix) else {
                continue;
            };
            if let Some(entry) = self.live_entry(&key).await? {
                members.push(Member {
                    replica: replica.to_owned(),
                    address: String::from_utf8_lossy(&entry.value).into_owned(),
                });
            }
        }
        members.sort();
        Ok(members)
    }

    /// The replica that owns `partition` now, if any: where a query about its tenants goes.
    pub async fn owner_of(&self, partition: u32) -> Result<Option<Member>, OwnershipError> {
        let group = &self.inner.config.group;
        let Some(entry) = self.live_entry(&partition_key(group, partition)).await? else {
            return Ok(None);
        };
        let replica = String::from_utf8_lossy(&entry.value).into_owned();
        let Some(address) = self.live_entry(&member_key(group, &replica)).await? else {
            return Ok(None);
        };
        Ok(Some(Member {
            replica,
            address: String::from_utf8_lossy(&address.value).into_owned(),
        }))
    }

    async fn live_entry(&self, key: &str) -> Result<Option<kv::Entry>, OwnershipError> {
        let entry = self
            .inner
            .kv
            .entry(key)
            .await
            .map_err(|e| OwnershipError::Read(e.to_string()))?;
        Ok(entry.filter(|entry| entry.operation == kv::Operation::Put))
    }

    /// One round: be seen, renew up to the fair share, let the rest lapse, claim what is free.
    async fn tick(&self) -> Result<(), OwnershipError> {
        let config = &self.inner.config;
        let kv = &self.inner.kv;
        let me = Bytes::from(config.replica.clone());
        self.announce().await?;
        let members = self.members().await?.len().max(1) as u32;
        let share = config.partitions.div_ceil(members) as usize;

        let mut mine = Vec::new();
        let mut free = Vec::new();
        for partition in 0..config.partitions {
            match self
                .live_entry(&partition_key(&config.group, partition))
                .await?
            {
                Some(entry) if entry.value == me => mine.push((partition, entry.revision)),
                Some(_) => {}
                None => free.push(partition),
            }
        }
        let mut leases = self.inner.leases.lock().await;
        // A lease this replica does not hold locally (it gave it up) is let lapse.
        mine.retain(|(partition, _)| leases.contains_key(partition));
        // Keep the preferred ones up to the share; the others lapse.
        mine.sort_by_key(|(partition, _)| {
            std::cmp::Reverse(preference(&config.replica, *partition))
        });
        let (keep, lapse) = mine.split_at(mine.len().min(share));
        for (partition, _) in lapse {
            leases.remove(partition);
        }
        leases.retain(|partition, _| keep.iter().any(|(kept, _)| kept == partition));
        for &(partition, revision) in keep {
            let key = partition_key(&config.group, partition);
            match kv.update(&key, me.clone(), revision).await {
                Ok(revision) => {
                    leases.insert(partition, (revision, Instant::now()));
                }
                Err(error) => {
                    tracing::warn!(partition, %error, "a partition lease could not be renewed; giving it up");
                    leases.remove(&partition);
                }
            }
        }
        free.sort_by_key(|partition| std::cmp::Reverse(preference(&config.replica, *partition)));
        for partition in free {
            if leases.len() >= share {
                break;
            }
            let key = partition_key(&config.group, partition);
            if let Ok(revision) = kv.create(&key, me.clone()).await {
                leases.insert(partition, (revision, Instant::now()));
            }
        }
        let owned: BTreeSet<u32> = leases.keys().copied().collect();
        drop(leases);
        self.publish(owned);
        Ok(())
    }

    /// Writes this replica's member entry: it is alive, and answers at its address.
    async fn announce(&self) -> Result<(), OwnershipError> {
        let config = &self.inner.config;
        self.inner
            .kv
            .put(
                member_key(&config.group, &config.replica),
                Bytes::from(config.address.clone()),
            )
            .await
            .map_err(|e| OwnershipError::Read(e.to_string()))?;
        Ok(())
    }

    /// Gives up, locally, every lease not renewed for two thirds of a lease: before it can
    /// lapse and be claimed by another replica.
    async fn fence(&self) {
        let limit = self.inner.config.lease * 2 / 3;
        let mut leases = self.inner.leases.lock().await;
        let before = leases.len();
        leases.retain(|_, (_, renewed)| renewed.elapsed() < limit);
        if leases.len() != before {
            tracing::warn!(group = %self.inner.config.group, given_up = before - leases.len(), "partitions given up: their leases could not be renewed in time");
            let owned = leases.keys().copied().collect();
            drop(leases);
            self.publish(owned);
        }
    }

    fn publish(&self, owned: BTreeSet<u32>) {
        let config = &self.inner.config;
        self.inner.owned.send_if_modified(|current| {
            if *current == owned {
                return false;
            }
            tracing::info!(group = %config.group, replica = %config.replica, ?owned, "partitions owned");
            *current = owned;
            true
        });
    }
}

fn member_key(group: &str, replica: &str) -> String {
    format!("{group}.member.{replica}")
}

fn partition_key(group: &str, partition: u32) -> String {
    format!("{group}.partition.{partition}")
}

/// Rendezvous hashing: how much `replica` prefers `partition` (FNV-1a of both names, mixed
/// by murmur3's finalizer so that names differing in one character order partitions apart).
fn preference(replica: &str, partition: u32) -> u32 {
    let mut hash = c2d_proto::partitions::partition_of(&format!("{replica}/{partition}"), u32::MAX);
    hash ^= hash >> 16;
    hash = hash.wrapping_mul(0x85eb_ca6b);
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(0xc2b2_ae35);
    hash ^ (hash >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_kv_keys_only_when_valid() {
        assert!(
            OwnershipConfig::new("analytics", "analytics-0", "x", 16)
                .validate()
                .is_ok()
        );
        assert!(
            OwnershipConfig::new("analytics", "a.b", "x", 16)
                .validate()
                .is_err()
        );
        assert!(
            OwnershipConfig::new("analytics", "a", "x", 0)
                .validate()
                .is_err()
        );
        assert_eq!(partition_key("crm-sync", 3), "crm-sync.partition.3");
    }

    #[test]
    fn replicas_prefer_different_partitions() {
        let first: Vec<u32> = (0..16)
            .filter(|&p| preference("a-0", p) > preference("a-1", p))
            .collect();
        assert!(!first.is_empty() && first.len() < 16, "{first:?}");
    }
}
