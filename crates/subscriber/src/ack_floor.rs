//! Where a concurrent subscriber may ack up to, when events finish out of order.
//!
//! One ack per event costs nats-server more than reading the event does (a concurrent reader
//! ran at 40% of a raw read with them). A consumer with `AckPolicy::All` takes one ack for
//! every event up to it, so a concurrent subscriber acks the way an in-order one does, once
//! per [`crate::ACK_EVERY`] events, but only up to its *floor*: the last handled event below
//! the oldest event still in hand. An event that takes long holds the acks of the events after
//! it back (they are acked with it), never the other way round, so nothing is acked before
//! it is handled.

use std::collections::{BTreeMap, BTreeSet};

/// The events in hand and the handled ones not acked yet, by stream sequence. Generic over
/// the message so that the rule is tested without a server.
#[derive(Debug)]
pub(crate) struct AckFloor<M> {
    in_hand: BTreeSet<u64>,
    handled: BTreeMap<u64, M>,
}

impl<M> Default for AckFloor<M> {
    fn default() -> Self {
        Self {
            in_hand: BTreeSet::new(),
            handled: BTreeMap::new(),
        }
    }
}

impl<M> AckFloor<M> {
    /// Takes an event in hand; false when it is in hand already (JetStream delivered it again
    /// while it was being handled, after `ack_wait`), and this copy is not to be handled.
    pub(crate) fn take(&mut self, sequence: u64) -> bool {
        self.in_hand.insert(sequence)
    }

    /// The event is done with (handled or dead-lettered): acked with the next ack that
    /// reaches it.
    pub(crate) fn handled(&mut self, sequence: u64, message: M) {
        self.in_hand.remove(&sequence);
        self.handled.insert(sequence, message);
    }

    /// Handled events waiting for an ack.
    pub(crate) fn unacked(&self) -> usize {
        self.handled.len()
    }

    /// The message whose ack covers every handled event below the oldest one in hand, and
    /// how many events that ack covers; those are forgotten.
    pub(crate) fn ackable(&mut self) -> Option<(M, u64)> {
        let below = match self.in_hand.first() {
            Some(&oldest) => {
                let rest = self.handled.split_off(&oldest);
                std::mem::replace(&mut self.handled, rest)
            }
            None => std::mem::take(&mut self.handled),
        };
        let covered = below.len() as u64;
        below
            .into_iter()
            .next_back()
            .map(|(_, message)| (message, covered))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_stays_below_the_oldest_event_in_hand() {
        let mut floor = AckFloor::default();
        for sequence in 1..=5 {
            assert!(floor.take(sequence));
        }
        floor.handled(2, "two");
        floor.handled(3, "three");
        assert!(floor.ackable().is_none(), "event 1 is still in hand");
        floor.handled(1, "one");
        assert_eq!(floor.ackable(), Some(("three", 3)));
        assert_eq!(floor.unacked(), 0);
        floor.handled(5, "five");
        assert!(floor.ackable().is_none(), "event 4 is still in hand");
        assert_eq!(floor.unacked(), 1);
        floor.handled(4, "four");
        assert_eq!(floor.ackable(), Some(("five", 2)));
    }

    #[test]
    fn an_event_never_handled_holds_every_later_ack_back() {
        // Event 7 was given up unacked (the subscriber stopped while it waited for a retry):
        // it stays in hand, and JetStream delivers it again to the next run.
        let mut floor = AckFloor::default();
        floor.take(7);
        floor.take(8);
        floor.handled(8, "eight");
        assert!(floor.ackable().is_none());
    }

    #[test]
    fn a_second_copy_of_an_event_in_hand_is_not_taken() {
        let mut floor = AckFloor::<()>::default();
        assert!(floor.take(3));
        assert!(!floor.take(3));
        floor.handled(3, ());
        assert!(
            floor.take(3),
            "a redelivery after it was handled is taken again"
        );
    }
}
