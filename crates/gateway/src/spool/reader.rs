//! Reading the spool's log one record at a time, in bounded memory, past damage.
//!
//! The log can be as large as `GATEWAY_SPOOL_MAX_BYTES` (hundreds of MiB), more than the
//! gateway's memory limit, so it is never read whole: a record is read when it is reached.
//!
//! Bytes that are not a record come from a crash while appending (always the end of the log,
//! never acknowledged) or from damage to the disk (anywhere). Either way the reader reports the
//! range it could not read and goes on from the next whole record, which it finds by the
//! subject every record begins with: one damaged record must not hide the ones after it.

use std::fs::File;
use std::io::{BufReader, Read as _, Seek as _, SeekFrom};

use super::record::{self, Decoded, HEADER, MAX_RECORD, Record};

/// Every record's body starts with its subject's length (2 bytes) and the subject, and every
/// subject the gateway publishes starts with this.
const SUBJECT_PREFIX: &[u8] = b"chat2desk.";
/// Where [`SUBJECT_PREFIX`] sits in a record.
const PREFIX_AT: usize = HEADER + 2;
/// How much the search for the next record reads at a time.
const SEARCH_CHUNK: usize = 64 * 1024;

/// What the log holds at a position.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// A whole record, and the offset after it.
    Record(Record, u64),
    /// Bytes from `from` up to `to` that are not records; `to` is the next whole record, or the
    /// end of what was read.
    Unreadable { from: u64, to: u64 },
}

/// A reader of the log between two offsets.
pub struct LogReader {
    file: BufReader<File>,
    /// Where the next read starts.
    at: u64,
    /// Where the readable part of the log ends (the synced length).
    end: u64,
}

impl LogReader {
    /// A reader of `file` from `from` up to `end`.
    pub fn new(file: File, from: u64, end: u64) -> std::io::Result<LogReader> {
        let mut file = BufReader::with_capacity(256 * 1024, file);
        file.seek(SeekFrom::Start(from))?;
        Ok(LogReader {
            file,
            at: from,
            end,
        })
    }

    /// The next record or unreadable range, `None` at the end.
    pub fn next_item(&mut self) -> std::io::Result<Option<Item>> {
        if self.at >= self.end {
            return Ok(None);
        }
        let from = self.at;
        if let Some((record, used)) = self.record_here()? {
            self.at = from + used as u64;
            return Ok(Some(Item::Record(record, self.at)));
        }
        let to = self.next_record_after(from)?;
        self.seek(to)?;
        Ok(Some(Item::Unreadable { from, to }))
    }

    /// The record at the current position, if a whole one is there.
    fn record_here(&mut self) -> std::io::Result<Option<(Record, usize)>> {
        let left = self.end - self.at;
        if left < HEADER as u64 {
            return Ok(None);
        }
        let mut header = [0u8; HEADER];
        self.file.read_exact(&mut header)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > MAX_RECORD || (HEADER + len) as u64 > left {
            self.seek(self.at)?;
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(HEADER + len);
        bytes.extend_from_slice(&header);
        bytes.resize(HEADER + len, 0);
        self.file.read_exact(&mut bytes[HEADER..])?;
        match record::decode(&bytes) {
            Decoded::Record(record, used) => Ok(Some((record, used))),
            Decoded::Incomplete | Decoded::Corrupt(_) => {
                self.seek(self.at)?;
                Ok(None)
            }
        }
    }

    /// The offset of the first whole record after `from`, or the end.
    fn next_record_after(&mut self, from: u64) -> std::io::Result<u64> {
        let mut chunk = vec![0u8; SEARCH_CHUNK];
        // Candidates are positions whose subject prefix lies in the chunk read.
        let mut start = from + 1;
        while start < self.end {
            let chunk_from = start + PREFIX_AT as u64;
            if chunk_from >= self.end {
                break;
            }
            let len = ((self.end - chunk_from) as usize).min(SEARCH_CHUNK);
            self.seek(chunk_from)?;
            self.file.read_exact(&mut chunk[..len])?;
            let window = &chunk[..len];
            let mut found = None;
            for (i, _) in window
                .windows(SUBJECT_PREFIX.len())
                .enumerate()
                .filter(|(_, w)| *w == SUBJECT_PREFIX)
            {
                let candidate = start + i as u64;
                self.seek(candidate)?;
                if self.record_here()?.is_some() {
                    found = Some(candidate);
                    break;
                }
            }
            if let Some(candidate) = found {
                return Ok(candidate);
            }
            // Candidates whose prefix would start in the last bytes are in the next chunk.
            let Some(tried) = len.checked_sub(SUBJECT_PREFIX.len()) else {
                break;
            };
            start += tried as u64 + 1;
        }
        Ok(self.end)
    }

    fn seek(&mut self, to: u64) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(to))?;
        self.at = to;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use proptest::prelude::*;

