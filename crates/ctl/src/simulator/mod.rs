//! `c2dctl simulate`: a stand-in for Chat2Desk, for trying the pipeline without an account
//! and for testing and loading it.
//!
//! It serves Chat2Desk's webhooks API ([`api`], with the seed's rules in [`accounts`]), so
//! `c2dctl webhooks register` points its accounts at a gateway exactly as it would a real
//! account; it generates realistic traffic for every account ([`traffic`]) at a chosen rate,
//! repeatable by seed; and it delivers each event to the account's webhooks with Chat2Desk's
//! retry schedule and disabling rule ([`delivery`]), all times divided by `--time-scale`.
//! Every delivery's outcome is counted and, with `--record`, written as one JSON line, which
//! is what an end-to-end test compares the pipeline against; every message is also listed by
//! `GET /v1/messages`, delivered or not, which is what c2d-keeper backfills from (with
//! `--keep-serving` the API outlives the traffic). `POST /simulator/alerts` takes
//! c2d-alerting's webhook notifications and logs them, so a demo shows its alerts too.

pub mod accounts;
pub mod api;
pub mod delivery;
pub mod traffic;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::chat2desk::WebhookSpec;
use accounts::Accounts;
use delivery::{Counters, Deliverer, Outcome, Ready, Schedule, lock};
use traffic::{EVENTS_PER_CONVERSATION, Traffic};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// (tenant, API token) of each simulated account.
    pub accounts: Vec<(String, String)>,
    /// Webhooks registered at start, as (tenant, url), with every hook type.
    pub webhooks: Vec<(String, String)>,
    /// Events per second, on average.
    pub rate: f64,
    /// Stop after this many events (then wait for their deliveries to end); None: until
    /// stopped.
    pub events: Option<u64>,
    pub seed: u64,
    /// Every delay (operators' answers, retries, disabling) is divided by this.
    pub time_scale: f64,
    /// Where to write one JSON line per delivery outcome.
    pub record: Option<PathBuf>,
    /// Start the traffic only once every account has a webhook.
    pub wait_for_webhooks: bool,
    /// Once the traffic and its deliveries are done, go on serving the API (the messages for
    /// a backfill, the webhooks) until stopped.
    pub keep_serving: bool,
}

/// How a simulation went.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub generated: u64,
    pub delivered: u64,
    pub retried: u64,
    pub lost: u64,
}

/// Why the simulator could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    #[error("cannot create the record file {path}: {source}")]
    Record {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot register the webhook of {tenant}: {message}")]
    Webhook { tenant: String, message: String },
    #[error("cannot build an HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the simulator's API stopped: {0}")]
    Serve(std::io::Error),
}

