//! The running service: follow the event log into the store, deliver the connectors' queues,
//! serve CrmService.
//!
//! The projection keeps its own position (the last stream sequence applied, in the store), so
//! the log is read by an ordered consumer from the event after it: a restart, a crash or a
//! redelivery applies nothing twice. Each event is one write transaction: the directory
//! change, the changes queued for connectors and the new position commit together, and the
//! connector workers are woken after the commit.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use c2d_proto::crm::CrmServiceServer;
use c2d_proto::events::STREAM;
use c2d_subscriber::log_position;
use c2d_subscriber::metrics::ConsumerProgress as _;
use c2d_subscriber::ownership::{Ownership, OwnershipConfig, OwnershipError};
use c2d_subscriber::partition_readers::{PartitionStop, follow_partition, read_owned_partitions};
use c2d_subscriber::replica_progress::ReplicaProgress;
use c2d_subscriber::{
    Delivery, Handler, HandlerError, StartAt, SubscribeError, Subscriber, SubscriberConfig,
};
use c2d_telemetry::shutdown::{stop_flag, stopped};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::cfg::Config;
use crate::change;
use crate::connector::Connector;
use crate::error::CrmError;
use crate::metrics::{ConnectorLabels, Metrics};
use crate::projection::{self, Applied};
use crate::service::CrmGrpc;
use crate::store::{Store, StoreError};
use crate::worker;

/// The subscriber's name in logs and dead letters.
const SUBSCRIBER: &str = "crm-sync";

/// The hook types the directory is built from; the others pass by without a write. (The
/// consumer reads the whole stream rather than asking NATS for these subjects: one filter per
/// hook type needs NATS 2.10, and an unfiltered ordered read is the cheapest for the server.)
pub const HOOK_TYPES: &[&str] = &[
    "inbox",
    "outbox",
    "new_client",
    "client_updated",
    "add_tag_to_client",
    "delete_tag_from_client",
    "add_tag_to_request",
    "delete_tag_from_request",
    "close_dialog",
    "close_request",
    "dialog_transferred",
];

