//! The running service: the engine fed by the event log and a clock, the notifier, and
//! AlertingService.
//!
//! Events are read by a durable consumer (`alerting`), at least once and in order; the engine
//! makes a redelivery harmless. A new durable starts at new events: alerts are about now, and
//! replaying last month's QR codes would page someone for nothing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use c2d_proto::alerting::{ALERTS_STREAM, AlertingServiceServer};
use c2d_proto::server::Serving;
use c2d_subscriber::{
    Delivery, HandlerError, StartAt, SubscribeError, Subscriber, SubscriberConfig,
};
use c2d_telemetry::shutdown::{stop_flag, stopped};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cfg::Config;
use crate::engine::{Engine, StateError};
use crate::enrich::Directory;
use crate::measure::Analytics;
use crate::notify;
use crate::rules::{Condition, Hours, Rule};
use crate::service::AlertingGrpc;
use c2d_calendar::{CalendarStore, StoreError};

/// The durable consumer's name.
const SUBSCRIBER: &str = "alerting";

/// Why c2d-alerting could not run.
#[derive(Debug, thiserror::Error)]
pub enum AlertingError {
    #[error(transparent)]
    Connect(#[from] c2d_subscriber::ConnectError),
    #[error(
        "ALERTING_CRM_URL is not a URL: {0}; write it with its scheme, e.g. http://127.0.0.1:50051"
    )]
    CrmUrl(tonic::transport::Error),
    #[error(
        "ALERTING_ANALYTICS_URL is not a URL: {0}; write it with its scheme, e.g. http://127.0.0.1:50052"
    )]
    AnalyticsUrl(tonic::transport::Error),
    #[error(
        "rule {0:?} is a threshold rule, which asks AnalyticsService: set ALERTING_ANALYTICS_URL (e.g. http://127.0.0.1:50052)"
    )]
    NoAnalytics(String),
    #[error(
        "cannot create the stream {ALERTS_STREAM}: {0}; check that JetStream is enabled and has room (nats stream info {ALERTS_STREAM}), and ALERTING_STATE_REPLICAS against the cluster's size"
    )]
    Stream(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
    #[error(transparent)]
    Serve(#[from] c2d_proto::server::ServeError),
    #[error(transparent)]
    Metrics(#[from] c2d_telemetry::startup::StartupError),
    #[error(transparent)]
    Calendars(#[from] StoreError),
}

/// Runs c2d-alerting until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AlertingError> {
    let stop = stop_flag(shutdown);
    let client = c2d_subscriber::connect("c2d-alerting", &config.nats_url).await?;
    let jetstream = async_nats::jetstream::new(client.clone());
    jetstream
        .create_or_update_stream(async_nats::jetstream::stream::Config {
            name: ALERTS_STREAM.into(),
            subjects: vec!["chat2desk.alerts.>".into()],
            storage: async_nats::jetstream::stream::StorageType::File,
            num_replicas: config.replicas,
            duplicate_window: Duration::from_secs(3600),
            ..Default::default()
        })
        .await
        .map_err(|e| AlertingError::Stream(e.to_string()))?;
    let directory = match &config.crm_url {
        Some(url) => Directory::connect(url).map_err(AlertingError::CrmUrl)?,
        None => Directory::none(),
    };
    let analytics = match &config.analytics_url {
        Some(url) => Some(Analytics::connect(url).map_err(AlertingError::AnalyticsUrl)?),
        None => None,
    };
    if analytics.is_none()
        && let Some(rule) = config
            .rules
            .rules
            .iter()
            .find(|r| matches!(r.condition, Condition::Threshold { .. }))
    {
        return Err(AlertingError::NoAnalytics(rule.name.clone()));
    }
    if config.rules.rules.is_empty() {
        tracing::warn!("no rules (set ALERTING_RULES_FILE): nothing will fire");
    }
    let mut rules = config.rules;
    // The calendars are followed only when a rule keeps working hours.
    if rules.rules.iter().any(|rule| rule.hours == Hours::Business) {
        let store = CalendarStore::open(client.clone(), config.replicas).await?;
        rules.calendars = store.watch().await?;
    }
    let engine =
        Arc::new(Engine::open(jetstream, Arc::new(rules), directory, config.replicas).await?);

    let subscriber = Subscriber::open(
        client.clone(),
        SubscriberConfig::new(SUBSCRIBER).start_at(StartAt::New),
    )
    .await?;
    let stats = subscriber.stats();
    let (registry, grpc_metrics, notifications) = crate::metrics::registry(Arc::clone(&stats));
    c2d_telemetry::metrics::spawn(
        config.metrics_addr,
        "ALERTING_METRICS_ADDR",
        registry,
        stopped(stop.clone()),
    )
    .await?;
    let serving = Serving::default()
        .ready({
            let stats = Arc::clone(&stats);
            async move { stats.caught_up().await }
        })
        .metrics(grpc_metrics);
    let grpc = tokio::spawn(c2d_proto::server::serve(
        listener,
        AlertingServiceServer::new(AlertingGrpc::new(
            Arc::clone(&engine),
            client.clone(),
            analytics.clone(),
        )),
        serving,
        stopped(stop.clone()),
    ));
    let notifier = tokio::spawn(notify::run(
        Arc::clone(&engine),
        notifications,
        stop.clone(),
    ));
    // The clock judges time since events (a client unanswered for 10 minutes, a tenant silent
    // for 30): not before the events that arrived while this process was down have been read,
    // or a tenant that kept talking would be called silent and an answered client still
    // waiting, each alert resolved again a moment later.
    let clock = tokio::spawn({
        let (engine, every, stop) = (Arc::clone(&engine), config.tick, stop.clone());
        async move {
            tokio::select! {
                () = stats.caught_up() => tick(engine, every, stop).await,
                () = stopped(stop.clone()) => {}
            }
        }
    });
    let thresholds: Vec<_> = match analytics {
        Some(analytics) => engine
            .rules
            .rules
            .iter()
            .filter(|r| matches!(r.condition, Condition::Threshold { .. }))
            .map(|rule| {
                tokio::spawn(evaluate(
                    Arc::clone(&engine),
                    rule.clone(),
                    analytics.clone(),
                    stop.clone(),
                ))
            })
            .collect(),
        None => Vec::new(),
    };

    let handler_engine = Arc::clone(&engine);
    let handler = move |delivery: Delivery| {
        let engine = Arc::clone(&handler_engine);
        async move {
            engine
                .on_event(&delivery.event)
                .await
                .map_err(HandlerError::transient)
        }
    };
    let consumed = subscriber.run(handler, stopped(stop.clone())).await;
    let _ = clock.await;
    for threshold in thresholds {
        let _ = threshold.await;
    }
    let _ = notifier.await;
    let served = c2d_proto::server::drain(grpc).await;
    consumed?;
    served?;
    Ok(())
}

async fn tick(engine: Arc<Engine>, every: Duration, stop: watch::Receiver<bool>) {
    let mut ticks = ticker(every);
    while next_tick(&mut ticks, &stop).await {
        if let Err(error) = engine.tick().await {
            tracing::error!(%error, "alerting clock failed; retrying at the next tick");
        }
    }
}

/// Evaluates one threshold rule every `every`, for its tenants (or every tenant heard from).
async fn evaluate(
    engine: Arc<Engine>,
    rule: Rule,
    analytics: Analytics,
    stop: watch::Receiver<bool>,
) {
    let Condition::Threshold {
        metric,
        window,
        every,
        ..
    } = rule.condition
    else {
        return;
    };
    let mut ticks = ticker(every);
    while next_tick(&mut ticks, &stop).await {
        let tenants = if rule.tenants.is_empty() {
            engine.tenants().await
        } else {
            rule.tenants.clone()
        };
        for tenant in tenants {
            let Some(value) = analytics.measure(&tenant, metric, window).await else {
                continue;
            };
            if let Err(error) = engine.threshold(&rule, &tenant, value).await {
                tracing::error!(rule = %rule.name, %tenant, %error, "threshold not recorded; evaluated again next time");
            }
        }
    }
}

/// An interval that skips the ticks it missed rather than bursting them.
fn ticker(every: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks
}

/// Waits for the next tick; false once the service stops.
async fn next_tick(ticks: &mut tokio::time::Interval, stop: &watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = stopped(stop.clone()) => false,
        _ = ticks.tick() => true,
    }
}
