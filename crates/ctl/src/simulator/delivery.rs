//! Delivering events to the registered webhooks the way Chat2Desk does: one POST of the JSON
//! body; when it fails (no answer, or not 2xx), three retries after 10 s, 5 min and 2 h; and a
//! webhook without a successful answer for 5 hours is disabled, after which its account's
//! events are not sent at all, and those it still had queued for a retry are dropped (an
//! update enables it again for new events only). Every time is divided by the time scale, so a test sees the whole
//! schedule in seconds.
//!
//! Each delivery ends as one [`Outcome`] (delivered, or lost and why), which the simulator
//! counts and records: the end-to-end test checks the pipeline against exactly that.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};

use crate::simulator::accounts::Accounts;

/// Chat2Desk's retry schedule and disabling rule, scaled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub retries: [Duration; 3],
    pub disable_after: Duration,
}

impl Schedule {
    /// 10 s, 5 min, 2 h; disabled after 5 h; each divided by `scale` (1: real time).
    pub fn chat2desk(scale: f64) -> Schedule {
        let scaled = |seconds: f64| Duration::from_secs_f64(seconds / scale.max(f64::MIN_POSITIVE));
        Schedule {
            retries: [scaled(10.0), scaled(300.0), scaled(7_200.0)],
            disable_after: scaled(18_000.0),
        }
    }
}

/// How one event's delivery to one webhook ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub tenant: String,
    pub webhook_id: i64,
    pub hook_type: String,
    /// The id the gateway gives this event (it derives it from the tenant and the body).
    pub event_id: String,
    /// The body as sent.
    pub body: String,
    pub delivered: bool,
    pub attempts: u32,
    /// Why it was not delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<String>,
}

/// Counts for the summary and `GET /simulator/stats`.
#[derive(Debug, Default)]
pub struct Counters {
    pub generated: AtomicU64,
    pub attempts: AtomicU64,
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub lost: AtomicU64,
    /// Deliveries started and not yet ended.
    pub in_flight: AtomicU64,
    /// API calls answered with an injected fault.
    pub faults: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "generated": get(&self.generated),
            "attempts": get(&self.attempts),
            "delivered": get(&self.delivered),
            "retried": get(&self.retried),
            "lost": get(&self.lost),
            "in_flight": get(&self.in_flight),
            "faults": get(&self.faults),
        })
    }
}

/// What deliveries share.
pub struct Deliverer {
    pub accounts: Arc<Mutex<Accounts>>,
    pub schedule: Schedule,
    pub counters: Arc<Counters>,
    http: reqwest::Client,
    /// At most this many requests at once; a delivery waiting for a retry holds none.
    permits: Semaphore,
    started: Instant,
    outcomes: mpsc::UnboundedSender<Outcome>,
}

/// One event for one tenant, ready to send.
#[derive(Debug, Clone)]
pub struct Ready {
    pub tenant: String,
    pub hook_type: String,
    pub event_id: String,
    pub body: String,
}

impl Deliverer {
    pub fn new(
        accounts: Arc<Mutex<Accounts>>,
        schedule: Schedule,
        counters: Arc<Counters>,
        outcomes: mpsc::UnboundedSender<Outcome>,
    ) -> Result<Deliverer, reqwest::Error> {
        Ok(Deliverer {
            accounts,
            schedule,
            counters,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .user_agent("Chat2Desk webhooks (c2dctl simulate)")
                .build()?,
            permits: Semaphore::new(256),
            started: Instant::now(),
            outcomes,
        })
    }

    /// Sends `event` to every enabled webhook of its account that wants its hook type, each
    /// in its own task; an event no webhook wants is recorded as lost.
    pub fn deliver(self: &Arc<Self>, event: Ready) {
        let targets: Vec<i64> = {
            let accounts = lock(&self.accounts);
            accounts
                .accounts
                .get(&event.tenant)
                .map(|a| {
                    a.webhooks
                        .iter()
                        .filter(|w| {
                            !w.webhook.disabled && w.webhook.events.contains(&event.hook_type)
                        })
                        .map(|w| w.webhook.id)
                        .collect()
                })
                .unwrap_or_default()
        };
        if targets.is_empty() {
            self.finish(
                &event,
                0,
                0,
                Some("no enabled webhook of the account wants it".into()),
            );
            return;
        }
        for webhook_id in targets {
            self.counters.in_flight.fetch_add(1, Ordering::Relaxed);
            let this = Arc::clone(self);
            let event = event.clone();
            tokio::spawn(async move { this.deliver_to(webhook_id, event).await });
        }
    }

