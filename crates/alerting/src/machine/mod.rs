//! The engine's decisions, apart from its input and output: a state machine that takes the
//! state, one input and the time, and gives the new state and the [`Effect`]s that carry the
//! change out. It does no I/O and reads no clock: `now` (Unix milliseconds) is always an
//! argument, so the same state, input and time always give the same effects, and every
//! transition is tried by a unit test without NATS.
//!
//! # The inputs
//!
//! Each kind of input has its file, and each file its tests:
//!
//! - `events.rs`: an event heard. The tenant is heard from (a silent one resolves), event
//!   rules fire or are renewed, wait timers start on a client's message and stop on an answer.
//! - `clock.rs`: time passing. Timers that ran out fire, event alerts gone quiet resolve,
//!   silent tenants fire, alerts nothing mutes any more are notified, firing alerts are
//!   repeated, and what ended long ago is forgotten.
//! - `threshold.rs`: a value AnalyticsService measured, above a threshold or back under it.
//! - `operators.rs`: what people ask through gRPC: silences and acknowledgements.
//! - `delivery.rs`: notifications grouped into batches, then delivered or failed.
//!
//! What they share, an alert firing, resolving, muted or queued for its receiver, is in
//! `lifecycle.rs`; the records the state bucket holds, and their keys, are in `record.rs`.
//!
//! # Effects are the whole change
//!
//! A machine changes only by [`Machine::apply`] of an [`Effect`]. The decision code emits
//! each effect, which applies it at once (so that what it decides next sees it) and records
//! it. The effects mirror the state bucket, [`Effect::Put`] of a [`Record`] and
//! [`Effect::Delete`] of a key, plus what memory alone keeps ([`Effect::Heard`],
//! [`Effect::Evaluated`]) and what others are told ([`Effect::Publish`]). So another copy of
//! the machine that applies the same effects ends in the same state; the tests check it of
//! every transition.
//!
//! That is how [`crate::engine`] keeps its promise that every change is written to the bucket
//! before it takes effect: the machine decides on a draft, and the engine's kept copy applies
//! each effect only once the bucket took it. When a write fails, the draft is replaced by a
//! copy of the kept state, and the input is tried again (the event is redelivered, the clock
//! ticks again).

use std::collections::HashMap;

use crate::alert::{AlertRecord, ClientInfo, Silence, State};
use crate::rules::{Rule, Rules};

mod clock;
mod delivery;
mod events;
#[cfg(test)]
mod fixtures;
mod lifecycle;
mod operators;
mod record;
mod threshold;
mod undo;

pub use clock::KEEP_RESOLVED_MS;
pub use delivery::{Batch, Notification};
pub use events::{SEEN_WRITE_EVERY_MS, Timer};
pub use operators::NotAcknowledged;
pub use record::Record;
pub use threshold::threshold_summary;
pub use undo::Undo;

/// One change the machine decided, as plain data: the engine carries it out (a write to the
/// bucket, a message published) and then applies it to the state it keeps.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Keep the record under its key, in the bucket and in memory.
    Put(Record),
    /// Forget the key, in the bucket and in memory.
    Delete(String),
    /// Memory only: the tenant was heard from at `at`. Its `seen` record is written far less
    /// often (every [`SEEN_WRITE_EVERY_MS`]), since every event would otherwise be a write.
    Heard { tenant: String, at: i64 },
    /// Memory only: what a rule last looked at, for ListRules (not worth keeping across a
    /// restart).
    Evaluated {
        rule: String,
        evaluation: Evaluation,
    },
    /// Publish the alert's new state on `chat2desk.alerts`, for services that react to alerts.
    Publish(AlertRecord),
}

/// What a rule last looked at, so that ListRules can show a rule is alive even when it has
/// nothing firing.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// When, Unix milliseconds.
    pub at: i64,
    /// What it saw, in words.
    pub result: String,
}

