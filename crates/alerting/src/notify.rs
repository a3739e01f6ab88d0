//! Notifications go to their receiver in batches, one per group (receiver, rule, tenant), so
//! that a burst that waited out its rule's `group_wait` is one message; with retries and
//! exponential backoff: a receiver that
//! fails a few times still gets each notification, once it answers. A notification is deleted
//! from the state bucket only after the receiver accepted it (or after `max_attempts`, logged
//! as an error), so a restart resumes what was not delivered.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use crate::alert::{AlertRecord, State, now_ms};
use crate::engine::Engine;
use crate::machine::Batch;
use crate::rules::{Receiver, ReceiverTarget};

/// How often the notifier looks for due retries when nothing wakes it.
const POLL: Duration = Duration::from_millis(200);
/// Receivers are called with this time limit.
const TIMEOUT: Duration = Duration::from_secs(10);
/// No retry waits longer: a receiver back after an outage hears of its alerts within ten
/// minutes.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// A receiver, and what became of one message to it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    pub receiver: String,
    /// delivered, failed (to be retried), given_up.
    pub outcome: &'static str,
}

/// `{prefix}_notifications_total{receiver, outcome}`: messages to receivers, delivered or
/// failed, so that an operator sees a receiver that stopped taking alerts before anyone
/// misses one.
#[derive(Clone, Debug, Default)]
pub struct Notifications(Family<NotificationLabels, Counter>);

impl Notifications {
    /// Registers the family in `registry`.
    pub fn register(registry: &mut Registry) -> Notifications {
        let notifications = Notifications::default();
        registry.register(
            "notifications",
            "Messages to receivers by outcome: delivered, failed (retried later), given_up",
            notifications.0.clone(),
        );
        notifications
    }

    pub(crate) fn count(&self, receiver: &str, outcome: &'static str) {
        self.0
            .get_or_create(&NotificationLabels {
                receiver: receiver.to_owned(),
                outcome,
            })
            .inc();
    }
}

