//! One spooled message on disk, framed so that a reader can tell a whole record from a torn
//! one: `[length u32 LE][crc32c u32 LE][body]`, the body being the subject, the `Nats-Msg-Id`,
//! the `traceparent` (each `[u16 LE length][bytes]`) and the message itself. A crash can leave
//! at most one torn record at the end of the log; the CRC also catches a flipped bit anywhere.
//!
//! [`decode`] never panics and always makes progress or stops: any input is either a whole
//! record, "not enough bytes yet", or corrupt.

/// No record is larger than this (an event holds at most about twice the body limit).
pub const MAX_RECORD: usize = 64 * 1024 * 1024;
/// The length and the CRC before each body.
pub const HEADER: usize = 8;
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// A message waiting to be forwarded to JetStream, as the webhook handler made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub subject: String,
    pub msg_id: String,
    pub traceparent: String,
    pub payload: Vec<u8>,
}

/// What the bytes at a position hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole record, and how many bytes it took.
    Record(Record, usize),
    /// The bytes end inside a record (the tail a crash left, or one still being written).
    Incomplete,
    /// Not a record: a length out of bounds, a CRC mismatch, or fields that do not fit.
    Corrupt(&'static str),
}

/// The CRC32C the log's framing uses, for what else the spool keeps (its cursor).
pub fn checksum(bytes: &[u8]) -> u32 {
    CRC.checksum(bytes)
}

/// As much of `field` as its 16-bit length can frame, cut between characters: a field cut
/// inside one would not read back as text, and the whole record would be taken for damage.
fn longest_field(field: &str) -> &str {
    let mut end = field.len().min(usize::from(u16::MAX));
    while !field.is_char_boundary(end) {
        end -= 1;
    }
    &field[..end]
}

/// The record framed for the log.
pub fn encode(record: &Record) -> Vec<u8> {
    let mut body = Vec::with_capacity(
        6 + record.subject.len()
            + record.msg_id.len()
            + record.traceparent.len()
            + record.payload.len(),
    );
    for field in [&record.subject, &record.msg_id, &record.traceparent] {
        let kept = longest_field(field);
        body.extend_from_slice(&(kept.len() as u16).to_le_bytes());
        body.extend_from_slice(kept.as_bytes());
    }
    body.extend_from_slice(&record.payload);
    let mut framed = Vec::with_capacity(HEADER + body.len());
    framed.extend_from_slice(&(body.len() as u32).to_le_bytes());
    framed.extend_from_slice(&CRC.checksum(&body).to_le_bytes());
    framed.extend_from_slice(&body);
    framed
}

/// Reads the record at the start of `bytes`.
pub fn decode(bytes: &[u8]) -> Decoded {
    let Some(header) = bytes.get(..HEADER) else {
        return Decoded::Incomplete;
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD {
        return Decoded::Corrupt("a record length beyond the largest record");
    }
    let Some(body) = bytes.get(HEADER..HEADER + len) else {
        return Decoded::Incomplete;
    };
    if CRC.checksum(body) != crc {
        return Decoded::Corrupt("a CRC mismatch");
    }
    let mut rest = body;
    let mut field = || -> Option<String> {
        let len = usize::from(u16::from_le_bytes([*rest.first()?, *rest.get(1)?]));
        let text = rest.get(2..2 + len)?;
        let text = String::from_utf8(text.to_vec()).ok()?;
        rest = &rest[2 + len..];
        Some(text)
    };
    let (Some(subject), Some(msg_id), Some(traceparent)) = (field(), field(), field()) else {
        return Decoded::Corrupt("fields that do not fit the record");
    };
    Decoded::Record(
        Record {
            subject,
            msg_id,
            traceparent,
            payload: rest.to_vec(),
        },
        HEADER + len,
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_field_longer_than_its_length_can_say_is_cut_between_characters() {
        // 70,000 bytes of two-byte characters: 65,535 would end inside one.
        let record = Record {
            subject: "ж".repeat(35_000),
            msg_id: "id".into(),
            traceparent: String::new(),
            payload: b"{}".to_vec(),
        };
        let Decoded::Record(read, _) = decode(&encode(&record)) else {
            panic!("a record with a long field reads back");
        };
        assert_eq!(read.subject, "ж".repeat(32_767));
        assert_eq!(
            (read.msg_id.as_str(), read.payload.as_slice()),
            ("id", &b"{}"[..])
        );
    }

    fn record(n: u8) -> Record {
        Record {
            subject: "chat2desk.events.acme.inbox".into(),
            msg_id: format!("id-{n}"),
            traceparent: String::new(),
            payload: vec![n; usize::from(n)],
        }
    }

    #[test]
    fn a_record_reads_back_and_a_torn_or_flipped_one_does_not() {
        let bytes = encode(&record(9));
        assert_eq!(decode(&bytes), Decoded::Record(record(9), bytes.len()));
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), Decoded::Incomplete, "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[12] ^= 1;
        assert_eq!(decode(&flipped), Decoded::Corrupt("a CRC mismatch"));
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panic_and_records_round_trip(
            noise in proptest::collection::vec(any::<u8>(), 0..512),
            subject in "[a-z.]{0,40}",
            msg_id in "[0-9a-f]{0,32}",
            payload in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            // Whatever the bytes, decode answers, and a record's size is never more than given.
            if let Decoded::Record(_, used) = decode(&noise) {
                prop_assert!(used <= noise.len() && used >= HEADER);
            }
            let record = Record { subject, msg_id, traceparent: "00-ab-cd-01".into(), payload };
            let mut bytes = encode(&record);
            let used = bytes.len();
            bytes.extend_from_slice(&noise);
            prop_assert_eq!(decode(&bytes), Decoded::Record(record, used));
        }
    }
}
