//! A tenant's calendar: which local hours count as working time, on which dates, per channel.
//!
//! Calendars live as JSON in a KV bucket and are edited by people at run time, so the JSON form
//! is plain strings a person can type ("09:00-18:00", "2026-12-25"), and everything is checked
//! once, on the way in: a [`Calendar`] that exists is valid, and the arithmetic never meets a
//! malformed interval or an unknown zone while a timer is running.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::CalendarError;
use crate::hours::{DayHours, WeekTable, WeeklyHours, serialize_week};

/// A validated business-hours calendar in one IANA time zone.
///
/// The hours of a local date are, in order of precedence: the date's exception, if any (also on
/// a holiday: an exception is the more specific statement); closed, if the date is a holiday;
/// otherwise the weekday's hours of the channel's own weekly table, if the channel has one, else
/// of the tenant's. Exceptions and holidays apply to every channel. A weekday missing from a
/// weekly table is closed; a channel's table replaces the tenant's as a whole, it does not
/// patch it.
///
/// Serde reads and writes the JSON form described in the crate docs, checking it the way
/// [`Calendar::parse_json`] does, so a `Calendar` can sit inside larger configuration types.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CalendarJson", into = "CalendarJson")]
pub struct Calendar {
    time_zone_name: String,
    pub(crate) time_zone: TimeZone,
    weekly: WeeklyHours,
    channels: BTreeMap<String, WeeklyHours>,
    holidays: BTreeSet<Date>,
    exceptions: BTreeMap<Date, DayHours>,
}

impl Calendar {
    /// Open around the clock in UTC: business time equals wall-clock time. The calendar of a
    /// tenant that has not configured one.
    pub fn always_open() -> Calendar {
        Calendar {
            time_zone_name: "UTC".to_owned(),
            time_zone: TimeZone::UTC,
            weekly: WeeklyHours::every_day(&DayHours::all_day()),
            channels: BTreeMap::new(),
            holidays: BTreeSet::new(),
            exceptions: BTreeMap::new(),
        }
    }

    /// Reads and checks a calendar from its JSON form.
    pub fn parse_json(json: &str) -> Result<Calendar, CalendarError> {
        Calendar::try_from(serde_json::from_str::<CalendarJson>(json)?)
    }

    /// The JSON form; [`Calendar::parse_json`] reads it back to an equal calendar.
    pub fn to_json(&self) -> String {
        // Serializing string maps and lists cannot fail.
        serde_json::to_string(&CalendarJson::from(self.clone())).unwrap_or_default()
    }

    /// The IANA name of the calendar's time zone, e.g. `"Europe/Moscow"`.
    pub fn time_zone(&self) -> &str {
        &self.time_zone_name
    }

    /// The weekly table that applies to `channel` (see [`Calendar`] for the precedence).
    pub(crate) fn week_for(&self, channel: Option<&str>) -> &WeeklyHours {
        channel
            .and_then(|name| self.channels.get(name))
            .unwrap_or(&self.weekly)
    }

    /// The working hours of local `date` under `week` (from [`Calendar::week_for`]).
    pub(crate) fn hours_on<'a>(&'a self, week: &'a WeeklyHours, date: Date) -> &'a DayHours {
        static CLOSED: DayHours = DayHours::closed();
        if let Some(hours) = self.exceptions.get(&date) {
            hours
        } else if self.holidays.contains(&date) {
            &CLOSED
        } else {
            week.on(date.weekday())
        }
    }
}

/// The JSON form: what a person writes, before any check.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarJson {
    time_zone: String,
    #[serde(serialize_with = "serialize_week")]
    weekly: WeekTable,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    channels: BTreeMap<String, WeekTable>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    holidays: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    exceptions: BTreeMap<String, Vec<String>>,
}

impl TryFrom<CalendarJson> for Calendar {
    type Error = CalendarError;

    fn try_from(json: CalendarJson) -> Result<Calendar, CalendarError> {
        let time_zone =
            jiff::tz::db()
                .get(&json.time_zone)
                .map_err(|_| CalendarError::UnknownTimeZone {
                    name: json.time_zone.clone(),
                })?;
        let weekly = WeeklyHours::parse("weekly", &json.weekly)?;
        let channels = json
            .channels
            .iter()
            .map(|(name, table)| {
                Ok((
                    name.clone(),
                    WeeklyHours::parse(&format!("channels.{name}"), table)?,
                ))
            })
            .collect::<Result<_, CalendarError>>()?;
        let holidays = json
            .holidays
            .iter()
            .map(|text| parse_date("holidays", text))
            .collect::<Result<_, _>>()?;
        let exceptions = json
            .exceptions
            .iter()
            .map(|(text, texts)| {
                let date = parse_date("exceptions", text)?;
                Ok((date, DayHours::parse(&format!("exceptions.{text}"), texts)?))
            })
            .collect::<Result<_, CalendarError>>()?;
        Ok(Calendar {
            time_zone_name: json.time_zone,
            time_zone,
            weekly,
            channels,
            holidays,
            exceptions,
        })
    }
}

