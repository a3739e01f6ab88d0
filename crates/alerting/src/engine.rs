//! The rules at work: events in, a clock ticking, alerts fired and resolved.
//!
//! Everything that must survive a restart is in a JetStream key-value bucket
//! ([`BUCKET`]): alerts (`alert.{fingerprint}`), wait timers (`timer.{rule}.{tenant}.{request}`),
//! when each tenant was last heard from (`seen.{tenant}`), and notifications not yet delivered
//! (`notify.{fingerprint}.{state}.{starts_at}`). Memory mirrors the bucket (loaded at start) and
//! every change is written to the bucket before it takes effect, so a restart neither forgets a
//! firing alert or a running timer nor notifies an alert twice. One lock orders the event
//! handler and the clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use c2d_proto::events::v1::Event;
use futures_util::TryStreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Notify};

use crate::alert::{Acknowledgement, AlertRecord, ClientInfo, Silence, State, fingerprint, now_ms};
use crate::enrich::Directory;
use crate::mute::Mute;
use crate::rules::{Condition, Labels, Rule, Rules, ThresholdMetric, human};
use crate::signal::{
    event_condition, received_ms, request_labels, silence_summary, wait_signal, wait_summary,
};

/// The bucket alerting keeps its state in.
pub const BUCKET: &str = "C2D_ALERTING";
/// `seen.{tenant}` is written at most this often per tenant.
const SEEN_WRITE_EVERY_MS: i64 = 5_000;
/// Resolved alerts are kept this long for ListAlerts, then forgotten.
const KEEP_RESOLVED_MS: i64 = 7 * 24 * 3_600_000;

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the alerting state bucket {BUCKET}: {0}; is JetStream enabled on the NATS server?")]
    Bucket(String),
    #[error("cannot read alerting state key {key}: {message}")]
    Read { key: String, message: String },
    #[error(
        "cannot write alerting state key {key}: {message}; the change is retried with the event"
    )]
    Write { key: String, message: String },
}

/// A client waiting for an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timer {
    pub rule: String,
    pub tenant: String,
    pub request_id: i64,
    pub client_id: Option<i64>,
    pub deadline: i64,
}

/// A notification of one alert state, until a receiver took it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub alert: AlertRecord,
    pub attempts: u32,
    pub next_attempt_at: i64,
}

/// Notifications of one group (receiver, rule, tenant) sent as one message: a burst of alerts
/// waits together for the rule's `group_wait`, then goes out at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub receiver: String,
    /// The notifications' keys in the bucket, in the order of `alerts`.
    pub keys: Vec<String>,
    pub alerts: Vec<AlertRecord>,
    /// The most attempts any of them has had.
    pub attempts: u32,
}

impl Batch {
    /// What makes this message unique for receivers that de-duplicate (Idempotency-Key): the
    /// same notifications give the same key on a retry or after a restart.
    pub fn idempotency_key(&self) -> String {
        match self.keys.as_slice() {
            [key] => key.trim_start_matches("notify.").to_owned(),
            keys => fingerprint(
                "batch",
                &self.receiver,
                &keys.iter().map(|k| (k.clone(), String::new())).collect(),
            ),
        }
    }
}

/// What a rule last looked at, for ListRules.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub at: i64,
    pub result: String,
}

/// Acknowledging an alert that is not there to acknowledge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NotAcknowledged {
    Unknown,
    Resolved,
}

#[derive(Default)]
struct Memory {
    alerts: HashMap<String, AlertRecord>,
    timers: HashMap<String, Timer>,
    /// tenant -> (last event seen, last written to the bucket).
    seen: HashMap<String, (i64, i64)>,
    notifications: HashMap<String, Notification>,
    silences: HashMap<String, Silence>,
    /// rule -> its last evaluation (not kept across restarts).
    evaluations: HashMap<String, Evaluation>,
}

impl Memory {
    fn evaluated(&mut self, rule: &str, at: i64, result: String) {
        self.evaluations
            .insert(rule.to_owned(), Evaluation { at, result });
    }

    fn is_firing(&self, fingerprint: &str) -> bool {
        self.alerts
            .get(fingerprint)
            .is_some_and(|a| a.state == State::Firing)
    }
}

/// The rules engine, shared by the event handler, the clock, the notifier and gRPC.
pub struct Engine {
    pub rules: Arc<Rules>,
    kv: jetstream::kv::Store,
    jetstream: jetstream::Context,
    directory: Directory,
    memory: Mutex<Memory>,
    /// Raised when a notification is queued.
    pub notified: Notify,
}

