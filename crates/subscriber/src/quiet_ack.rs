//! When acks go out without waiting for [`ACK_EVERY`](crate::ACK_EVERY) events: at most
//! [`QUIET_ACK_DELAY`] after an event was handled, so that a stream gone quiet does not keep
//! handled events unacked (and due for redelivery after a restart).
//!
//! One timer serves a whole run. It is set when an event is handled and it is not running,
//! and left alone until it fires: while events wait for their ack, an ack goes out at least
//! every `QUIET_ACK_DELAY`, and the timer is set at most that often, whatever the rate of
//! events. A timer per event, as a `sleep` in the read loop would make, cost the SDK more than
//! the event's own decoding: each one reads the clock, enters and leaves tokio's timer wheel,
//! and often wakes the runtime's driver with a syscall.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// How long handled events may wait for their ack when fewer than `ACK_EVERY` come.
pub(crate) const QUIET_ACK_DELAY: Duration = Duration::from_millis(20);

/// The timer of the next quiet ack.
pub(crate) struct QuietAck {
    sleep: Pin<Box<Sleep>>,
    armed: bool,
}

impl QuietAck {
    pub(crate) fn new() -> QuietAck {
        QuietAck {
            sleep: Box::pin(tokio::time::sleep(QUIET_ACK_DELAY)),
            armed: false,
        }
    }

    /// An event was handled and waits for its ack: the ack goes out `QUIET_ACK_DELAY` from now
    /// at the latest, or earlier if the timer already runs.
    pub(crate) fn arm(&mut self) {
        if !self.armed {
            self.sleep.as_mut().reset(Instant::now() + QUIET_ACK_DELAY);
            self.armed = true;
        }
    }

    /// Whether [`QuietAck::due`] is worth waiting for.
    pub(crate) fn is_armed(&self) -> bool {
        self.armed
    }

    /// Completes when the ack is due; to be awaited only while [`QuietAck::is_armed`].
    pub(crate) async fn due(&mut self) {
        self.sleep.as_mut().await;
        self.armed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_ack_is_due_the_delay_after_the_first_event_waiting() {
        let mut quiet = QuietAck::new();
        assert!(!quiet.is_armed());
        let first = Instant::now();
        quiet.arm();
        let due = quiet.sleep.deadline();
        assert!(due >= first + QUIET_ACK_DELAY);
        tokio::time::sleep(Duration::from_millis(2)).await;
        // A later event does not push the ack back.
        quiet.arm();
        assert_eq!(quiet.sleep.deadline(), due);
        quiet.due().await;
        assert!(Instant::now() >= due);
        assert!(!quiet.is_armed());
        // The next event waiting arms it afresh.
        quiet.arm();
        assert!(quiet.is_armed());
        assert!(quiet.sleep.deadline() >= due + QUIET_ACK_DELAY);
    }
}
