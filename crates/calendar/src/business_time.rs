//! Counting and adding working time: the local hours of a calendar turned into real instants.
//!
//! Work goes one local date at a time: each date's intervals become spans of real time through
//! the zone's rules for that very date, so a DST change moves or stretches only the spans it
//! falls into, and a year-long range costs a few hundred zone look-ups, not one per minute.
//! Everything is counted in nanoseconds, so that splitting a range anywhere never loses or
//! double-counts time; that is what lets analytics sum per-conversation figures and alerting
//! trust that a timer fires exactly when the counted time runs out.
//!
//! A local time that does not exist (inside a spring-forward gap) or exists twice (inside an
//! autumn fold) is resolved the "compatible" way, as RFC 5545 and Temporal do: a time in a gap
//! is moved forward by the length of the gap (02:30 becomes 03:30 when clocks jump from 02:00 to
//! 03:00), and a time in a fold is its earlier occurrence. A span that this makes empty or
//! overlapping is dropped or merged, and a date's spans never leave that date's own
//! midnight-to-midnight, so every real instant belongs to at most one span.

use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::{Date, Time};

use crate::Calendar;
use crate::hours::{MINUTES_PER_DAY, WeeklyHours};

/// How many days without any working hours [`Calendar::next_open`] and
/// [`Calendar::add_business_time`] cross before answering `None`: over a year, so that a
/// calendar open on one date a year is still found.
pub const HORIZON_DAYS: usize = 400;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// `[start, end)` in nanoseconds since the Unix epoch.
type Span = (i128, i128);

impl Calendar {
    /// The working time between `from` and `to`, exact to the nanosecond; zero when
    /// `from >= to`. `channel` selects that channel's weekly hours if the calendar has them.
    pub fn business_time(&self, channel: Option<&str>, from: Timestamp, to: Timestamp) -> Duration {
        if from >= to {
            return Duration::ZERO;
        }
        let (lo, hi) = (from.as_nanosecond(), to.as_nanosecond());
        let (week, last) = (self.week_for(channel), self.local_date(to));
        let mut total: u128 = 0;
        for date in self.dates_from(from).take_while(|date| *date <= last) {
            for (start, end) in self.spans_on(week, date) {
                let (start, end) = (start.max(lo), end.min(hi));
                if start < end {
                    total += (end - start).unsigned_abs();
                }
            }
        }
        let nanos = u32::try_from(total % NANOS_PER_SECOND).unwrap_or_default();
        Duration::new(
            u64::try_from(total / NANOS_PER_SECOND).unwrap_or(u64::MAX),
            nanos,
        )
    }

    /// [`Calendar::business_time`] in whole seconds, the fraction dropped: what analytics
    /// reports. Sum [`Calendar::business_time`] instead where pieces of a range are added up.
    pub fn business_seconds(&self, channel: Option<&str>, from: Timestamp, to: Timestamp) -> u64 {
        self.business_time(channel, from, to).as_secs()
    }

    /// Whether `at` falls within working hours.
    pub fn is_open(&self, channel: Option<&str>, at: Timestamp) -> bool {
        let (week, t) = (self.week_for(channel), at.as_nanosecond());
        // `at` lies in its own local date; the neighbours cover any oddity at midnight.
        self.dates_from(at).take(3).any(|date| {
            self.spans_on(week, date)
                .iter()
                .any(|&(s, e)| s <= t && t < e)
        })
    }

    /// The first instant at or after `at` that is within working hours; `None` when there is
    /// none within [`HORIZON_DAYS`] days.
    pub fn next_open(&self, channel: Option<&str>, at: Timestamp) -> Option<Timestamp> {
        let (week, t) = (self.week_for(channel), at.as_nanosecond());
        let (start, _) = self
            .dates_from(at)
            .take(HORIZON_DAYS + 2)
            .flat_map(|date| self.spans_on(week, date))
            .find(|&(_, end)| end > t)?;
        if start <= t {
            Some(at)
        } else {
            Timestamp::from_nanosecond(start).ok()
        }
    }

    /// The earliest instant by which `amount` of working time has passed since `from`: when a
    /// wait timer of `amount` business time started at `from` fires. A zero amount gives `from`;
    /// a timer that runs out exactly at closing fires at closing, not at the next opening.
    /// `None` when [`HORIZON_DAYS`] days in a row pass without working hours. Costs one step
    /// per local date crossed.
    pub fn add_business_time(
        &self,
        channel: Option<&str>,
        from: Timestamp,
        amount: Duration,
    ) -> Option<Timestamp> {
        let mut remaining = amount.as_nanos();
        if remaining == 0 {
            return Some(from);
        }
        let (week, lo) = (self.week_for(channel), from.as_nanosecond());
        let mut idle_days = 0;
        for date in self.dates_from(from) {
            let mut worked = false;
            for (start, end) in self.spans_on(week, date) {
                let start = start.max(lo);
                if start >= end {
                    continue;
                }
                worked = true;
                let length = (end - start).unsigned_abs();
                if remaining <= length {
                    return Timestamp::from_nanosecond(start + i128::try_from(remaining).ok()?)
                        .ok();
                }
                remaining -= length;
            }
            idle_days = if worked { 0 } else { idle_days + 1 };
            if idle_days > HORIZON_DAYS {
                return None;
            }
        }
        None
    }