/// The clients an input's alerts are about, as CrmService knows them: looked up by the
/// engine before the machine decides (see `Machine::lookups_for_event` and
/// `Machine::lookups_for_tick`), since asking is I/O. A client missing here goes out with
/// its bare id, as when CrmService does not answer.
pub type Clients = HashMap<(String, i64), ClientInfo>;

/// Everything alerting knows: what the state bucket holds, plus what memory alone keeps.
///
/// Cloning it is how the engine keeps a draft apart from what the bucket holds; comparing two
/// is how tests check that effects replay.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Machine {
    /// By fingerprint.
    alerts: HashMap<String, AlertRecord>,
    /// By key (`timer.{rule}.{tenant}.{request}`).
    timers: HashMap<String, Timer>,
    /// By tenant.
    seen: HashMap<String, Heard>,
    /// By key (`notify.…`).
    notifications: HashMap<String, Notification>,
    /// By id.
    silences: HashMap<String, Silence>,
    /// By rule; not kept across restarts.
    evaluations: HashMap<String, Evaluation>,
}

/// When a tenant was last heard from, and when that was last written to the bucket: a restart
/// may believe a tenant silent for up to [`SEEN_WRITE_EVERY_MS`] longer than it was, never
/// shorter.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Heard {
    last: i64,
    written: i64,
}

/// How much a machine holds: at start, a glance at it tells whether the state was found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Census {
    pub alerts: usize,
    pub timers: usize,
    pub tenants: usize,
    pub notifications: usize,
    pub silences: usize,
}

/// A stored entry that could not be read back; it is skipped (and logged by the engine)
/// rather than keeping the service from starting.
#[derive(Debug, thiserror::Error)]
#[error("state key {key}: {source}")]
pub struct Unreadable {
    /// The key, to find the entry with `nats kv get`.
    pub key: String,
    /// Why it could not be read.
    pub source: serde_json::Error,
}

impl Machine {
    /// The machine the bucket's entries describe, at `now`. Tenants a silence rule names are
    /// watched from `now` even before their first event (a webhook that never delivers is
    /// what the rule exists for); their `seen` record is written with their first event.
    pub fn restore(
        rules: &Rules,
        stored: impl IntoIterator<Item = (String, Vec<u8>)>,
        now: i64,
    ) -> (Machine, Vec<Unreadable>) {
        let mut machine = Machine::default();
        let mut unreadable = Vec::new();
        for (key, bytes) in stored {
            match Record::decode(&key, &bytes) {
                Ok(Some(record)) => machine.apply(Effect::Put(record)),
                Ok(None) => {}
                Err(source) => unreadable.push(Unreadable { key, source }),
            }
        }
        for rule in &rules.rules {
            if let crate::rules::Condition::Silence { .. } = rule.condition {
                for tenant in &rule.tenants {
                    machine.seen.entry(tenant.clone()).or_insert(Heard {
                        last: now,
                        written: 0,
                    });
                }
            }
        }
        (machine, unreadable)
    }

