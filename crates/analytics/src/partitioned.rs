//! Analytics over several replicas: each holds the tenants of the partitions it owns, and any
//! replica answers for any tenant.
//!
//! With `ANALYTICS_PARTITIONS` set, a replica takes part in the `analytics` group's partition
//! leases (c2d_subscriber::ownership) and keeps one projection per owned partition, read from
//! `CHAT2DESK_PARTITIONED` and saved in a snapshot of its own (`partition-{n}` under the data
//! directory), so a partition that moves is replayed alone, from its own start, by its new
//! owner. A query names its tenant; the tenant's partition is computed as nats-server computes
//! it, and the query is answered here when this replica owns the partition, or forwarded once
//! to the owner. Every AnalyticsService call is about one tenant, so no answer needs merging.
//!
//! A partition that moves is replayed by its new owner while that replica serves its other
//! partitions. Until the replay has caught up, the partition's tenants are answered with
//! UNAVAILABLE (and the events left), never with the part of their history read so far: a
//! figure too small would read as a fact, to people and to alert rules alike.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use c2d_calendar::Calendars;
use c2d_proto::analytics::AnalyticsServiceClient;
use c2d_proto::analytics::v1::MinuteUpdate;
use c2d_proto::partitions::partition_of;
use c2d_subscriber::SubscriberConfig;
use c2d_subscriber::ownership::Ownership;
use c2d_subscriber::partition_readers::{PartitionStop, follow_partition};
use c2d_subscriber::replica_progress::ReplicaProgress;
use tokio::sync::{broadcast, watch};
use tonic::Status;
use tonic::transport::Channel;

use crate::projection::Projection;
use crate::runner::{applying, broadcast_minutes, load_snapshot, save, save_periodically};
use crate::snapshot::SnapshotStore;

/// The request header of a query forwarded by another replica: not forwarded again.
pub const FORWARDED: &str = "c2d-forwarded";

/// Where a tenant's figures are held.
pub enum Located {
    /// In this replica.
    Here(Arc<RwLock<Projection>>),
    /// In the replica that answers at this address.
    There(AnalyticsServiceClient<Channel>),
}

/// The projections this replica answers from.
#[derive(Clone)]
pub enum Projections {
    /// Every tenant, from the whole log.
    Whole(Arc<RwLock<Projection>>),
    /// The tenants of the partitions this replica owns.
    Partitioned(Arc<Partitions>),
}

impl Projections {
    /// Where `tenant`'s figures are; `forwarded` when another replica sent the query here, which
    /// then must be the owner.
    pub async fn locate(&self, tenant: &str, forwarded: bool) -> Result<Located, Status> {
        match self {
            Projections::Whole(projection) => Ok(Located::Here(Arc::clone(projection))),
            Projections::Partitioned(partitions) => partitions.locate(tenant, forwarded).await,
        }
    }
}

/// This replica's partitions: whose they are, and the projections of those it owns.
pub struct Partitions {
    count: u32,
    ownership: Ownership,
    owned: RwLock<BTreeMap<u32, Arc<RwLock<Projection>>>>,
    /// The partition readers' progress: whether an owned partition has been replayed yet.
    progress: Arc<ReplicaProgress>,
    /// One client per other replica, made on first use.
    clients: Mutex<HashMap<String, AnalyticsServiceClient<Channel>>>,
}

impl Partitions {
    pub fn new(count: u32, ownership: Ownership, progress: Arc<ReplicaProgress>) -> Partitions {
        Partitions {
            count,
            ownership,
            owned: RwLock::default(),
            progress,
            clients: Mutex::default(),
        }
    }

    /// The group's leases, for the readers that follow them.
    pub fn ownership(&self) -> Ownership {
        self.ownership.clone()
    }