    /// [`Calendar::add_business_time`] for a whole number of seconds.
    pub fn add_business_seconds(
        &self,
        channel: Option<&str>,
        from: Timestamp,
        seconds: u64,
    ) -> Option<Timestamp> {
        self.add_business_time(channel, from, Duration::from_secs(seconds))
    }

    /// The local date of `at` in the calendar's zone.
    fn local_date(&self, at: Timestamp) -> Date {
        self.time_zone.to_datetime(at).date()
    }

    /// Local dates from the day before `at`'s own, onwards.
    fn dates_from(&self, at: Timestamp) -> impl Iterator<Item = Date> {
        let date = self.local_date(at);
        std::iter::successors(Some(date.yesterday().unwrap_or(date)), |date| {
            date.tomorrow().ok()
        })
    }

    /// The working hours of local `date` as real spans: sorted, disjoint, within the date.
    fn spans_on(&self, week: &WeeklyHours, date: Date) -> Vec<Span> {
        let intervals = self.hours_on(week, date).intervals();
        let (Some(midnight), Some(next_midnight)) =
            (self.instant(date, 0), self.instant(date, MINUTES_PER_DAY))
        else {
            return Vec::new();
        };
        let mut spans: Vec<Span> = intervals
            .iter()
            .filter_map(|interval| {
                let start = self.instant(date, interval.start)?.max(midnight);
                let end = self.instant(date, interval.end)?.min(next_midnight);
                (start < end).then_some((start, end))
            })
            .collect();
        // A start moved forward out of a gap can pass the next interval's start.
        spans.sort_unstable();
        spans.dedup_by(|next, kept| {
            let overlaps = next.0 <= kept.1;
            if overlaps {
                kept.1 = kept.1.max(next.1);
            }
            overlaps
        });
        spans
    }

