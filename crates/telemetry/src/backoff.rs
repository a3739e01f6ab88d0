//! The delay before a retry, doubling after each failure up to a cap: alerting's receivers,
//! crm-sync's connectors and the keeper's calls to Chat2Desk all back off this way, and one
//! function keeps them from drifting apart (or overflowing) in their own copies.

use std::time::Duration;

/// `first` doubled `doublings` times, never more than `cap`: the wait after a run of failures,
/// where `doublings` is how many failed before the last one (0 after the first failure, which
/// waits `first`). Saturates instead of overflowing, so any count of failures is safe.
pub fn exponential(first: Duration, doublings: u32, cap: Duration) -> Duration {
    first
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_first_delay_up_to_the_cap() {
        let first = Duration::from_millis(250);
        let cap = Duration::from_secs(60);
        for (doublings, expected_ms) in [(0, 250), (1, 500), (2, 1_000), (7, 32_000), (8, 60_000)] {
            assert_eq!(
                exponential(first, doublings, cap),
                Duration::from_millis(expected_ms),
                "after {doublings} doublings"
            );
        }
    }

    #[test]
    fn any_count_of_failures_is_capped_without_overflow() {
        let cap = Duration::from_secs(600);
        for doublings in [31, 32, 64, u32::MAX] {
            assert_eq!(exponential(Duration::from_secs(1), doublings, cap), cap);
            assert_eq!(exponential(Duration::MAX, doublings, cap), cap);
        }
        assert_eq!(
            exponential(Duration::from_nanos(1), u32::MAX, Duration::MAX),
            Duration::from_nanos(u64::from(u32::MAX)),
            "the factor saturates at u32::MAX"
        );
        assert_eq!(exponential(Duration::ZERO, 5, cap), Duration::ZERO);
    }
}