/// Why c2d-crm-sync could not run.
#[derive(Debug, thiserror::Error)]
pub enum CrmSyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Connect(#[from] c2d_subscriber::ConnectError),
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
    #[error(transparent)]
    Ownership(#[from] OwnershipError),
    #[error(transparent)]
    Serve(#[from] c2d_proto::server::ServeError),
    #[error(
        "cannot listen on CRM_METRICS_ADDR={addr}: {source}; is another process using it? (off disables metrics)"
    )]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// What the event applier, the workers and the gRPC service share.
pub struct Shared {
    pub store: Store,
    pub connectors: Vec<Arc<Connector>>,
    pub metrics: Arc<Metrics>,
    wakers: HashMap<String, Arc<Notify>>,
    jetstream: Option<async_nats::jetstream::Context>,
    /// Events stored after the last one handled (the consumer's pending count).
    pending: AtomicU64,
    /// The last stream sequence handled, whether it changed the directory or not.
    handled: AtomicU64,
    /// A replica's partition readers (`CRM_PARTITIONS`), whose lags add up to the replica's.
    replica: Option<Arc<ReplicaProgress>>,
    /// `CRM_PARTITIONS`: 0 when this process reads the whole log.
    partitions: u32,
}

impl Shared {
    /// The names of the connectors that take `tenant`'s changes.
    pub fn connectors_for(&self, tenant: &str) -> Vec<String> {
        self.connectors
            .iter()
            .filter(|c| c.serves(tenant))
            .map(|c| c.name.clone())
            .collect()
    }

    /// Changes `connector` delivered since this process started.
    pub fn delivered(&self, connector: &str) -> u64 {
        self.metrics
            .deliveries
            .get_or_create(&crate::metrics::DeliveryLabels {
                connector: connector.to_owned(),
                outcome: "delivered",
            })
            .get()
    }

    /// Wakes every connector worker: changes were queued.
    pub fn wake_connectors(&self) {
        for wake in self.wakers.values() {
            wake.notify_one();
        }
    }

    /// Events stored but not handled yet (by this replica, in the partitions it owns).
    pub fn lag(&self) -> u64 {
        match &self.replica {
            Some(replica) => replica.pending(),
            None => self.pending.load(Ordering::Relaxed),
        }
    }

    /// Events not in the directory yet, when it is applied through `applied_sequence` and the
    /// log ends at `stream_last_sequence`: the consumer's count for one process; for replicas
    /// the rest of the log, since each replica's own lag covers only its partitions.
    pub fn directory_lag(&self, applied_sequence: u64, stream_last_sequence: u64) -> u64 {
        if self.partitions > 0 {
            stream_last_sequence.saturating_sub(applied_sequence)
        } else {
            self.lag()
        }
    }

    /// The last `CHAT2DESK` sequence handled: everything up to it is in the directory.
    /// Replicas work it out from every partition's position in the shared directory, so any
    /// of them gives the same answer.
    pub async fn applied_sequence(&self) -> Result<u64, CrmError> {
        match &self.jetstream {
            Some(jetstream) if self.partitions > 0 => {
                let handled = projection::partition_positions(&self.store, self.partitions).await?;
                // Events of other hook types move no partition's position.
                let applies = |subject: &str| {
                    let hook_type = subject.rsplit('.').next().unwrap_or_default();
                    HOOK_TYPES.contains(&hook_type)
                };
                Ok(log_position::log_sequence_handled(jetstream, &handled, applies).await?)
            }
            _ => {
                let stored = projection::position(&self.store).await?;
                Ok(stored.max(self.handled.load(Ordering::Relaxed)))
            }
        }
    }

    fn handled(&self, delivery: &Delivery) {
        self.handled
            .fetch_max(delivery.stream_sequence, Ordering::Relaxed);
        self.pending.store(delivery.pending, Ordering::Relaxed);
    }

    /// The stream's last sequence, as NATS reports it now.
    pub async fn stream_last_sequence(&self) -> Result<u64, CrmError> {
        let Some(jetstream) = &self.jetstream else {
            return Ok(0);
        };
        let mut stream = jetstream
            .get_stream(STREAM)
            .await
            .map_err(|e| CrmError::Stream(e.to_string()))?;
        let info = stream
            .info()
            .await
            .map_err(|e| CrmError::Stream(e.to_string()))?;
        Ok(info.state.last_sequence)
    }

    /// Applies one delivered event: directory, queued changes and position in one transaction.
    pub async fn apply(&self, delivery: &Delivery) -> Result<Applied, StoreError> {
        self.apply_as(projection::CONSUMER, delivery).await
    }

    /// [`Shared::apply`], moving `consumer`'s position: the whole log's, or one partition's.
    pub async fn apply_as(
        &self,
        consumer: &str,
        delivery: &Delivery,
    ) -> Result<Applied, StoreError> {
        let event = &delivery.event;
        if !HOOK_TYPES.contains(&event.hook_type.as_str()) {
            self.handled(delivery);
            return Ok(Applied::Applied(None));
        }
        let connectors = self.connectors_for(&event.tenant);
        let started = std::time::Instant::now();
        let (applied, queued) = {
            let _writing = self.store.write().await;
            let mut transaction = self.store.pool().begin().await?;
            let applied =
                projection::apply_as(&mut transaction, consumer, delivery.stream_sequence, event)
                    .await?;
            let queued = match &applied {
                Applied::Applied(Some(client)) => {
                    change::queue_if_changed(&mut transaction, client, &connectors, false).await?
                }
                _ => 0,
            };
            transaction.commit().await?;
            (applied, queued)
        };
        self.handled(delivery);
        if let Applied::Applied(client) = &applied {
            self.metrics.events_applied.inc();
            self.metrics
                .apply_seconds
                .observe(started.elapsed().as_secs_f64());
            if let (Some(client), true) = (client, queued > 0) {
                for connector in self.connectors_for(&client.tenant) {
                    self.metrics
                        .changes_queued
                        .get_or_create(&ConnectorLabels { connector })
                        .inc();
                }
                self.wake_connectors();
            }
        }
        Ok(applied)
    }
}

/// c2d-crm-sync, ready to run.
pub struct CrmSync {
    config: Config,
    shared: Arc<Shared>,
}

impl CrmSync {
    /// Opens the store (migrating it) and prepares the connectors.
    pub async fn open(mut config: Config) -> Result<CrmSync, CrmSyncError> {
        let store = Store::open(&config.store_url).await?;
        let position = projection::position(&store).await?;
        tracing::info!(
            store = %crate::store::redact(&config.store_url),
            position,
            connectors = config.connectors.len(),
            "store open"
        );
        let connectors: Vec<Arc<Connector>> = config.connectors.drain(..).map(Arc::new).collect();
        let wakers = connectors
            .iter()
            .map(|c| (c.name.clone(), Arc::new(Notify::new())))
            .collect();
        Ok(CrmSync {
            config,
            shared: Arc::new(Shared {
                store,
                connectors,
                metrics: Arc::new(Metrics::default()),
                wakers,
                jetstream: None,
                pending: AtomicU64::new(0),
                handled: AtomicU64::new(0),
                replica: None,
                partitions: 0,
            }),
        })
    }

    /// The store, for tests that look inside.
    pub fn store(&self) -> Store {
        self.shared.store.clone()
    }

    /// Serves gRPC on `listener`, follows the event log and delivers the connectors' queues
    /// until `shutdown` completes.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), CrmSyncError> {
        let metrics_listener = match self.config.metrics_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| CrmSyncError::Metrics { addr, source })?,
            ),
            None => None,
        };
        let stop = stop_flag(shutdown);
        let client = c2d_subscriber::connect("c2d-crm-sync", &self.config.nats_url).await?;
        let Ok(mut shared) = Arc::try_unwrap(self.shared) else {
            unreachable!("nothing else holds the shared state before run");
        };
        shared.jetstream = Some(async_nats::jetstream::new(client.clone()));
        if self.config.partitions > 0 {
            shared.replica = Some(Arc::new(ReplicaProgress::default()));
            shared.partitions = self.config.partitions;
        }
        let shared = Arc::new(shared);

        // One replica reads the whole log; replicas read the partitions each owns.
        let (reading, ready) = if self.config.partitions > 0 {
            let mut leases = OwnershipConfig::new(
                SUBSCRIBER,
                &self.config.replica,
                &self.config.grpc_addr.to_string(),
                self.config.partitions,
            );
            leases.lease = self.config.lease;
            let ownership = Ownership::join(client.clone(), leases).await?;
            tracing::info!(partitions = self.config.partitions, replica = %self.config.replica, "sharing the partitions with the other replicas");
            // The directory is shared: a replica answers from it at once.
            (Reading::Partitioned(ownership), None)
        } else {
            let after = projection::position(&shared.store).await?;
            let start_at = if after == 0 {
                StartAt::Beginning
            } else {
                StartAt::Sequence(after + 1)
            };
            let subscriber = Subscriber::open(
                client.clone(),
                subscriber_config(SUBSCRIBER).start_at(start_at),
            )
            .await?;
            tracing::info!(?start_at, "following the event log");
            let stats = subscriber.stats();
            (Reading::Whole(subscriber), Some(stats))
        };

        // The connector queues are delivered by one process: the whole-log one, or the owner
        // of partition 0 (see `read_partition`).
        let workers = match reading {
            Reading::Whole(_) => spawn_workers(&shared, stop.clone()),
            Reading::Partitioned(_) => Vec::new(),
        };
        // The directory answers GetClient from the projection: not before it has caught up.
        let mut serving =
            c2d_proto::server::Serving::default().metrics(shared.metrics.grpc.clone());
        if let Some(stats) = ready {
            serving = serving.ready(async move { stats.caught_up().await });
        }
        let grpc = tokio::spawn(c2d_proto::server::serve(
            listener,
            CrmServiceServer::new(CrmGrpc::new(Arc::clone(&shared))),
            serving,
            stopped(stop.clone()),
        ));
        let progress = tokio::spawn(log_progress(Arc::clone(&shared), stop.clone()));
        if let Some(listener) = metrics_listener {
            let (shared, stop) = (Arc::clone(&shared), stop.clone());
            tokio::spawn(async move {
                if let Err(error) = crate::metrics::serve(listener, shared, stopped(stop)).await {
                    tracing::error!(%error, "the metrics endpoint stopped");
                }
            });
        }

        let consumed = match reading {
            Reading::Whole(subscriber) => subscriber
                .run(
                    applying(Arc::clone(&shared), projection::CONSUMER.to_owned()),
                    stopped(stop.clone()),
                )
                .await
                .map(|_| ()),
            Reading::Partitioned(ownership) => {
                let shared = Arc::clone(&shared);
                read_owned_partitions(ownership, stopped(stop.clone()), move |partition, stop| {
                    read_partition(Arc::clone(&shared), client.clone(), partition, stop)
                })
                .await;
                Ok(())
            }
        };

        for worker in workers {
            let _ = worker.await;
        }
        let _ = progress.await;
        let served = c2d_proto::server::drain(grpc).await;
        shared.store.close().await;
        consumed?;
        served?;
        Ok(())
    }
}

