//! The running service: read the log from its beginning into the projection, keep following
//! it, and serve gRPC meanwhile.
//!
//! Requests are answered from the start; until the log is caught up (logged once, with how
//! many events it took) they see less history. Progress is logged every ten seconds while
//! events arrive. At shutdown, in-flight calls get a moment to finish.

use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use c2d_proto::hints::HintsServiceServer;
use c2d_proto::server::Serving;
use c2d_subscriber::{
    Delivery, HandlerError, StartAt, SubscribeError, Subscriber, SubscriberConfig,
};
use c2d_telemetry::shutdown::{stop_flag, stopped};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cfg::Config;
use crate::projection::Projection;
use crate::provider::{Provider, ProviderError};
use crate::service::HintsGrpc;

/// The subscriber's name in logs.
const SUBSCRIBER: &str = "hints";

/// The events hints learn from.
pub const SUBJECTS: [&str; 3] = [
    "chat2desk.events.*.inbox",
    "chat2desk.events.*.outbox",
    "chat2desk.events.*.ai_hints_requested",
];

/// Why c2d-hints could not run.
#[derive(Debug, thiserror::Error)]
pub enum HintsError {
    #[error(transparent)]
    Connect(#[from] c2d_subscriber::ConnectError),
    #[error("HINTS_PROVIDER_URL: {0}")]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
    #[error(transparent)]
    Serve(#[from] c2d_proto::server::ServeError),
    #[error(transparent)]
    Metrics(#[from] c2d_telemetry::startup::StartupError),
}

/// c2d-hints, ready to run.
pub struct Hints {
    config: Config,
    projection: Arc<RwLock<Projection>>,
}

impl Hints {
    pub fn new(config: Config) -> Hints {
        Hints {
            config,
            projection: Arc::default(),
        }
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
    ) -> Result<(), HintsError> {
        let stop = stop_flag(shutdown);
        let provider = match self.config.provider.clone() {
            Some(config) => {
                tracing::info!(url = %config.url, model = %config.model, deadline = ?config.deadline, "hints are reranked by the external provider");
                Some(Arc::new(Provider::new(config)?))
            }
            None => None,
        };

        let client = c2d_subscriber::connect("c2d-hints", &self.config.nats_url).await?;
        let config = SubscriberConfig::new(SUBSCRIBER)
            .filters(SUBJECTS)
            .start_at(StartAt::Beginning)
            .position_kept_by_handler();
        let subscriber = Subscriber::open(client.clone(), config).await?;
        tracing::info!("reading the event log from its beginning");

        let (applied_tx, applied) = watch::channel(0u64);
        let service = HintsGrpc::new(
            self.projection(),
            applied,
            Some(async_nats::jetstream::new(client)),
            provider,
            self.config.max_hints,
            self.config.message_wait,
        );
        let stats = subscriber.stats();
        let (registry, grpc_metrics) = crate::metrics::registry(Arc::clone(&stats));
        c2d_telemetry::metrics::spawn(
            self.config.metrics_addr,
            "HINTS_METRICS_ADDR",
            registry,
            stopped(stop.clone()),
        )
        .await?;
        // Hints come from the conversations read so far: not before the log is caught up.
        let serving = Serving::default()
            .ready(async move { stats.caught_up().await })
            .metrics(grpc_metrics);
        let grpc = tokio::spawn(c2d_proto::server::serve(
            listener,
            HintsServiceServer::new(service),
            serving,
            stopped(stop.clone()),
        ));
        let progress = tokio::spawn(log_progress(self.projection(), stop.clone()));

        let projection = self.projection();
        let started = Instant::now();
        let caught_up = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handler = move |delivery: Delivery| {
            let projection = Arc::clone(&projection);
            let applied = applied_tx.clone();
            let caught_up = Arc::clone(&caught_up);
            async move {
                let sequence = delivery.stream_sequence;
                projection
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .apply(sequence, &delivery.event);
                applied.send_replace(sequence);
                if delivery.pending == 0
                    && !caught_up.swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::info!(sequence, elapsed = ?started.elapsed(), "caught up with the event log");
                }
                Ok::<(), HandlerError>(())
            }
        };
        let consumed = subscriber.run(handler, stopped(stop.clone())).await;
        let _ = progress.await;
        let served = c2d_proto::server::drain(grpc).await;
        consumed?;
        Ok(served?)
    }
}

async fn log_progress(projection: Arc<RwLock<Projection>>, stop: watch::Receiver<bool>) {
    let sequence = |p: &RwLock<Projection>| {
        p.read()
            .unwrap_or_else(PoisonError::into_inner)
            .last_sequence
    };
    let mut last = sequence(&projection);
    let mut ticks = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            () = stopped(stop.clone()) => return,
            _ = ticks.tick() => {}
        }
        let now = sequence(&projection);
        if now != last {
            let projection = projection.read().unwrap_or_else(PoisonError::into_inner);
            let pairs: usize = projection.tenants.values().map(|k| k.index().pairs()).sum();
            tracing::info!(
                sequence = now,
                pairs,
                tenants = projection.tenants.len(),
                "following the event log"
            );
            last = now;
        }
    }
}
