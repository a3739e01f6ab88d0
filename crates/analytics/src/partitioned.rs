//! Analytics over several replicas: each holds the tenants of the partitions it owns, and any
//! replica answers for any tenant.
//!
//! With `ANALYTICS_PARTITIONS` set, a replica takes part in the `analytics` group's partition
//! leases (c2d_subscriber::ownership) and keeps one projection per owned partition, read from
//! `CHAT2DESK_PARTITIONED` and saved in a snapshot of its own (`partition-{n}` under the data
//! directory), and shared in NATS for the partition's next owner ([`crate::shared_snapshots`]):
//! a partition that moves is read by its new owner from the further along of the two, and
//! only the events after it are replayed. A query names its tenant; the tenant's partition is
//! computed as nats-server computes it, and the query is answered here when this replica owns
//! the partition, or forwarded once to the owner. Every AnalyticsService call is about one tenant, so no answer needs merging.
//!
//! A partition that moves is replayed by its new owner while that replica serves its other
//! partitions. Until the replay has caught up, the partition's tenants are answered with
//! UNAVAILABLE (and the events left), never with the part of their history read so far: a
//! figure too small would read as a fact, to people and to alert rules alike.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
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

use crate::metrics::SharedSnapshotFailures;
use crate::projection::Projection;
use crate::runner::{
    applying, broadcast_minutes, encoded, load_snapshot, not_saved, save_periodically, write,
};
use crate::shared_snapshots::{SharedSnapshotError, SharedSnapshots, Standing};
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
    /// Where each partition's snapshot is shared with its next owner.
    pub shared: SharedSnapshots,
    /// How often a partition's snapshot is shared while it is read; a dead owner's next one
    /// replays at most this much of the log again.
    pub shared_interval: Duration,
    /// Where the shared snapshots' failures are counted.
    pub failures: SharedSnapshotFailures,
    /// The id of the rebuild this replica takes part in (Unix seconds), or 0 when it is not
    /// rebuilding: the origin of a partition it reads from the start, and the oldest origin
    /// of a snapshot it takes up.
    pub rebuilt_at: u64,
    pub minutes: broadcast::Sender<MinuteUpdate>,
    /// The replica's metrics and readiness, which every partition's reader reports to.
    pub progress: Arc<ReplicaProgress>,
    /// The tenants' calendars, which every partition's projection counts business time by.
    pub calendars: Calendars,
}