/// How this process reads the log.
// One value per run: boxing the subscriber would gain nothing.
#[allow(clippy::large_enum_variant)]
enum Reading {
    Whole(Subscriber),
    Partitioned(Ownership),
}

/// The subscriber of the directory, position kept in the store.
fn subscriber_config(durable: &str) -> SubscriberConfig {
    SubscriberConfig::new(durable)
        .position_kept_by_handler()
        // A store outage stalls the projection instead of dead-lettering its events.
        .max_deliveries(u64::MAX)
}

/// The handler: each event applied in its own transaction, moving `consumer`'s position.
fn applying(shared: Arc<Shared>, consumer: String) -> impl Handler + Clone {
    move |delivery: Delivery| {
        let (shared, consumer) = (Arc::clone(&shared), consumer.clone());
        async move {
            shared
                .apply_as(&consumer, &delivery)
                .await
                .map_err(HandlerError::transient)?;
            Ok::<(), HandlerError>(())
        }
    }
}

fn spawn_workers(shared: &Arc<Shared>, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    shared
        .connectors
        .iter()
        .map(|connector| {
            tokio::spawn(worker::run(
                shared.store.clone(),
                Arc::clone(connector),
                Arc::clone(&shared.metrics),
                Arc::clone(&shared.wakers[&connector.name]),
                stop.clone(),
            ))
        })
        .collect()
}