    use super::*;

    fn record(n: usize) -> Record {
        Record {
            subject: "chat2desk.events.acme.inbox".into(),
            msg_id: format!("event-{n}"),
            traceparent: String::new(),
            payload: vec![b'x'; n * 100],
        }
    }

    fn items(bytes: &[u8]) -> Vec<Item> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        let mut reader = LogReader::new(file, 0, bytes.len() as u64).unwrap();
        std::iter::from_fn(|| reader.next_item().unwrap()).collect()
    }

    #[test]
    fn damage_is_reported_and_the_records_after_it_are_read() {
        let (one, two, three) = (
            record::encode(&record(1)),
            record::encode(&record(2)),
            record::encode(&record(3)),
        );
        let mut log = [one.clone(), two.clone(), three.clone()].concat();
        // A flipped bit in the second record's payload.
        log[one.len() + two.len() - 5] ^= 0x10;
        let (a, b) = (one.len() as u64, (one.len() + two.len()) as u64);
        assert_eq!(
            items(&log),
            [
                Item::Record(record(1), a),
                Item::Unreadable { from: a, to: b },
                Item::Record(record(3), log.len() as u64),
            ]
        );
        // A length that points past the end, and garbage before a record.
        let mut log = [vec![0xff; 12], three.clone()].concat();
        log.extend_from_slice(&one[..one.len() / 2]);
        let whole = 12 + three.len() as u64;
        assert_eq!(
            items(&log),
            [
                Item::Unreadable { from: 0, to: 12 },
                Item::Record(record(3), whole),
                Item::Unreadable {
                    from: whole,
                    to: log.len() as u64
                },
            ]
        );
    }

    #[test]
    fn a_record_is_found_after_damage_larger_than_a_search_chunk() {
        let one = record::encode(&record(1));
        let mut log = vec![0u8; 3 * SEARCH_CHUNK + 7];
        log.extend_from_slice(&one);
        assert_eq!(
            items(&log),
            [
                Item::Unreadable {
                    from: 0,
                    to: (3 * SEARCH_CHUNK + 7) as u64
                },
                Item::Record(record(1), log.len() as u64),
            ]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the log holds, the reader ends, its items cover the range in order without
        /// a gap or an overlap, and every record that no damage touched is read back.
        #[test]
        fn any_log_is_read_to_its_end_and_damage_costs_only_the_records_it_touches(
            sizes in proptest::collection::vec(0usize..40, 0..12),
            damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            noise in proptest::collection::vec(any::<u8>(), 0..64),
            prefix in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let records: Vec<Record> = sizes.iter().map(|&n| record(n)).collect();
            let mut log = prefix.clone();
            let mut spans = Vec::new();
            for record in &records {
                let bytes = record::encode(record);
                spans.push((log.len(), log.len() + bytes.len()));
                log.extend_from_slice(&bytes);
            }
            log.extend_from_slice(&noise);
            let mut touched = Vec::new();
            if !log.is_empty() {
                for (at, value) in &damage {
                    let at = at.index(log.len());
                    if log[at] != *value {
                        log[at] = *value;
                        touched.push(at);
                    }
                }
            }

            let items = items(&log);
            let mut at = 0u64;
            let mut read = Vec::new();
            for item in &items {
                match item {
                    Item::Record(record, after) => {
                        prop_assert!(*after > at);
                        read.push((at, record.clone()));
                        at = *after;
                    }
                    Item::Unreadable { from, to } => {
                        prop_assert_eq!(*from, at);
                        prop_assert!(to > from);
                        at = *to;
                    }
                }
            }
            prop_assert_eq!(at, log.len() as u64, "the items cover the whole log");
            // (Bytes that are not a record pass its CRC once in 2^32: never, in these cases.)
            for (record, &(from, to)) in records.iter().zip(&spans) {
                if !touched.iter().any(|&t| (from..to).contains(&t)) {
                    prop_assert!(
                        read.iter().any(|(start, r)| *start == from as u64 && r == record),
                        "the intact record at {} was not read", from
                    );
                }
            }
            if touched.is_empty() && prefix.is_empty() && noise.is_empty() {
                let whole: Vec<Record> = read.into_iter().map(|(_, r)| r).collect();
                prop_assert_eq!(whole, records);
            }
        }
    }
}
