//! Time passing, one tick at a time: what fires or resolves because nothing happened.
//!
//! A tick goes through its duties in a fixed order, each seeing what the one before changed:
//! wait timers that ran out fire, event alerts whose events stopped resolve, tenants silent
//! for too long fire, alerts nothing mutes any more are told, firing alerts are repeated, and
//! what ended more than [`KEEP_RESOLVED_MS`] ago is forgotten. Within a duty, alerts are taken
//! in a fixed order too, so that the same state and time always give the same effects.

use std::collections::BTreeSet;

use crate::alert::{AlertRecord, State, fingerprint};
use crate::mute::Mute;
use crate::rules::{Condition, Labels, Rules};
use crate::signal::{request_labels, silence_summary, wait_summary};

use super::lifecycle::client;
use super::{Clients, Effect, Machine, Step, Timer};

/// Resolved alerts and ended silences are kept this long, for ListAlerts and ListSilences,
/// then forgotten: the bucket would otherwise grow for ever.
pub const KEEP_RESOLVED_MS: i64 = 7 * 24 * 3_600_000;

impl Machine {
    /// The clients [`Machine::tick`] will fire wait alerts about, for the engine to look up
    /// first.
    pub fn lookups_for_tick(&self, rules: &Rules, now: i64) -> Vec<(String, i64)> {
        let wanted: BTreeSet<(String, i64)> = self
            .timers
            .values()
            .filter(|t| t.deadline <= now)
            .filter(|t| {
                rules
                    .rules
                    .iter()
                    .any(|r| r.name == t.rule && matches!(r.condition, Condition::Wait { .. }))
            })
            .filter_map(|t| Some((t.tenant.clone(), t.client_id?)))
            .collect();
        wanted.into_iter().collect()
    }

    /// One tick of the clock at `now`.
    pub fn tick(&mut self, rules: &Rules, clients: &Clients, now: i64) -> Vec<Effect> {
        let mut step = Step::new(self, rules, now);
        step.timers_ran_out(clients);
        step.quiet_alerts_resolve();
        step.silent_tenants_fire();
        step.unmuted_alerts_are_told();
        step.repeat();
        step.forget_what_ended_long_ago();
        step.finish()
    }
}

