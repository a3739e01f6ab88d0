//! The running service: snapshot in, catch up from the log, serve gRPC, snapshot out.
//!
//! On start the last snapshot is loaded and the log is read from the event after
//! the snapshot's sequence, so a restart replays only what the snapshot lacks; with
//! `rebuild` the snapshot is dropped and the whole stream is replayed. While running, the
//! projection is saved every `snapshot_interval`, live minute totals are broadcast once a
//! second, and progress is logged every ten seconds; at shutdown the events in hand are
//! finished and a last snapshot is written.

use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use c2d_proto::analytics::AnalyticsServiceServer;
use c2d_proto::analytics::v1::MinuteUpdate;
use c2d_proto::server::Serving;
use c2d_subscriber::{
    Delivery, Handler, HandlerError, StartAt, SubscribeError, Subscriber, SubscriberConfig,
};
use c2d_telemetry::shutdown::{stop_flag, stopped};
use prost_types::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

use c2d_calendar::{CalendarStore, Calendars, StoreError};
use c2d_subscriber::ownership::{Ownership, OwnershipConfig, OwnershipError};
use c2d_subscriber::partition_readers::read_owned_partitions;
use c2d_subscriber::replica_progress::ReplicaProgress;

use crate::aggregates::Measure;
use crate::cfg::Config;
use crate::partitioned::{PartitionReader, Partitions, Projections};
use crate::projection::{Projection, now_seconds};
use crate::service::AnalyticsGrpc;
use crate::shared_snapshots::{SharedSnapshotError, SharedSnapshots, Standing};
use crate::snapshot::{SnapshotError, SnapshotStore};

/// The subscriber's name in logs and dead letters.
const SUBSCRIBER: &str = "analytics";
/// How often the log says how far reading has come (when it has moved).
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Why c2d-analytics could not run.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Connect(#[from] c2d_subscriber::ConnectError),
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
    #[error(transparent)]
    Serve(#[from] c2d_proto::server::ServeError),
    #[error(transparent)]
    Metrics(#[from] c2d_telemetry::startup::StartupError),
    #[error(transparent)]
    Ownership(#[from] OwnershipError),
    #[error(transparent)]
    Calendars(#[from] StoreError),
    #[error(transparent)]
    SharedSnapshots(#[from] SharedSnapshotError),
    #[error(
        "--rebuild={0} is not a rebuild id: give the Unix time in seconds when the rebuild began (`date +%s`), the same to every replica"
    )]
    RebuildId(String),
    #[error(
        "with ANALYTICS_PARTITIONS the replicas rebuild together: start every one of them with the same --rebuild=ID, the Unix time in seconds when the rebuild began (`date +%s`)"
    )]
    RebuildWithoutId,
}

/// What the command line asked of the snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuild {
    /// Go on from them.
    No,
    /// Drop them and replay the log, this process alone (`--rebuild`).
    Alone,
    /// As `Alone`, as one of the replicas that rebuild together under this id, a Unix time in
    /// seconds that every one of them is given (`--rebuild=ID`): a partition snapshot of this
    /// rebuild, shared by another replica, is taken up, and one from before it never is.
    Together(u64),
}

impl Rebuild {
    /// `--rebuild` as given: bare, or with the id the replicas share.
    pub fn from_flag(value: Option<&str>) -> Result<Rebuild, AnalyticsError> {
        let Some(value) = value else {
            return Ok(Rebuild::Alone);
        };
        let now = now_seconds() as u64;
        match value.parse::<u64>() {
            // After 2001 and at most a day ahead: a Unix time in seconds, not milliseconds.
            Ok(id) if id > 1_000_000_000 && id <= now + 86_400 => Ok(Rebuild::Together(id)),
            _ => Err(AnalyticsError::RebuildId(value.to_owned())),
        }
    }

    /// The origin of a projection this rebuild reads from the start: 0 without one.
    fn origin(self) -> u64 {
        match self {
            Rebuild::No => 0,
            Rebuild::Alone => now_seconds().max(1) as u64,
            Rebuild::Together(id) => id,
        }
    }
}

/// c2d-analytics, ready to run.
pub struct Analytics {
    config: Config,
    /// The origin of a projection read from the start (Unix seconds), 0 without a rebuild.
    rebuilt_at: u64,
    store: SnapshotStore,
    projection: Arc<RwLock<Projection>>,
    minutes: broadcast::Sender<MinuteUpdate>,
}

