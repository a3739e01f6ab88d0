//! An event heard: its tenant is not silent, event rules fire on it (once per condition, not
//! once per event), and wait rules start a timer on a client's message and stop it on the
//! answer. Events are delivered at least once: a redelivered event changes nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use c2d_proto::events::v1::Event;
use serde::{Deserialize, Serialize};

use crate::alert::{State, fingerprint};
use crate::rules::{Condition, Hours, Labels, Rule, Rules};
use crate::signal::{event_condition, received_ms, request_labels, transport, wait_signal};

use super::lifecycle::client;
use super::{Clients, Effect, Machine, Record, Step};

/// `seen.{tenant}` is written at most this often per tenant: a busy tenant's every event
/// would otherwise be a write, and silence rules count in minutes.
pub const SEEN_WRITE_EVERY_MS: i64 = 5_000;

/// A client waiting for an answer, kept so that a restart does not forget the wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timer {
    pub rule: String,
    pub tenant: String,
    /// The request waits, not the message: later messages in it wait with the first.
    pub request_id: i64,
    /// Who waits, looked up in CrmService only if the wait fires.
    pub client_id: Option<i64>,
    /// When the alert fires, Unix milliseconds.
    pub deadline: i64,
}

impl Machine {
    /// The clients [`Machine::on_event`] will fire new alerts about, for the engine to look up
    /// first: those of event rules whose condition is not firing yet (a renewed alert keeps
    /// the client it has).
    pub fn lookups_for_event(&self, rules: &Rules, event: &Event) -> Vec<(String, i64)> {
        let wanted: BTreeSet<(String, i64)> = rules
            .rules
            .iter()
            .filter(|r| r.applies_to(&event.tenant))
            .filter(|r| {
                matches!(&r.condition, Condition::Event { hook_type, .. } if *hook_type == event.hook_type)
            })
            .filter_map(|rule| {
                let (labels, _, client_id) = event_condition(event)?;
                let fp = fingerprint(&rule.name, &event.tenant, &labels);
                (!self.is_firing(&fp)).then_some(client_id).flatten()
            })
            .map(|client_id| (event.tenant.clone(), client_id))
            .collect();
        wanted.into_iter().collect()
    }

    /// Applies one event to every rule that applies to its tenant.
    pub fn on_event(
        &mut self,
        rules: &Rules,
        event: &Event,
        clients: &Clients,
        now: i64,
    ) -> Vec<Effect> {
        let mut step = Step::new(self, rules, now);
        step.heard(&event.tenant);
        for rule in rules.rules.iter().filter(|r| r.applies_to(&event.tenant)) {
            match &rule.condition {
                Condition::Event {
                    hook_type,
                    resolve_after,
                } if *hook_type == event.hook_type => {
                    step.event_rule(rule, *resolve_after, event, clients);
                }
                Condition::Wait { after } => step.wait_rule(rule, *after, event),
                _ => {}
            }
        }
        step.finish()
    }
}