impl Step<'_> {
    /// A client waited too long: the wait alert fires, and the timer is done.
    fn timers_ran_out(&mut self, clients: &Clients) {
        let now = self.now;
        let mut due: Vec<(String, Timer)> = self
            .machine
            .timers
            .iter()
            .filter(|(_, t)| t.deadline <= now)
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        due.sort_by(|(a_key, a), (b_key, b)| (a.deadline, a_key).cmp(&(b.deadline, b_key)));
        for (key, timer) in due {
            // A timer whose rule is gone, or is no longer a wait rule, is forgotten unfired.
            if let Some(rule) = self.rule(&timer.rule)
                && let Condition::Wait { after } = rule.condition
            {
                let client = timer.client_id.map(|id| client(clients, &timer.tenant, id));
                let summary = wait_summary(
                    client.as_ref().and_then(|c| c.name.clone()),
                    timer.client_id,
                    after,
                    timer.request_id,
                );
                let labels = request_labels(timer.request_id);
                let mut alert = self.firing(rule, &timer.tenant, labels, summary);
                alert.client = client;
                self.fire(rule, alert);
            }
            self.delete(key);
        }
        let rules = self.rules;
        for rule in &rules.rules {
            if let Condition::Wait { .. } = rule.condition {
                let waiting = self
                    .machine
                    .timers
                    .values()
                    .filter(|t| t.rule == rule.name)
                    .count();
                self.evaluated(
                    &rule.name,
                    format!("{waiting} clients waiting for an answer"),
                );
            }
        }
    }

    /// Event alerts whose events stopped coming for their rule's `resolve_after` resolve.
    fn quiet_alerts_resolve(&mut self) {
        let now = self.now;
        let mut quiet: Vec<String> = self
            .machine
            .alerts
            .values()
            .filter(|a| a.state == State::Firing && a.resolve_at.is_some_and(|at| at <= now))
            .map(|a| a.fingerprint.clone())
            .collect();
        quiet.sort();
        for fp in quiet {
            self.resolve(&fp);
        }
    }

    /// Tenants a silence rule watches that sent nothing for its `after` fire, once.
    fn silent_tenants_fire(&mut self) {
        let now = self.now;
        let rules = self.rules;
        for rule in &rules.rules {
            let Condition::Silence { after } = rule.condition else {
                continue;
            };
            let mut silent: Vec<(String, i64)> = self
                .machine
                .seen
                .iter()
                .filter(|(tenant, heard)| {
                    rule.applies_to(tenant) && now - heard.last >= after.as_millis() as i64
                })
                .map(|(tenant, heard)| (tenant.clone(), heard.last))
                .collect();
            silent.sort();
            let watched = self
                .machine
                .seen
                .keys()
                .filter(|t| rule.applies_to(t))
                .count();
            self.evaluated(
                &rule.name,
                format!("{watched} tenants watched, {} silent", silent.len()),
            );
            for (tenant, last) in silent {
                let fp = fingerprint(&rule.name, &tenant, &Labels::new());
                if self.machine.is_firing(&fp) {
                    continue;
                }
                let summary = format!(
                    "{} (last event {} s ago)",
                    silence_summary(&tenant, after),
                    (now - last) / 1_000
                );
                let alert = self.firing(rule, &tenant, Labels::new(), summary);
                self.fire(rule, alert);
            }
        }
    }

    /// Muted alerts whose silence ended or whose inhibitor resolved are told now, if they
    /// still fire (and alerts a new silence or inhibitor mutes have it recorded).
    fn unmuted_alerts_are_told(&mut self) {
        let now = self.now;
        let machine = &*self.machine;
        let mut changed: Vec<AlertRecord> = machine
            .alerts
            .values()
            .filter(|a| a.state == State::Firing && a.is_muted())
            .filter(|a| {
                !Mute::of(
                    a,
                    &machine.silences,
                    &machine.alerts,
                    &self.rules.inhibitions,
                    now,
                )
                .is_recorded_in(a)
            })
            .cloned()
            .collect();
        changed.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        for mut alert in changed {
            alert.updated_at = now;
            self.transition(alert);
        }
    }

    /// Silences and resolved alerts that ended more than [`KEEP_RESOLVED_MS`] ago.
    fn forget_what_ended_long_ago(&mut self) {
        let now = self.now;
        let mut ended: Vec<String> = self
            .machine
            .silences
            .values()
            .filter(|s| now - s.ends_at > KEEP_RESOLVED_MS)
            .map(|s| format!("silence.{}", s.id))
            .collect();
        ended.sort();
        let mut forgotten: Vec<String> = self
            .machine
            .alerts
            .values()
            .filter(|a| a.ends_at.is_some_and(|end| now - end > KEEP_RESOLVED_MS))
            .flat_map(|a| {
                // Its notifications still tried after a week go with it: one left alone would
                // read as a firing told but never kept, and bring the alert back.
                let notifications = self.machine.notifications_of(&a.fingerprint);
                std::iter::once(format!("alert.{}", a.fingerprint))
                    .chain(notifications.map(|(key, _)| key.clone()))
            })
            .collect();
        forgotten.sort();
        for key in ended.into_iter().chain(forgotten) {
            self.delete(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::fixtures::*;
    use super::super::{Effect, Record};
    use super::*;
    use crate::alert::ClientInfo;
    use crate::rules::Rule;

    #[test]
    fn a_wait_timer_that_runs_out_fires_about_the_client() {
        let rules = rules(vec![rule("waiting", wait_condition())]);
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &inbox("acme", "e1", 7, 501, T0), T0);
        let effects = tick(&mut machine, &rules, T0 + 10 * MINUTE - 1);
        assert!(put_alerts(&effects).is_empty(), "not yet");
        assert_eq!(
            machine.lookups_for_tick(&rules, T0 + 10 * MINUTE),
            [("acme".to_owned(), 501)]
        );
        let ana = ClientInfo {
            client_id: 501,
            name: Some("Ana Souza".into()),
            tags: Vec::new(),
        };
        let clients = Clients::from([(("acme".to_owned(), 501), ana.clone())]);
        let effects = run(&mut machine, |m| m.tick(&rules, &clients, T0 + 10 * MINUTE));
        let alert = &put_alerts(&effects)[0];
        assert_eq!(alert.labels["request_id"], "7");
        assert_eq!(alert.client, Some(ana));
        assert_eq!(alert.starts_at, T0 + 10 * MINUTE);
        assert_eq!(alert.resolve_at, None, "only an answer resolves it");
        assert_eq!(
            alert.summary,
            "Ana Souza has waited 10m for an operator's answer (request 7)"
        );
        let deleted = effects
            .iter()
            .position(|e| *e == Effect::Delete("timer.waiting.acme.7".into()));
        let kept = effects
            .iter()
            .position(|e| matches!(e, Effect::Put(Record::Alert(_))));
        assert!(
            kept.is_some() && kept < deleted,
            "the alert is kept before the timer is let go: {effects:?}"
        );
        assert!(machine.timers.is_empty());
        assert_eq!(
            machine.evaluations(&rules)["waiting"]
                .0
                .as_ref()
                .map(|e| e.result.clone()),
            Some("0 clients waiting for an answer".into())
        );
    }

    /// Weekdays 09:00-18:00 in Berlin, for acme. T0 is Tuesday 2023-11-14, 23:13:20 there
    /// (22:13:20Z, CET).
    fn office_hours() -> Rules {
        let calendar = c2d_calendar::Calendar::parse_json(
            r#"{"time_zone": "Europe/Berlin", "weekly": {"mon": ["09:00-18:00"],
                "tue": ["09:00-18:00"], "wed": ["09:00-18:00"], "thu": ["09:00-18:00"],
                "fri": ["09:00-18:00"]}}"#,
        )
        .unwrap();
        Rules {
            calendars: c2d_calendar::Calendars::fixed([("acme".to_owned(), calendar)].into()),
            ..Rules::default()
        }
    }

    #[test]
    fn a_business_time_wait_does_not_fire_at_night_and_fires_the_next_working_morning() {
        let rules = Rules {
            rules: vec![Rule {
                hours: crate::rules::Hours::Business,
                ..rule("waiting", wait_condition())
            }],
            ..office_hours()
        };
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &inbox("acme", "e1", 7, 501, T0), T0);
        // Wednesday 09:10 in Berlin: ten minutes of working time after the night.
        let morning = T0 + 9 * HOUR + 56 * MINUTE + 40 * SECOND;
        for night in [T0 + 10 * MINUTE, T0 + 5 * HOUR, morning - 1] {
            let effects = tick(&mut machine, &rules, night);
            assert!(put_alerts(&effects).is_empty(), "not at {night}");
        }
        let effects = tick(&mut machine, &rules, morning);
        let alert = &put_alerts(&effects)[0];
        assert_eq!(alert.labels["request_id"], "7");
        assert_eq!(alert.starts_at, morning);

        // A tenant without a calendar waits in wall-clock time.
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &inbox("globex", "e2", 8, 502, T0), T0);
        let effects = tick(&mut machine, &rules, T0 + 10 * MINUTE);
        assert_eq!(put_alerts(&effects).len(), 1);
    }

    #[test]
    fn a_rule_that_keeps_working_hours_raises_nothing_while_the_tenant_is_closed() {
        let rules = Rules {
            rules: vec![Rule {
                hours: crate::rules::Hours::Business,
                ..rule("whatsapp-disconnected", qr_condition())
            }],
            ..office_hours()
        };
        let mut machine = Machine::default();
        let night = hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        assert!(put_alerts(&night).is_empty(), "muted at night");
        // Wednesday 10:00 in Berlin: open.
        let morning = T0 + 10 * HOUR + 46 * MINUTE + 40 * SECOND;
        let open = hear(&mut machine, &rules, &qr("acme", "e2", "5511"), morning);
        assert_eq!(put_alerts(&open).len(), 1, "raised in working hours");
    }

    #[test]
    fn a_timer_whose_rule_is_gone_is_forgotten_unfired() {
        let before = rules(vec![rule("waiting", wait_condition())]);
        let mut machine = Machine::default();
        run(&mut machine, |m| {
            m.on_event(
                &before,
                &inbox("acme", "e1", 7, 501, T0),
                &Clients::new(),
                T0,
            )
        });
        for changed in [
            rules(Vec::new()),
            rules(vec![rule(
                "waiting",
                Condition::Silence {
                    after: Duration::from_secs(3600 * 24),
                },
            )]),
        ] {
            let mut machine = machine.clone();
            assert!(machine.lookups_for_tick(&changed, T0 + HOUR).is_empty());
            let effects = run(&mut machine, |m| {
                m.tick(&changed, &Clients::new(), T0 + HOUR)
            });
            assert!(put_alerts(&effects).is_empty());
            assert!(effects.contains(&Effect::Delete("timer.waiting.acme.7".into())));
        }
    }

    #[test]
    fn an_event_alert_resolves_when_its_events_stop() {
        let rules = rules(vec![rule(
            "qr",
            qr_condition_resolving_after(Duration::from_secs(600)),
        )]);
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        let effects = tick(&mut machine, &rules, T0 + 10 * MINUTE - 1);
        assert!(put_alerts(&effects).is_empty());
        let effects = tick(&mut machine, &rules, T0 + 10 * MINUTE);
        let resolved = &put_alerts(&effects)[0];
        assert_eq!(resolved.state, State::Resolved);
        assert_eq!(resolved.ends_at, Some(T0 + 10 * MINUTE));
        assert_eq!(resolved.resolve_at, None);
        let queued = notifications(&effects);
        assert_eq!(
            queued[0].0,
            format!("notify.{}.resolved.{T0}", resolved.fingerprint)
        );
        assert_eq!(published(&effects), std::slice::from_ref(resolved));
        // Resolved once: the next tick leaves it alone.
        let effects = tick(&mut machine, &rules, T0 + 11 * MINUTE);
        assert!(put_alerts(&effects).is_empty());
    }

    #[test]
    fn a_silent_tenant_fires_once_and_resolves_when_heard_from() {
        let rules = rules(vec![Rule {
            tenants: vec!["acme".into(), "globex".into()],
            ..rule(
                "silent",
                Condition::Silence {
                    after: Duration::from_secs(1800),
                },
            )
        }]);
        // globex never spoke: watched from the start.
        let (mut machine, _) = Machine::restore(&rules, Vec::new(), T0);
        hear(&mut machine, &rules, &bare_event("acme", "e1", "inbox"), T0);
        hear(
            &mut machine,
            &rules,
            &bare_event("acme", "e2", "inbox"),
            T0 + 20 * MINUTE,
        );
        let effects = tick(&mut machine, &rules, T0 + 30 * MINUTE);
        let fired: Vec<(String, String)> = put_alerts(&effects)
            .iter()
            .map(|a| (a.tenant.clone(), a.summary.clone()))
            .collect();
        assert_eq!(
            fired,
            [(
                "globex".to_owned(),
                "No event from tenant globex for 30m: is its Chat2Desk webhook disabled? (last event 1800 s ago)".to_owned()
            )]
        );
        assert_eq!(
            machine.evaluations(&rules)["silent"]
                .0
                .as_ref()
                .map(|e| e.result.clone()),
            Some("2 tenants watched, 1 silent".into())
        );
        let effects = tick(&mut machine, &rules, T0 + 31 * MINUTE);
        assert!(put_alerts(&effects).is_empty(), "fires once");

        let effects = hear(
            &mut machine,
            &rules,
            &bare_event("globex", "e3", "inbox"),
            T0 + 40 * MINUTE,
        );
        let resolved = &put_alerts(&effects)[0];
        assert_eq!(
            (resolved.tenant.as_str(), resolved.state),
            ("globex", State::Resolved)
        );
        assert_eq!(notifications(&effects).len(), 1);
    }

    #[test]
    fn a_silence_rule_ignores_tenants_it_does_not_watch() {
        let rules = rules(vec![Rule {
            tenants: vec!["acme".into()],
            ..rule(
                "silent",
                Condition::Silence {
                    after: Duration::from_secs(60),
                },
            )
        }]);
        let mut machine = Machine::default();
        hear(
            &mut machine,
            &rules,
            &bare_event("globex", "e1", "inbox"),
            T0,
        );
        let effects = tick(&mut machine, &rules, T0 + HOUR);
        assert!(put_alerts(&effects).is_empty());
    }

    #[test]
    fn resolved_alerts_and_ended_silences_are_forgotten_after_a_week() {
        let rules = rules(vec![rule(
            "qr",
            qr_condition_resolving_after(Duration::from_secs(60)),
        )]);
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        let silence = silence_everything(&mut machine, "globex", T0, T0 + MINUTE);
        tick(&mut machine, &rules, T0 + MINUTE);
        deliver_everything(&mut machine, T0 + MINUTE);
        let fingerprint = machine.alerts()[0].fingerprint.clone();

        let effects = tick(&mut machine, &rules, T0 + MINUTE + KEEP_RESOLVED_MS);
        assert!(
            !effects.iter().any(|e| matches!(e, Effect::Delete(_))),
            "kept a week: {effects:?}"
        );
        let effects = tick(&mut machine, &rules, T0 + MINUTE + KEEP_RESOLVED_MS + 1);
        let deleted: Vec<&Effect> = effects
            .iter()
            .filter(|e| matches!(e, Effect::Delete(_)))
            .collect();
        assert_eq!(
            deleted,
            [
                &Effect::Delete(format!("silence.{}", silence.id)),
                &Effect::Delete(format!("alert.{fingerprint}"))
            ]
        );
        assert!(machine.alerts().is_empty());
        assert!(machine.silences().is_empty());
    }

    #[test]
    fn a_firing_alert_is_never_forgotten() {
        let rules = rules(vec![rule("waiting", wait_condition())]);
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &inbox("acme", "e1", 7, 501, T0), T0);
        tick(&mut machine, &rules, T0 + 10 * MINUTE);
        let effects = tick(&mut machine, &rules, T0 + 30 * KEEP_RESOLVED_MS);
        assert!(!effects.iter().any(|e| matches!(e, Effect::Delete(_))));
        assert_eq!(machine.alerts().len(), 1);
    }
}
