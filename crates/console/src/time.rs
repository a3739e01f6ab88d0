//! Times as the console writes them: UTC, to the second, one format on every page.

/// A timestamp as UTC `YYYY-MM-DD HH:MM:SS`.
pub fn when(timestamp: Option<&prost_types::Timestamp>) -> String {
    let Some(timestamp) = timestamp else {
        return String::new();
    };
    let days = timestamp.seconds.div_euclid(86_400);
    let seconds = timestamp.seconds.rem_euclid(86_400);
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        seconds / 3_600,
        seconds % 3_600 / 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_utc() {
        let at = prost_types::Timestamp {
            seconds: 1_564_354_900,
            nanos: 0,
        };
        assert_eq!(when(Some(&at)), "2019-07-28 23:01:40");
        assert_eq!(when(None), "");
    }
}
