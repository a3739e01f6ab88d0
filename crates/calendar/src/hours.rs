//! Opening hours as people write them: local wall-clock intervals per weekday.
//!
//! Hours are kept as minutes after local midnight, not as instants, because a tenant's "09:00"
//! means nine on the clock on the wall whatever the offset that day; only
//! [`business_time`](crate::business_time) turns them into instants, one date at a time. The
//! checks here are what keep that step simple: a day's intervals are sorted, non-empty and do not
//! overlap.

use std::collections::BTreeMap;
use std::fmt;

use jiff::civil::Weekday;
use serde::ser::{SerializeMap, Serializer};

use crate::CalendarError;

/// The keys of a weekly table, Monday first, as they appear in JSON.
const DAY_KEYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Minutes in a day; as an interval's end it is written "24:00".
pub(crate) const MINUTES_PER_DAY: u16 = 24 * 60;

/// A weekly table as written in JSON: weekday key to intervals.
pub(crate) type WeekTable = BTreeMap<String, Vec<String>>;

/// `[start, end)` in minutes after local midnight, `start < end <= 1440`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Interval {
    pub(crate) start: u16,
    pub(crate) end: u16,
}

impl Interval {
    /// Reads `"HH:MM-HH:MM"`; `place` is only for the error.
    fn parse(place: &str, text: &str) -> Result<Interval, CalendarError> {
        let bad = || CalendarError::BadInterval {
            place: place.to_owned(),
            text: text.to_owned(),
        };
        let (start, end) = text.split_once('-').ok_or_else(bad)?;
        let start = clock_minutes(start.trim()).ok_or_else(bad)?;
        let end = clock_minutes(end.trim()).ok_or_else(bad)?;
        if end <= start {
            return Err(CalendarError::EndNotAfterStart {
                place: place.to_owned(),
                text: text.to_owned(),
            });
        }
        Ok(Interval { start, end })
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, e) = (self.start, self.end);
        write!(f, "{:02}:{:02}-{:02}:{:02}", s / 60, s % 60, e / 60, e % 60)
    }
}

/// `"H:MM"` or `"HH:MM"`, 00:00 to 24:00, as minutes after midnight.
fn clock_minutes(text: &str) -> Option<u16> {
    let (hour, minute) = text.split_once(':')?;
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !(1..=2).contains(&hour.len()) || minute.len() != 2 || !digits(hour) || !digits(minute) {
        return None;
    }
    let (hour, minute): (u16, u16) = (hour.parse().ok()?, minute.parse().ok()?);
    let total = hour * 60 + minute;
    (minute < 60 && total <= MINUTES_PER_DAY).then_some(total)
}

/// One day's working intervals, sorted and disjoint; empty means closed all day.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DayHours(Vec<Interval>);

impl DayHours {
    /// Closed all day.
    pub(crate) const fn closed() -> DayHours {
        DayHours(Vec::new())
    }

    /// Open from midnight to midnight.
    pub(crate) fn all_day() -> DayHours {
        DayHours(vec![Interval {
            start: 0,
            end: MINUTES_PER_DAY,
        }])
    }

    /// Reads a day's list of intervals, in any order; touching intervals are allowed.
    pub(crate) fn parse(place: &str, texts: &[String]) -> Result<DayHours, CalendarError> {
        let mut intervals = texts
            .iter()
            .map(|t| Interval::parse(place, t))
            .collect::<Result<Vec<_>, _>>()?;
        intervals.sort_unstable();
        if let Some(pair) = intervals
            .windows(2)
            .find(|pair| pair[1].start < pair[0].end)
        {
            return Err(CalendarError::Overlap {
                place: place.to_owned(),
                first: pair[0].to_string(),
                second: pair[1].to_string(),
            });
        }
        Ok(DayHours(intervals))
    }

    /// The intervals, earliest first.
    pub(crate) fn intervals(&self) -> &[Interval] {
        &self.0
    }

    /// The intervals as written in JSON.
    pub(crate) fn to_texts(&self) -> Vec<String> {
        self.0.iter().map(Interval::to_string).collect()
    }
}

/// Hours for each weekday, Monday first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct WeeklyHours([DayHours; 7]);

impl WeeklyHours {
    /// The same hours every day of the week.
    pub(crate) fn every_day(day: &DayHours) -> WeeklyHours {
        WeeklyHours(std::array::from_fn(|_| day.clone()))
    }

    /// Reads a weekly table; `place` is where it sits in the document, e.g. `weekly`.
    pub(crate) fn parse(place: &str, table: &WeekTable) -> Result<WeeklyHours, CalendarError> {
        let mut week = WeeklyHours::default();
        for (key, texts) in table {
            let index = DAY_KEYS.iter().position(|k| k == key).ok_or_else(|| {
                CalendarError::UnknownWeekday {
                    place: place.to_owned(),
                    key: key.clone(),
                }
            })?;
            week.0[index] = DayHours::parse(&format!("{place}.{key}"), texts)?;
        }
        Ok(week)
    }

    /// The hours of `day`.
    pub(crate) fn on(&self, day: Weekday) -> &DayHours {
        // 0 for Monday to 6 for Sunday.
        let index = usize::try_from(day.to_monday_zero_offset()).unwrap_or_default();
        &self.0[index]
    }

    /// The table as written in JSON; closed days are left out.
    pub(crate) fn to_table(&self) -> WeekTable {
        DAY_KEYS
            .iter()
            .zip(&self.0)
            .filter(|(_, day)| !day.0.is_empty())
            .map(|(key, day)| ((*key).to_owned(), day.to_texts()))
            .collect()
    }
}

/// Writes a weekly table Monday first rather than in key order ("fri" before "mon"), so that
/// a calendar read back from the KV bucket looks like the week it describes.
pub(crate) fn serialize_week<S: Serializer>(
    table: &WeekTable,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(table.len()))?;
    for key in DAY_KEYS {
        if let Some(texts) = table.get(key) {
            map.serialize_entry(key, texts)?;
        }
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(texts: &[&str]) -> Result<DayHours, CalendarError> {
        DayHours::parse(
            "weekly.mon",
            &texts.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn reads_sorts_and_writes_intervals() {
        let hours = day(&["14:00-24:00", "9:00 - 13:00", "13:00-14:00"]).unwrap();
        assert_eq!(
            hours.to_texts(),
            ["09:00-13:00", "13:00-14:00", "14:00-24:00"]
        );
        assert_eq!(day(&[]).unwrap(), DayHours::default());
    }

    #[test]
    fn rejects_bad_clocks() {
        for text in [
            "9-18",
            "09:00",
            "09:60-18:00",
            "09:00-24:30",
            "25:00-26:00",
            "0900-1800",
            "09:0-18:00",
            "+9:00-18:00",
        ] {
            assert!(
                matches!(day(&[text]), Err(CalendarError::BadInterval { .. })),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_backwards_and_overlapping() {
        assert!(matches!(
            day(&["18:00-09:00"]),
            Err(CalendarError::EndNotAfterStart { .. })
        ));
        assert!(matches!(
            day(&["24:00-24:00"]),
            Err(CalendarError::EndNotAfterStart { .. })
        ));
        let err = day(&["12:00-18:00", "09:00-13:00"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "weekly.mon: intervals \"09:00-13:00\" and \"12:00-18:00\" overlap: merge them into one \
             interval or move one so that it starts where the other ends"
        );
    }
}