impl Engine {
    /// Opens (creating) the bucket and loads the state.
    pub async fn open(
        jetstream: jetstream::Context,
        rules: Arc<Rules>,
        directory: Directory,
        replicas: usize,
    ) -> Result<Engine, StateError> {
        // The bucket's stream is created as JetStream's key-value layout prescribes, rather
        // than through the client's KV creation, which NATS servers before 2.10 do not answer.
        jetstream
            .get_or_create_stream(jetstream::stream::Config {
                name: format!("KV_{BUCKET}"),
                description: Some(
                    "c2d-alerting: alerts, wait timers, last events, notifications".into(),
                ),
                subjects: vec![format!("$KV.{BUCKET}.>")],
                max_messages_per_subject: 1,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: jetstream::stream::DiscardPolicy::New,
                storage: jetstream::stream::StorageType::File,
                num_replicas: replicas,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| StateError::Bucket(e.to_string()))?;
        let kv = jetstream
            .get_key_value(BUCKET)
            .await
            .map_err(|e| StateError::Bucket(e.to_string()))?;
        let mut memory = Memory::default();
        let keys: Vec<String> = kv
            .keys()
            .await
            .map_err(|e| StateError::Bucket(e.to_string()))?
            .try_collect()
            .await
            .map_err(|e| StateError::Bucket(e.to_string()))?;
        for key in keys {
            let Some(value) = kv.get(&key).await.map_err(|e| StateError::Read {
                key: key.clone(),
                message: e.to_string(),
            })?
            else {
                continue;
            };
            let loaded = match key.split_once('.') {
                Some(("alert", fp)) => serde_json::from_slice(&value)
                    .map(|alert| memory.alerts.insert(fp.to_owned(), alert))
                    .map(|_| ()),
                Some(("timer", _)) => serde_json::from_slice(&value)
                    .map(|timer| memory.timers.insert(key.clone(), timer))
                    .map(|_| ()),
                Some(("seen", tenant)) => serde_json::from_slice::<i64>(&value)
                    .map(|at| memory.seen.insert(tenant.to_owned(), (at, at)))
                    .map(|_| ()),
                Some(("notify", _)) => serde_json::from_slice(&value)
                    .map(|n| memory.notifications.insert(key.clone(), n))
                    .map(|_| ()),
                Some(("silence", id)) => serde_json::from_slice(&value)
                    .map(|silence| memory.silences.insert(id.to_owned(), silence))
                    .map(|_| ()),
                _ => Ok(()),
            };
            if let Err(error) = loaded {
                tracing::warn!(%key, %error, "unreadable alerting state entry skipped");
            }
        }
        // Tenants a silence rule names are watched from the start, even before their first
        // event: a webhook that never delivers is the case the rule exists for. (The clock
        // starts now; the bucket is written with their first event.)
        let now = now_ms();
        for rule in rules.rules.iter() {
            if let Condition::Silence { .. } = rule.condition {
                for tenant in &rule.tenants {
                    memory.seen.entry(tenant.clone()).or_insert((now, 0));
                }
            }
        }
        tracing::info!(
            alerts = memory.alerts.len(),
            timers = memory.timers.len(),
            tenants = memory.seen.len(),
            notifications = memory.notifications.len(),
            "alerting state loaded"
        );
        Ok(Engine {
            rules,
            kv,
            jetstream,
            directory,
            memory: Mutex::new(memory),
            notified: Notify::new(),
        })
    }

    /// Applies one event to every rule.
    pub async fn on_event(&self, event: &Event) -> Result<(), StateError> {
        let now = now_ms();
        let mut memory = self.memory.lock().await;
        self.seen(&mut memory, &event.tenant, now).await?;
        for rule in self
            .rules
            .rules
            .iter()
            .filter(|r| r.applies_to(&event.tenant))
        {
            match &rule.condition {
                Condition::Event {
                    hook_type,
                    resolve_after,
                } if *hook_type == event.hook_type => {
                    if let Some((labels, summary, client)) = event_condition(event) {
                        memory.evaluated(&rule.name, now, format!("{}: {summary}", event.tenant));
                        self.event_fired(
                            &mut memory,
                            rule,
                            event,
                            labels,
                            summary,
                            client,
                            now + resolve_after.as_millis() as i64,
                        )
                        .await?;
                    }
                }
                Condition::Wait { after } => {
                    self.wait(&mut memory, rule, *after, event, now).await?
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Timers that ran out, event alerts that went quiet, tenants that went silent.
    pub async fn tick(&self) -> Result<(), StateError> {
        let now = now_ms();
        let mut memory = self.memory.lock().await;
        let due: Vec<(String, Timer)> = memory
            .timers
            .iter()
            .filter(|(_, t)| t.deadline <= now)
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        for (key, timer) in due {
            if let Some(rule) = self.rule(&timer.rule) {
                let Condition::Wait { after } = rule.condition else {
                    continue;
                };
                let labels = request_labels(timer.request_id);
                let client = match timer.client_id {
                    Some(id) => self.directory.client(&timer.tenant, id).await,
                    None => None,
                };
                let summary = wait_summary(
                    client.as_ref().and_then(|c| c.name.clone()),
                    timer.client_id,
                    after,
                    timer.request_id,
                );
                self.fire(
                    &mut memory,
                    rule,
                    &timer.tenant,
                    labels,
                    summary,
                    client,
                    None,
                    None,
                    now,
                )
                .await?;
            }
            self.forget(&mut memory.timers, &key).await?;
        }
        for rule in &self.rules.rules {
            if let Condition::Wait { .. } = rule.condition {
                let waiting = memory
                    .timers
                    .values()
                    .filter(|t| t.rule == rule.name)
                    .count();
                memory.evaluated(
                    &rule.name,
                    now,
                    format!("{waiting} clients waiting for an answer"),
                );
            }
        }
        let quiet: Vec<String> = memory
            .alerts
            .values()
            .filter(|a| a.state == State::Firing && a.resolve_at.is_some_and(|at| at <= now))
            .map(|a| a.fingerprint.clone())
            .collect();
        for fingerprint in quiet {
            self.resolve(&mut memory, &fingerprint, now).await?;
        }
        for rule in &self.rules.rules {
            let Condition::Silence { after } = rule.condition else {
                continue;
            };
            let silent: Vec<(String, i64)> = memory
                .seen
                .iter()
                .filter(|(tenant, (last, _))| {
                    rule.applies_to(tenant) && now - last >= after.as_millis() as i64
                })
                .map(|(tenant, (last, _))| (tenant.clone(), *last))
                .collect();
            let watched = memory.seen.keys().filter(|t| rule.applies_to(t)).count();
            memory.evaluated(
                &rule.name,
                now,
                format!("{watched} tenants watched, {} silent", silent.len()),
            );
            for (tenant, last) in silent {
                let fp = fingerprint(&rule.name, &tenant, &Labels::new());
                if memory.is_firing(&fp) {
                    continue;
                }
                let summary = format!(
                    "{} (last event {} s ago)",
                    silence_summary(&tenant, after),
                    (now - last) / 1_000
                );
                self.fire_for_tenant(&mut memory, rule, &tenant, summary, now)
                    .await?;
            }
        }
        // Muted alerts whose silence ended or whose inhibitor resolved are notified now, if
        // they still fire.
        let remuted: Vec<AlertRecord> = memory
            .alerts
            .values()
            .filter(|a| a.state == State::Firing && a.is_muted())
            .filter(|a| {
                !Mute::of(
                    a,
                    &memory.silences,
                    &memory.alerts,
                    &self.rules.inhibitions,
                    now,
                )
                .is_recorded_in(a)
            })
            .cloned()
            .collect();
        for mut alert in remuted {
            alert.updated_at = now;
            self.transition(&mut memory, alert).await?;
        }
        self.repeat(&mut memory, now).await?;
        let ended: Vec<String> = memory
            .silences
            .values()
            .filter(|s| now - s.ends_at > KEEP_RESOLVED_MS)
            .map(|s| s.id.clone())
            .collect();
        for id in ended {
            self.delete(&format!("silence.{id}")).await?;
            memory.silences.remove(&id);
        }
        let forgotten: Vec<String> = memory
            .alerts
            .values()
            .filter(|a| a.ends_at.is_some_and(|end| now - end > KEEP_RESOLVED_MS))
            .map(|a| a.fingerprint.clone())
            .collect();
        for fp in forgotten {
            self.delete(&format!("alert.{fp}")).await?;
            memory.alerts.remove(&fp);
        }
        Ok(())
    }

    /// The tenants heard from, for rules that look at every tenant.
    pub async fn tenants(&self) -> Vec<String> {
        let mut tenants: Vec<String> = self.memory.lock().await.seen.keys().cloned().collect();
        tenants.sort();
        tenants
    }

    /// A threshold rule measured `value` for `tenant`: fires above the threshold, resolves at
    /// or below it.
    pub async fn threshold(&self, rule: &Rule, tenant: &str, value: f64) -> Result<(), StateError> {
        let Condition::Threshold {
            metric,
            above,
            window,
            ..
        } = rule.condition
        else {
            return Ok(());
        };
        let now = now_ms();
        let mut memory = self.memory.lock().await;
        let fp = fingerprint(&rule.name, tenant, &Labels::new());
        let firing = memory.is_firing(&fp);
        memory.evaluated(
            &rule.name,
            now,
            format!(
                "{tenant}: {} {value:.1}, {} {above}",
                metric.as_str(),
                if value > above { "above" } else { "not above" }
            ),
        );
        if value > above && !firing {
            let summary = threshold_summary(metric, value, above, window);
            self.fire_for_tenant(&mut memory, rule, tenant, summary, now)
                .await?;
        } else if value <= above && firing {
            self.resolve(&mut memory, &fp, now).await?;
        }
        Ok(())
    }

    /// Mutes matching alerts for `duration`.
    pub async fn create_silence(
        &self,
        tenant: String,
        rule: String,
        labels: Labels,
        duration: Duration,
        comment: String,
    ) -> Result<Silence, StateError> {
        let now = now_ms();
        let id = fingerprint(&format!("silence {now}"), &tenant, &labels);
        let silence = Silence {
            id: id.clone(),
            tenant,
            rule,
            labels,
            starts_at: now,
            ends_at: now + duration.as_millis() as i64,
            comment,
        };
        let mut memory = self.memory.lock().await;
        self.put(&format!("silence.{id}"), &silence).await?;
        memory.silences.insert(id, silence.clone());
        tracing::info!(silence = %silence.id, tenant = %silence.tenant, rule = %silence.rule, "silence created");
        Ok(silence)
    }

    /// Ends a silence now; None when there is no such silence.
    pub async fn expire_silence(&self, id: &str) -> Result<Option<Silence>, StateError> {
        let now = now_ms();
        let mut memory = self.memory.lock().await;
        let Some(mut silence) = memory.silences.get(id).cloned() else {
            return Ok(None);
        };
        silence.ends_at = silence.ends_at.min(now);
        self.put(&format!("silence.{id}"), &silence).await?;
        memory.silences.insert(id.to_owned(), silence.clone());
        tracing::info!(silence = %id, "silence expired");
        Ok(Some(silence))
    }

    /// Every silence, for gRPC.
    pub async fn silences(&self) -> Vec<Silence> {
        self.memory
            .lock()
            .await
            .silences
            .values()
            .cloned()
            .collect()
    }

    /// Every alert, for gRPC.
    pub async fn alerts(&self) -> Vec<AlertRecord> {
        self.memory.lock().await.alerts.values().cloned().collect()
    }

    /// Someone is on the alert: it is not repeated any more.
    pub async fn acknowledge(
        &self,
        fingerprint: &str,
        by: String,
        comment: String,
    ) -> Result<Result<AlertRecord, NotAcknowledged>, StateError> {
        let now = now_ms();
        let mut memory = self.memory.lock().await;
        let Some(mut alert) = memory.alerts.get(fingerprint).cloned() else {
            return Ok(Err(NotAcknowledged::Unknown));
        };
        if alert.state == State::Resolved {
            return Ok(Err(NotAcknowledged::Resolved));
        }
        alert.acknowledgement = Some(Acknowledgement {
            by,
            comment,
            at: now,
        });
        alert.updated_at = now;
        self.put(&format!("alert.{fingerprint}"), &alert).await?;
        tracing::info!(%fingerprint, by = ?alert.acknowledgement.as_ref().map(|a| &a.by), "alert acknowledged");
        memory.alerts.insert(fingerprint.to_owned(), alert.clone());
        Ok(Ok(alert))
    }

    /// Each rule's last evaluation and how many of its alerts fire, for ListRules.
    pub async fn evaluations(&self) -> HashMap<String, (Option<Evaluation>, u32)> {
        let memory = self.memory.lock().await;
        self.rules
            .rules
            .iter()
            .map(|rule| {
                let firing = memory
                    .alerts
                    .values()
                    .filter(|a| a.rule == rule.name && a.state == State::Firing)
                    .count() as u32;
                (
                    rule.name.clone(),
                    (memory.evaluations.get(&rule.name).cloned(), firing),
                )
            })
            .collect()
    }

    /// Notifications to send now, in batches: each due notification with every other one of
    /// its group (receiver, rule, tenant) that is waiting.
    pub async fn due_batches(&self, now: i64) -> Vec<Batch> {
        let memory = self.memory.lock().await;
        let group = |n: &Notification| {
            (
                n.alert.receiver.clone(),
                n.alert.rule.clone(),
                n.alert.tenant.clone(),
            )
        };
        let due: std::collections::BTreeSet<_> = memory
            .notifications
            .values()
            .filter(|n| n.next_attempt_at <= now)
            .map(group)
            .collect();
        due.into_iter()
            .map(|(receiver, rule, tenant)| {
                let mut members: Vec<(&String, &Notification)> = memory
                    .notifications
                    .iter()
                    .filter(|(_, n)| {
                        n.alert.receiver == receiver
                            && n.alert.rule == rule
                            && n.alert.tenant == tenant
                    })
                    .collect();
                members.sort_by_key(|(key, n)| (n.alert.updated_at, (*key).clone()));
                Batch {
                    receiver,
                    keys: members.iter().map(|(k, _)| (*k).clone()).collect(),
                    alerts: members.iter().map(|(_, n)| n.alert.clone()).collect(),
                    attempts: members.iter().map(|(_, n)| n.attempts).max().unwrap_or(0),
                }
            })
            .collect()
    }

    /// A batch was delivered, or given up on.
    pub async fn batch_done(&self, batch: &Batch) -> Result<(), StateError> {
        let mut memory = self.memory.lock().await;
        for key in &batch.keys {
            self.forget(&mut memory.notifications, key).await?;
        }
        Ok(())
    }

    /// A batch failed and is tried again at `next_attempt_at`.
    pub async fn batch_failed(
        &self,
        batch: &Batch,
        next_attempt_at: i64,
    ) -> Result<(), StateError> {
        let mut memory = self.memory.lock().await;
        for key in &batch.keys {
            let Some(mut notification) = memory.notifications.get(key).cloned() else {
                continue;
            };
            notification.attempts = batch.attempts + 1;
            notification.next_attempt_at = next_attempt_at;
            self.put(key, &notification).await?;
            memory.notifications.insert(key.clone(), notification);
        }
        Ok(())
    }

    /// Firing alerts nobody acknowledged are notified again every `repeat_interval` of their
    /// rule (when it has one), unless a notification of theirs is still on its way.
    async fn repeat(&self, memory: &mut Memory, now: i64) -> Result<(), StateError> {
        let due: Vec<AlertRecord> = memory
            .alerts
            .values()
            .filter(|a| a.state == State::Firing && !a.is_muted() && a.acknowledgement.is_none())
            // A silence created since it fired mutes its repeats too.
            .filter(|a| {
                !memory
                    .silences
                    .values()
                    .any(|s| s.is_active(now) && s.matches(a))
            })
            .filter(|a| {
                let every = self.rule(&a.rule).and_then(|r| r.repeat_interval);
                match (every, a.notified_at) {
                    (Some(every), Some(at)) => now - at >= every.as_millis() as i64,
                    _ => false,
                }
            })
            .filter(|a| {
                let prefix = format!("notify.{}.", a.fingerprint);
                !memory.notifications.keys().any(|k| k.starts_with(&prefix))
            })
            .cloned()
            .collect();
        for mut alert in due {
            alert.notified_at = Some(now);
            let key = format!("notify.{}.repeat{now}", alert.notification_key());
            self.queue(memory, key, &alert, now).await?;
            self.put(&format!("alert.{}", alert.fingerprint), &alert)
                .await?;
            tracing::info!(fingerprint = %alert.fingerprint, rule = %alert.rule, "alert still firing: notified again");
            memory.alerts.insert(alert.fingerprint.clone(), alert);
        }
        Ok(())
    }

    fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.rules.iter().find(|r| r.name == name)
    }

    async fn seen(&self, memory: &mut Memory, tenant: &str, now: i64) -> Result<(), StateError> {
        let written = memory.seen.get(tenant).map_or(0, |(_, written)| *written);
        if now - written >= SEEN_WRITE_EVERY_MS {
            self.put(&format!("seen.{tenant}"), &now).await?;
            memory.seen.insert(tenant.to_owned(), (now, now));
        } else {
            memory.seen.insert(tenant.to_owned(), (now, written));
        }
        // A silent tenant spoke again.
        for rule in self
            .rules
            .rules
            .iter()
            .filter(|r| matches!(r.condition, Condition::Silence { .. }))
        {
            let fp = fingerprint(&rule.name, tenant, &Labels::new());
            if memory.is_firing(&fp) {
                self.resolve(memory, &fp, now).await?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn event_fired(
        &self,
        memory: &mut Memory,
        rule: &Rule,
        event: &Event,
        labels: Labels,
        summary: String,
        client_id: Option<i64>,
        resolve_at: i64,
    ) -> Result<(), StateError> {
        let fp = fingerprint(&rule.name, &event.tenant, &labels);
        if let Some(alert) = memory.alerts.get(&fp).filter(|a| a.state == State::Firing) {
            if alert.last_event_id.as_deref() == Some(event.event_id.as_str()) {
                return Ok(());
            }
            // Still the same condition: it stays firing, longer, and is not notified again.
            let mut alert = alert.clone();
            alert.resolve_at = Some(resolve_at);
            alert.last_event_id = Some(event.event_id.clone());
            alert.updated_at = now_ms();
            self.put(&format!("alert.{fp}"), &alert).await?;
            memory.alerts.insert(fp, alert);
            return Ok(());
        }
        let client = match client_id {
            Some(id) => self.directory.client(&event.tenant, id).await,
            None => None,
        };
        self.fire(
            memory,
            rule,
            &event.tenant,
            labels,
            summary,
            client,
            Some(resolve_at),
            Some(event.event_id.clone()),
            now_ms(),
        )
        .await
    }

    async fn wait(
        &self,
        memory: &mut Memory,
        rule: &Rule,
        after: Duration,
        event: &Event,
        now: i64,
    ) -> Result<(), StateError> {
        let Some(signal) = wait_signal(event) else {
            return Ok(());
        };
        let request_id = signal.request_id;
        let key = format!("timer.{}.{}.{request_id}", rule.name, event.tenant);
        let fp = fingerprint(&rule.name, &event.tenant, &request_labels(request_id));
        if signal.answered {
            if memory.timers.contains_key(&key) {
                self.forget(&mut memory.timers, &key).await?;
                memory.evaluated(
                    &rule.name,
                    now,
                    format!("{}: request {request_id} answered in time", event.tenant),
                );
            }
            if memory.is_firing(&fp) {
                self.resolve(memory, &fp, now).await?;
            }
            return Ok(());
        }
        if memory.timers.contains_key(&key) || memory.is_firing(&fp) {
            // The first unanswered message counts; later ones wait with it.
            return Ok(());
        }
        // From when the gateway received it: a restart or a backlog does not extend the wait.
        let timer = Timer {
            rule: rule.name.clone(),
            tenant: event.tenant.clone(),
            request_id,
            client_id: signal.client_id,
            deadline: received_ms(event, now).min(now) + after.as_millis() as i64,
        };
        self.put(&key, &timer).await?;
        memory.timers.insert(key, timer);
        memory.evaluated(
            &rule.name,
            now,
            format!("{}: request {request_id} waits for an answer", event.tenant),
        );
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn fire(
        &self,
        memory: &mut Memory,
        rule: &Rule,
        tenant: &str,
        labels: Labels,
        summary: String,
        client: Option<ClientInfo>,
        resolve_at: Option<i64>,
        event_id: Option<String>,
        now: i64,
    ) -> Result<(), StateError> {
        let tags = client.as_ref().map(|c| c.tags.clone()).unwrap_or_default();
        let mut alert = AlertRecord::firing(rule, tenant, labels, summary, now);
        alert.receiver = rule.receiver_for(&tags).to_owned();
        alert.client = client;
        alert.resolve_at = resolve_at;
        alert.last_event_id = event_id;
        let fp = &alert.fingerprint;
        tracing::warn!(rule = %rule.name, %tenant, fingerprint = %fp, summary = %alert.summary, "alert firing");
        self.transition(memory, alert).await
    }

    /// An alert about a whole tenant (silence, threshold): no labels, no client.
    async fn fire_for_tenant(
        &self,
        memory: &mut Memory,
        rule: &Rule,
        tenant: &str,
        summary: String,
        now: i64,
    ) -> Result<(), StateError> {
        self.fire(
            memory,
            rule,
            tenant,
            Labels::new(),
            summary,
            None,
            None,
            None,
            now,
        )
        .await
    }

    async fn resolve(&self, memory: &mut Memory, fp: &str, now: i64) -> Result<(), StateError> {
        let Some(mut alert) = memory.alerts.get(fp).cloned() else {
            return Ok(());
        };
        alert.state = State::Resolved;
        alert.ends_at = Some(now);
        alert.updated_at = now;
        alert.resolve_at = None;
        tracing::info!(rule = %alert.rule, tenant = %alert.tenant, fingerprint = %fp, "alert resolved");
        self.transition(memory, alert).await
    }

    /// A new state: kept, queued for its receiver unless something mutes it, published. The
    /// notification is written first, so that a crash after the alert's write cannot lose it.
    async fn transition(
        &self,
        memory: &mut Memory,
        mut alert: AlertRecord,
    ) -> Result<(), StateError> {
        let now = alert.updated_at;
        if alert.state == State::Firing {
            Mute::of(
                &alert,
                &memory.silences,
                &memory.alerts,
                &self.rules.inhibitions,
                now,
            )
            .record_in(&mut alert);
        }
        // A resolution is muted when its firing was: it was never notified.
        if alert.is_muted() {
            tracing::info!(fingerprint = %alert.fingerprint, silence = ?alert.silenced_by,
                inhibitor = ?alert.inhibited_by, "alert muted: not notified");
        } else {
            let key = format!("notify.{}", alert.notification_key());
            if alert.state == State::Firing {
                alert.notified_at = Some(now);
            }
            self.queue(memory, key, &alert, now).await?;
        }
        self.put(&format!("alert.{}", alert.fingerprint), &alert)
            .await?;
        self.publish(&alert).await;
        memory.alerts.insert(alert.fingerprint.clone(), alert);
        Ok(())
    }

    /// Queues a notification of `alert` under `key`, due after its rule's group wait.
    async fn queue(
        &self,
        memory: &mut Memory,
        key: String,
        alert: &AlertRecord,
        now: i64,
    ) -> Result<(), StateError> {
        let group_wait = self
            .rule(&alert.rule)
            .and_then(|r| r.group_wait)
            .map_or(0, |wait| wait.as_millis() as i64);
        let notification = Notification {
            alert: alert.clone(),
            attempts: 0,
            next_attempt_at: now + group_wait,
        };
        self.put(&key, &notification).await?;
        memory.notifications.insert(key, notification);
        self.notified.notify_one();
        Ok(())
    }

    /// Publishes the state change on `chat2desk.alerts.{tenant}.{state}`, once per state.
    async fn publish(&self, alert: &AlertRecord) {
        use prost::Message as _;
        let subject = c2d_proto::alerting::alert_subject(&alert.tenant, alert.state.as_str());
        let message = jetstream::message::PublishMessage::build()
            .payload(alert.to_proto().encode_to_vec().into())
            .message_id(alert.notification_key());
        let published = match self.jetstream.send_publish(subject, message).await {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = published {
            tracing::error!(%error, fingerprint = %alert.fingerprint, "alert not published on chat2desk.alerts (the notification still goes out)");
        }
    }

    async fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StateError::Write {
            key: key.into(),
            message: e.to_string(),
        })?;
        self.kv
            .put(key, bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| StateError::Write {
                key: key.into(),
                message: e.to_string(),
            })
    }

    async fn delete(&self, key: &str) -> Result<(), StateError> {
        self.kv.delete(key).await.map_err(|e| StateError::Write {
            key: key.into(),
            message: e.to_string(),
        })
    }

    async fn forget<T>(&self, map: &mut HashMap<String, T>, key: &str) -> Result<(), StateError> {
        self.delete(key).await?;
        map.remove(key);
        Ok(())
    }
}

/// What a threshold alert says.
pub fn threshold_summary(
    metric: ThresholdMetric,
    value: f64,
    above: f64,
    window: Duration,
) -> String {
    format!(
        "{} is {value:.1} over the last {}, above {above}",
        metric.as_str(),
        human(window)
    )
}