    async fn locate(&self, tenant: &str, forwarded: bool) -> Result<Located, Status> {
        let partition = partition_of(tenant, self.count);
        if let Some(projection) = self.projection(partition) {
            if let Some(left) = self.progress.replaying(partition) {
                return Err(Status::unavailable(format!(
                    "this replica took partition {partition} (tenant {tenant}) and is still reading its history ({left} events left); ask again in a few seconds"
                )));
            }
            return Ok(Located::Here(projection));
        }
        if forwarded {
            return Err(Status::unavailable(format!(
                "partition {partition} (tenant {tenant}) is moving between replicas; ask again in a few seconds"
            )));
        }
        let owner = self
            .ownership
            .owner_of(partition)
            .await
            .map_err(|error| Status::unavailable(error.to_string()))?
            .ok_or_else(|| {
                Status::unavailable(format!(
                    "no replica owns partition {partition} (tenant {tenant}) yet; ask again in a few seconds"
                ))
            })?;
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let client = match clients.get(&owner.address) {
            Some(client) => client.clone(),
            None => {
                let endpoint = Channel::from_shared(format!("http://{}", owner.address))
                    .map_err(|error| {
                        Status::internal(format!(
                            "replica {} advertises an unusable address {}: {error}; fix its ANALYTICS_ADVERTISE_ADDR",
                            owner.replica, owner.address
                        ))
                    })?;
                let client = AnalyticsServiceClient::new(
                    endpoint
                        .connect_timeout(Duration::from_secs(2))
                        .connect_lazy(),
                );
                clients.insert(owner.address.clone(), client.clone());
                client
            }
        };
        Ok(Located::There(client))
    }

    fn projection(&self, partition: u32) -> Option<Arc<RwLock<Projection>>> {
        let owned = self.owned.read().unwrap_or_else(PoisonError::into_inner);
        owned.get(&partition).cloned()
    }

    fn hold(&self, partition: u32, projection: Arc<RwLock<Projection>>) {
        let mut owned = self.owned.write().unwrap_or_else(PoisonError::into_inner);
        owned.insert(partition, projection);
    }

    fn let_go(&self, partition: u32) {
        let mut owned = self.owned.write().unwrap_or_else(PoisonError::into_inner);
        owned.remove(&partition);
    }
}

/// What reading one partition needs, shared by every partition's reader.
#[derive(Clone)]
pub struct PartitionReader {
    pub partitions: Arc<Partitions>,
    pub client: async_nats::Client,
    pub data_dir: std::path::PathBuf,
    pub snapshot_interval: Duration,
    pub minutes: broadcast::Sender<MinuteUpdate>,
    /// The replica's metrics and readiness, which every partition's reader reports to.
    pub progress: Arc<ReplicaProgress>,
    /// The tenants' calendars, which every partition's projection counts business time by.
    pub calendars: Calendars,
}

impl PartitionReader {
    /// Reads `partition` into its own projection until `stop`: its snapshot first, then the
    /// log after it; saved periodically and once more when it stops.
    pub async fn read(self, partition: u32, stop: PartitionStop) {
        let store = SnapshotStore::partition(&self.data_dir, partition);
        let mut projection = match load_snapshot(&store) {
            Ok(projection) => projection,
            Err(error) => {
                tracing::error!(partition, %error, "the partition's snapshot cannot be read; replaying the partition from its start");
                Projection::default()
            }
        };
        projection.use_calendars(self.calendars.clone());
        let projection = Arc::new(RwLock::new(projection));
        // Replaying from here on, before any query can find the projection.
        self.progress.claimed(partition);
        self.partitions.hold(partition, Arc::clone(&projection));
        let (stop_background, background_stop) = watch::channel(false);
        let background = [
            tokio::spawn(save_periodically(
                store.clone(),
                Arc::clone(&projection),
                self.snapshot_interval,
                background_stop.clone(),
            )),
            tokio::spawn(broadcast_minutes(
                Arc::clone(&projection),
                self.minutes.clone(),
                background_stop,
            )),
        ];
        let config = SubscriberConfig::new(format!("analytics-partition-{partition}"))
            .position_kept_by_handler();
        let position = || {
            let last = projection
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .last_sequence;
            std::future::ready(Some(last))
        };
        follow_partition(
            self.client.clone(),
            partition,
            config,
            position,
            applying(Arc::clone(&projection)),
            Arc::clone(&self.progress),
            stop,
        )
        .await;
        let _ = stop_background.send(true);
        for task in background {
            let _ = task.await;
        }
        save(&store, &projection);
        self.partitions.let_go(partition);
    }
}
