//! Times in the store are microseconds since the Unix epoch: one integer type that sorts and
//! compares the same on SQLite and PostgreSQL.

use prost_types::Timestamp;

/// Now, in store time.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// A protobuf time in store time.
pub fn micros(timestamp: &Timestamp) -> i64 {
    timestamp.seconds * 1_000_000 + i64::from(timestamp.nanos) / 1_000
}

/// A store time as a protobuf time.
pub fn timestamp(micros: i64) -> Timestamp {
    Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

/// A store time as RFC 3339 (UTC), the way connectors send times.
pub fn rfc3339(micros: i64) -> String {
    let format = time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let t = Timestamp {
            seconds: 1_564_354_900,
            nanos: 123_456_000,
        };
        assert_eq!(timestamp(micros(&t)), t);
        assert_eq!(rfc3339(1_564_354_900_000_000), "2019-07-28T23:01:40Z");
    }
}
