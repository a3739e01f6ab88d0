//! The running keeper: the log follower, and every `KEEPER_CHECK_INTERVAL` for each tenant a
//! webhook check (repairing what is wrong, with an event for alerting, owed until stored) and a
//! backfill of the pending gaps as far as it is safe; the status of each tenant saved in the
//! bucket after each round. Errors of one tenant (a refused token, an API down, a malformed
//! page) are recorded in its status and metrics and tried again next round; they never stop
//! the keeper.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use c2d_chat2desk::register::gateway_webhook;
use c2d_chat2desk::{Chat2DeskApi, Webhook};
use c2d_telemetry::shutdown::stop_flag;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::backfill::{Backfiller, lock, now};
use crate::calls::{Retries, retrying};
use crate::cfg::{Config, Tenant};
use crate::follow::{self, Follower};
use crate::gaps::{self, Gap};
use crate::index::Index;
use crate::log::EventLog;
use crate::metrics::{self, Metrics};
use crate::repairs;
use crate::status::{State, StateError, TenantStatus};
use crate::webhook::{self, Problem};

/// How many gaps a tenant's status keeps.
const KEPT_GAPS: usize = 50;
/// How long a round waits for the message index to read the log to its end before it gives up
/// backfilling for this round.
const INDEX_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why c2d-keeper could not run.
#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    #[error(transparent)]
    Connect(#[from] c2d_subscriber::ConnectError),
    #[error("cannot use the Chat2Desk API at {url}: {message}")]
    Api { url: String, message: String },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot serve /metrics: {0}")]
    Serve(std::io::Error),
}

/// One tenant as the loop keeps it.
struct Kept {
    tenant: Tenant,
    api: Chat2DeskApi,
    status: TenantStatus,
}

/// Runs c2d-keeper until `shutdown`; `listener` serves `/metrics` and `/healthz`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), KeeperError> {
    let mut stop = stop_flag(shutdown);
    let client = c2d_subscriber::connect("c2d-keeper", &config.nats_url).await?;
    let jetstream = async_nats::jetstream::new(client.clone());
    let state = State::open(&jetstream, config.replicas).await?;
    let log = EventLog::new(jetstream.clone());
    let metrics = Arc::new(Metrics::default());
    let mut serve_stop = stop.clone();
    let server = tokio::spawn(metrics::serve(listener, Arc::clone(&metrics), async move {
        let _ = serve_stop.wait_for(|s| *s).await;
    }));

    let index = Arc::new(Mutex::new(Index::default()));
    let (gap_tx, mut gap_rx) = mpsc::unbounded_channel();
    let (read_tx, mut read) = watch::channel(0);
    let follower = Follower {
        jetstream: jetstream.clone(),
        index: Arc::clone(&index),
        gaps: gap_tx,
        read: read_tx,
        silence: config.silence.as_secs() as i64,
        lookback: config.lookback,
    };
    let following = tokio::spawn(follower.run(stop.clone()));

    let mut kept = BTreeMap::new();
    for tenant in &config.tenants {
        let api = Chat2DeskApi::new(&config.api_url, &tenant.api_token).map_err(|e| {
            KeeperError::Api {
                url: config.api_url.clone(),
                message: e.to_string(),
            }
        })?;
        let status = state.load(&tenant.name).await?;
        kept.insert(
            tenant.name.clone(),
            Kept {
                tenant: tenant.clone(),
                api,
                status,
            },
        );
    }
    if kept.is_empty() {
        tracing::warn!(
            "KEEPER_API_TOKENS is not set: no tenant to keep; write tenant=chat2desk_api_token,... (Chat2Desk: Settings -> API)"
        );
    }
    tracing::info!(
        tenants = kept.len(),
        every = %c2d_telemetry::env::human(config.check_interval),
        "keeping the webhooks"
    );

    let round = Round {
        config: &config,
        log: &log,
        index: &index,
        metrics: &metrics,
        state: &state,
    };
    let mut ticker = tokio::time::interval(config.check_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = ticker.tick() => {}
        }
        while let Ok((tenant, gap)) = gap_rx.try_recv() {
            if let Some(k) = kept.get_mut(&tenant) {
                round.add_gap(&mut k.status, gap);
            }
        }
        let ready = follow::current(&jetstream, &mut read, INDEX_WAIT).await;
        if !ready {
            tracing::info!(
                "the message index has not read the log to its end yet; no backfill this round"
            );
        }
        for k in kept.values_mut() {
            round.keep(k, ready).await;
        }
    }
    let _ = following.await;
    match server.await {
        Ok(Err(error)) => return Err(KeeperError::Serve(error)),
        Err(error) => tracing::warn!(%error, "the metrics server stopped"),
        Ok(Ok(())) => {}
    }
    Ok(())
}

