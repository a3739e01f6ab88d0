//! The rules at work: events in, a clock ticking, alerts fired and resolved; the shell around
//! [`crate::machine`], which decides, while the engine reads the clock, asks CrmService, and
//! writes what was decided.
//!
//! Everything that must survive a restart is in a JetStream key-value bucket ([`BUCKET`]):
//! alerts, wait timers, when each tenant was last heard from, notifications not yet
//! delivered, and silences (the keys are listed in [`crate::machine::Record`]). Memory
//! mirrors the bucket (loaded at start) and every change is written to the bucket before it
//! takes effect, so a restart neither forgets a firing alert or a running timer nor notifies
//! an alert twice.
//!
//! Each input goes the same way, under one lock that orders the event handler, the clock, the
//! notifier and gRPC: read the time once, look up the clients the machine will ask about,
//! let the machine decide on its draft, then carry out the [`Effect`]s in order, each written
//! to the bucket before the kept state applies it. A write that fails stops there: the writes
//! of the change under way are taken back, the draft is reset to the kept state, which holds
//! what the bucket holds, and the error goes back to whoever retries (the subscriber
//! redelivers the event, the clock ticks again, gRPC answers UNAVAILABLE).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use c2d_proto::events::v1::Event;
use futures_util::TryStreamExt as _;
use tokio::sync::{Mutex, Notify};

use crate::alert::{AlertRecord, Silence, now_ms};
use crate::enrich::Directory;
use crate::machine::{
    Batch, Clients, Effect, Evaluation, Machine, NotAcknowledged, Record, Undo, Unreadable,
};
use crate::rules::{Labels, Rule, Rules};

/// The bucket alerting keeps its state in.
pub const BUCKET: &str = "C2D_ALERTING";

/// How many times a write is tried when a change is taken back.
const RESTORE_TRIES: u32 = 5;

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

/// The machine twice: as the bucket holds it, and the draft the next input is decided on.
/// Between inputs the two are equal.
struct Memory {
    /// Moves only by effects the bucket took; what every query reads.
    kept: Machine,
    /// Runs ahead while an input is decided; reset to `kept` when a write fails.
    draft: Machine,
}