impl Analytics {
    /// Loads the last snapshot, or with a rebuild deletes it to replay the whole stream.
    pub fn open(config: Config, rebuild: Rebuild) -> Result<Analytics, AnalyticsError> {
        if rebuild == Rebuild::Alone && config.partitions > 0 {
            return Err(AnalyticsError::RebuildWithoutId);
        }
        let store = SnapshotStore::new(&config.data_dir);
        let rebuilt_at = rebuild.origin();
        if rebuild != Rebuild::No {
            store.delete()?;
            // A replica's partitions are rebuilt too, each from its start.
            for partition in SnapshotStore::partitions(&config.data_dir)? {
                partition.delete()?;
            }
            tracing::info!("rebuilding: the whole stream will be replayed");
        }
        let projection = load_snapshot(&store)?;
        if projection.last_sequence > 0 {
            tracing::info!(
                sequence = projection.last_sequence,
                tenants = projection.tenants.len(),
                path = %store.path().display(),
                "snapshot loaded"
            );
        }
        let (minutes, _) = broadcast::channel(1024);
        Ok(Analytics {
            config,
            rebuilt_at,
            store,
            projection: Arc::new(RwLock::new(projection)),
            minutes,
        })
    }

    /// The projection the service answers from (shared with tests and benchmarks).
    pub fn projection(&self) -> Arc<RwLock<Projection>> {
        Arc::clone(&self.projection)
    }

    /// Serves gRPC on `listener` and follows the event log until `shutdown` completes.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AnalyticsError> {
        let stop = stop_flag(shutdown);

        let client = c2d_subscriber::connect("c2d-analytics", &self.config.nats_url).await?;
        let (calendar_store, calendars) = open_calendars(&client).await?;
        if self.config.partitions > 0 {
            return self
                .run_partitioned(client, listener, (calendar_store, calendars), stop)
                .await;
        }
        self.projection
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .use_calendars(calendars.clone());
        // The projection keeps its position (the snapshot's sequence): every replica reads the
        // whole log for itself, in order, with no consumer state on the server.
        let after = read(&self.projection).last_sequence;
        let start_at = if after == 0 {
            StartAt::Beginning
        } else {
            StartAt::Sequence(after + 1)
        };
        let config = SubscriberConfig::new(SUBSCRIBER)
            .start_at(start_at)
            .position_kept_by_handler();
        let subscriber = Subscriber::open(client, config).await?;
        tracing::info!(?start_at, "following the event log");

        let stats = subscriber.stats();
        let (registry, grpc_metrics, _) = crate::metrics::registry(stats.clone());
        c2d_telemetry::metrics::spawn(
            self.config.metrics_addr,
            "ANALYTICS_METRICS_ADDR",
            registry,
            stopped(stop.clone()),
        )
        .await?;
        // Queries are answered from the projection: not before it has caught up with the log.
        let serving = Serving::default()
            .ready(async move { stats.caught_up().await })
            .metrics(grpc_metrics);
        let projections = Projections::Whole(self.projection());
        let service = AnalyticsGrpc::new(projections, self.minutes.clone(), stop.clone())
            .with_calendars(calendar_store, calendars);
        let grpc = tokio::spawn(c2d_proto::server::serve(
            listener,
            AnalyticsServiceServer::new(service),
            serving,
            stopped(stop.clone()),
        ));
        let background = [
            tokio::spawn(save_periodically(
                self.store.clone(),
                self.projection(),
                self.config.snapshot_interval,
                stop.clone(),
            )),
            tokio::spawn(broadcast_minutes(
                self.projection(),
                self.minutes.clone(),
                stop.clone(),
            )),
            tokio::spawn(log_progress(self.projection(), stop.clone())),
        ];

        let consumed = subscriber
            .run(applying(self.projection()), stopped(stop.clone()))
            .await;

        for task in background {
            let _ = task.await;
        }
        save(&self.store, &self.projection);
        // Calls in flight get a moment to finish; idle client connections do not hold the stop.
        let served = c2d_proto::server::drain(grpc).await;
        consumed?;
        Ok(served?)
    }
}