/// What one round of checks uses.
struct Round<'a> {
    config: &'a Config,
    log: &'a EventLog,
    index: &'a Mutex<Index>,
    metrics: &'a Metrics,
    state: &'a State,
}

impl Round<'_> {
    /// A gap into a tenant's status (merged with a known one), unless older than the lookback.
    fn add_gap(&self, status: &mut TenantStatus, gap: Gap) {
        let oldest = now().seconds - self.config.lookback.as_secs() as i64;
        if gap.to < oldest {
            return;
        }
        let margin = self.config.margin.as_secs() as i64;
        tracing::info!(tenant = %status.tenant, from = gap.from, to = gap.to, reason = %gap.reason, "gap");
        if gaps::add(&mut status.gaps, gap, margin, KEPT_GAPS) {
            status.gaps_found += 1;
            self.metrics.gap(&status.tenant);
        }
    }

    /// One tenant's check and backfill; `ready`: the index has read the log to its end.
    async fn keep(&self, kept: &mut Kept, ready: bool) {
        let name = kept.tenant.name.clone();
        let listed = retrying(
            Retries::default(),
            self.metrics,
            &name,
            "listing webhooks",
            || kept.api.list(),
        )
        .await;
        // Taken before a repair: what was created before it was never going to be delivered.
        let checked_at = now().seconds;
        let mut error = match listed {
            Ok(webhooks) => self.check(kept, &webhooks, ready, checked_at).await,
            Err(e) => {
                kept.status.webhook = format!("cannot check: {e}");
                Some(e.to_string())
            }
        };
        self.announce(&mut kept.status).await;
        kept.status.last_check = Some(now().seconds * 1_000 + i64::from(now().nanos) / 1_000_000);
        if ready && error.is_none() {
            error = self.backfill(kept).await;
        }
        if let Some(e) = &error {
            tracing::warn!(tenant = %name, error = %e, "the keeper tries again at the next check");
        }
        kept.status.last_error = error;
        self.metrics
            .pending(&name, kept.status.pending(), lock(self.index).len());
        if let Err(e) = self.state.save(&kept.status).await {
            tracing::warn!(tenant = %name, error = %e, "status not saved; saved again next check");
        }
    }

    /// The tenant's webhook as `webhooks` (just listed) show it, repaired when it is wrong;
    /// the error that stood in the way of a repair. The repair is written down in the state
    /// bucket before the webhook is touched, so that its event is owed even if the keeper stops
    /// in the middle ([`crate::repairs`]).
    async fn check(
        &self,
        kept: &mut Kept,
        webhooks: &[Webhook],
        ready: bool,
        checked_at: i64,
    ) -> Option<String> {
        let gateway = self.config.gateway_url.as_deref();
        let status = &mut kept.status;
        let Some(problem) = webhook::problem(webhooks, gateway, &kept.tenant) else {
            status.webhook = "ok".into();
            let webhook = gateway_webhook(webhooks, gateway, &status.tenant);
            if let Some(webhook) = webhook
                && let Some(repair) = repairs::finished(&mut status.unannounced, webhook.id)
            {
                // Begun before the keeper stopped, or finished by hand: what it left is the
                // same, with the time it was found as the last moment the webhook was wrong.
                tracing::info!(tenant = %status.tenant, found_at = repair.found_at,
                    "a repair begun earlier is finished; its event and gap follow");
                self.repaired(status, repair.problem, webhook, ready, repair.found_at);
            }
            return None;
        };
        repairs::begin(&mut status.unannounced, problem, checked_at);
        if let Err(e) = self.state.save(status).await {
            tracing::warn!(tenant = %status.tenant, error = %e,
                "the repair begins unrecorded: should the keeper stop before this round ends, its alert is lost");
        }
        match webhook::repair(&kept.api, &kept.tenant, gateway).await {
            Ok(webhook) => {
                repairs::finished(&mut status.unannounced, webhook.id);
                self.repaired(status, problem, &webhook, ready, checked_at);
                None
            }
            Err(e) => {
                status.webhook = format!("{}; cannot repair it: {e}", problem.as_str());
                Some(e.to_string())
            }
        }
    }

    /// Records a repaired webhook: metric, status, and the gap it leaves (from the last
    /// delivery, or the lookback, to now; none for a webhook missing that never delivered).
    /// `ready`: the index has read the log, so its last delivery is known. `checked_at`: when
    /// the check began, before the repair, so that no message created after the webhook was
    /// enabled again is taken for one its queue dropped.
    fn repaired(
        &self,
        status: &mut TenantStatus,
        problem: Problem,
        webhook: &Webhook,
        ready: bool,
        checked_at: i64,
    ) {
        let at = now();
        tracing::warn!(tenant = %status.tenant, problem = problem.as_str(), webhook_id = webhook.id,
            "the webhook was {} and is registered again", problem.as_str());
        self.metrics.repaired(&status.tenant, problem.as_str());
        status.repairs += 1;
        status.webhook = format!("repaired (was {})", problem.as_str());
        let last_delivery = lock(self.index).last_delivery(&status.tenant);
        // A webhook missing with no delivery in the lookback was never registered (a new
        // tenant): nothing was lost, and the account's history is not the pipeline's to import.
        // While the index is still reading the log (a start), the last delivery is not known
        // yet: the silence the index will find when deliveries resume is the gap then.
        if last_delivery.is_none() && (problem == Problem::Missing || !ready) {
            return;
        }
        let from = last_delivery.unwrap_or(at.seconds - self.config.lookback.as_secs() as i64);
        // A disabled webhook's queue is dropped, and a missing one had none: nothing created
        // before now comes by webhook any more. A changed one may still be retried elsewhere.
        let dropped_before = (problem != Problem::Changed).then_some(checked_at.min(at.seconds));
        let reason = format!("webhook {}", problem.as_str());
        self.add_gap(status, Gap::new(from, at.seconds, &reason, dropped_before));
    }

    /// Writes the `webhook_repaired` events owed, which alerting turns into alerts; those the
    /// log does not take (NATS down, the stream failing over) stay owed for the next round.
    async fn announce(&self, status: &mut TenantStatus) {
        let mut owed = Vec::new();
        for repair in std::mem::take(&mut status.unannounced) {
            let Some(webhook_id) = repair.webhook_id else {
                owed.push(repair);
                continue;
            };
            let event = webhook::repaired_event(
                &status.tenant,
                repair.problem,
                webhook_id,
                repair.found_at,
            );
            match self.log.append(&event).await {
                Ok(_) => {
                    tracing::info!(tenant = %status.tenant, problem = repair.problem.as_str(),
                        found_at = repair.found_at, "the repair's event is stored")
                }
                Err(e) => {
                    tracing::warn!(tenant = %status.tenant, error = %e,
                        "the repair's event was not stored; written again next round");
                    owed.push(repair);
                }
            }
        }
        status.unannounced = owed;
    }

    /// Backfills every pending gap as far as it is safe now; the first error stops the
    /// tenant's round (what was stored stays; the stretch is listed again next round).
    async fn backfill(&self, kept: &mut Kept) -> Option<String> {
        let backfiller = Backfiller {
            api: &kept.api,
            log: self.log,
            index: self.index,
            metrics: self.metrics,
            retries: Retries::default(),
        };
        let horizon = self.config.redelivery_horizon.as_secs() as i64;
        let margin = self.config.margin.as_secs() as i64;
        for gap in kept.status.gaps.iter_mut().filter(|g| !g.complete) {
            let Some((from, until)) = gap.next_pass(now().seconds, horizon, margin) else {
                continue;
            };
            match backfiller.pass(&kept.tenant.name, from, until).await {
                Ok(pass) => {
                    tracing::info!(tenant = %kept.tenant.name, from, until, listed = pass.listed,
                        stored = pass.stored, skipped = pass.skipped, clients = pass.clients, "backfilled");
                    gap.listed += pass.listed;
                    gap.stored += pass.stored;
                    gap.skipped += pass.skipped;
                    gap.passed(until, margin);
                    kept.status.backfilled += pass.stored;
                    kept.status.backfilled_clients += pass.clients;
                    kept.status.already_stored += pass.skipped;
                }
                Err(e) => return Some(e.to_string()),
            }
        }
        None
    }
}