/// The rules engine, shared by the event handler, the clock, the notifier and gRPC.
pub struct Engine {
    pub rules: Arc<Rules>,
    kv: jetstream::kv::Store,
    jetstream: jetstream::Context,
    directory: Directory,
    memory: Mutex<Memory>,
    /// Raised when a notification is queued, so the notifier need not wait for its poll.
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
        let keys: Vec<String> = kv
            .keys()
            .await
            .map_err(|e| StateError::Bucket(e.to_string()))?
            .try_collect()
            .await
            .map_err(|e| StateError::Bucket(e.to_string()))?;
        let mut stored = Vec::with_capacity(keys.len());
        for key in keys {
            let value = kv.get(&key).await.map_err(|e| StateError::Read {
                key: key.clone(),
                message: e.to_string(),
            })?;
            if let Some(value) = value {
                stored.push((key, value.to_vec()));
            }
        }
        let (machine, unreadable) = Machine::restore(&rules, stored, now_ms());
        for Unreadable { key, source } in unreadable {
            tracing::warn!(%key, error = %source, "unreadable alerting state entry skipped");
        }
        let census = machine.census();
        tracing::info!(
            alerts = census.alerts,
            timers = census.timers,
            tenants = census.tenants,
            notifications = census.notifications,
            silences = census.silences,
            "alerting state loaded"
        );
        Ok(Engine {
            rules,
            kv,
            jetstream,
            directory,
            memory: Mutex::new(Memory {
                draft: machine.clone(),
                kept: machine,
            }),
            notified: Notify::new(),
        })
    }

    /// Applies one event to every rule.
    pub async fn on_event(&self, event: &Event) -> Result<(), StateError> {
        let mut memory = self.memory.lock().await;
        let now = now_ms();
        let lookups = memory.draft.lookups_for_event(&self.rules, event);
        let clients = self.look_up(lookups).await;
        let effects = memory.draft.on_event(&self.rules, event, &clients, now);
        self.commit(&mut memory, effects).await
    }

    /// Timers that ran out, event alerts that went quiet, tenants that went silent, muted
    /// alerts to tell, repeats, and what ended long ago.
    pub async fn tick(&self) -> Result<(), StateError> {
        let mut memory = self.memory.lock().await;
        let now = now_ms();
        let lookups = memory.draft.lookups_for_tick(&self.rules, now);
        let clients = self.look_up(lookups).await;
        let effects = memory.draft.tick(&self.rules, &clients, now);
        self.commit(&mut memory, effects).await
    }

    /// The tenants heard from, for rules that look at every tenant.
    pub async fn tenants(&self) -> Vec<String> {
        self.memory.lock().await.kept.tenants()
    }

    /// A threshold rule measured `value` for `tenant`: fires above the threshold, resolves at
    /// or below it.
    pub async fn threshold(&self, rule: &Rule, tenant: &str, value: f64) -> Result<(), StateError> {
        let mut memory = self.memory.lock().await;
        let now = now_ms();
        let effects = memory
            .draft
            .threshold(&self.rules, rule, tenant, value, now);
        self.commit(&mut memory, effects).await
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
        let mut memory = self.memory.lock().await;
        let now = now_ms();
        let (silence, effects) = memory
            .draft
            .create_silence(tenant, rule, labels, duration, comment, now);
        self.commit(&mut memory, effects).await?;
        tracing::info!(silence = %silence.id, tenant = %silence.tenant, rule = %silence.rule, "silence created");
        Ok(silence)
    }

    /// Ends a silence now; None when there is no such silence.
    pub async fn expire_silence(&self, id: &str) -> Result<Option<Silence>, StateError> {
        let mut memory = self.memory.lock().await;
        let now = now_ms();
        let Some((silence, effects)) = memory.draft.expire_silence(id, now) else {
            return Ok(None);
        };
        self.commit(&mut memory, effects).await?;
        tracing::info!(silence = %id, "silence expired");
        Ok(Some(silence))
    }

    /// Every silence, for gRPC.
    pub async fn silences(&self) -> Vec<Silence> {
        self.memory.lock().await.kept.silences()
    }

    /// Every alert, for gRPC.
    pub async fn alerts(&self) -> Vec<AlertRecord> {
        self.memory.lock().await.kept.alerts()
    }

    /// Someone is on the alert: it is not repeated any more.
    pub async fn acknowledge(
        &self,
        fingerprint: &str,
        by: String,
        comment: String,
    ) -> Result<Result<AlertRecord, NotAcknowledged>, StateError> {
        let mut memory = self.memory.lock().await;
        let now = now_ms();
        let (alert, effects) = match memory.draft.acknowledge(fingerprint, by, comment, now) {
            Ok(acknowledged) => acknowledged,
            Err(not) => return Ok(Err(not)),
        };
        self.commit(&mut memory, effects).await?;
        tracing::info!(%fingerprint, by = ?alert.acknowledgement.as_ref().map(|a| &a.by), "alert acknowledged");
        Ok(Ok(alert))
    }

    /// Each rule's last evaluation and how many of its alerts fire, for ListRules.
    pub async fn evaluations(
        &self,
    ) -> std::collections::HashMap<String, (Option<Evaluation>, u32)> {
        self.memory.lock().await.kept.evaluations(&self.rules)
    }

    /// Notifications to send now, in batches: each due notification with every other one of
    /// its group (receiver, rule, tenant) that is waiting.
    pub async fn due_batches(&self, now: i64) -> Vec<Batch> {
        self.memory.lock().await.kept.due_batches(now)
    }

    /// A batch was delivered, or given up on.
    pub async fn batch_done(&self, batch: &Batch) -> Result<(), StateError> {
        let mut memory = self.memory.lock().await;
        let effects = memory.draft.batch_done(batch);
        self.commit(&mut memory, effects).await
    }

    /// A batch failed and is tried again at `next_attempt_at`.
    pub async fn batch_failed(
        &self,
        batch: &Batch,
        next_attempt_at: i64,
    ) -> Result<(), StateError> {
        let mut memory = self.memory.lock().await;
        let effects = memory.draft.batch_failed(batch, next_attempt_at);
        self.commit(&mut memory, effects).await
    }

    /// The clients an input's alerts are about, from CrmService (which answers with a bare id
    /// when it cannot do better).
    async fn look_up(&self, lookups: Vec<(String, i64)>) -> Clients {
        let mut clients = Clients::new();
        for (tenant, client_id) in lookups {
            if let Some(client) = self.directory.client(&tenant, client_id).await {
                clients.insert((tenant, client_id), client);
            }
        }
        clients
    }

    /// Carries out `effects` in order, each before the kept state applies it. On the first
    /// that fails, the writes of the change under way are taken back ([`crate::machine::Undo`])
    /// and the draft goes back to the kept state: the input, tried again, meets the state the
    /// change first met. A `Publish` ends a change (an alert's notification, record and
    /// message): what was published stays written, as it would have before.
    async fn commit(&self, memory: &mut Memory, effects: Vec<Effect>) -> Result<(), StateError> {
        let mut written = Vec::new();
        for effect in effects {
            let undo = memory.kept.undo_of(&effect);
            if let Err(error) = self.carry_out(&effect).await {
                // The write may have been stored with its acknowledgement lost: taken back too,
                // first, though memory never applied it.
                if let Some(failed) = undo
                    && let Err(error) = self.restore(&failed).await
                {
                    tracing::warn!(%error, key = %failed.key, "a failed write could not be taken back; it may be stored");
                }
                self.take_back(&mut memory.kept, written).await;
                memory.draft = memory.kept.clone();
                return Err(error);
            }
            if matches!(effect, Effect::Publish(_)) {
                written.clear();
            } else {
                written.extend(undo);
            }
            memory.kept.apply(effect);
        }
        Ok(())
    }

    /// Writes back, last first, what the keys of a change that failed held before. It stops at
    /// the first write back that fails: the bucket then keeps the change's first writes, as a
    /// crash in the middle of the change would have left them (a notification is written
    /// before its alert, so it is never the alert without its notification, and when the rule
    /// fires again the machine keeps the alert as that notification told it).
    async fn take_back(&self, kept: &mut Machine, written: Vec<Undo>) {
        for undo in written.into_iter().rev() {
            if let Err(error) = self.restore(&undo).await {
                tracing::error!(%error, key = %undo.key,
                    "a change that failed half-way could not be taken back; its first writes stay");
                return;
            }
            undo.memory
                .into_iter()
                .for_each(|effect| kept.apply(effect));
        }
    }

    /// Writes back what `undo`'s key held, tried [`RESTORE_TRIES`] times over about 1.5 s: a
    /// write that failed because JetStream was failing over is often taken a moment later.
    async fn restore(&self, undo: &Undo) -> Result<(), StateError> {
        let mut delay = Duration::from_millis(100);
        for _ in 1..RESTORE_TRIES {
            if self.restore_once(undo).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        self.restore_once(undo).await
    }

    async fn restore_once(&self, undo: &Undo) -> Result<(), StateError> {
        match &undo.before {
            Some(record) => self.put(record).await,
            None => self.delete(&undo.key).await,
        }
    }

    async fn carry_out(&self, effect: &Effect) -> Result<(), StateError> {
        match effect {
            Effect::Put(record) => {
                self.put(record).await?;
                // A new notification, not a failed one put back for its retry (the notifier
                // itself puts those back, and they are not due yet).
                if let Record::Notification { notification, .. } = record
                    && notification.attempts == 0
                {
                    self.notified.notify_one();
                }
            }
            Effect::Delete(key) => self.delete(key).await?,
            Effect::Publish(alert) => self.publish(alert).await,
            Effect::Heard { .. } | Effect::Evaluated { .. } => {}
        }
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

    async fn put(&self, record: &Record) -> Result<(), StateError> {
        let key = record.key();
        let write_error = |message: String| StateError::Write {
            key: key.clone(),
            message,
        };
        let bytes = record.encode().map_err(|e| write_error(e.to_string()))?;
        self.kv
            .put(&key, bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| write_error(e.to_string()))
    }

    async fn delete(&self, key: &str) -> Result<(), StateError> {
        self.kv.delete(key).await.map_err(|e| StateError::Write {
            key: key.into(),
            message: e.to_string(),
        })
    }
}