/// Delivers the engine's notifications until `stop`.
pub async fn run(
    engine: Arc<Engine>,
    notifications: Notifications,
    mut stop: watch::Receiver<bool>,
) {
    let http = match reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("c2d-alerting/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(http) => http,
        Err(error) => {
            tracing::error!(%error, "cannot build an HTTP client; no notification will be sent");
            return;
        }
    };
    loop {
        if *stop.borrow() || stop.has_changed().is_err() {
            return;
        }
        for batch in engine.due_batches(now_ms()).await {
            deliver(&engine, &http, batch, &notifications).await;
        }
        tokio::select! {
            () = engine.notified.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Sends one batch and records the outcome: done, or failed and due again after a backoff.
async fn deliver(
    engine: &Engine,
    http: &reqwest::Client,
    batch: Batch,
    notifications: &Notifications,
) {
    let Some(receiver) = engine.rules.receiver(&batch.receiver) else {
        tracing::error!(receiver = %batch.receiver, "the alerts' receiver is not configured any more; dropped");
        let _ = engine.batch_done(&batch).await;
        return;
    };
    let fingerprints: Vec<&str> = batch
        .alerts
        .iter()
        .map(|a| a.fingerprint.as_str())
        .collect();
    let recorded = match send(http, receiver, &batch).await {
        Ok(()) => {
            notifications.count(&receiver.name, "delivered");
            tracing::info!(receiver = %receiver.name, ?fingerprints, "notification delivered");
            engine.batch_done(&batch).await
        }
        Err(error) if batch.attempts + 1 >= receiver.max_attempts => {
            notifications.count(&receiver.name, "given_up");
            tracing::error!(receiver = %receiver.name, ?fingerprints, %error,
                attempts = batch.attempts + 1, "notification given up: the receiver kept failing");
            engine.batch_done(&batch).await
        }
        Err(error) => {
            notifications.count(&receiver.name, "failed");
            let delay = backoff(receiver, batch.attempts);
            tracing::warn!(receiver = %receiver.name, ?fingerprints, %error,
                retry_in_ms = delay.as_millis() as u64, "notification not delivered; will retry");
            engine
                .batch_failed(&batch, now_ms() + delay.as_millis() as i64)
                .await
        }
    };
    if let Err(error) = recorded {
        tracing::error!(%error, "cannot record a notification's outcome; it may be sent again");
    }
}

/// The wait after a batch's `attempts + 1`-th failure: the receiver's initial backoff,
/// doubled for each earlier failure, at most [`MAX_BACKOFF`].
fn backoff(receiver: &Receiver, attempts: u32) -> Duration {
    c2d_telemetry::backoff::exponential(receiver.initial_backoff, attempts, MAX_BACKOFF)
}

/// One line for people.
pub fn text(alert: &AlertRecord) -> String {
    format!(
        "[{}] {} {} {}: {}{}",
        shout(alert.state),
        alert.severity,
        alert.tenant,
        alert.rule,
        alert.summary,
        client(alert)
    )
}

/// A batch for people: one line for one alert, a line per alert under a heading for more.
pub fn batch_text(alerts: &[AlertRecord]) -> String {
    match alerts {
        [alert] => text(alert),
        alerts => {
            let first = &alerts[0];
            let mut text = format!(
                "[{}] {} alerts of {} for {}:",
                shout(batch_state(alerts)),
                alerts.len(),
                first.rule,
                first.tenant
            );
            for alert in alerts {
                text.push_str(&format!(
                    "\n- [{}] {}{}",
                    shout(alert.state),
                    alert.summary,
                    client(alert)
                ));
            }
            text
        }
    }
}

/// Firing when any alert of the batch fires.
fn batch_state(alerts: &[AlertRecord]) -> State {
    if alerts.iter().any(|a| a.state == State::Firing) {
        State::Firing
    } else {
        State::Resolved
    }
}

fn shout(state: State) -> &'static str {
    match state {
        State::Firing => "FIRING",
        State::Resolved => "RESOLVED",
    }
}

/// The client an alert is about, in brackets, or nothing.
fn client(alert: &AlertRecord) -> String {
    alert
        .client
        .as_ref()
        .map(|c| {
            let name = c
                .name
                .clone()
                .unwrap_or_else(|| format!("client {}", c.client_id));
            if c.tags.is_empty() {
                format!(" [{name}]")
            } else {
                format!(" [{name}; {}]", c.tags.join(", "))
            }
        })
        .unwrap_or_default()
}

async fn send(http: &reqwest::Client, receiver: &Receiver, batch: &Batch) -> Result<(), String> {
    let text = batch_text(&batch.alerts);
    let request = match &receiver.target {
        ReceiverTarget::Webhook { url } => http
            .post(url)
            .header("Idempotency-Key", batch.idempotency_key())
            .json(&json!({
                "status": batch_state(&batch.alerts).as_str(),
                "text": text,
                "alerts": batch.alerts,
            })),
        ReceiverTarget::Slack { url } => http.post(url).json(&json!({ "text": text })),
        ReceiverTarget::Telegram {
            base_url,
            token,
            chat_id,
        } => http
            .post(format!(
                "{}/bot{token}/sendMessage",
                base_url.trim_end_matches('/')
            ))
            .json(&json!({ "chat_id": chat_id, "text": text })),
    };
    let response = request.send().await.map_err(|e| {
        // Never the URL of a Telegram call: it holds the bot token.
        format!(
            "no answer from receiver {}: {}",
            receiver.name,
            e.without_url()
        )
    })?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!(
            "receiver {} answered {status}: {}",
            receiver.name,
            body.chars().take(300).collect::<String>()
        ));
    }
    if matches!(receiver.target, ReceiverTarget::Telegram { .. })
        && serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["ok"].as_bool())
            != Some(true)
    {
        return Err(format!("Telegram refused the message: {body}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_doubling_up_to_ten_minutes() {
        let receiver = Receiver {
            name: "ops".into(),
            target: ReceiverTarget::Webhook {
                url: "http://127.0.0.1:9/alerts".into(),
            },
            max_attempts: 8,
            initial_backoff: Duration::from_millis(500),
        };
        let delays: Vec<Duration> = [0, 1, 2, 3, 40]
            .into_iter()
            .map(|attempts| backoff(&receiver, attempts))
            .collect();
        assert_eq!(
            delays,
            [
                Duration::from_millis(500),
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(4),
                Duration::from_secs(600),
            ]
        );
    }
}