    /// Applies one effect to memory: the only way a machine changes.
    pub fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::Put(record) => match record {
                Record::Alert(alert) => {
                    self.alerts.insert(alert.fingerprint.clone(), alert);
                }
                Record::Timer(timer) => {
                    self.timers.insert(Record::timer_key(&timer), timer);
                }
                Record::Seen { tenant, at } => {
                    self.seen.insert(
                        tenant,
                        Heard {
                            last: at,
                            written: at,
                        },
                    );
                }
                Record::Notification { key, notification } => {
                    self.notifications.insert(key, notification);
                }
                Record::Silence(silence) => {
                    self.silences.insert(silence.id.clone(), silence);
                }
            },
            Effect::Delete(key) => match key.split_once('.') {
                Some(("alert", fingerprint)) => {
                    self.alerts.remove(fingerprint);
                }
                Some(("timer", _)) => {
                    self.timers.remove(&key);
                }
                Some(("seen", tenant)) => {
                    self.seen.remove(tenant);
                }
                Some(("notify", _)) => {
                    self.notifications.remove(&key);
                }
                Some(("silence", id)) => {
                    self.silences.remove(id);
                }
                _ => {}
            },
            Effect::Heard { tenant, at } => {
                let written = self.seen.get(&tenant).map_or(0, |heard| heard.written);
                self.seen.insert(tenant, Heard { last: at, written });
            }
            Effect::Evaluated { rule, evaluation } => {
                self.evaluations.insert(rule, evaluation);
            }
            Effect::Publish(_) => {}
        }
    }

    /// How much it holds, for the log line at start.
    pub fn census(&self) -> Census {
        Census {
            alerts: self.alerts.len(),
            timers: self.timers.len(),
            tenants: self.seen.len(),
            notifications: self.notifications.len(),
            silences: self.silences.len(),
        }
    }

    /// Every alert, firing or resolved (until forgotten), for gRPC.
    pub fn alerts(&self) -> Vec<AlertRecord> {
        self.alerts.values().cloned().collect()
    }

    /// Every silence, active or ended (until forgotten), for gRPC.
    pub fn silences(&self) -> Vec<Silence> {
        self.silences.values().cloned().collect()
    }

    /// The tenants heard from (or watched by a silence rule), sorted: threshold rules that
    /// name no tenant measure these.
    pub fn tenants(&self) -> Vec<String> {
        let mut tenants: Vec<String> = self.seen.keys().cloned().collect();
        tenants.sort();
        tenants
    }

    /// Each rule's last evaluation and how many of its alerts fire, for ListRules.
    pub fn evaluations(&self, rules: &Rules) -> HashMap<String, (Option<Evaluation>, u32)> {
        rules
            .rules
            .iter()
            .map(|rule| {
                let firing = self
                    .alerts
                    .values()
                    .filter(|a| a.rule == rule.name && a.state == State::Firing)
                    .count() as u32;
                (
                    rule.name.clone(),
                    (self.evaluations.get(&rule.name).cloned(), firing),
                )
            })
            .collect()
    }

    fn is_firing(&self, fingerprint: &str) -> bool {
        self.alerts
            .get(fingerprint)
            .is_some_and(|a| a.state == State::Firing)
    }

    /// Applies effects decided without the rules (operators' requests, deliveries) and hands
    /// them back, as [`Step`] does for the others.
    fn decided(&mut self, effects: Vec<Effect>) -> Vec<Effect> {
        for effect in &effects {
            self.apply(effect.clone());
        }
        effects
    }
}

/// One input being decided: the machine it changes, the rules, the time, and the effects so
/// far. Every decision goes through [`Step::emit`], so that the effects are the whole change.
struct Step<'a> {
    machine: &'a mut Machine,
    rules: &'a Rules,
    now: i64,
    effects: Vec<Effect>,
}

impl<'a> Step<'a> {
    fn new(machine: &'a mut Machine, rules: &'a Rules, now: i64) -> Self {
        Step {
            machine,
            rules,
            now,
            effects: Vec::new(),
        }
    }

    /// Applies the effect at once, so that the next decision sees it, and records it.
    fn emit(&mut self, effect: Effect) {
        self.machine.apply(effect.clone());
        self.effects.push(effect);
    }

    fn put(&mut self, record: Record) {
        self.emit(Effect::Put(record));
    }

    fn delete(&mut self, key: String) {
        self.emit(Effect::Delete(key));
    }

    fn evaluated(&mut self, rule: &str, result: String) {
        let evaluation = Evaluation {
            at: self.now,
            result,
        };
        self.emit(Effect::Evaluated {
            rule: rule.to_owned(),
            evaluation,
        });
    }