impl Analytics {
    /// As [`Analytics::run`], holding only the partitions this replica owns, and answering for
    /// the other tenants through their owners (docs/scaling.md).
    async fn run_partitioned(
        self,
        client: async_nats::Client,
        listener: TcpListener,
        (calendar_store, calendars): (CalendarStore, Calendars),
        stop: watch::Receiver<bool>,
    ) -> Result<(), AnalyticsError> {
        let config = &self.config;
        let mut leases = OwnershipConfig::new(
            SUBSCRIBER,
            &config.replica,
            &config.advertise_addr,
            config.partitions,
        );
        leases.lease = config.lease;
        // The bucket is kept as the log is: with as many replicas (when this replica is the
        // first to need it), and opened before any partition is claimed.
        let jetstream = async_nats::jetstream::new(client.clone());
        let replicas = c2d_subscriber::replicas_of(&jetstream, c2d_proto::events::STREAM)
            .await
            .max(
                c2d_subscriber::replicas_of(&jetstream, c2d_proto::partitions::PARTITIONED_STREAM)
                    .await,
            );
        let shared = SharedSnapshots::open(&client, replicas).await?;
        let ownership = Ownership::join(client.clone(), leases).await?;
        // The partition readers together are the consumer reported, and the replica is ready
        // once every partition it owns has caught up; a partition claimed later is answered
        // for once it has.
        let progress = Arc::new(ReplicaProgress::default());
        let partitions = Arc::new(Partitions::new(
            config.partitions,
            ownership,
            Arc::clone(&progress),
        ));
        tracing::info!(partitions = config.partitions, replica = %config.replica, address = %config.advertise_addr, "sharing the partitions with the other replicas");
        let (registry, grpc_metrics, failures) = crate::metrics::registry(progress.clone());
        c2d_telemetry::metrics::spawn(
            config.metrics_addr,
            "ANALYTICS_METRICS_ADDR",
            registry,
            stopped(stop.clone()),
        )
        .await?;
        let projections = Projections::Partitioned(Arc::clone(&partitions));
        let service = AnalyticsGrpc::new(projections, self.minutes.clone(), stop.clone())
            .with_calendars(calendar_store, calendars.clone());
        let grpc = tokio::spawn(c2d_proto::server::serve(
            listener,
            AnalyticsServiceServer::new(service),
            Serving::default().metrics(grpc_metrics).ready({
                let progress = Arc::clone(&progress);
                async move { progress.caught_up().await }
            }),
            stopped(stop.clone()),
        ));
        let reader = PartitionReader {
            progress,
            calendars,
            partitions: Arc::clone(&partitions),
            client,
            data_dir: config.data_dir.clone(),
            snapshot_interval: config.snapshot_interval,
            shared,
            shared_interval: config.shared_snapshot_interval,
            failures,
            rebuilt_at: self.rebuilt_at,
            minutes: self.minutes.clone(),
        };
        let logging = tokio::spawn({
            let progress = Arc::clone(&reader.progress);
            let stop = stopped(stop.clone());
            async move { progress.log_every(PROGRESS_EVERY, stop).await }
        });
        read_owned_partitions(
            partitions.ownership(),
            stopped(stop.clone()),
            move |partition, stop| reader.clone().read(partition, stop),
        )
        .await;
        let _ = logging.await;
        Ok(c2d_proto::server::drain(grpc).await?)
    }
}

/// The tenants' calendars (docs/business-hours.md): the bucket, made with as many replicas as
/// the log when this is the first service to need it, and this process's live view of it.
async fn open_calendars(
    client: &async_nats::Client,
) -> Result<(CalendarStore, Calendars), StoreError> {
    let jetstream = async_nats::jetstream::new(client.clone());
    let replicas = c2d_subscriber::replicas_of(&jetstream, c2d_proto::events::STREAM).await;
    let store = CalendarStore::open(client.clone(), replicas).await?;
    let calendars = store.watch().await?;
    Ok((store, calendars))
}

/// The subscriber's handler: each event folded into `projection`, under its write lock (in
/// the returned future, where the subscriber catches a panic and dead-letters the event).
pub(crate) fn applying(projection: Arc<RwLock<Projection>>) -> impl Handler + Clone {
    move |delivery: Delivery| {
        let projection = Arc::clone(&projection);
        async move {
            projection
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .apply(delivery.stream_sequence, &delivery.event);
            Ok::<(), HandlerError>(())
        }
    }
}

/// The projection a snapshot holds, or an empty one. A snapshot is a cache of the log: one this
/// version cannot read is deleted, and rebuilt from the log.
pub(crate) fn load_snapshot(store: &SnapshotStore) -> Result<Projection, SnapshotError> {
    match store.load() {
        Ok(projection) => Ok(projection.unwrap_or_default()),
        Err(SnapshotError::Format { path }) => {
            tracing::warn!(path = %path.display(), "the snapshot is from another version; rebuilding from the log");
            store.delete()?;
            Ok(Projection::default())
        }
        Err(error) => Err(error),
    }
}

fn read(projection: &RwLock<Projection>) -> std::sync::RwLockReadGuard<'_, Projection> {
    projection.read().unwrap_or_else(PoisonError::into_inner)
}

