//! Why a calendar was refused. Calendars are written by people (operators editing JSON in the
//! KV bucket), so each message names the place in the document, what is wrong, and how to write
//! it instead: the person reading it has the editor open and nothing else.

/// A calendar document that cannot be used. `place` names where in the JSON the problem is,
/// e.g. `weekly.mon`, `channels.whatsapp.sat`, `exceptions.2026-12-24` or `holidays`.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// The text is not JSON of the calendar's shape (missing `time_zone` or `weekly`, a number
    /// where a string belongs, an unknown top-level field, ...).
    #[error(
        "calendar JSON is malformed: {0}; expected an object like \
         {{\"time_zone\":\"Europe/Berlin\",\"weekly\":{{\"mon\":[\"09:00-18:00\"]}}}} with optional \
         \"channels\", \"holidays\" and \"exceptions\""
    )]
    Json(#[from] serde_json::Error),

    /// `time_zone` is not in the tz database bundled with this build.
    #[error(
        "unknown time zone {name:?}: use an IANA name such as \"Europe/Moscow\" or \
         \"America/Sao_Paulo\" (not an abbreviation like \"MSK\" or an offset like \"+03:00\")"
    )]
    UnknownTimeZone {
        /// The name as written.
        name: String,
    },

    /// An interval that is not `HH:MM-HH:MM` with a valid 24-hour clock on both sides.
    #[error(
        "{place}: bad interval {text:?}: write it as \"HH:MM-HH:MM\" in 24-hour local time, \
         e.g. \"09:00-18:00\"; the end may be \"24:00\" for midnight"
    )]
    BadInterval {
        /// Where in the document.
        place: String,
        /// The interval as written.
        text: String,
    },

    /// An interval whose end is not after its start.
    #[error(
        "{place}: interval {text:?} does not end after it starts: hours cannot wrap past \
         midnight, so split a night shift into \"22:00-24:00\" on one day and \"00:00-06:00\" on \
         the next"
    )]
    EndNotAfterStart {
        /// Where in the document.
        place: String,
        /// The interval as written.
        text: String,
    },

    /// Two intervals of one day share some time.
    #[error(
        "{place}: intervals {first:?} and {second:?} overlap: merge them into one interval or \
         move one so that it starts where the other ends"
    )]
    Overlap {
        /// Where in the document.
        place: String,
        /// The interval that starts first, as written.
        first: String,
        /// The interval that starts inside it, as written.
        second: String,
    },

    /// A key of a weekly table that is not a weekday.
    #[error("{place}: unknown weekday key {key:?}: use one of mon, tue, wed, thu, fri, sat, sun")]
    UnknownWeekday {
        /// Where in the document.
        place: String,
        /// The key as written.
        key: String,
    },

    /// A holiday or exception date that is not a real `YYYY-MM-DD` date.
    #[error(
        "{place}: bad date {text:?}: write a real calendar date as \"YYYY-MM-DD\", e.g. \"2026-12-25\""
    )]
    BadDate {
        /// Where in the document.
        place: String,
        /// The date as written.
        text: String,
    },
}
