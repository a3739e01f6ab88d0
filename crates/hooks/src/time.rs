//! Event times as Chat2Desk writes them.
//!
//! The documentation shows ISO 8601 UTC (`2019-07-28T23:01:40Z`), dialogs carry unix seconds
//! (`1540282584`), and real deliveries add offsets (`+03:00`, `+0300`), a space instead of the
//! `T`, fractions of a second, or stray blanks that the docs' own examples show
//! (`2019- 07-28T23:01:40Z`). All of them are read; a time without an offset is UTC.

use prost_types::Timestamp;

/// Reads a time given as a JSON string. `None` when it is not a time in any accepted form.
pub fn parse_time_text(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return text.parse::<f64>().ok().and_then(unix_time);
    }
    Iso::new(text).parse()
}

/// Reads a time given as a JSON number of unix seconds (or milliseconds, which some
/// integrations send: any value past the year 5000 in seconds is taken as milliseconds).
pub fn unix_time(value: f64) -> Option<Timestamp> {
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let seconds = if value > 95_617_584_000.0 {
        value / 1000.0
    } else {
        value
    };
    let whole = seconds.trunc();
    Some(Timestamp {
        seconds: whole as i64,
        nanos: ((seconds - whole) * 1e9).round().min(999_999_999.0) as i32,
    })
}