    async fn deliver_to(&self, webhook_id: i64, event: Ready) {
        let mut attempts = 0u32;
        let mut queued_in = None;
        loop {
            // Disabled now, or disabled (its queue dropped) since this delivery was queued.
            let url = self
                .url(&event.tenant, webhook_id)
                .filter(|(_, disablings)| *queued_in.get_or_insert(*disablings) == *disablings);
            let Some((url, _)) = url else {
                let reason = "the webhook was disabled or deleted before it succeeded";
                return self.finish(&event, webhook_id, attempts, Some(reason.into()));
            };
            attempts += 1;
            self.counters.attempts.fetch_add(1, Ordering::Relaxed);
            let answered = self.post(&url, &event.body).await;
            let disabled = self.note(&event.tenant, webhook_id, answered.is_ok());
            match answered {
                Ok(()) => return self.finish(&event, webhook_id, attempts, None),
                Err(error) => {
                    tracing::debug!(tenant = %event.tenant, webhook_id, attempts, %error, "delivery failed");
                    if disabled {
                        let reason = format!(
                            "webhook disabled: no success for 5 h (scaled); last error: {error}"
                        );
                        return self.finish(&event, webhook_id, attempts, Some(reason));
                    }
                    let Some(delay) = self.schedule.retries.get(attempts as usize - 1) else {
                        let reason = format!("no success after 3 retries; last error: {error}");
                        return self.finish(&event, webhook_id, attempts, Some(reason));
                    };
                    self.counters.retried.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(*delay).await;
                }
            }
        }
    }

    async fn post(&self, url: &str, body: &str) -> Result<(), String> {
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        let response = self
            .http
            .post(url)
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", response.status()))
        }
    }

    /// The webhook's URL while it is enabled, and how many times it was disabled.
    fn url(&self, tenant: &str, webhook_id: i64) -> Option<(String, u64)> {
        let accounts = lock(&self.accounts);
        accounts
            .accounts
            .get(tenant)?
            .webhooks
            .iter()
            .find(|w| w.webhook.id == webhook_id && !w.webhook.disabled)
            .map(|w| (w.webhook.url.clone(), w.disablings))
    }

    /// Records a success or a failure of the webhook; true when this failure disabled it.
    fn note(&self, tenant: &str, webhook_id: i64, success: bool) -> bool {
        let now = self.started.elapsed().as_millis() as u64;
        let mut accounts = lock(&self.accounts);
        let Some(registered) = accounts
            .accounts
            .get_mut(tenant)
            .and_then(|a| a.webhooks.iter_mut().find(|w| w.webhook.id == webhook_id))
        else {
            return false;
        };
        if success {
            registered.failing_since = None;
            return false;
        }
        let since = *registered.failing_since.get_or_insert(now);
        if !registered.webhook.disabled
            // Another delivery may have started the failing spell after `now` was read.
            && now.saturating_sub(since) >= self.schedule.disable_after.as_millis() as u64
        {
            registered.webhook.disabled = true;
            registered.disablings += 1;
            tracing::warn!(%tenant, webhook_id, url = %registered.webhook.url,
                "webhook disabled: no successful delivery for 5 hours (scaled), as Chat2Desk does; update it to enable it again");
        }
        registered.webhook.disabled
    }

    fn finish(&self, event: &Ready, webhook_id: i64, attempts: u32, lost: Option<String>) {
        let counter = if lost.is_some() {
            &self.counters.lost
        } else {
            &self.counters.delivered
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if webhook_id != 0 {
            self.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        let _ = self.outcomes.send(Outcome {
            tenant: event.tenant.clone(),
            webhook_id,
            hook_type: event.hook_type.clone(),
            event_id: event.event_id.clone(),
            body: event.body.clone(),
            delivered: lost.is_none(),
            attempts,
            lost,
        });
    }
}

/// The accounts' lock; a panic elsewhere does not stop deliveries.
pub fn lock(accounts: &Mutex<Accounts>) -> std::sync::MutexGuard<'_, Accounts> {
    accounts
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_scales() {
        let real = Schedule::chat2desk(1.0);
        assert_eq!(real.retries[1], Duration::from_secs(300));
        assert_eq!(real.disable_after, Duration::from_secs(5 * 3600));
        let fast = Schedule::chat2desk(3600.0);
        assert_eq!(fast.retries[2], Duration::from_secs(2));
        assert_eq!(fast.disable_after, Duration::from_secs(5));
    }
}