impl PartitionReader {
    /// Reads `partition` into its own projection until `stop`: from its snapshot, this
    /// replica's own or the shared one, whichever is further along, then the log after it;
    /// saved and shared periodically, and once more when it stops.
    pub async fn read(self, partition: u32, stop: PartitionStop) {
        let store = SnapshotStore::partition(&self.data_dir, partition);
        let mut projection = match load_snapshot(&store) {
            Ok(projection) => projection,
            Err(error) => {
                tracing::error!(partition, %error, "the partition's snapshot cannot be read; starting from the shared one, or the partition's start");
                Projection::default()
            }
        };
        // A snapshot from before the rebuild is as good as none (one this rebuild wrote, when
        // the partition comes back, is kept).
        if projection.origin < self.rebuilt_at {
            projection = Projection::default();
            projection.origin = self.rebuilt_at;
        }
        projection.use_calendars(self.calendars.clone());
        let projection = Arc::new(RwLock::new(projection));
        // Replaying from here on, before any query can find the projection.
        self.progress.claimed(partition);
        self.partitions.hold(partition, Arc::clone(&projection));
        let (stop_background, background_stop) = watch::channel(false);
        let mut background = vec![
            tokio::spawn(save_periodically(
                store.clone(),
                Arc::clone(&projection),
                self.snapshot_interval,
                background_stop.clone(),
            )),
            tokio::spawn(share_periodically(
                self.shared.clone(),
                partition,
                Arc::clone(&projection),
                self.shared_interval,
                self.failures.clone(),
                background_stop.clone(),
            )),
            tokio::spawn(broadcast_minutes(
                Arc::clone(&projection),
                self.minutes.clone(),
                background_stop.clone(),
            )),
        ];
        // One replica at a time clears what uploads cut short left in the bucket.
        if partition == 0 {
            background.push(tokio::spawn(sweep_periodically(
                self.shared.clone(),
                self.failures.clone(),
                background_stop.clone(),
            )));
        }
        let config = SubscriberConfig::new(format!("analytics-partition-{partition}"))
            .position_kept_by_handler();
        // The position is known once the shared snapshot has been looked at: until then the
        // reader asks again, for as long as the partition is owned.
        let looked_at_shared = &AtomicBool::new(false);
        let (shared, calendars, current) = (&self.shared, &self.calendars, &projection);
        let failures = &self.failures;
        let position = move || async move {
            if !looked_at_shared.load(Ordering::Acquire) {
                if let Err(error) =
                    take_shared_if_further(shared, partition, current, calendars).await
                {
                    tracing::warn!(partition, %error);
                    failures.count("read");
                    return None;
                }
                looked_at_shared.store(true, Ordering::Release);
            }
            Some(
                current
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .last_sequence,
            )
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
        // Encoded once, for the disk and for the partition's next owner.
        let shared = match encoded(&projection) {
            Ok((standing, bytes)) => {
                write(&store, standing.sequence, &bytes);
                share_encoded(&self.shared, partition, standing, &bytes).await
            }
            Err(error) => {
                not_saved(&error);
                Err(SharedSnapshotError::write(partition, &error))
            }
        };
        if let Err(error) = shared {
            tracing::warn!(%error);
            self.failures.count("write");
        }
        self.partitions.let_go(partition);
    }
}

/// Replaces `projection` with `partition`'s shared snapshot when that is further along.
async fn take_shared_if_further(
    shared: &SharedSnapshots,
    partition: u32,
    projection: &RwLock<Projection>,
    calendars: &Calendars,
) -> Result<(), SharedSnapshotError> {
    let own = Standing::of(&projection.read().unwrap_or_else(PoisonError::into_inner));
    if shared
        .standing(partition)
        .await?
        .is_none_or(|held| held <= own)
    {
        return Ok(());
    }
    let Some(mut loaded) = shared.load(partition).await? else {
        return Ok(());
    };
    let further = Standing::of(&loaded);
    if further <= own {
        return Ok(());
    }
    loaded.use_calendars(calendars.clone());
    *projection.write().unwrap_or_else(PoisonError::into_inner) = loaded;
    tracing::info!(
        partition,
        sequence = further.sequence,
        own_sequence = own.sequence,
        "starting from the partition's shared snapshot, further along than this replica's own"
    );
    Ok(())
}

/// Shares `projection`'s snapshot unless the bucket holds one at least as far along; returns
/// how far along the bucket's is now.
async fn share(
    shared: &SharedSnapshots,
    partition: u32,
    projection: &Arc<RwLock<Projection>>,
) -> Result<Standing, SharedSnapshotError> {
    let encoding = Arc::clone(projection);
    let (standing, bytes) = tokio::task::spawn_blocking(move || encoded(&encoding))
        .await
        .map_err(|error| SharedSnapshotError::write(partition, &error))?
        .map_err(|error| SharedSnapshotError::write(partition, &error))?;
    share_encoded(shared, partition, standing, &bytes).await
}

/// Shares `bytes`, the snapshot of `partition` at `standing`, unless the bucket holds one at
/// least as far along; returns how far along the bucket's is now.
async fn share_encoded(
    shared: &SharedSnapshots,
    partition: u32,
    standing: Standing,
    bytes: &[u8],
) -> Result<Standing, SharedSnapshotError> {
    if shared.put(partition, standing, bytes).await? {
        tracing::debug!(
            partition,
            sequence = standing.sequence,
            size = bytes.len(),
            "snapshot shared"
        );
    }
    Ok(standing)
}

/// Shares the partition's snapshot every `interval` while it has moved on.
async fn share_periodically(
    shared: SharedSnapshots,
    partition: u32,
    projection: Arc<RwLock<Projection>>,
    interval: Duration,
    failures: SharedSnapshotFailures,
    stop: watch::Receiver<bool>,
) {
    let mut shared_at: Option<Standing> = None;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            () = c2d_telemetry::shutdown::stopped(stop.clone()) => return,
            _ = ticks.tick() => {}
        }
        let now = Standing::of(&projection.read().unwrap_or_else(PoisonError::into_inner));
        if shared_at == Some(now) {
            continue;
        }
        match share(&shared, partition, &projection).await {
            Ok(standing) => shared_at = Some(standing),
            Err(error) => {
                tracing::warn!(%error);
                failures.count("write");
            }
        }
    }
}

/// How often the bucket is swept; an upload still under way after this long is taken for dead.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Sweeps the shared snapshots' bucket every [`SWEEP_EVERY`], from now on.
async fn sweep_periodically(
    shared: SharedSnapshots,
    failures: SharedSnapshotFailures,
    stop: watch::Receiver<bool>,
) {
    let mut suspects = HashSet::new();
    let mut ticks = tokio::time::interval(SWEEP_EVERY);
    // After a stall, the next sweep an hour later, never two at once.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = c2d_telemetry::shutdown::stopped(stop.clone()) => return,
            _ = ticks.tick() => {}
        }
        match shared.sweep(&suspects, SWEEP_EVERY).await {
            Ok(left) => suspects = left,
            Err(error) => {
                tracing::warn!(%error);
                failures.count("sweep");
            }
        }
    }
}