impl Step<'_> {
    /// The tenant spoke: remembered (and written now and then), and a silence alert about it
    /// resolves.
    fn heard(&mut self, tenant: &str) {
        let written = self
            .machine
            .seen
            .get(tenant)
            .map_or(0, |heard| heard.written);
        if self.now - written >= SEEN_WRITE_EVERY_MS {
            self.put(Record::Seen {
                tenant: tenant.to_owned(),
                at: self.now,
            });
        } else {
            self.emit(Effect::Heard {
                tenant: tenant.to_owned(),
                at: self.now,
            });
        }
        let rules = self.rules;
        let silence_rules = rules
            .rules
            .iter()
            .filter(|r| matches!(r.condition, Condition::Silence { .. }));
        for rule in silence_rules {
            let fp = fingerprint(&rule.name, tenant, &Labels::new());
            if self.machine.is_firing(&fp) {
                self.resolve(&fp);
            }
        }
    }

    /// An event of an event rule's hook type: fires its condition, or keeps it firing longer.
    fn event_rule(
        &mut self,
        rule: &Rule,
        resolve_after: Duration,
        event: &Event,
        clients: &Clients,
    ) {
        let Some((labels, summary, client_id)) = event_condition(event) else {
            return;
        };
        self.evaluated(&rule.name, format!("{}: {summary}", event.tenant));
        let resolve_at = self.now + resolve_after.as_millis() as i64;
        let fp = fingerprint(&rule.name, &event.tenant, &labels);
        if let Some(alert) = self
            .machine
            .alerts
            .get(&fp)
            .filter(|a| a.state == State::Firing)
        {
            if alert.last_event_id.as_deref() == Some(event.event_id.as_str()) {
                return;
            }
            // Still the same condition: it stays firing, longer, and is not notified again.
            let mut alert = alert.clone();
            alert.resolve_at = Some(resolve_at);
            alert.last_event_id = Some(event.event_id.clone());
            alert.updated_at = self.now;
            self.put(Record::Alert(alert));
            return;
        }
        let mut alert = self.firing(rule, &event.tenant, labels, summary);
        alert.client = client_id.map(|id| client(clients, &event.tenant, id));
        alert.resolve_at = Some(resolve_at);
        alert.last_event_id = Some(event.event_id.clone());
        self.fire(rule, alert);
    }

    /// A client's message starts a wait (the first unanswered one counts); an answer, or the
    /// request's closing, stops it, or resolves the alert it already fired.
    fn wait_rule(&mut self, rule: &Rule, after: Duration, event: &Event) {
        let Some(signal) = wait_signal(event) else {
            return;
        };
        let request_id = signal.request_id;
        let tenant = &event.tenant;
        let timer = Timer {
            rule: rule.name.clone(),
            tenant: tenant.clone(),
            request_id,
            client_id: signal.client_id,
            // From when the gateway received it: a restart or a backlog does not extend the
            // wait.
            deadline: self.deadline(
                rule,
                tenant,
                transport(event),
                received_ms(event, self.now).min(self.now),
                after,
            ),
        };
        let key = Record::timer_key(&timer);
        let fp = fingerprint(&rule.name, tenant, &request_labels(request_id));
        if signal.answered {
            if self.machine.timers.contains_key(&key) {
                self.delete(key);
                self.evaluated(
                    &rule.name,
                    format!("{tenant}: request {request_id} answered in time"),
                );
            }
            if self.machine.is_firing(&fp) {
                self.resolve(&fp);
            }
            return;
        }
        if self.machine.timers.contains_key(&key) || self.machine.is_firing(&fp) {
            // The first unanswered message counts; later ones wait with it.
            return;
        }
        self.put(Record::Timer(timer));
        self.evaluated(
            &rule.name,
            format!("{tenant}: request {request_id} waits for an answer"),
        );
    }

    /// When a wait of `after` from `start` (Unix ms) runs out: `after` later, or, for a rule
    /// that keeps the tenant's hours, once `after` of working time has passed under the hours
    /// of the message's transport. A calendar with no working hours ahead never runs out.
    fn deadline(
        &self,
        rule: &Rule,
        tenant: &str,
        transport: Option<&str>,
        start: i64,
        after: Duration,
    ) -> i64 {
        let wall_clock = start + after.as_millis() as i64;
        if rule.hours != Hours::Business {
            return wall_clock;
        }
        let Some(calendar) = self.rules.calendars.configured(tenant) else {
            return wall_clock;
        };
        match c2d_calendar::from_unix_millis(start)
            .and_then(|from| calendar.add_business_time(transport, from, after))
        {
            Some(at) => at.as_millisecond(),
            None => i64::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn an_event_rule_fires_on_a_qr_code() {
        let rules = rules(vec![rule("qr", qr_condition())]);
        let mut machine = Machine::default();
        let effects = hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        let alert = &put_alerts(&effects)[0];
        assert_eq!(
            (alert.rule.as_str(), alert.tenant.as_str(), alert.state),
            ("qr", "acme", State::Firing)
        );
        assert_eq!(alert.labels["phone"], "5511");
        assert_eq!(alert.starts_at, T0);
        assert_eq!(alert.resolve_at, Some(T0 + HOUR));
        assert_eq!(alert.last_event_id.as_deref(), Some("e1"));
        assert_eq!(
            notifications(&effects)[0].0,
            format!("notify.{}.firing.{T0}", alert.fingerprint)
        );
    }

    #[test]
    fn an_event_rule_fires_on_a_failed_delivery_but_not_a_delivered_one() {
        let rules = rules(vec![rule("failing", failure_condition())]);
        let mut machine = Machine::default();
        let effects = hear(&mut machine, &rules, &delivered("acme", "e1", 10), T0);
        assert!(put_alerts(&effects).is_empty());
        let effects = hear(
            &mut machine,
            &rules,
            &failure("acme", "e2", 10, Some(501)),
            T0,
        );
        let alert = &put_alerts(&effects)[0];
        assert_eq!(alert.labels["channel_id"], "10");
        assert_eq!(alert.client.as_ref().map(|c| c.client_id), Some(501));
        assert_eq!(
            machine.lookups_for_event(&rules, &failure("acme", "e3", 11, Some(502))),
            [("acme".to_owned(), 502)],
            "a new channel failing: its client is looked up"
        );
        assert!(
            machine
                .lookups_for_event(&rules, &failure("acme", "e4", 10, Some(503)))
                .is_empty(),
            "channel 10 fires already: no lookup"
        );
    }

    #[test]
    fn an_event_rule_of_any_hook_type_fires_per_hook_type() {
        let rules = rules(vec![rule(
            "deleted",
            Condition::Event {
                hook_type: "client_deleted".into(),
                resolve_after: HOUR_DURATION,
            },
        )]);
        let mut machine = Machine::default();
        let effects = hear(
            &mut machine,
            &rules,
            &bare_event("acme", "e1", "client_deleted"),
            T0,
        );
        let alert = &put_alerts(&effects)[0];
        assert_eq!(alert.labels["hook_type"], "client_deleted");
        let effects = hear(
            &mut machine,
            &rules,
            &bare_event("acme", "e2", "client_created"),
            T0,
        );
        assert!(put_alerts(&effects).is_empty(), "another hook type");
    }

    #[test]
    fn a_rule_for_other_tenants_does_not_fire() {
        let rules = rules(vec![Rule {
            tenants: vec!["globex".into()],
            ..rule("qr", qr_condition())
        }]);
        let mut machine = Machine::default();
        let effects = hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        assert!(put_alerts(&effects).is_empty());
    }

    #[test]
    fn a_repeated_event_renews_the_alert_without_notifying_again() {
        let rules = rules(vec![rule("qr", qr_condition())]);
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        let effects = hear(&mut machine, &rules, &qr("acme", "e2", "5511"), T0 + MINUTE);
        assert!(notifications(&effects).is_empty());
        assert!(published(&effects).is_empty());
        let renewed = &put_alerts(&effects)[0];
        assert_eq!(renewed.starts_at, T0, "the same firing");
        assert_eq!(renewed.resolve_at, Some(T0 + MINUTE + HOUR), "longer");
        assert_eq!(renewed.last_event_id.as_deref(), Some("e2"));
        assert_eq!(renewed.updated_at, T0 + MINUTE);
    }

    #[test]
    fn a_redelivered_event_changes_nothing() {
        let rules = rules(vec![rule("qr", qr_condition())]);
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        let before = machine.alerts();
        let effects = hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0 + SECOND);
        assert!(put_alerts(&effects).is_empty());
        assert!(notifications(&effects).is_empty());
        assert_eq!(machine.alerts(), before);
    }

    #[test]
    fn an_event_after_resolution_fires_anew() {
        let rules = rules(vec![rule(
            "qr",
            qr_condition_resolving_after(Duration::from_secs(60)),
        )]);
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        tick(&mut machine, &rules, T0 + 2 * MINUTE);
        let effects = hear(
            &mut machine,
            &rules,
            &qr("acme", "e2", "5511"),
            T0 + 3 * MINUTE,
        );
        let alert = &put_alerts(&effects)[0];
        assert_eq!(alert.state, State::Firing);
        assert_eq!(alert.starts_at, T0 + 3 * MINUTE, "a new firing");
        assert_eq!(alert.ends_at, None);
        assert_eq!(notifications(&effects).len(), 1);
    }

    #[test]
    fn a_tenant_heard_from_is_written_at_most_every_few_seconds() {
        let rules = rules(Vec::new());
        let mut machine = Machine::default();
        let effects = hear(&mut machine, &rules, &inbox("acme", "e1", 1, 501, T0), T0);
        assert_eq!(
            effects,
            [Effect::Put(Record::Seen {
                tenant: "acme".into(),
                at: T0
            })]
        );
        let effects = hear(
            &mut machine,
            &rules,
            &inbox("acme", "e2", 1, 501, T0),
            T0 + SECOND,
        );
        assert_eq!(
            effects,
            [Effect::Heard {
                tenant: "acme".into(),
                at: T0 + SECOND
            }]
        );
        let effects = hear(
            &mut machine,
            &rules,
            &inbox("acme", "e3", 1, 501, T0),
            T0 + SEEN_WRITE_EVERY_MS,
        );
        assert_eq!(
            effects,
            [Effect::Put(Record::Seen {
                tenant: "acme".into(),
                at: T0 + SEEN_WRITE_EVERY_MS
            })]
        );
        assert_eq!(machine.tenants(), ["acme"]);
    }

    #[test]
    fn a_clients_message_starts_a_wait_timer_from_when_it_was_received() {
        let rules = rules(vec![rule("waiting", wait_condition())]);
        let mut machine = Machine::default();
        // Received a minute ago, handled now (a backlog): the wait counts from reception.
        let effects = hear(
            &mut machine,
            &rules,
            &inbox("acme", "e1", 7, 501, T0 - MINUTE),
            T0,
        );
        let timer = Timer {
            rule: "waiting".into(),
            tenant: "acme".into(),
            request_id: 7,
            client_id: Some(501),
            deadline: T0 - MINUTE + 10 * MINUTE,
        };
        assert!(effects.contains(&Effect::Put(Record::Timer(timer.clone()))));
        assert_eq!(
            machine.evaluations(&rules)["waiting"]
                .0
                .as_ref()
                .map(|e| e.result.clone()),
            Some("acme: request 7 waits for an answer".into())
        );
        // A second message in the same request waits with the first.
        let effects = hear(
            &mut machine,
            &rules,
            &inbox("acme", "e2", 7, 501, T0 + MINUTE),
            T0 + MINUTE,
        );
        assert!(
            !effects
                .iter()
                .any(|e| matches!(e, Effect::Put(Record::Timer(_))))
        );
        assert_eq!(machine.timers["timer.waiting.acme.7"], timer);
    }

    #[test]
    fn an_answer_stops_the_wait_timer() {
        let rules = rules(vec![rule("waiting", wait_condition())]);
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &inbox("acme", "e1", 7, 501, T0), T0);
        let effects = hear(
            &mut machine,
            &rules,
            &outbox("acme", "e2", 7, 501, T0 + MINUTE),
            T0 + MINUTE,
        );
        assert!(effects.contains(&Effect::Delete("timer.waiting.acme.7".into())));
        assert!(machine.timers.is_empty());
        assert!(put_alerts(&effects).is_empty());
        // The deadline passes: nothing fires.
        let effects = tick(&mut machine, &rules, T0 + HOUR);
        assert!(put_alerts(&effects).is_empty());
    }

    #[test]
    fn closing_the_request_stops_the_wait_timer() {
        let rules = rules(vec![rule("waiting", wait_condition())]);
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &inbox("acme", "e1", 7, 501, T0), T0);
        let effects = hear(
            &mut machine,
            &rules,
            &close_request("acme", "e2", 7),
            T0 + MINUTE,
        );
        assert!(effects.contains(&Effect::Delete("timer.waiting.acme.7".into())));
    }

    #[test]
    fn an_answer_after_the_deadline_resolves_the_wait_alert() {
        let rules = rules(vec![rule("waiting", wait_condition())]);
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &inbox("acme", "e1", 7, 501, T0), T0);
        tick(&mut machine, &rules, T0 + 10 * MINUTE);
        // Another message while the alert fires does not start a second wait.
        let effects = hear(
            &mut machine,
            &rules,
            &inbox("acme", "e2", 7, 501, T0 + 11 * MINUTE),
            T0 + 11 * MINUTE,
        );
        assert!(machine.timers.is_empty());
        assert_eq!(effects.len(), 1, "heard, nothing else: {effects:?}");
        let effects = hear(
            &mut machine,
            &rules,
            &outbox("acme", "e3", 7, 501, T0 + 12 * MINUTE),
            T0 + 12 * MINUTE,
        );
        let resolved = &put_alerts(&effects)[0];
        assert_eq!(resolved.state, State::Resolved);
        assert_eq!(resolved.ends_at, Some(T0 + 12 * MINUTE));
        assert_eq!(resolved.labels["request_id"], "7");
        assert_eq!(notifications(&effects).len(), 1);
    }
}