impl From<Calendar> for CalendarJson {
    fn from(calendar: Calendar) -> CalendarJson {
        CalendarJson {
            time_zone: calendar.time_zone_name,
            weekly: calendar.weekly.to_table(),
            channels: calendar
                .channels
                .iter()
                .map(|(name, week)| (name.clone(), week.to_table()))
                .collect(),
            holidays: calendar.holidays.iter().map(Date::to_string).collect(),
            exceptions: calendar
                .exceptions
                .iter()
                .map(|(date, hours)| (date.to_string(), hours.to_texts()))
                .collect(),
        }
    }
}

/// A `YYYY-MM-DD` date; jiff also checks that the day exists in that month.
fn parse_date(place: &str, text: &str) -> Result<Date, CalendarError> {
    let shaped = text.len() == 10
        && text
            .bytes()
            .enumerate()
            .all(|(i, b)| (b == b'-') == (i == 4 || i == 7));
    let bad = || CalendarError::BadDate {
        place: place.to_owned(),
        text: text.to_owned(),
    };
    if !shaped {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAO_PAULO: &str = r#"{"time_zone":"America/Sao_Paulo","weekly":{"mon":["09:00-18:00"],"tue":["09:00-18:00"],"wed":["09:00-18:00"],"thu":["09:00-18:00"],"fri":["09:00-18:00"],"sat":["10:00-14:00"]},"channels":{"whatsapp":{"mon":["08:00-20:00"]}},"holidays":["2026-12-25"],"exceptions":{"2026-12-24":["09:00-13:00"]}}"#;

    fn message(json: &str) -> String {
        Calendar::parse_json(json).unwrap_err().to_string()
    }

    #[test]
    fn json_round_trips_unchanged() {
        let calendar = Calendar::parse_json(SAO_PAULO).unwrap();
        assert_eq!(calendar.to_json(), SAO_PAULO);
        assert_eq!(Calendar::parse_json(&calendar.to_json()).unwrap(), calendar);
        let always = Calendar::always_open();
        assert_eq!(Calendar::parse_json(&always.to_json()).unwrap(), always);
        // Through serde too, as a field of a larger document.
        let nested: BTreeMap<String, Calendar> =
            serde_json::from_str(&format!("{{\"t1\":{SAO_PAULO}}}")).unwrap();
        assert_eq!(nested["t1"], calendar);
    }

    #[test]
    fn every_error_says_what_and_how() {
        assert_eq!(
            message(r#"{"time_zone":"MSK","weekly":{}}"#),
            "unknown time zone \"MSK\": use an IANA name such as \"Europe/Moscow\" or \
             \"America/Sao_Paulo\" (not an abbreviation like \"MSK\" or an offset like \"+03:00\")"
        );
        assert_eq!(
            message(r#"{"time_zone":"UTC","weekly":{"mon":["9-18"]}}"#),
            "weekly.mon: bad interval \"9-18\": write it as \"HH:MM-HH:MM\" in 24-hour local time, \
             e.g. \"09:00-18:00\"; the end may be \"24:00\" for midnight"
        );
        assert_eq!(
            message(
                r#"{"time_zone":"UTC","weekly":{},"channels":{"whatsapp":{"sun":["22:00-06:00"]}}}"#
            ),
            "channels.whatsapp.sun: interval \"22:00-06:00\" does not end after it starts: hours \
             cannot wrap past midnight, so split a night shift into \"22:00-24:00\" on one day and \
             \"00:00-06:00\" on the next"
        );
        assert_eq!(
            message(
                r#"{"time_zone":"UTC","weekly":{},"exceptions":{"2026-12-24":["09:00-13:00","12:00-14:00"]}}"#
            ),
            "exceptions.2026-12-24: intervals \"09:00-13:00\" and \"12:00-14:00\" overlap: merge them \
             into one interval or move one so that it starts where the other ends"
        );
        assert_eq!(
            message(r#"{"time_zone":"UTC","weekly":{"monday":["09:00-18:00"]}}"#),
            "weekly: unknown weekday key \"monday\": use one of mon, tue, wed, thu, fri, sat, sun"
        );
        for date in ["2026-02-30", "25.12.2026", "2026-1-05", "20261225"] {
            assert_eq!(
                message(&format!(
                    r#"{{"time_zone":"UTC","weekly":{{}},"holidays":["{date}"]}}"#
                )),
                format!(
                    "holidays: bad date \"{date}\": write a real calendar date as \"YYYY-MM-DD\", e.g. \"2026-12-25\""
                )
            );
        }
        assert!(
            message(r#"{"weekly":{}}"#)
                .starts_with("calendar JSON is malformed: missing field `time_zone`")
        );
        assert!(matches!(
            Calendar::parse_json("{\"time_zone\":\"UTC\"}"),
            Err(CalendarError::Json(_))
        ));
        // Through serde the same check runs, and the message survives.
        let err = serde_json::from_str::<Calendar>(r#"{"time_zone":"Mars/Olympus","weekly":{}}"#)
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unknown time zone \"Mars/Olympus\""),
            "{err}"
        );
    }
}
