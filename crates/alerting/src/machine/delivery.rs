//! Notifications on their way to receivers. Each waits in the state until a receiver took it,
//! so that a restart resumes what was not delivered; they go out in batches, one per group
//! (receiver, rule, tenant), so that a burst of alerts is one message. How long to wait after
//! a failure, and when to give up, is the notifier's to say ([`crate::notify`]); the machine
//! keeps count.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::alert::{AlertRecord, fingerprint};

use super::{Effect, Machine, Record};

/// A notification of one alert state, until a receiver took it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The alert as it was in that state: a later change does not rewrite what is told.
    pub alert: AlertRecord,
    /// Failed deliveries so far; the notifier gives up after its receiver's `max_attempts`.
    pub attempts: u32,
    /// Not before then: the group wait at first, the backoff after a failure.
    pub next_attempt_at: i64,
}

/// Notifications of one group (receiver, rule, tenant) sent as one message: a burst of alerts
/// waits together for the rule's `group_wait`, then goes out at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Where it goes: a batch is never split between receivers.
    pub receiver: String,
    /// The notifications' keys in the bucket, in the order of `alerts`.
    pub keys: Vec<String>,
    /// What the message says, oldest first.
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

impl Machine {
    /// Notifications to send at `now`, in batches: each due notification with every other one
    /// of its group that is waiting, oldest first, so that the group's first due member takes
    /// the rest along.
    pub fn due_batches(&self, now: i64) -> Vec<Batch> {
        let group = |n: &Notification| {
            (
                n.alert.receiver.clone(),
                n.alert.rule.clone(),
                n.alert.tenant.clone(),
            )
        };
        let due: BTreeSet<_> = self
            .notifications
            .values()
            .filter(|n| n.next_attempt_at <= now)
            .map(group)
            .collect();
        due.into_iter()
            .map(|(receiver, rule, tenant)| {
                let mut members: Vec<(&String, &Notification)> = self
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

    /// The batch was delivered, or given up on: its notifications are done. A firing among
    /// them that was told but never kept ([`Machine::told_but_not_kept`]) is kept first, as
    /// told, so that it resolves like any other.
    pub fn batch_done(&mut self, batch: &Batch) -> Vec<Effect> {
        let fingerprints: BTreeSet<&str> = batch
            .alerts
            .iter()
            .map(|alert| alert.fingerprint.as_str())
            .collect();
        let mut effects = Vec::new();
        for fingerprint in fingerprints {
            if let Some(told) = self.told_but_not_kept(fingerprint) {
                tracing::warn!(%fingerprint, "this alert's firing went out but was not kept (a write failed half-way): kept now as told");
                effects.extend(Machine::keeping_as_told(told));
            }
        }
        effects.extend(batch.keys.iter().cloned().map(Effect::Delete));
        self.decided(effects)
    }

    /// The batch failed: each of its notifications still waiting counts one more attempt (as
    /// many as the batch's most tried one) and is due again at `next_attempt_at`.
    pub fn batch_failed(&mut self, batch: &Batch, next_attempt_at: i64) -> Vec<Effect> {
        let effects = batch
            .keys
            .iter()
            .filter_map(|key| {
                let mut notification = self.notifications.get(key)?.clone();
                notification.attempts = batch.attempts + 1;
                notification.next_attempt_at = next_attempt_at;
                Some(Effect::Put(Record::Notification {
                    key: key.clone(),
                    notification,
                }))
            })
            .collect();
        self.decided(effects)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::fixtures::*;
    use super::*;
    use crate::rules::Rule;

    fn grouped() -> crate::rules::Rules {
        rules(vec![
            Rule {
                group_wait: Some(Duration::from_secs(30)),
                ..rule("failing", failure_condition())
            },
            rule("qr", qr_condition()),
        ])
    }

    #[test]
    fn a_burst_waits_for_group_wait_and_goes_out_as_one_batch() {
        let rules = grouped();
        let mut machine = Machine::default();
        for (n, at) in [(1, T0), (2, T0 + 10 * SECOND), (3, T0 + 20 * SECOND)] {
            hear(
                &mut machine,
                &rules,
                &failure("acme", &format!("e{n}"), 10 + n, None),
                at,
            );
        }
        hear(&mut machine, &rules, &failure("globex", "e9", 10, None), T0);
        assert!(machine.due_batches(T0 + 30 * SECOND - 1).is_empty());

        let batches = machine.due_batches(T0 + 30 * SECOND);
        let acme: Vec<&Batch> = batches
            .iter()
            .filter(|b| b.alerts[0].tenant == "acme")
            .collect();
        assert_eq!(batches.len(), 2, "one per tenant: {batches:?}");
        assert_eq!(acme.len(), 1);
        let channels: Vec<&str> = acme[0]
            .alerts
            .iter()
            .map(|a| a.labels["channel_id"].as_str())
            .collect();
        assert_eq!(
            channels,
            ["11", "12", "13"],
            "the whole group, oldest first, though two are not due yet"
        );
        assert_eq!(acme[0].keys.len(), 3);
        assert_eq!(acme[0].attempts, 0);
        assert_eq!(acme[0].receiver, "ops");
    }

    #[test]
    fn groups_are_per_rule() {
        let rules = grouped();
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        hear(&mut machine, &rules, &qr("acme", "e2", "5512"), T0);
        hear(&mut machine, &rules, &failure("acme", "e3", 10, None), T0);
        let batches = machine.due_batches(T0);
        assert_eq!(batches.len(), 1, "the failure waits: {batches:?}");
        assert_eq!(batches[0].alerts.len(), 2);
        assert!(batches[0].alerts.iter().all(|a| a.rule == "qr"));
    }

    #[test]
    fn a_delivered_batch_is_done() {
        let rules = grouped();
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        let batch = machine.due_batches(T0).remove(0);
        let effects = run(&mut machine, |m| m.batch_done(&batch));
        assert_eq!(effects, [Effect::Delete(batch.keys[0].clone())]);
        assert!(machine.due_batches(T0 + HOUR).is_empty());
    }

    #[test]
    fn a_failed_batch_counts_an_attempt_and_waits_until_its_retry() {
        let rules = grouped();
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        hear(&mut machine, &rules, &qr("acme", "e2", "5512"), T0);
        let batch = machine.due_batches(T0).remove(0);
        let effects = run(&mut machine, |m| m.batch_failed(&batch, T0 + SECOND));
        let retried: Vec<(u32, i64)> = notifications(&effects)
            .iter()
            .map(|(_, n)| (n.attempts, n.next_attempt_at))
            .collect();
        assert_eq!(retried, [(1, T0 + SECOND), (1, T0 + SECOND)]);
        assert!(
            machine.due_batches(T0 + SECOND - 1).is_empty(),
            "backing off"
        );

        let again = machine.due_batches(T0 + SECOND).remove(0);
        assert_eq!(again.keys, batch.keys);
        assert_eq!(again.attempts, 1);
        run(&mut machine, |m| m.batch_failed(&again, T0 + 3 * SECOND));
        assert_eq!(machine.due_batches(T0 + 3 * SECOND)[0].attempts, 2);
    }

    #[test]
    fn a_batch_failing_after_one_of_its_notifications_was_done_leaves_it_done() {
        let rules = grouped();
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        let batch = machine.due_batches(T0).remove(0);
        run(&mut machine, |m| m.batch_done(&batch));
        let effects = run(&mut machine, |m| m.batch_failed(&batch, T0 + SECOND));
        assert!(effects.is_empty());
        assert!(machine.due_batches(T0 + HOUR).is_empty());
    }

    #[test]
    fn a_batch_is_told_apart_by_its_notifications() {
        let one = Batch {
            receiver: "ops".into(),
            keys: vec!["notify.abc.firing.1".into()],
            alerts: Vec::new(),
            attempts: 0,
        };
        assert_eq!(one.idempotency_key(), "abc.firing.1");
        let two = Batch {
            keys: vec!["notify.abc.firing.1".into(), "notify.def.firing.1".into()],
            ..one.clone()
        };
        let other = Batch {
            keys: vec!["notify.abc.firing.1".into(), "notify.def.firing.2".into()],
            ..one.clone()
        };
        assert_eq!(two.idempotency_key(), two.clone().idempotency_key());
        assert_ne!(two.idempotency_key(), other.idempotency_key());
        assert_eq!(two.idempotency_key().len(), 24);
    }
}