    /// The configured rule of that name; None when the rules changed since its alert or timer
    /// was stored.
    fn rule(&self, name: &str) -> Option<&'a Rule> {
        self.rules.rules.iter().find(|r| r.name == name)
    }

    fn finish(self) -> Vec<Effect> {
        self.effects
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::fixtures::*;
    use super::*;
    use crate::rules::{Condition, Labels};

    #[test]
    fn state_is_restored_from_stored_records() {
        let rules = rules(vec![
            rule("qr", qr_condition()),
            Rule {
                tenants: vec!["acme".into(), "globex".into()],
                ..rule(
                    "silent",
                    Condition::Silence {
                        after: Duration::from_secs(1800),
                    },
                )
            },
        ]);
        let mut alert = AlertRecord::firing(
            &rules.rules[0],
            "acme",
            Labels::from([("phone".to_owned(), "5511".to_owned())]),
            "lost".into(),
            T0,
        );
        alert.notified_at = Some(T0);
        let timer = Timer {
            rule: "waiting".into(),
            tenant: "acme".into(),
            request_id: 7,
            client_id: Some(501),
            deadline: T0 + MINUTE,
        };
        let notification = Notification {
            alert: alert.clone(),
            attempts: 2,
            next_attempt_at: T0 + SECOND,
        };
        let silence = Silence {
            id: "s1".into(),
            tenant: "acme".into(),
            rule: String::new(),
            labels: Labels::new(),
            starts_at: T0,
            ends_at: T0 + MINUTE,
            comment: "maintenance".into(),
        };
        let records = [
            Record::Alert(alert.clone()),
            Record::Timer(timer.clone()),
            Record::Seen {
                tenant: "acme".into(),
                at: T0 - MINUTE,
            },
            Record::Notification {
                key: "notify.x.firing.1".into(),
                notification: notification.clone(),
            },
            Record::Silence(silence.clone()),
        ];
        let mut stored: Vec<(String, Vec<u8>)> = records
            .iter()
            .map(|r| (r.key(), r.encode().expect("encodes")))
            .collect();
        stored.push(("alert.broken".into(), b"{not json".to_vec()));
        stored.push(("someone.elses".into(), b"1".to_vec()));

        let (machine, unreadable) = Machine::restore(&rules, stored, T0);

        assert_eq!(machine.alerts[&alert.fingerprint], alert);
        assert_eq!(machine.timers["timer.waiting.acme.7"], timer);
        assert_eq!(machine.notifications["notify.x.firing.1"], notification);
        assert_eq!(machine.silences["s1"], silence);
        assert_eq!(
            machine.seen["acme"],
            Heard {
                last: T0 - MINUTE,
                written: T0 - MINUTE
            },
            "heard from before the restart"
        );
        assert_eq!(
            machine.seen["globex"],
            Heard {
                last: T0,
                written: 0
            },
            "watched from the start, not yet written"
        );
        assert_eq!(unreadable.len(), 1);
        assert_eq!(unreadable[0].key, "alert.broken");
        assert_eq!(machine.tenants(), ["acme", "globex"]);
    }

    #[test]
    fn deletes_forget_the_entry_of_their_key() {
        let rules = rules(vec![rule("qr", qr_condition())]);
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        let fingerprint = machine.alerts().remove(0).fingerprint;
        let keys: Vec<String> = machine.notifications.keys().cloned().collect();
        for key in keys
            .into_iter()
            .chain([format!("alert.{fingerprint}"), "seen.acme".into()])
        {
            machine.apply(Effect::Delete(key));
        }
        assert!(machine.alerts.is_empty());
        assert!(machine.notifications.is_empty());
        assert!(machine.seen.is_empty());
    }

    #[test]
    fn evaluations_count_firing_alerts_per_rule() {
        let rules = rules(vec![
            rule("qr", qr_condition()),
            rule("failing", failure_condition()),
        ]);
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        hear(&mut machine, &rules, &qr("acme", "e2", "5512"), T0);
        let evaluations = machine.evaluations(&rules);
        let (last, firing) = &evaluations["qr"];
        assert_eq!(*firing, 2);
        assert_eq!(
            last.as_ref().map(|e| (e.at, e.result.as_str())),
            Some((
                T0,
                "acme: WhatsApp connection of phone 5512 lost, scan the new QR code"
            ))
        );
        assert_eq!(evaluations["failing"], (None, 0));
    }
}