/// One owned partition applied into the shared directory until it moves. The owner of
/// partition 0 also delivers the connectors' queues, so that exactly one replica does, and
/// stops before the lease can move to another.
async fn read_partition(
    shared: Arc<Shared>,
    client: async_nats::Client,
    partition: u32,
    stop: PartitionStop,
) {
    let (stop_workers, workers_stop) = watch::channel(false);
    let workers = if partition == 0 {
        spawn_workers(&shared, workers_stop)
    } else {
        Vec::new()
    };
    let consumer = projection::partition_consumer(partition);
    let config = subscriber_config(&format!("{SUBSCRIBER}-partition-{partition}"));
    let store = shared.store.clone();
    let position = || {
        let (store, consumer) = (store.clone(), consumer.clone());
        async move {
            match projection::position_of(&store, &consumer).await {
                Ok(position) => Some(position),
                Err(error) => {
                    tracing::warn!(partition, %error, "cannot read the partition's position from the store");
                    None
                }
            }
        }
    };
    let progress = shared.replica.clone().unwrap_or_default();
    follow_partition(
        client,
        partition,
        config,
        position,
        applying(Arc::clone(&shared), consumer.clone()),
        progress,
        stop,
    )
    .await;
    let _ = stop_workers.send(true);
    for worker in workers {
        let _ = worker.await;
    }
}

/// Every 10 s in which events were applied, one line: how many (by this process) and how far
/// the directory is in the log, so a replica's log shows its progress too.
async fn log_progress(shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let mut last = shared.metrics.events_applied.get();
    let mut ticks = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            () = stopped(stop.clone()) => return,
            _ = ticks.tick() => {}
        }
        let now = shared.metrics.events_applied.get();
        if now != last {
            // A replica's own count, and the whole directory's place in the log.
            let sequence = shared.applied_sequence().await.ok();
            tracing::info!(
                sequence,
                applied = now - last,
                lag = shared.lag(),
                "events applied in the last 10 s"
            );
            last = now;
        }
    }
}
