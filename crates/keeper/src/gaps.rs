//! Gaps: stretches of time in which a tenant's webhook may have lost messages, and which part
//! of each is safe to backfill now.
//!
//! A gap comes from the event log (no webhook delivery for longer than `KEEPER_SILENCE`) or
//! from the webhook check (Chat2Desk disabled the webhook: everything since the tenant's last
//! delivery until the re-enabling). Its window is widened by a margin on both sides and
//! backfilled from a cursor forward, but only up to the moment before which Chat2Desk will never
//! deliver again: `now - KEEPER_REDELIVERY_HORIZON` (its whole retry schedule is over), or, for
//! a disabled webhook, the re-enabling itself (Chat2Desk drops a disabled webhook's queue, and
//! sends nothing while disabled). So a backfilled message cannot arrive by webhook later.
//! Times are unix seconds, as Chat2Desk's `created` and the API's date filters are.

use serde::{Deserialize, Serialize};

/// One gap of one tenant, and how far its backfill got.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    /// The last delivery before the gap (unix seconds).
    pub from: i64,
    /// The first delivery after it, or the re-enabling of the webhook.
    pub to: i64,
    /// `silence` or `webhook disabled` (or missing, changed).
    pub reason: String,
    /// Chat2Desk will deliver nothing created before this again: the webhook was disabled
    /// (its queue dropped) and re-enabled at this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_before: Option<i64>,
    /// The window is backfilled up to this second, inclusive; None: not started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_until: Option<i64>,
    /// Messages the API listed for the window.
    pub listed: u64,
    /// Of those, stored by the backfill.
    pub stored: u64,
    /// Of those, already in the log (by webhook or an earlier backfill): not stored again.
    pub skipped: u64,
    /// The whole window is backfilled.
    pub complete: bool,
}

impl Gap {
    /// A new gap, nothing backfilled yet.
    pub fn new(from: i64, to: i64, reason: &str, dropped_before: Option<i64>) -> Gap {
        Gap {
            from,
            to: to.max(from),
            reason: reason.to_owned(),
            dropped_before,
            ..Gap::default()
        }
    }

    /// The seconds to list: the gap widened by `margin` on both sides.
    pub fn window(&self, margin: i64) -> (i64, i64) {
        (self.from - margin, self.to + margin)
    }

    /// The seconds to backfill now (inclusive), if any: from the cursor to the end of the
    /// window, but not past what Chat2Desk may still deliver.
    pub fn next_pass(&self, now: i64, horizon: i64, margin: i64) -> Option<(i64, i64)> {
        let (start, end) = self.window(margin);
        let safe_until = (now - horizon).max(self.dropped_before.map_or(i64::MIN, |t| t - 1));
        let from = self.done_until.map_or(start, |done| done + 1);
        let until = end.min(safe_until);
        (from <= until).then_some((from, until))
    }

    /// Records that `until` is backfilled.
    pub fn passed(&mut self, until: i64, margin: i64) {
        self.done_until = Some(self.done_until.map_or(until, |d| d.max(until)));
        self.complete = self.done_until >= Some(self.window(margin).1);
    }

    /// Takes in what another report of the same gap (the same `from`) knows: a later end, a
    /// later re-enabling. True when it changed anything.
    pub fn merge(&mut self, other: &Gap, margin: i64) -> bool {
        let before = self.clone();
        self.to = self.to.max(other.to);
        self.dropped_before = self.dropped_before.max(other.dropped_before);
        if other.reason != self.reason && !self.reason.contains(&other.reason) {
            self.reason = format!("{}, {}", self.reason, other.reason);
        }
        self.complete = self.done_until >= Some(self.window(margin).1);
        *self != before
    }
}