    /// The instant of `minute` after the local midnight starting `date` (1440 is the next
    /// midnight), resolved the compatible way.
    fn instant(&self, date: Date, minute: u16) -> Option<i128> {
        let (date, minute) = match minute.checked_sub(MINUTES_PER_DAY) {
            Some(minute) => (date.tomorrow().ok()?, minute),
            None => (date, minute),
        };
        let time = Time::new(
            i8::try_from(minute / 60).ok()?,
            i8::try_from(minute % 60).ok()?,
            0,
            0,
        )
        .ok()?;
        let timestamp = self
            .time_zone
            .to_ambiguous_timestamp(date.to_datetime(time))
            .compatible()
            .ok()?;
        Some(timestamp.as_nanosecond())
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::DateTime;
    use proptest::prelude::*;

    use super::*;

    const HOUR: u64 = 3600;
    const OFFICE: &str = r#""mon":["09:00-18:00"],"tue":["09:00-18:00"],"wed":["09:00-18:00"],
        "thu":["09:00-18:00"],"fri":["09:00-18:00"]"#;

    fn calendar(zone: &str, rest: &str) -> Calendar {
        Calendar::parse_json(&format!(r#"{{"time_zone":"{zone}",{rest}}}"#)).unwrap()
    }

    fn office(zone: &str, extra: &str) -> Calendar {
        calendar(zone, &format!(r#""weekly":{{{OFFICE}}}{extra}"#))
    }

    /// The instant of a local wall-clock time in the calendar's zone.
    fn local(cal: &Calendar, text: &str) -> Timestamp {
        let datetime: DateTime = text.parse().unwrap();
        cal.time_zone
            .to_ambiguous_timestamp(datetime)
            .compatible()
            .unwrap()
    }

    /// Business minutes between two local times.
    fn minutes(cal: &Calendar, channel: Option<&str>, from: &str, to: &str) -> u64 {
        cal.business_seconds(channel, local(cal, from), local(cal, to)) / 60
    }

    /// Business minutes on one local date of Berlin, open on Sundays for `hours`.
    fn berlin_sunday(date: &str, hours: &str) -> u64 {
        let cal = calendar("Europe/Berlin", &format!(r#""weekly":{{"sun":[{hours}]}}"#));
        let start = local(&cal, &format!("{date}T00:00"));
        let end = local(&cal, &format!("{date}T23:59"));
        cal.business_seconds(None, start, end + jiff::SignedDuration::from_mins(1)) / 60
    }

    #[test]
    fn weekends_holidays_exceptions_and_channels() {
        let cal = office(
            "America/Sao_Paulo",
            r#","channels":{"whatsapp":{"mon":["08:00-20:00"]}},
               "holidays":["2026-03-25","2026-12-25"],"exceptions":{"2026-12-24":["09:00-13:00"],
               "2026-12-25":["10:00-11:00"],"2026-12-27":["12:00-15:00"]}"#,
        );
        for (channel, from, to, hours) in [
            // Friday 17:00-18:00 and Monday 09:00-10:00; backwards and weekend-only ranges.
            (None, "2026-03-27T17:00", "2026-03-30T10:00", 2),
            (None, "2026-03-30T10:00", "2026-03-27T17:00", 0),
            (None, "2026-03-28T00:00", "2026-03-30T09:00", 0),
            // Monday to Friday with the Wednesday a holiday.
            (None, "2026-03-23T00:00", "2026-03-28T00:00", 36),
            // A short Thursday, an exception opening a holiday, an opened Sunday.
            (None, "2026-12-24T00:00", "2026-12-25T00:00", 4),
            (None, "2026-12-25T00:00", "2026-12-26T00:00", 1),
            (None, "2026-12-26T00:00", "2026-12-28T00:00", 3),
            // WhatsApp's table replaces the tenant's: longer Mondays, closed on Tuesdays.
            (Some("whatsapp"), "2026-03-30T00:00", "2026-03-31T00:00", 12),
            (Some("whatsapp"), "2026-03-31T00:00", "2026-04-01T00:00", 0),
            (Some("telegram"), "2026-03-30T00:00", "2026-03-31T00:00", 9),
        ] {
            assert_eq!(
                minutes(&cal, channel, from, to),
                hours * 60,
                "{channel:?} {from} {to}"
            );
        }
    }

    #[test]
    fn berlin_dst_changes_count_only_inside_the_hours() {
        for (date, hours, minutes) in [
            // 2026-03-29: 02:00 CET jumps to 03:00 CEST.
            ("2026-03-29", r#""00:00-24:00""#, 23 * 60),
            ("2026-03-29", r#""01:00-05:00""#, 3 * 60),
            ("2026-03-29", r#""09:00-18:00""#, 9 * 60),
            // 02:30 does not exist and becomes 03:30; an interval inside the gap is empty,
            // and pieces around the gap add up to the whole.
            ("2026-03-29", r#""02:30-05:00""#, 90),
            ("2026-03-29", r#""02:30-03:00""#, 0),
            ("2026-03-29", r#""01:00-02:30","02:30-05:00""#, 3 * 60),
            ("2026-03-29", r#""01:00-02:30","03:00-05:00""#, 3 * 60),
            // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 is its earlier occurrence.
            ("2026-10-25", r#""00:00-24:00""#, 25 * 60),
            ("2026-10-25", r#""01:00-05:00""#, 5 * 60),
            ("2026-10-25", r#""09:00-18:00""#, 9 * 60),
            ("2026-10-25", r#""02:30-04:00""#, 150),
        ] {
            assert_eq!(berlin_sunday(date, hours), minutes, "{date} {hours}");
        }
    }

    #[test]
    fn same_wall_hours_in_sao_paulo_and_berlin() {
        let (sp, berlin) = (office("America/Sao_Paulo", ""), office("Europe/Berlin", ""));
        let utc = |text: &str| text.parse::<Timestamp>().unwrap();
        // Monday 30 March: Berlin (UTC+2) works 07:00-16:00 UTC, Sao Paulo (UTC-3) 12:00-21:00.
        let (from, to) = (utc("2026-03-30T10:00Z"), utc("2026-03-30T14:00Z"));
        assert_eq!(berlin.business_seconds(None, from, to), 4 * HOUR);
        assert_eq!(sp.business_seconds(None, from, to), 2 * HOUR);
        // Round the clock on the Sunday of Berlin's change: Sao Paulo has no DST any more.
        let sunday = r#""weekly":{"sun":["00:00-24:00"]}"#;
        let (sp, berlin) = (
            calendar("America/Sao_Paulo", sunday),
            calendar("Europe/Berlin", sunday),
        );
        let (from, to) = (utc("2026-03-28T00:00Z"), utc("2026-03-31T00:00Z"));
        assert_eq!(sp.business_seconds(None, from, to), 24 * HOUR);
        assert_eq!(berlin.business_seconds(None, from, to), 23 * HOUR);
    }

    #[test]
    fn timers_fire_after_business_time() {
        let sp = office("America/Sao_Paulo", "");
        for (from, minutes, fires) in [
            ("2026-03-27T23:00", 15, "2026-03-30T09:15"),
            ("2026-03-27T17:45", 15, "2026-03-27T18:00"),
            ("2026-03-27T17:50", 15, "2026-03-30T09:05"),
            ("2026-03-28T12:00", 0, "2026-03-28T12:00"),
            ("2026-03-27T09:00", 5 * 9 * 60, "2026-04-02T18:00"),
        ] {
            let fired = sp.add_business_seconds(None, local(&sp, from), minutes * 60);
            assert_eq!(fired, Some(local(&sp, fires)), "{from} + {minutes} min");
        }
    }

    #[test]
    fn open_and_next_open() {
        let cal = office("Europe/Moscow", r#","holidays":["2026-03-25"]"#);
        let holiday = local(&cal, "2026-03-25T10:00");
        assert!(!cal.is_open(None, holiday));
        assert_eq!(
            cal.next_open(None, holiday),
            Some(local(&cal, "2026-03-26T09:00"))
        );
        let thursday = local(&cal, "2026-03-26T10:00");
        assert!(cal.is_open(None, thursday));
        assert_eq!(cal.next_open(None, thursday), Some(thursday));
        assert!(!cal.is_open(None, local(&cal, "2026-03-26T18:00")));

        let never = calendar("Europe/Moscow", r#""weekly":{}"#);
        assert_eq!(never.next_open(None, holiday), None);
        assert_eq!(never.add_business_seconds(None, holiday, 1), None);
        // Open one date a year: found across 340 idle days.
        let yearly = calendar(
            "UTC",
            r#""weekly":{},"exceptions":{"2027-03-01":["10:00-11:00"]}"#,
        );
        let fired = yearly.add_business_seconds(None, holiday, 1800);
        assert_eq!(fired, Some("2027-03-01T10:30Z".parse().unwrap()));
    }

    #[test]
    fn always_open_is_wall_time() {
        let always = Calendar::always_open();
        let from = "2026-01-01T00:00:00Z".parse::<Timestamp>().unwrap();
        let to = "2027-01-01T00:00:00Z".parse::<Timestamp>().unwrap();
        assert_eq!(
            always.business_seconds(Some("whatsapp"), from, to),
            365 * 24 * HOUR
        );
        assert!(always.is_open(None, from));
        assert_eq!(always.next_open(None, from), Some(from));
        assert_eq!(
            always.add_business_seconds(None, from, 365 * 24 * HOUR),
            Some(to)
        );
        // A round-the-clock week in a DST zone also totals wall time over a year.
        let all = r#"["00:00-24:00"]"#;
        let week = format!(
            r#""weekly":{{"mon":{all},"tue":{all},"wed":{all},"thu":{all},"fri":{all},"sat":{all},"sun":{all}}}"#
        );
        let berlin = calendar("Europe/Berlin", &week);
        assert_eq!(berlin.business_seconds(None, from, to), 365 * 24 * HOUR);
    }

    /// Nanoseconds since the epoch, 2026-01-01 to 2027-01-01.
    const YEAR_2026: std::ops::Range<i128> = 1_767_225_600_000_000_000..1_798_761_600_000_000_000;

    proptest! {
        #[test]
        fn ranges_add_up_and_timers_invert(
            mut points in proptest::collection::vec(YEAR_2026, 3),
            channel in prop_oneof![Just(None), Just(Some("x"))],
            wait in 0u64..200 * 3600 * 1_000_000_000,
        ) {
            let cal = office(
                "Europe/Berlin",
                r#","channels":{"x":{"sat":["10:00-14:00"],"sun":["01:00-02:30","02:30-03:30"]}},
                   "holidays":["2026-05-01"],"exceptions":{"2026-10-25":["00:30-04:00"]}"#,
            );
            points.sort_unstable();
            let [a, b, c] = [0, 1, 2].map(|i| Timestamp::from_nanosecond(points[i]).unwrap());
            let (ab, bc) = (cal.business_time(channel, a, b), cal.business_time(channel, b, c));
            prop_assert_eq!(cal.business_time(channel, a, c), ab + bc);

            let t = cal.add_business_time(channel, a, ab).unwrap();
            prop_assert!(t <= b);
            prop_assert_eq!(cal.business_time(channel, a, t), ab);
            let wait = Duration::from_nanos(wait);
            let fired = cal.add_business_time(channel, a, wait).unwrap();
            prop_assert_eq!(cal.business_time(channel, a, fired), wait);
            let just_before = fired - jiff::SignedDuration::from_nanos(1);
            prop_assert!(wait.is_zero() || cal.is_open(channel, just_before));
            let next = cal.next_open(channel, a).unwrap();
            prop_assert_eq!(cal.business_time(channel, a, next), Duration::ZERO);
            prop_assert!(cal.is_open(channel, next));
        }
    }
}
