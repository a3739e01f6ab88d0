//! What every rule shares once it decided: an alert fires or resolves, is muted or queued for
//! its receiver, is published, and is repeated while nobody takes it in hand.
//!
//! A new state is queued before the alert is written, so that a crash between the two writes
//! leaves a notification to send, never an alert marked as told that nobody was told. Such a
//! notification is then the one record of its firing, and the alert is kept as it told it:
//! when the rule fires again ([`Step::fire`]), so that the receiver is not told twice, or
//! when the notification goes out ([`Machine::batch_done`]), so that the alert it told of
//! resolves.

use crate::alert::{AlertRecord, ClientInfo, State};
use crate::mute::Mute;
use crate::rules::{Condition, Hours, Labels, Rule};

use super::{Clients, Effect, Machine, Notification, Record, Step};

impl Step<'_> {
    /// A new firing alert of `rule` for `tenant`, dated now; the caller adds what it knows
    /// (the client, when it resolves by itself) and hands it to [`Step::fire`].
    pub(super) fn firing(
        &self,
        rule: &Rule,
        tenant: &str,
        labels: Labels,
        summary: String,
    ) -> AlertRecord {
        AlertRecord::firing(rule, tenant, labels, summary, self.now)
    }

    /// Fires `alert`, routed by its client's tags to the receiver the rule names for them.
    pub(super) fn fire(&mut self, rule: &Rule, mut alert: AlertRecord) {
        if let Some(mut told) = self.machine.told_but_not_kept(&alert.fingerprint) {
            tracing::warn!(rule = %rule.name, tenant = %told.tenant, fingerprint = %told.fingerprint,
                "this alert's firing was queued for its receiver but not kept (a write failed half-way): kept now as told, not told again");
            // Another event of an event rule renews it from now, as it renews a kept alert.
            if alert.last_event_id != told.last_event_id && alert.resolve_at > told.resolve_at {
                told.resolve_at = alert.resolve_at;
                told.last_event_id = alert.last_event_id;
                told.updated_at = self.now;
            }
            Machine::keeping_as_told(told)
                .into_iter()
                .for_each(|effect| self.emit(effect));
            return;
        }
        // A wait that keeps working hours runs out within them (or at closing) by its
        // deadline; the other rules that keep them raise nothing while the tenant is closed.
        if rule.hours == Hours::Business
            && !matches!(rule.condition, Condition::Wait { .. })
            && !self.tenant_open(&alert.tenant)
        {
            tracing::info!(rule = %rule.name, tenant = %alert.tenant, summary = %alert.summary,
                "outside the tenant's working hours: not raised");
            return;
        }
        let tags = alert
            .client
            .as_ref()
            .map(|c| c.tags.as_slice())
            .unwrap_or_default();
        alert.receiver = rule.receiver_for(tags).to_owned();
        tracing::warn!(rule = %rule.name, tenant = %alert.tenant,
            fingerprint = %alert.fingerprint, summary = %alert.summary, "alert firing");
        self.transition(alert);
    }

    /// Whether `tenant`'s calendar is open now (a tenant without one always is).
    fn tenant_open(&self, tenant: &str) -> bool {
        let now = c2d_calendar::from_unix_millis(self.now);
        match (self.rules.calendars.configured(tenant), now) {
            (Some(calendar), Some(now)) => calendar.is_open(None, now),
            _ => true,
        }
    }

    /// Resolves the alert `fingerprint` now, if there is one.
    pub(super) fn resolve(&mut self, fingerprint: &str) {
        let Some(mut alert) = self.machine.alerts.get(fingerprint).cloned() else {
            return;
        };
        alert.state = State::Resolved;
        alert.ends_at = Some(self.now);
        alert.updated_at = self.now;
        alert.resolve_at = None;
        tracing::info!(rule = %alert.rule, tenant = %alert.tenant, %fingerprint, "alert resolved");
        self.transition(alert);
    }

    /// A new state of an alert: kept, queued for its receiver unless something mutes it, and
    /// published. The notification is written first, so that a crash after the alert's write
    /// cannot lose it.
    pub(super) fn transition(&mut self, mut alert: AlertRecord) {
        let now = alert.updated_at;
        if alert.state == State::Firing {
            Mute::of(
                &alert,
                &self.machine.silences,
                &self.machine.alerts,
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
            if alert.state == State::Firing {
                alert.notified_at = Some(now);
            }
            self.queue(format!("notify.{}", alert.notification_key()), &alert, now);
        }
        self.put(Record::Alert(alert.clone()));
        self.emit(Effect::Publish(alert));
    }

    /// Queues a notification of `alert` under `key`, due after its rule's group wait, so that
    /// the rest of a burst can join it.
    pub(super) fn queue(&mut self, key: String, alert: &AlertRecord, now: i64) {
        let group_wait = self
            .rule(&alert.rule)
            .and_then(|r| r.group_wait)
            .map_or(0, |wait| wait.as_millis() as i64);
        let notification = Notification {
            alert: alert.clone(),
            attempts: 0,
            next_attempt_at: now + group_wait,
        };
        self.put(Record::Notification { key, notification });
    }

    /// Firing alerts nobody acknowledged are notified again every `repeat_interval` of their
    /// rule (when it has one), unless a notification of theirs is still on its way.
    pub(super) fn repeat(&mut self) {
        let now = self.now;
        let machine = &*self.machine;
        let mut due: Vec<AlertRecord> = machine
            .alerts
            .values()
            .filter(|a| a.state == State::Firing && !a.is_muted() && a.acknowledgement.is_none())
            // A silence created since it fired mutes its repeats too.
            .filter(|a| {
                !machine
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
            .filter(|a| machine.notifications_of(&a.fingerprint).next().is_none())
            .cloned()
            .collect();
        due.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        for mut alert in due {
            alert.notified_at = Some(now);
            let key = format!("notify.{}.repeat{now}", alert.notification_key());
            self.queue(key, &alert, now);
            tracing::info!(fingerprint = %alert.fingerprint, rule = %alert.rule,
                "alert still firing: notified again");
            self.put(Record::Alert(alert));
        }
    }
}

impl Machine {
    /// The firing of `fingerprint` whose notification was written but whose own record was
    /// not: a change cut short by a crash between the two writes, or one that failed half-way
    /// and could not be taken back while NATS was failing over. The notification goes out as
    /// it is; firing anew would tell the receiver a second time, under another key, of an
    /// incident whose first telling would never be resolved. (An alert forgotten long after
    /// it ended takes its notifications with it, so this is never one of those.)
    pub(super) fn told_but_not_kept(&self, fingerprint: &str) -> Option<AlertRecord> {
        let kept_since = self.alerts.get(fingerprint).map(|a| a.starts_at);
        self.notifications_of(fingerprint)
            .map(|(_, notification)| &notification.alert)
            .filter(|told| told.state == State::Firing)
            .filter(|told| kept_since.is_none_or(|since| told.starts_at > since))
            .max_by_key(|told| told.starts_at)
            .cloned()
    }

    /// The notifications of the alert `fingerprint` still to send, any state, repeats too:
    /// their keys are `notify.{fingerprint}.…` ([`AlertRecord::notification_key`]).
    pub(super) fn notifications_of<'a>(
        &'a self,
        fingerprint: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Notification)> {
        self.notifications.iter().filter(move |(key, _)| {
            key.strip_prefix("notify.")
                .and_then(|key| key.strip_prefix(fingerprint))
                .is_some_and(|rest| rest.starts_with('.'))
        })
    }

    /// What keeps `told`, an alert whose firing was told but not kept, as the change that told
    /// it would have: its record, and its publication.
    pub(super) fn keeping_as_told(told: AlertRecord) -> [Effect; 2] {
        [
            Effect::Put(Record::Alert(told.clone())),
            Effect::Publish(told),
        ]
    }
}

/// The client `client_id` of `tenant` as the engine looked them up, or their bare id.
pub(super) fn client(clients: &Clients, tenant: &str, client_id: i64) -> ClientInfo {
    clients
        .get(&(tenant.to_owned(), client_id))
        .cloned()
        .unwrap_or_else(|| ClientInfo {
            client_id,
            name: None,
            tags: Vec::new(),
        })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::fixtures::*;
    use super::super::{Clients, Effect, Machine, Record};
    use crate::alert::AlertRecord;
    use crate::alert::{ClientInfo, State};
    use crate::rules::Rules;
    use crate::rules::{AlertMatcher, Inhibition, Rule};
    use c2d_proto::events::v1::Event;

    #[test]
    fn a_firing_is_queued_then_kept_then_published() {
        let rules = rules(vec![rule("qr", qr_condition())]);
        let mut machine = Machine::default();
        let effects = hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        let kinds: Vec<&str> = effects.iter().map(kind).collect();
        assert_eq!(
            kinds,
            [
                "put seen",
                "evaluated",
                "put notify",
                "put alert",
                "publish"
            ]
        );
        let alert = &put_alerts(&effects)[0];
        assert_eq!(alert.notified_at, Some(T0));
        assert_eq!(published(&effects), std::slice::from_ref(alert));
    }

    /// The machine after `event` at `T0` fired an alert whose notification was written and
    /// whose own record was not (a crash between the two, or NATS down through the
    /// take-back), and the alert as it was told.
    fn told_but_not_kept(rules: &Rules, event: &Event) -> (Machine, AlertRecord) {
        let mut first = Machine::default();
        let effects = hear(&mut first, rules, event, T0);
        let told = put_alerts(&effects)[0].clone();
        let mut half = Machine::default();
        for effect in effects {
            if matches!(effect, Effect::Put(Record::Alert(_))) {
                break;
            }
            half.apply(effect);
        }
        assert!(half.alerts().is_empty());
        (half, told)
    }

    fn qr_in_a_minute() -> Rules {
        rules(vec![rule(
            "qr",
            qr_condition_resolving_after(Duration::from_secs(60)),
        )])
    }

    /// The event, delivered again, keeps the alert as it was told, and queues nothing more;
    /// it then resolves under the key it fired under.
    #[test]
    fn a_firing_told_but_not_kept_is_kept_on_the_retry_and_not_told_again() {
        let rules = qr_in_a_minute();
        let event = qr("acme", "e1", "5511");
        let (mut half, told) = told_but_not_kept(&rules, &event);

        let effects = hear(&mut half, &rules, &event, T0 + 5 * SECOND);
        assert!(notifications(&effects).is_empty(), "{effects:?}");
        assert_eq!(put_alerts(&effects), std::slice::from_ref(&told));
        assert_eq!(published(&effects), std::slice::from_ref(&told));
        assert_eq!(
            half.due_batches(T0 + 5 * SECOND).len(),
            1,
            "the first telling"
        );

        deliver_everything(&mut half, T0 + 5 * SECOND);
        let effects = tick(&mut half, &rules, T0 + 2 * MINUTE);
        let resolved = &published(&effects)[0];
        assert_eq!(resolved.state, State::Resolved);
        assert_eq!(resolved.starts_at, told.starts_at);
        // A later firing, after the resolution, is a new incident again.
        let effects = hear(&mut half, &rules, &qr("acme", "e2", "5511"), T0 + HOUR);
        assert_eq!(notifications(&effects).len(), 1);
        assert_eq!(put_alerts(&effects)[0].starts_at, T0 + HOUR);
    }

    /// The notifier sends the notification before anything fires again (the usual order, a
    /// retry waiting for its backoff): the alert is kept as told as the notification goes,
    /// so the event delivered again finds it firing, and it resolves.
    #[test]
    fn a_firing_told_but_not_kept_is_kept_when_its_notification_goes_out() {
        let rules = qr_in_a_minute();
        let event = qr("acme", "e1", "5511");
        let (mut half, told) = told_but_not_kept(&rules, &event);
        let batch = half.due_batches(T0).remove(0);
        let effects = run(&mut half, |m| m.batch_done(&batch));
        assert_eq!(put_alerts(&effects), std::slice::from_ref(&told));
        assert_eq!(published(&effects), std::slice::from_ref(&told));
        assert!(half.due_batches(T0 + HOUR).is_empty());

        let effects = hear(&mut half, &rules, &event, T0 + 5 * SECOND);
        assert!(notifications(&effects).is_empty(), "{effects:?}");
        let effects = tick(&mut half, &rules, T0 + 2 * MINUTE);
        let resolved = &published(&effects)[0];
        assert_eq!(
            (resolved.state, resolved.starts_at),
            (State::Resolved, told.starts_at)
        );
    }

    /// An alert forgotten a week after it ended takes the notifications still tried with it,
    /// so that one of them is never taken for a firing told but not kept: the next firing is
    /// a new incident.
    #[test]
    fn a_forgotten_alert_takes_its_notifications_with_it() {
        let rules = qr_in_a_minute();
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        tick(&mut machine, &rules, T0 + 2 * MINUTE);
        assert_eq!(machine.due_batches(T0 + 2 * MINUTE)[0].keys.len(), 2);
        tick(&mut machine, &rules, T0 + 8 * 24 * HOUR);
        assert!(machine.alerts().is_empty());
        assert!(machine.due_batches(T0 + 8 * 24 * HOUR).is_empty());
        let effects = hear(
            &mut machine,
            &rules,
            &qr("acme", "e2", "5511"),
            T0 + 9 * 24 * HOUR,
        );
        assert_eq!(notifications(&effects).len(), 1);
        assert_eq!(put_alerts(&effects)[0].starts_at, T0 + 9 * 24 * HOUR);
    }

    /// Another event renews the alert it keeps as told, from now, as it renews a kept one.
    #[test]
    fn another_event_renews_a_firing_kept_as_told() {
        let rules = qr_in_a_minute();
        let (mut half, told) = told_but_not_kept(&rules, &qr("acme", "e1", "5511"));
        let effects = hear(
            &mut half,
            &rules,
            &qr("acme", "e2", "5511"),
            T0 + 30 * SECOND,
        );
        let kept = &put_alerts(&effects)[0];
        assert_eq!(kept.starts_at, told.starts_at);
        assert_eq!(kept.last_event_id.as_deref(), Some("e2"));
        assert_eq!(kept.resolve_at, Some(T0 + 90 * SECOND));
        assert!(notifications(&effects).is_empty());
    }

    #[test]
    fn a_clients_tags_route_the_alert_to_another_receiver() {
        let rules = rules(vec![Rule {
            routes: vec![("VIP".into(), "vip".into())],
            ..rule("failing", failure_condition())
        }]);
        let vip = ClientInfo {
            client_id: 501,
            name: Some("Ana Souza".into()),
            tags: vec!["VIP".into()],
        };
        let clients = Clients::from([(("acme".to_owned(), 501), vip.clone())]);
        let mut machine = Machine::default();
        let effects = run(&mut machine, |m| {
            m.on_event(&rules, &failure("acme", "e1", 10, Some(501)), &clients, T0)
        });
        let alert = &put_alerts(&effects)[0];
        assert_eq!(alert.receiver, "vip");
        assert_eq!(alert.client, Some(vip));

        let effects = hear(
            &mut machine,
            &rules,
            &failure("acme", "e2", 11, Some(502)),
            T0,
        );
        let alert = &put_alerts(&effects)[0];
        assert_eq!(alert.receiver, "ops", "no tags known: the rule's receiver");
        assert_eq!(
            alert.client,
            Some(ClientInfo {
                client_id: 502,
                name: None,
                tags: Vec::new()
            }),
            "not looked up: the bare id"
        );
    }

    #[test]
    fn a_greater_alert_inhibits_a_lesser_one_until_it_resolves() {
        let mut rules = rules(vec![
            rule("qr", qr_condition_resolving_after(Duration::from_secs(60))),
            rule("failing", failure_condition()),
        ]);
        rules.inhibitions.push(Inhibition {
            source: AlertMatcher {
                rule: Some("qr".into()),
                severity: None,
            },
            target: AlertMatcher {
                rule: Some("failing".into()),
                severity: None,
            },
        });
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        let qr_fingerprint = machine.alerts()[0].fingerprint.clone();

        let effects = hear(
            &mut machine,
            &rules,
            &failure("acme", "e2", 10, None),
            T0 + SECOND,
        );
        let inhibited = &put_alerts(&effects)[0];
        assert_eq!(inhibited.inhibited_by, Some(qr_fingerprint));
        assert_eq!(inhibited.notified_at, None);
        assert!(notifications(&effects).is_empty(), "not notified");
        assert_eq!(published(&effects).len(), 1, "still published");

        // The QR alert goes quiet and resolves; the lesser one, still firing, is told now.
        let effects = tick(&mut machine, &rules, T0 + 2 * MINUTE);
        let told: Vec<(String, State)> = notifications(&effects)
            .iter()
            .map(|(_, n)| (n.alert.rule.clone(), n.alert.state))
            .collect();
        assert_eq!(
            told,
            [
                ("qr".to_owned(), State::Resolved),
                ("failing".to_owned(), State::Firing)
            ]
        );
        let failing = machine
            .alerts()
            .into_iter()
            .find(|a| a.rule == "failing")
            .expect("kept");
        assert_eq!(failing.inhibited_by, None);
        assert_eq!(failing.notified_at, Some(T0 + 2 * MINUTE));
    }

    #[test]
    fn a_muted_firing_resolves_without_a_notification() {
        let rules = rules(vec![rule(
            "qr",
            qr_condition_resolving_after(Duration::from_secs(60)),
        )]);
        let mut machine = Machine::default();
        silence_everything(&mut machine, "acme", T0, T0 + 10 * MINUTE);
        hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        let effects = tick(&mut machine, &rules, T0 + 2 * MINUTE);
        let resolved = &put_alerts(&effects)[0];
        assert_eq!(resolved.state, State::Resolved);
        assert!(resolved.silenced_by.is_some(), "the record says why");
        assert!(notifications(&effects).is_empty());
    }

    #[test]
    fn firing_alerts_are_repeated_until_acknowledged() {
        let rules = rules(vec![Rule {
            repeat_interval: Some(Duration::from_secs(600)),
            ..rule(
                "qr",
                qr_condition_resolving_after(Duration::from_secs(7200)),
            )
        }]);
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        let fingerprint = machine.alerts()[0].fingerprint.clone();

        // The first notification is still on its way: no repeat yet, however long.
        let effects = tick(&mut machine, &rules, T0 + 11 * MINUTE);
        assert!(notifications(&effects).is_empty());
        deliver_everything(&mut machine, T0 + 11 * MINUTE);

        // Delivered, and ten minutes since it was told: told again, under a key of its own.
        let effects = tick(&mut machine, &rules, T0 + 12 * MINUTE);
        let queued = notifications(&effects);
        assert_eq!(queued.len(), 1);
        assert_eq!(
            queued[0].0,
            format!(
                "notify.{fingerprint}.firing.{T0}.repeat{}",
                T0 + 12 * MINUTE
            )
        );
        assert_eq!(put_alerts(&effects)[0].notified_at, Some(T0 + 12 * MINUTE));
        deliver_everything(&mut machine, T0 + 12 * MINUTE);

        // Not ten minutes since the repeat: nothing.
        let effects = tick(&mut machine, &rules, T0 + 21 * MINUTE);
        assert!(notifications(&effects).is_empty());

        // Acknowledged: never again.
        run(&mut machine, |m| {
            m.acknowledge(
                &fingerprint,
                "Marina".into(),
                String::new(),
                T0 + 21 * MINUTE,
            )
            .expect("firing")
            .1
        });
        let effects = tick(&mut machine, &rules, T0 + 40 * MINUTE);
        assert!(notifications(&effects).is_empty());
    }

    #[test]
    fn a_silence_created_after_the_firing_mutes_its_repeats() {
        let rules = rules(vec![Rule {
            repeat_interval: Some(Duration::from_secs(60)),
            ..rule(
                "qr",
                qr_condition_resolving_after(Duration::from_secs(7200)),
            )
        }]);
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        deliver_everything(&mut machine, T0);
        silence_everything(&mut machine, "acme", T0, T0 + 10 * MINUTE);
        let effects = tick(&mut machine, &rules, T0 + 5 * MINUTE);
        assert!(notifications(&effects).is_empty());
        // The silence ended: the repeats go on.
        let effects = tick(&mut machine, &rules, T0 + 10 * MINUTE);
        assert_eq!(notifications(&effects).len(), 1);
    }

    #[test]
    fn a_notification_waits_for_its_rules_group_wait() {
        let rules = rules(vec![Rule {
            group_wait: Some(Duration::from_secs(30)),
            ..rule("qr", qr_condition())
        }]);
        let mut machine = Machine::default();
        let effects = hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        let queued = notifications(&effects);
        assert_eq!(queued[0].1.next_attempt_at, T0 + 30 * SECOND);
        assert_eq!(queued[0].1.attempts, 0);
    }
}