/// The projection's snapshot, encoded under its read lock (quick; the slow write comes after),
/// and how far along it is.
pub(crate) fn encoded(
    projection: &RwLock<Projection>,
) -> Result<(Standing, Vec<u8>), SnapshotError> {
    let projection = read(projection);
    SnapshotStore::encode(&projection).map(|bytes| (Standing::of(&projection), bytes))
}

/// Saves the projection: encoded under the read lock, written to disk after.
pub(crate) fn save(store: &SnapshotStore, projection: &RwLock<Projection>) -> Option<u64> {
    match encoded(projection) {
        Ok((standing, bytes)) => write(store, standing.sequence, &bytes),
        Err(error) => {
            not_saved(&error);
            None
        }
    }
}

/// Writes the encoded snapshot of the projection at `sequence` to disk; the sequence once it
/// is there.
pub(crate) fn write(store: &SnapshotStore, sequence: u64, bytes: &[u8]) -> Option<u64> {
    match store.write(bytes) {
        Ok(size) => {
            tracing::debug!(sequence, size, "snapshot saved");
            Some(sequence)
        }
        Err(error) => {
            not_saved(&error);
            None
        }
    }
}

pub(crate) fn not_saved(error: &SnapshotError) {
    tracing::error!(%error, "snapshot not saved; a restart will replay more of the stream");
}

pub(crate) async fn save_periodically(
    store: SnapshotStore,
    projection: Arc<RwLock<Projection>>,
    interval: Duration,
    stop: watch::Receiver<bool>,
) {
    let mut saved = read(&projection).last_sequence;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            () = stopped(stop.clone()) => return,
            _ = ticks.tick() => {}
        }
        if read(&projection).last_sequence != saved {
            projection
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .prune();
            let (store, projection) = (store.clone(), Arc::clone(&projection));
            if let Ok(Some(sequence)) =
                tokio::task::spawn_blocking(move || save(&store, &projection)).await
            {
                saved = sequence;
            }
        }
    }
}

pub(crate) async fn broadcast_minutes(
    projection: Arc<RwLock<Projection>>,
    minutes: broadcast::Sender<MinuteUpdate>,
    stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = stopped(stop.clone()) => return,
            _ = ticks.tick() => {}
        }
        let updates: Vec<MinuteUpdate> = {
            let mut projection = projection.write().unwrap_or_else(PoisonError::into_inner);
            let changed = projection.take_changed_minutes();
            changed
                .into_iter()
                .filter_map(|(tenant, minute)| {
                    let totals = projection.tenants.get(&tenant)?.aggregates.minute(minute);
                    let total = |m| totals.get(&m).copied().unwrap_or(0);
                    Some(MinuteUpdate {
                        minute: Some(Timestamp {
                            seconds: minute,
                            nanos: 0,
                        }),
                        inbound_messages: total(Measure::Inbound),
                        outbound_messages: total(Measure::Outbound),
                        delivery_failures: total(Measure::DeliveryFailures),
                        events: total(Measure::Events),
                        tenant,
                    })
                })
                .collect()
        };
        for update in updates {
            // No watcher is not an error.
            let _ = minutes.send(update);
        }
    }
}

async fn log_progress(projection: Arc<RwLock<Projection>>, stop: watch::Receiver<bool>) {
    let mut last = read(&projection).last_sequence;
    let mut ticks = tokio::time::interval(PROGRESS_EVERY);
    loop {
        tokio::select! {
            () = stopped(stop.clone()) => return,
            _ = ticks.tick() => {}
        }
        let now = read(&projection).last_sequence;
        if now != last {
            tracing::info!(
                sequence = now,
                applied = now - last,
                "events applied in the last 10 s"
            );
            last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_of_another_version_means_a_rebuild_not_a_crash() {
        let dir = std::env::temp_dir().join(format!("c2d-analytics-open-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SnapshotStore::new(&dir);
        std::fs::write(store.path(), b"C2DANL01 from an older version").unwrap();
        let dir_text = dir.display().to_string();
        let config =
            Config::from_lookup(|name| (name == "ANALYTICS_DATA_DIR").then(|| dir_text.clone()))
                .unwrap();
        let analytics = Analytics::open(config, Rebuild::No).expect("opens");
        assert_eq!(
            read(&analytics.projection).last_sequence,
            0,
            "starts over from the log"
        );
        assert!(!store.path().exists(), "the unreadable snapshot is gone");
        let _ = std::fs::remove_dir_all(dir);
    }
}
