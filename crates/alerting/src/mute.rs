//! Why a firing alert is kept from its receiver: a silence someone created, or a greater alert
//! of the same tenant that already says it (inhibition). A muted alert is still kept, listed
//! and published; only its notifications wait, and it is notified once nothing mutes it any
//! more while it still fires.

use std::collections::HashMap;

use crate::alert::{AlertRecord, Silence, State};
use crate::rules::Inhibition;

/// What mutes an alert now; both None: nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mute {
    /// The id of the active silence that matches it.
    pub silence: Option<String>,
    /// The fingerprint of the firing alert that inhibits it.
    pub inhibitor: Option<String>,
}

impl Mute {
    /// What mutes `alert` at `now`, given the silences, the other alerts and the inhibitions.
    pub fn of(
        alert: &AlertRecord,
        silences: &HashMap<String, Silence>,
        alerts: &HashMap<String, AlertRecord>,
        inhibitions: &[Inhibition],
        now: i64,
    ) -> Mute {
        let silence = silences
            .values()
            .filter(|s| s.is_active(now) && s.matches(alert))
            .map(|s| s.id.clone())
            .min();
        let inhibitor = inhibitions
            .iter()
            .filter(|i| i.target.matches(&alert.rule, &alert.severity))
            .flat_map(|i| {
                alerts.values().filter(move |source| {
                    source.state == State::Firing
                        && source.tenant == alert.tenant
                        && source.fingerprint != alert.fingerprint
                        // A source that is itself a target of the same inhibition cannot mute
                        // its peers, or two alerts of one kind would mute each other.
                        && !i.target.matches(&source.rule, &source.severity)
                        && i.source.matches(&source.rule, &source.severity)
                })
            })
            .map(|source| source.fingerprint.clone())
            .min();
        Mute { silence, inhibitor }
    }

    /// Whether anything mutes the alert.
    pub fn is_muted(&self) -> bool {
        self.silence.is_some() || self.inhibitor.is_some()
    }

    /// Whether the alert's record says the same.
    pub fn is_recorded_in(&self, alert: &AlertRecord) -> bool {
        self.silence == alert.silenced_by && self.inhibitor == alert.inhibited_by
    }

    /// Writes it into the alert's record.
    pub fn record_in(self, alert: &mut AlertRecord) {
        alert.silenced_by = self.silence;
        alert.inhibited_by = self.inhibitor;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{AlertMatcher, Labels};

    fn alert(rule: &str, tenant: &str, severity: &str, state: State) -> AlertRecord {
        AlertRecord {
            fingerprint: format!("{rule}-{tenant}"),
            rule: rule.into(),
            tenant: tenant.into(),
            state,
            severity: severity.into(),
            summary: String::new(),
            labels: Labels::new(),
            starts_at: 0,
            ends_at: None,
            updated_at: 0,
            client: None,
            receiver: "ops".into(),
            resolve_at: None,
            last_event_id: None,
            silenced_by: None,
            inhibited_by: None,
            acknowledgement: None,
            notified_at: None,
        }
    }

    fn by_fingerprint(alerts: &[AlertRecord]) -> HashMap<String, AlertRecord> {
        alerts
            .iter()
            .map(|a| (a.fingerprint.clone(), a.clone()))
            .collect()
    }

    #[test]
    fn a_greater_alert_of_the_same_tenant_inhibits_the_lesser() {
        let inhibitions = [Inhibition {
            source: AlertMatcher {
                rule: Some("qr".into()),
                severity: None,
            },
            target: AlertMatcher {
                rule: None,
                severity: Some("warning".into()),
            },
        }];
        let failing = alert("delivery", "acme", "warning", State::Firing);
        let qr = alert("qr", "acme", "critical", State::Firing);
        let other_tenant = alert("qr", "globex", "critical", State::Firing);
        let none = HashMap::new();

        let alerts = by_fingerprint(&[qr.clone(), failing.clone()]);
        let mute = Mute::of(&failing, &none, &alerts, &inhibitions, 0);
        assert_eq!(mute.inhibitor.as_deref(), Some("qr-acme"));
        assert!(!Mute::of(&qr, &none, &alerts, &inhibitions, 0).is_muted());

        let alerts = by_fingerprint(&[other_tenant, failing.clone()]);
        assert!(!Mute::of(&failing, &none, &alerts, &inhibitions, 0).is_muted());

        let mut resolved = qr;
        resolved.state = State::Resolved;
        let alerts = by_fingerprint(&[resolved, failing.clone()]);
        assert!(!Mute::of(&failing, &none, &alerts, &inhibitions, 0).is_muted());
    }

    #[test]
    fn alerts_of_one_kind_do_not_inhibit_each_other() {
        let inhibitions = [Inhibition {
            source: AlertMatcher {
                rule: None,
                severity: Some("warning".into()),
            },
            target: AlertMatcher {
                rule: Some("delivery".into()),
                severity: None,
            },
        }];
        let mut one = alert("delivery", "acme", "warning", State::Firing);
        let mut two = one.clone();
        one.fingerprint = "one".into();
        two.fingerprint = "two".into();
        let alerts = by_fingerprint(&[one.clone(), two]);
        assert!(!Mute::of(&one, &HashMap::new(), &alerts, &inhibitions, 0).is_muted());
    }

    #[test]
    fn an_active_matching_silence_mutes() {
        let failing = alert("delivery", "acme", "warning", State::Firing);
        let silence = Silence {
            id: "s1".into(),
            tenant: "acme".into(),
            rule: String::new(),
            labels: Labels::new(),
            starts_at: 0,
            ends_at: 100,
            comment: String::new(),
        };
        let silences = HashMap::from([("s1".to_owned(), silence)]);
        let alerts = by_fingerprint(std::slice::from_ref(&failing));
        let mute = Mute::of(&failing, &silences, &alerts, &[], 50);
        assert_eq!(mute.silence.as_deref(), Some("s1"));
        assert!(!Mute::of(&failing, &silences, &alerts, &[], 100).is_muted());
    }
}
