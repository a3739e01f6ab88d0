//! One worker per connector: takes the changes that are due, sends them (different clients at
//! once, one change per client at a time), and records what became of each.
//!
//! The worker wakes when the projection queues a change, when a retry falls due, or once a
//! second at the latest; a failing store only delays it.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::clock;
use crate::connector::Connector;
use crate::metrics::Metrics;
use crate::outbox::{self, Failed};
use crate::store::Store;

/// The longest the worker sleeps without looking at the queue.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Delivers `connector`'s queue until `stop` is raised.
pub async fn run(
    store: Store,
    connector: Arc<Connector>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let random = RandomState::new();
    tracing::info!(connector = %connector.name, kind = connector.kind(), "connector worker started");
    loop {
        if *stop.borrow() || stop.has_changed().is_err() {
            break;
        }
        let changes = match outbox::due(
            &store,
            &connector.name,
            clock::now_micros(),
            connector.fetch_limit() as i64,
        )
        .await
        {
            Ok(changes) => changes,
            Err(error) => {
                tracing::error!(connector = %connector.name, %error, "cannot read the queue; retrying in a second");
                sleep_or_stop(IDLE_POLL, &wake, &mut stop).await;
                continue;
            }
        };
        if changes.is_empty() {
            let wait = match outbox::next_due(&store, &connector.name).await {
                Ok(Some(at)) => Duration::from_micros((at - clock::now_micros()).max(0) as u64),
                _ => IDLE_POLL,
            };
            sleep_or_stop(wait.min(IDLE_POLL), &wake, &mut stop).await;
            continue;
        }
        let results = connector.deliver_all(&changes).await;
        for (change, result) in changes.iter().zip(results) {
            let recorded = match result {
                Ok(()) => outbox::delivered(&store, change).await.map(|superseded| {
                    metrics.delivery(&connector.name, "delivered");
                    tracing::debug!(connector = %connector.name, key = %change.idempotency_key, "change delivered");
                    if superseded > 0 {
                        tracing::info!(connector = %connector.name, tenant = %change.tenant, client_id = change.client_id, superseded,
                            "a newer change of the client reached the CRM; its older dead letters are dropped");
                    }
                }),
                Err(error) => {
                    let outcome = outbox::failed(
                        &store,
                        change,
                        &error,
                        &connector.retry,
                        random.hash_one((change.id, change.attempts)),
                    )
                    .await;
                    if let Ok(outcome) = &outcome {
                        metrics.delivery(
                            &connector.name,
                            if *outcome == Failed::Dead { "dead" } else { "retry" },
                        );
                        match outcome {
                            Failed::RetryAt(at) => tracing::warn!(
                                connector = %connector.name, key = %change.idempotency_key, attempt = change.attempts + 1,
                                retry_in_ms = (at - clock::now_micros()) / 1_000, %error, "change not delivered; will retry"),
                            Failed::Dead => tracing::error!(
                                connector = %connector.name, key = %change.idempotency_key, attempt = change.attempts + 1,
                                %error, "change not delivered; dead-lettered (list and retry them over CrmService)"),
                        }
                    }
                    outcome.map(|_| ())
                }
            };
            if let Err(error) = recorded {
                // The change stays as it was and is sent again: the CRM dedupes by its key.
                tracing::error!(connector = %connector.name, %error, "cannot record a delivery outcome");
            }
        }
    }
    tracing::info!(connector = %connector.name, "connector worker stopped");
}

async fn sleep_or_stop(wait: Duration, wake: &Notify, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        () = wake.notified() => {}
        _ = stop.changed() => {}
    }
}
