//! Trying a rule on recorded events before trusting it: what would it have fired over the last
//! hour, and when would that have ended? The trial replays the events through the rule's
//! condition on their own clock (when the gateway received each), keeps nothing and notifies
//! no one. It reads the same [`crate::signal`] the engine reads, so the two agree.
//!
//! Threshold rules are not tried here: they are measured by AnalyticsService, not by events
//! (the service asks it for the current value instead).

use std::collections::{BTreeMap, HashMap};

use c2d_proto::events::v1::Event;

use crate::alert::{AlertRecord, State, fingerprint};
use crate::rules::{Condition, Labels, Rule};
use crate::signal::{
    event_condition, received_ms, request_labels, silence_summary, wait_signal, wait_summary,
};

/// The alerts `rule` would have fired over `events` (in stream order) up to `now`, newest
/// first: resolved when the events also ended them, firing otherwise.
pub fn try_rule(rule: &Rule, events: &[Event], now: i64) -> Vec<AlertRecord> {
    let events: Vec<(i64, &Event)> = events
        .iter()
        .filter(|e| rule.applies_to(&e.tenant))
        .map(|e| (received_ms(e, now), e))
        .collect();
    let mut alerts = match &rule.condition {
        Condition::Event {
            hook_type,
            resolve_after,
        } => {
            let resolve_after = resolve_after.as_millis() as i64;
            let mut trial = Trial::default();
            for (at, event) in events.iter().filter(|(_, e)| &e.hook_type == hook_type) {
                let Some((labels, summary, _)) = event_condition(event) else {
                    continue;
                };
                let fp = fingerprint(&rule.name, &event.tenant, &labels);
                trial.resolve_if(&fp, |a| a.resolve_at.is_some_and(|end| end < *at));
                let alert = trial.open.entry(fp.clone()).or_insert_with(|| {
                    AlertRecord::firing(rule, &event.tenant, labels, summary, *at)
                });
                alert.resolve_at = Some(at + resolve_after);
            }
            trial.finish(|a| a.resolve_at.filter(|end| *end <= now))
        }
        Condition::Wait { after } => {
            let after = after.as_millis() as i64;
            let mut waiting: BTreeMap<(String, i64), (i64, Option<i64>)> = BTreeMap::new();
            let mut trial = Trial::default();
            for (at, event) in &events {
                let Some(signal) = wait_signal(event) else {
                    continue;
                };
                let key = (event.tenant.clone(), signal.request_id);
                if !signal.answered {
                    waiting.entry(key).or_insert((*at, signal.client_id));
                } else if let Some((since, client_id)) = waiting.remove(&key)
                    && at - since >= after
                {
                    let mut fired = wait_alert(rule, &key, client_id, since + after, after);
                    fired.state = State::Resolved;
                    fired.ends_at = Some(*at);
                    trial.resolved.push(fired);
                }
            }
            for (key, (since, client_id)) in waiting {
                if now - since >= after {
                    let fired = wait_alert(rule, &key, client_id, since + after, after);
                    trial.open.insert(fired.fingerprint.clone(), fired);
                }
            }
            trial.finish(|_| None)
        }
        Condition::Silence { after } => {
            let after = after.as_millis() as i64;
            let mut last: HashMap<&str, i64> = HashMap::new();
            let mut trial = Trial::default();
            let silent = |tenant: &str, since: i64| {
                let summary =
                    silence_summary(tenant, std::time::Duration::from_millis(after as u64));
                AlertRecord::firing(rule, tenant, Labels::new(), summary, since + after)
            };
            for (at, event) in &events {
                if let Some(previous) = last.insert(&event.tenant, *at)
                    && at - previous >= after
                {
                    let mut fired = silent(&event.tenant, previous);
                    fired.state = State::Resolved;
                    fired.ends_at = Some(*at);
                    trial.resolved.push(fired);
                }
            }
            for (tenant, at) in last {
                if now - at >= after {
                    let fired = silent(tenant, at);
                    trial.open.insert(fired.fingerprint.clone(), fired);
                }
            }
            trial.finish(|_| None)
        }
        Condition::Threshold { .. } => Vec::new(),
    };
    alerts.sort_by(|a, b| {
        b.updated_at
            .cmp(&a.updated_at)
            .then(a.fingerprint.cmp(&b.fingerprint))
    });
    alerts
}

/// Alerts a trial has open (by fingerprint) and those it saw end.
#[derive(Default)]
struct Trial {
    open: HashMap<String, AlertRecord>,
    resolved: Vec<AlertRecord>,
}

impl Trial {
    /// Ends the open alert `fp` when `ended` says it ended by now (it is then fired anew).
    fn resolve_if(&mut self, fp: &str, ended: impl Fn(&AlertRecord) -> bool) {
        if self.open.get(fp).is_some_and(ended)
            && let Some(mut alert) = self.open.remove(fp)
        {
            alert.state = State::Resolved;
            alert.ends_at = alert.resolve_at.take();
            alert.updated_at = alert.ends_at.unwrap_or(alert.updated_at);
            self.resolved.push(alert);
        }
    }

    /// Every alert: open ones resolved at the time `end` gives (if any), still firing otherwise.
    fn finish(mut self, end: impl Fn(&AlertRecord) -> Option<i64>) -> Vec<AlertRecord> {
        for (_, mut alert) in self.open.drain() {
            if let Some(at) = end(&alert) {
                alert.state = State::Resolved;
                alert.ends_at = Some(at);
                alert.updated_at = at;
            }
            alert.resolve_at = None;
            self.resolved.push(alert);
        }
        for alert in &mut self.resolved {
            if let Some(end) = alert.ends_at {
                alert.updated_at = end;
            }
        }
        self.resolved
    }
}