/// Adds `gap` to `gaps` (merged into the one with the same start, if any); keeps at most
/// `keep` by dropping the oldest complete ones. A pending gap is never dropped: its messages
/// would be lost without a word; past `keep` they stay, with a warning. True when it is new.
pub fn add(gaps: &mut Vec<Gap>, gap: Gap, margin: i64, keep: usize) -> bool {
    if let Some(known) = gaps.iter_mut().find(|g| g.from == gap.from) {
        known.merge(&gap, margin);
        return false;
    }
    gaps.push(gap);
    gaps.sort_by_key(|g| g.from);
    while gaps.len() > keep {
        let Some(index) = gaps.iter().position(|g| g.complete) else {
            tracing::warn!(
                pending = gaps.len(),
                "more gaps wait for their backfill than the status keeps; all are kept (c2dctl keeper status --gaps says why they do not complete)"
            );
            break;
        };
        gaps.remove(index);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const HORIZON: i64 = 8_100;
    const MARGIN: i64 = 60;

    #[test]
    fn a_silence_is_backfilled_once_chat2desk_gave_up_on_it() {
        let mut gap = Gap::new(1_000, 2_000, "silence", None);
        assert_eq!(
            gap.next_pass(2_000, HORIZON, MARGIN),
            None,
            "retries may still come"
        );
        let (from, until) = gap.next_pass(1_500 + HORIZON, HORIZON, MARGIN).unwrap();
        assert_eq!((from, until), (1_000 - MARGIN, 1_500));
        gap.passed(until, MARGIN);
        assert!(!gap.complete);
        // The window ends at 2 060 anyway.
        let (from, until) = gap.next_pass(10_000 + HORIZON, HORIZON, MARGIN).unwrap();
        assert_eq!((from, until), (1_501, 2_060));
        gap.passed(until, MARGIN);
        assert!(gap.complete);
        assert_eq!(gap.next_pass(20_000 + HORIZON, HORIZON, MARGIN), None);
    }

    #[test]
    fn a_disabled_webhook_is_backfilled_up_to_its_reenabling_at_once_and_the_tail_later() {
        let mut gap = Gap::new(1_000, 9_000, "webhook disabled", Some(9_000));
        let (from, until) = gap.next_pass(9_001, HORIZON, MARGIN).unwrap();
        assert_eq!((from, until), (940, 8_999));
        gap.passed(until, MARGIN);
        assert!(
            !gap.complete,
            "the second of the re-enabling and the margin wait"
        );
        assert_eq!(gap.next_pass(9_010, HORIZON, MARGIN), None);
        let (from, until) = gap.next_pass(9_100 + HORIZON, HORIZON, MARGIN).unwrap();
        assert_eq!((from, until), (9_000, 9_060));
        gap.passed(until, MARGIN);
        assert!(gap.complete);
    }

    #[test]
    fn reports_of_one_gap_merge_and_old_complete_gaps_go_first() {
        let mut gaps = Vec::new();
        assert!(add(
            &mut gaps,
            Gap::new(1_000, 9_000, "webhook disabled", Some(9_000)),
            MARGIN,
            3
        ));
        gaps[0].passed(9_100, MARGIN);
        assert!(gaps[0].complete);
        // The log then sees the first delivery after the silence: the same gap, a little longer.
        assert!(!add(
            &mut gaps,
            Gap::new(1_000, 9_030, "silence", None),
            MARGIN,
            3
        ));
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].to, 9_030);
        assert!(gaps[0].complete, "still inside the window done");
        assert!(!add(
            &mut gaps,
            Gap::new(1_000, 9_500, "silence", None),
            MARGIN,
            3
        ));
        assert!(!gaps[0].complete, "longer than what was done");
        assert_eq!(gaps[0].reason, "webhook disabled, silence");
        for from in [20_000, 30_000, 40_000] {
            add(
                &mut gaps,
                Gap::new(from, from + 10, "silence", None),
                MARGIN,
                3,
            );
        }
        assert_eq!(gaps.len(), 4, "a pending gap is never dropped");
        assert_eq!(gaps[0].from, 1_000);
    }
}
