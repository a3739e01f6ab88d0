//! Notifications go to their receiver with retries and exponential backoff: a receiver that
//! fails a few times still gets each notification, once it answers. A notification is deleted
//! from the state bucket only after the receiver accepted it (or after `max_attempts`, logged
//! as an error), so a restart resumes what was not delivered.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use crate::alert::{AlertRecord, State, now_ms};
use crate::engine::{Engine, Notification};
use crate::rules::{Receiver, ReceiverTarget};

/// How often the notifier looks for due retries when nothing wakes it.
const POLL: Duration = Duration::from_millis(200);
/// Receivers are called with this time limit.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Delivers the engine's notifications until `stop`.
pub async fn run(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
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
        for (key, notification) in engine.due_notifications(now_ms()).await {
            let Some(receiver) = engine.rules.receiver(&notification.alert.receiver) else {
                tracing::error!(receiver = %notification.alert.receiver, "the alert's receiver is not configured any more; dropped");
                let _ = engine.notification_done(&key).await;
                continue;
            };
            let outcome = send(&http, receiver, &notification.alert).await;
            let recorded = match outcome {
                Ok(()) => {
                    tracing::info!(receiver = %receiver.name, fingerprint = %notification.alert.fingerprint,
                        state = notification.alert.state.as_str(), "notification delivered");
                    engine.notification_done(&key).await
                }
                Err(error) if notification.attempts + 1 >= receiver.max_attempts => {
                    tracing::error!(receiver = %receiver.name, fingerprint = %notification.alert.fingerprint, %error,
                        attempts = notification.attempts + 1, "notification given up: the receiver kept failing");
                    engine.notification_done(&key).await
                }
                Err(error) => {
                    let delay = backoff(receiver, &notification);
                    tracing::warn!(receiver = %receiver.name, fingerprint = %notification.alert.fingerprint, %error,
                        retry_in_ms = delay.as_millis() as u64, "notification not delivered; will retry");
                    engine
                        .notification_failed(&key, now_ms() + delay.as_millis() as i64)
                        .await
                }
            };
            if let Err(error) = recorded {
                tracing::error!(%error, "cannot record a notification's outcome; it may be sent again");
            }
        }
        tokio::select! {
            () = engine.notified.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => {}
        }
    }
}

fn backoff(receiver: &Receiver, notification: &Notification) -> Duration {
    let exponent = notification.attempts.min(16);
    receiver
        .initial_backoff
        .saturating_mul(1 << exponent)
        .min(Duration::from_secs(600))
}

/// One line for people.
pub fn text(alert: &AlertRecord) -> String {
    let state = match alert.state {
        State::Firing => "FIRING",
        State::Resolved => "RESOLVED",
    };
    let client = alert
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
        .unwrap_or_default();
    format!(
        "[{state}] {} {} {}: {}{client}",
        alert.severity, alert.tenant, alert.rule, alert.summary
    )
}

async fn send(
    http: &reqwest::Client,
    receiver: &Receiver,
    alert: &AlertRecord,
) -> Result<(), String> {
    let request = match &receiver.target {
        ReceiverTarget::Webhook { url } => http
            .post(url)
            .header("Idempotency-Key", alert.notification_key())
            .json(&json!({
                "status": alert.state.as_str(),
                "text": text(alert),
                "alert": alert,
            })),
        ReceiverTarget::Slack { url } => http.post(url).json(&json!({ "text": text(alert) })),
        ReceiverTarget::Telegram {
            base_url,
            token,
            chat_id,
        } => http
            .post(format!(
                "{}/bot{token}/sendMessage",
                base_url.trim_end_matches('/')
            ))
            .json(&json!({ "chat_id": chat_id, "text": text(alert) })),
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
