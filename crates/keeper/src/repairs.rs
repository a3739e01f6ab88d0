//! Repairs the event log has not heard of yet.
//!
//! A repaired webhook is worth an alert: while it was wrong, Chat2Desk dropped deliveries,
//! and someone should know why. The alert comes from the keeper's `webhook_repaired` event, so
//! that event must reach the log even when the log cannot take it at the moment of the repair
//! (NATS failing over, the stream without a leader) or the keeper dies between re-enabling the
//! webhook and writing the event (a pod deleted). So a repair is written down in the tenant's
//! status, kept in the state bucket, *before* the webhook is touched, and stays there until
//! its event is stored; every round writes the events still owed. Two things still lose one:
//! the bucket refusing that first write while the Chat2Desk API takes the repair and the keeper
//! then stopping before the round's end (the keeper logs it), and more than [`KEPT_REPAIRS`]
//! owed at once. The event's id comes from its body, and the body from what is kept here, so an
//! event written twice within the stream's duplicate window (6 h by default) is stored once.

use serde::{Deserialize, Serialize};

use crate::webhook::Problem;

/// How many repairs wait for their event at most; the oldest are forgotten first (each one
/// stands for an alert, and after this many the tenant's webhook has bigger trouble).
pub const KEPT_REPAIRS: usize = 20;

/// A repair whose `webhook_repaired` event is not in the log yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repair {
    /// What was wrong.
    pub problem: Problem,
    /// When the problem was found, unix seconds: the event's time, and so part of its id.
    pub found_at: i64,
    /// The webhook as repaired; None while the repair has not been seen to succeed (it was
    /// under way, or failed, or the keeper stopped in the middle).
    #[serde(default)]
    pub webhook_id: Option<i64>,
}

/// The repair under way for `problem`, begun now (`at`) unless one is begun already: a
/// repair that failed is tried again next round as the same repair, with the same event,
/// even if what is wrong changed meanwhile (disabled, then deleted): one outage, one alert.
pub fn begin(repairs: &mut Vec<Repair>, problem: Problem, at: i64) -> &mut Repair {
    let begun = repairs.iter().position(|r| r.webhook_id.is_none());
    let index = match begun {
        Some(index) => index,
        None => {
            if repairs.len() >= KEPT_REPAIRS {
                let forgotten = repairs.remove(0);
                tracing::warn!(
                    problem = forgotten.problem.as_str(),
                    found_at = forgotten.found_at,
                    "too many repairs wait for their event; the oldest is forgotten, without an alert"
                );
            }
            repairs.push(Repair {
                problem,
                found_at: at,
                webhook_id: None,
            });
            repairs.len() - 1
        }
    };
    &mut repairs[index]
}

/// The webhook is right now, as `webhook_id`: the repair begun, if any, is finished, and owed
/// its event. That includes a repair begun before the keeper stopped in the middle (it
/// re-enabled the webhook and no more) and one someone finished by hand. The repair finished.
pub fn finished(repairs: &mut [Repair], webhook_id: i64) -> Option<Repair> {
    let unfinished = repairs.iter_mut().find(|r| r.webhook_id.is_none())?;
    unfinished.webhook_id = Some(webhook_id);
    Some(unfinished.clone())
}

/// Repairs finished whose event is owed: what `c2dctl keeper status` counts as unannounced
/// (a repair begun and not finished is the webhook's state, not an event owed).
pub fn owed(repairs: &[Repair]) -> usize {
    repairs.iter().filter(|r| r.webhook_id.is_some()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repair_tried_again_is_the_same_repair() {
        let mut repairs = Vec::new();
        begin(&mut repairs, Problem::Disabled, 100);
        // The API refused the update; next round finds the webhook still disabled.
        begin(&mut repairs, Problem::Disabled, 160);
        assert_eq!(repairs.len(), 1);
        assert_eq!(repairs[0].found_at, 100);
        assert_eq!(repairs[0].webhook_id, None);
        assert_eq!(owed(&repairs), 0);
        // Deleted meanwhile: still the same outage.
        begin(&mut repairs, Problem::Missing, 220);
        assert_eq!(repairs.len(), 1);
        assert_eq!(finished(&mut repairs, 3).map(|r| r.found_at), Some(100));
        assert_eq!(repairs[0].webhook_id, Some(3));
        assert_eq!(owed(&repairs), 1);
        // Disabled again later, while the first event is still owed: a second repair.
        begin(&mut repairs, Problem::Disabled, 900);
        assert_eq!(repairs.len(), 2);
        assert_eq!(repairs[1].found_at, 900);
    }

    #[test]
    fn a_repair_begun_before_a_stop_is_owed_once_the_webhook_is_right() {
        let mut repairs = Vec::new();
        begin(&mut repairs, Problem::Missing, 100);
        // The keeper restarts; the webhook is right.
        assert!(finished(&mut repairs, 7).is_some());
        assert_eq!(repairs[0].webhook_id, Some(7));
        assert_eq!(finished(&mut repairs, 7), None);
    }

    #[test]
    fn the_oldest_repairs_are_forgotten_first() {
        let mut repairs = Vec::new();
        for at in 0..KEPT_REPAIRS as i64 + 5 {
            begin(&mut repairs, Problem::Changed, at);
            finished(&mut repairs, 1);
        }
        assert_eq!(repairs.len(), KEPT_REPAIRS);
        assert_eq!(repairs[0].found_at, 5);
    }

    #[test]
    fn a_repair_is_kept_as_json_a_person_can_read() {
        let repair = Repair {
            problem: Problem::Disabled,
            found_at: 100,
            webhook_id: Some(3),
        };
        let json = serde_json::to_value(&repair).unwrap();
        assert_eq!(json["problem"], "disabled");
        assert_eq!(serde_json::from_value::<Repair>(json).unwrap(), repair);
    }
}