fn wait_alert(
    rule: &Rule,
    (tenant, request_id): &(String, i64),
    client_id: Option<i64>,
    at: i64,
    after: i64,
) -> AlertRecord {
    let after = std::time::Duration::from_millis(after as u64);
    let summary = wait_summary(None, client_id, after, *request_id);
    AlertRecord::firing(rule, tenant, request_labels(*request_id), summary, at)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use c2d_proto::events::Payload;
    use c2d_proto::events::v1::{DialogEvent, Message, QrCode};

    use super::*;

    const T0: i64 = 1_700_000_000_000;
    const MINUTE: i64 = 60_000;

    fn rule(condition: Condition) -> Rule {
        Rule {
            name: "r".into(),
            condition,
            severity: "warning".into(),
            receiver: "ops".into(),
            routes: Vec::new(),
            tenants: Vec::new(),
            group_wait: None,
            repeat_interval: None,
            hours: crate::rules::Hours::Always,
        }
    }

    fn event(tenant: &str, at: i64, hook_type: &str, payload: Payload) -> Event {
        Event {
            event_id: format!("{tenant}-{at}"),
            tenant: tenant.into(),
            hook_type: hook_type.into(),
            received_at: Some(crate::alert::timestamp(at)),
            payload: Some(payload),
            ..Event::default()
        }
    }

    fn inbox(tenant: &str, at: i64, request_id: i64) -> Event {
        let message = Message {
            request_id: Some(request_id),
            client_id: Some(7),
            ..Message::default()
        };
        event(tenant, at, "inbox", Payload::Inbox(message))
    }

    fn outbox(tenant: &str, at: i64, request_id: i64) -> Event {
        let message = Message {
            request_id: Some(request_id),
            ..Message::default()
        };
        event(tenant, at, "outbox", Payload::Outbox(message))
    }

    #[test]
    fn a_wait_fires_when_the_answer_comes_too_late_or_not_at_all() {
        let rule = rule(Condition::Wait {
            after: Duration::from_secs(600),
        });
        let events = [
            inbox("acme", T0, 1),
            inbox("acme", T0 + MINUTE, 1),
            outbox("acme", T0 + 5 * MINUTE, 1), // in time
            inbox("acme", T0, 2),
            outbox("acme", T0 + 15 * MINUTE, 2), // too late
            inbox("acme", T0 + 20 * MINUTE, 3),  // never answered
            event(
                "acme",
                T0 + 21 * MINUTE,
                "close_dialog",
                Payload::CloseDialog(DialogEvent {
                    request_id: Some(4),
                    ..DialogEvent::default()
                }),
            ),
        ];
        let alerts = try_rule(&rule, &events, T0 + 40 * MINUTE);
        let seen: Vec<(&str, State, i64, Option<i64>)> = alerts
            .iter()
            .map(|a| {
                (
                    a.labels["request_id"].as_str(),
                    a.state,
                    a.starts_at - T0,
                    a.ends_at.map(|e| e - T0),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("3", State::Firing, 30 * MINUTE, None),
                ("2", State::Resolved, 10 * MINUTE, Some(15 * MINUTE)),
            ]
        );
        assert_eq!(
            alerts[0].summary,
            "client 7 has waited 10m for an operator's answer (request 3)"
        );
    }

    #[test]
    fn an_event_alert_is_renewed_until_its_events_stop() {
        let rule = rule(Condition::Event {
            hook_type: "new_qr_code".into(),
            resolve_after: Duration::from_secs(600),
        });
        let qr = |at| {
            let payload = Payload::NewQrCode(QrCode {
                phone: Some("5511".into()),
                ..QrCode::default()
            });
            event("acme", at, "new_qr_code", payload)
        };
        let events = [qr(T0), qr(T0 + 5 * MINUTE), qr(T0 + 30 * MINUTE)];
        let alerts = try_rule(&rule, &events, T0 + 35 * MINUTE);
        let seen: Vec<(State, i64, Option<i64>)> = alerts
            .iter()
            .map(|a| (a.state, a.starts_at - T0, a.ends_at.map(|e| e - T0)))
            .collect();
        assert_eq!(
            seen,
            [
                (State::Firing, 30 * MINUTE, None),
                (State::Resolved, 0, Some(15 * MINUTE)),
            ]
        );
        assert_eq!(alerts[0].fingerprint, alerts[1].fingerprint);
    }

    #[test]
    fn a_silence_is_a_gap_between_events_or_since_the_last() {
        let rule = rule(Condition::Silence {
            after: Duration::from_secs(1800),
        });
        let events = [
            inbox("acme", T0, 1),
            inbox("globex", T0, 1),
            inbox("acme", T0 + 45 * MINUTE, 1),
            inbox("globex", T0 + 50 * MINUTE, 1),
            inbox("acme", T0 + 50 * MINUTE, 1),
        ];
        let alerts = try_rule(&rule, &events, T0 + 90 * MINUTE);
        let mut seen: Vec<(&str, State, i64)> = alerts
            .iter()
            .map(|a| (a.tenant.as_str(), a.state, a.starts_at - T0))
            .collect();
        seen.sort_by_key(|s| (s.2, s.0));
        assert_eq!(
            seen,
            [
                ("acme", State::Resolved, 30 * MINUTE),
                ("globex", State::Resolved, 30 * MINUTE),
                ("acme", State::Firing, 80 * MINUTE),
                ("globex", State::Firing, 80 * MINUTE),
            ]
        );
    }
}
