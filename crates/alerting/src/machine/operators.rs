//! What people ask through gRPC: silence some alerts for a while, end a silence early, say
//! they are on an alert. A silence changes no alert at once: the next tick records it in the
//! alerts it mutes that fire anew, and tells the ones it muted once it ends.

use std::time::Duration;

use crate::alert::{Acknowledgement, AlertRecord, Silence, State, fingerprint};
use crate::rules::Labels;

use super::{Effect, Machine, Record};

/// Acknowledging an alert that is not there to acknowledge: the caller is told which, since
/// one is a wrong fingerprint and the other is news that it is over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NotAcknowledged {
    /// No alert has that fingerprint (or it was forgotten, a week after it resolved).
    Unknown,
    /// It is over: there is nobody to stop telling.
    Resolved,
}

impl Machine {
    /// A silence of the alerts of `tenant` and `rule` (empty: any) that carry `labels`, from
    /// `now` for `duration`.
    pub fn create_silence(
        &mut self,
        tenant: String,
        rule: String,
        labels: Labels,
        duration: Duration,
        comment: String,
        now: i64,
    ) -> (Silence, Vec<Effect>) {
        let silence = Silence {
            id: fingerprint(&format!("silence {now}"), &tenant, &labels),
            tenant,
            rule,
            labels,
            starts_at: now,
            ends_at: now + duration.as_millis() as i64,
            comment,
        };
        let effects = self.decided(vec![Effect::Put(Record::Silence(silence.clone()))]);
        (silence, effects)
    }

    /// Ends the silence `id` at `now` (one that ended already keeps its end); None when there
    /// is no such silence.
    pub fn expire_silence(&mut self, id: &str, now: i64) -> Option<(Silence, Vec<Effect>)> {
        let mut silence = self.silences.get(id)?.clone();
        silence.ends_at = silence.ends_at.min(now);
        let effects = self.decided(vec![Effect::Put(Record::Silence(silence.clone()))]);
        Some((silence, effects))
    }

    /// Someone is on the alert: it is not repeated any more.
    pub fn acknowledge(
        &mut self,
        fingerprint: &str,
        by: String,
        comment: String,
        now: i64,
    ) -> Result<(AlertRecord, Vec<Effect>), NotAcknowledged> {
        let mut alert = self
            .alerts
            .get(fingerprint)
            .cloned()
            .ok_or(NotAcknowledged::Unknown)?;
        if alert.state == State::Resolved {
            return Err(NotAcknowledged::Resolved);
        }
        alert.acknowledgement = Some(Acknowledgement {
            by,
            comment,
            at: now,
        });
        alert.updated_at = now;
        let effects = self.decided(vec![Effect::Put(Record::Alert(alert.clone()))]);
        Ok((alert, effects))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Effect;
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn a_silence_mutes_matching_alerts_while_it_lasts() {
        let rules = rules(vec![rule("qr", qr_condition())]);
        let mut machine = Machine::default();
        let silence = run_with(&mut machine, |m| {
            m.create_silence(
                "acme".into(),
                "qr".into(),
                Labels::from([("phone".to_owned(), "5511".to_owned())]),
                Duration::from_secs(600),
                "replacing the phone".into(),
                T0,
            )
        });
        assert_eq!((silence.starts_at, silence.ends_at), (T0, T0 + 10 * MINUTE));
        assert_eq!(machine.silences(), std::slice::from_ref(&silence));

        let effects = hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        let muted = &put_alerts(&effects)[0];
        assert_eq!(muted.silenced_by.as_deref(), Some(silence.id.as_str()));
        assert!(notifications(&effects).is_empty());

        let effects = hear(&mut machine, &rules, &qr("acme", "e2", "5512"), T0);
        assert_eq!(notifications(&effects).len(), 1, "another phone");
        let effects = hear(&mut machine, &rules, &qr("globex", "e3", "5511"), T0);
        assert_eq!(notifications(&effects).len(), 1, "another tenant");

        // Still silenced a minute before its end; told at its end, since it still fires.
        let effects = tick(&mut machine, &rules, T0 + 9 * MINUTE);
        assert!(notifications(&effects).is_empty());
        let effects = tick(&mut machine, &rules, T0 + 10 * MINUTE);
        let told = notifications(&effects);
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].1.alert.fingerprint, muted.fingerprint);
        assert_eq!(told[0].1.alert.silenced_by, None);
        assert_eq!(told[0].1.alert.notified_at, Some(T0 + 10 * MINUTE));
    }

    #[test]
    fn an_expired_silence_ends_now_and_its_alerts_are_told() {
        let rules = rules(vec![rule("qr", qr_condition())]);
        let mut machine = Machine::default();
        let silence = silence_everything(&mut machine, "acme", T0, T0 + HOUR);
        hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        let expired = run_with(&mut machine, |m| {
            m.expire_silence(&silence.id, T0 + MINUTE)
                .expect("a silence")
        });
        assert_eq!(expired.ends_at, T0 + MINUTE);
        assert!(!expired.is_active(T0 + MINUTE));
        let effects = tick(&mut machine, &rules, T0 + MINUTE);
        assert_eq!(notifications(&effects).len(), 1);

        // Expiring it again does not move its end.
        let again = run_with(&mut machine, |m| {
            m.expire_silence(&silence.id, T0 + HOUR).expect("a silence")
        });
        assert_eq!(again.ends_at, T0 + MINUTE);
        assert!(machine.expire_silence("nope", T0).is_none());
    }

    #[test]
    fn an_acknowledged_alert_says_who_is_on_it() {
        let rules = rules(vec![rule("qr", qr_condition())]);
        let mut machine = Machine::default();
        hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        let fingerprint = machine.alerts()[0].fingerprint.clone();
        let (alert, effects) = machine
            .acknowledge(
                &fingerprint,
                "Marina".into(),
                "calling the provider".into(),
                T0 + MINUTE,
            )
            .expect("firing");
        assert_eq!(effects, [Effect::Put(Record::Alert(alert.clone()))]);
        assert_eq!(
            alert.acknowledgement,
            Some(Acknowledgement {
                by: "Marina".into(),
                comment: "calling the provider".into(),
                at: T0 + MINUTE
            })
        );
        assert_eq!(alert.updated_at, T0 + MINUTE);
        assert_eq!(machine.alerts(), [alert]);
    }

    #[test]
    fn only_a_known_firing_alert_is_acknowledged() {
        let rules = rules(vec![rule(
            "qr",
            qr_condition_resolving_after(Duration::from_secs(60)),
        )]);
        let mut machine = Machine::default();
        assert_eq!(
            machine
                .acknowledge("nope", "Marina".into(), String::new(), T0)
                .err(),
            Some(NotAcknowledged::Unknown)
        );
        hear(&mut machine, &rules, &qr("acme", "e1", "5511"), T0);
        tick(&mut machine, &rules, T0 + MINUTE);
        let fingerprint = machine.alerts()[0].fingerprint.clone();
        let before = machine.clone();
        assert_eq!(
            machine
                .acknowledge(&fingerprint, "Marina".into(), String::new(), T0)
                .err(),
            Some(NotAcknowledged::Resolved)
        );
        assert_eq!(machine, before, "nothing changed");
    }
}