/// Serves the API on `listener` and runs the traffic until `config.events` are delivered
/// (or lost) or `shutdown` completes.
pub async fn run(
    config: SimulatorConfig,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Summary, SimulatorError> {
    let accounts = Arc::new(Mutex::new(Accounts::new(&config.accounts)));
    for (tenant, url) in &config.webhooks {
        let spec = WebhookSpec {
            name: Some("c2d-gateway".into()),
            url: Some(Some(url.clone())),
            events: Some(crate::chat2desk::every_hook_type()),
        };
        lock(&accounts)
            .create(tenant, spec)
            .map_err(|r| SimulatorError::Webhook {
                tenant: tenant.clone(),
                message: format!("{}: {}", r.field, r.message),
            })?;
    }
    let counters = Arc::new(Counters::default());
    let (outcomes, recorded) = mpsc::unbounded_channel();
    let recorder = match &config.record {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|source| SimulatorError::Record {
                path: path.display().to_string(),
                source,
            })?;
            Some(tokio::task::spawn_blocking(move || record(file, recorded)))
        }
        None => {
            tokio::spawn(drain(recorded));
            None
        }
    };
    let deliverer = Arc::new(Deliverer::new(
        Arc::clone(&accounts),
        Schedule::chat2desk(config.time_scale),
        Arc::clone(&counters),
        outcomes,
    )?);
    let app = api::router(Arc::clone(&accounts), Arc::clone(&counters));
    let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut serve_stop = stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = serve_stop.wait_for(|s| *s).await;
            })
            .await
    });

    if config.wait_for_webhooks {
        tracing::info!("waiting until every account has a webhook (c2dctl webhooks register)");
        while !every_account_has_a_webhook(&accounts) {
            tokio::select! {
                () = stopped(&mut stop) => return finish(&counters, deliverer, recorder, server).await,
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    let tenants: Vec<String> = config.accounts.iter().map(|(t, _)| t.clone()).collect();
    let scale = config.time_scale.max(f64::MIN_POSITIVE);
    // New conversations arrive so that their events add up to `rate` per real second.
    let arrival_mean_ms = EVENTS_PER_CONVERSATION / config.rate.max(0.001) * 1_000.0 * scale;
    let mut traffic = Traffic::new(config.seed, &tenants, arrival_mean_ms);
    let started = Instant::now();
    let limit = config.events.unwrap_or(u64::MAX);
    let mut generated = 0u64;
    tracing::info!(
        rate = config.rate,
        time_scale = scale,
        seed = config.seed,
        "traffic started"
    );
    'traffic: while generated < limit {
        let due = started + Duration::from_secs_f64(traffic.next_at() as f64 / 1_000.0 / scale);
        tokio::select! {
            () = stopped(&mut stop) => break,
            () = tokio::time::sleep_until(due.into()) => {}
        }
        let event_time = now_rfc3339();
        for generated_event in traffic.step() {
            let mut body = generated_event.body;
            body["event_time"] = serde_json::json!(event_time);
            let event_id = c2d_hooks::event_id(&generated_event.tenant, &body);
            lock(&accounts).record_message(
                &generated_event.tenant,
                generated_event.hook_type,
                &body,
            );
            deliverer.deliver(Ready {
                tenant: generated_event.tenant,
                hook_type: generated_event.hook_type.to_owned(),
                event_id,
                body: body.to_string(),
            });
            generated += 1;
            counters.generated.store(generated, Ordering::Relaxed);
            if generated >= limit {
                break 'traffic;
            }
        }
    }
    tracing::info!(
        generated,
        "traffic stopped; waiting for deliveries in flight"
    );
    while counters.in_flight.load(Ordering::Relaxed) > 0 {
        tokio::select! {
            () = stopped(&mut stop) => break,
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    if config.keep_serving {
        tracing::info!("deliveries done; the API goes on answering until stopped");
        stopped(&mut stop).await;
    }
    finish(&counters, deliverer, recorder, server).await
}

/// Completes once the simulator is asked to stop.
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn every_account_has_a_webhook(accounts: &Mutex<Accounts>) -> bool {
    lock(accounts)
        .accounts
        .values()
        .all(|a| !a.webhooks.is_empty())
}

async fn finish(
    counters: &Counters,
    deliverer: Arc<Deliverer>,
    recorder: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
) -> Result<Summary, SimulatorError> {
    // Dropping the deliverer closes the outcome channel once no delivery holds it.
    drop(deliverer);
    if let Some(recorder) = recorder {
        match recorder.await {
            Ok(Err(error)) => tracing::error!(%error, "the record file is incomplete"),
            Err(error) => tracing::error!(%error, "the recorder stopped"),
            Ok(Ok(())) => {}
        }
    }
    server.abort();
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    Ok(Summary {
        generated: get(&counters.generated),
        delivered: get(&counters.delivered),
        retried: get(&counters.retried),
        lost: get(&counters.lost),
    })
}

/// Writes each outcome as a JSON line until every sender is gone.
fn record(
    file: std::fs::File,
    mut outcomes: mpsc::UnboundedReceiver<Outcome>,
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(file);
    while let Some(outcome) = outcomes.blocking_recv() {
        serde_json::to_writer(&mut out, &outcome)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

async fn drain(mut outcomes: mpsc::UnboundedReceiver<Outcome>) {
    while outcomes.recv().await.is_some() {}
}

/// Now as Chat2Desk writes `event_time`: `2019-07-28T23:01:40Z`.
fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