/// A cursor over an ISO 8601 date-time that skips the blanks real deliveries put in it.
struct Iso<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Iso<'a> {
    fn new(text: &'a str) -> Self {
        Iso {
            bytes: text.as_bytes(),
            at: 0,
        }
    }

    fn parse(mut self) -> Option<Timestamp> {
        let year = self.number(4, 4)?;
        self.expect(b'-')?;
        let month = self.number(1, 2)?;
        self.expect(b'-')?;
        let day = self.number(1, 2)?;
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }

        let (mut hour, mut minute, mut second, mut nanos) = (0, 0, 0, 0);
        let had_blank = self.skip_blanks();
        if self.eat(b'T') || self.eat(b't') || (had_blank && self.peek_digit()) {
            hour = self.number(1, 2)?;
            self.expect(b':')?;
            minute = self.number(2, 2)?;
            if self.expect(b':').is_some() {
                second = self.number(2, 2)?;
                if self.eat(b'.') || self.eat(b',') {
                    nanos = self.fraction()?;
                }
            }
            if hour > 23 || minute > 59 || second > 60 {
                return None;
            }
            // A leap second is read as the last second of its minute.
            second = second.min(59);
        }

        self.skip_blanks();
        let offset = self.offset()?;
        self.skip_blanks();
        if self.at != self.bytes.len() {
            return None;
        }

        let days = days_from_civil(year, month, day);
        let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset;
        Some(Timestamp { seconds, nanos })
    }

    /// The offset from UTC in seconds: `Z`, `UTC`, `+HH:MM`, `+HHMM`, `+HH`, or nothing (UTC).
    fn offset(&mut self) -> Option<i64> {
        if self.at == self.bytes.len() || self.eat(b'Z') || self.eat(b'z') {
            return Some(0);
        }
        if self.bytes[self.at..].eq_ignore_ascii_case(b"utc") {
            self.at = self.bytes.len();
            return Some(0);
        }
        let sign = if self.eat(b'+') {
            1
        } else if self.eat(b'-') {
            -1
        } else {
            return None;
        };
        let hours = self.number(2, 2)?;
        self.eat(b':');
        let minutes = if self.peek_digit() {
            self.number(2, 2)?
        } else {
            0
        };
        if hours > 23 || minutes > 59 {
            return None;
        }
        Some(sign * (hours * 3_600 + minutes * 60))
    }

    /// Between `min` and `max` digits, blanks before them skipped.
    fn number(&mut self, min: usize, max: usize) -> Option<i64> {
        self.skip_blanks();
        let start = self.at;
        while self.at < self.bytes.len() && self.at - start < max && self.peek_digit() {
            self.at += 1;
        }
        if self.at - start < min {
            return None;
        }
        std::str::from_utf8(&self.bytes[start..self.at])
            .ok()?
            .parse()
            .ok()
    }

    /// Fractional seconds as nanoseconds; digits past the ninth are dropped.
    fn fraction(&mut self) -> Option<i32> {
        let start = self.at;
        let mut nanos: i32 = 0;
        while self.peek_digit() {
            let digits = self.at - start;
            if digits < 9 {
                nanos = nanos * 10 + i32::from(self.bytes[self.at] - b'0');
            }
            self.at += 1;
        }
        let digits = self.at - start;
        if digits == 0 {
            return None;
        }
        Some(nanos * 10_i32.pow(9u32.saturating_sub(digits as u32)))
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_blanks();
        self.eat(byte).then_some(())
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.bytes.get(self.at) == Some(&byte);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn peek_digit(&self) -> bool {
        self.bytes.get(self.at).is_some_and(u8::is_ascii_digit)
    }

    fn skip_blanks(&mut self) -> bool {
        let start = self.at;
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
        self.at > start
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2019-07-28T23:01:40Z, the time of every example in Chat2Desk's documentation.
    const DOCS_TIME: i64 = 1_564_354_900;

    fn seconds(text: &str) -> Option<i64> {
        parse_time_text(text).map(|t| t.seconds)
    }

    #[test]
    fn reads_the_documented_utc_form() {
        assert_eq!(seconds("2019-07-28T23:01:40Z"), Some(DOCS_TIME));
    }

    #[test]
    fn reads_offsets_in_every_spelling() {
        assert_eq!(seconds("2019-07-29T02:01:40+03:00"), Some(DOCS_TIME));
        assert_eq!(seconds("2019-07-29T02:01:40+0300"), Some(DOCS_TIME));
        assert_eq!(seconds("2019-07-29T02:01:40+03"), Some(DOCS_TIME));
        assert_eq!(seconds("2019-07-28T20:01:40-03:00"), Some(DOCS_TIME));
        assert_eq!(seconds("2019-07-28T23:01:40 UTC"), Some(DOCS_TIME));
    }

    #[test]
    fn reads_a_space_instead_of_t_and_no_offset_as_utc() {
        assert_eq!(seconds("2019-07-28 23:01:40"), Some(DOCS_TIME));
        assert_eq!(seconds("2019-07-28 23:01"), Some(DOCS_TIME - 40));
    }

    #[test]
    fn forgives_the_stray_blanks_of_the_docs_examples() {
        assert_eq!(seconds("2019- 07-28T23:01:40Z"), Some(DOCS_TIME));
        assert_eq!(seconds(" 2019-07- 28T23:01:40Z "), Some(DOCS_TIME));
    }

    #[test]
    fn keeps_fractions_of_a_second() {
        let t = parse_time_text("2019-07-28T23:01:40.25Z").unwrap();
        assert_eq!((t.seconds, t.nanos), (DOCS_TIME, 250_000_000));
    }

    #[test]
    fn reads_unix_seconds_and_milliseconds() {
        assert_eq!(seconds("1540282584"), Some(1_540_282_584));
        assert_eq!(
            unix_time(1_540_282_584.0).map(|t| t.seconds),
            Some(1_540_282_584)
        );
        let ms = unix_time(1_540_282_584_500.0).unwrap();
        assert_eq!((ms.seconds, ms.nanos), (1_540_282_584, 500_000_000));
    }

    #[test]
    fn a_date_alone_is_midnight_utc() {
        assert_eq!(seconds("2019-07-28"), Some(DOCS_TIME - 23 * 3600 - 100));
    }

    #[test]
    fn rejects_what_is_not_a_time() {
        for bad in [
            "",
            "yesterday",
            "2019-13-01T00:00:00Z",
            "2019-02-30T00:00:00Z",
            "2019-07-28T24:00:00Z",
            "2019-07-28T23:01:40Zjunk",
            "2019-07-28T23:01:40+25:00",
            "-5",
        ] {
            assert_eq!(parse_time_text(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn leap_days_and_far_dates_are_exact() {
        assert_eq!(seconds("2020-02-29T00:00:00Z"), Some(1_582_934_400));
        assert_eq!(seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(seconds("2400-01-01T00:00:00Z"), Some(13_569_465_600));
    }
}
