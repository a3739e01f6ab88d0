//! Any bytes as the gateway spool's log, as a crash or a failing disk could leave it: the
//! reader never panics, never loops, and accounts for every byte — its items cover the log in
//! order, each record is whole (it encodes back to the bytes it was read from) and the rest is
//! reported unreadable.

#![no_main]

use std::io::{Seek as _, SeekFrom, Write as _};
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;

/// The gateway's own spool modules, compiled here alone: the reader and the record format need
/// only `crc`, while the gateway crate would bring an HTTP server, a NATS client and telemetry
/// into every instrumented build.
#[path = "../../crates/gateway/src/spool"]
#[allow(dead_code)] // What the gateway uses of them and this target does not.
mod spool {
    pub mod reader;
    pub mod record;
}

use spool::reader::{Item, LogReader};
use spool::record;

/// One file for every input, rewritten each time (a file per input would cost more than the
/// reading).
static LOG: Mutex<Option<std::fs::File>> = Mutex::new(None);

fuzz_target!(|log: &[u8]| {
    let mut slot = LOG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let file = slot.get_or_insert_with(|| tempfile::tempfile().expect("a temporary file"));
    file.set_len(0).expect("truncate");
    file.seek(SeekFrom::Start(0)).expect("seek");
    file.write_all(log).expect("write");

    let mut reader =
        LogReader::new(file.try_clone().expect("clone"), 0, log.len() as u64).expect("reader");
    let mut at = 0u64;
    while let Some(item) = reader.next_item().expect("read") {
        match item {
            Item::Record(record, after) => {
                assert!(after > at, "a record moves the reader on");
                let bytes = &log[at as usize..after as usize];
                assert_eq!(
                    record::encode(&record),
                    bytes,
                    "a record is what was written"
                );
                at = after;
            }
            Item::Unreadable { from, to } => {
                assert_eq!(from, at, "nothing is passed over unreported");
                assert!(to > from, "damage moves the reader on");
                at = to;
            }
        }
    }
    assert_eq!(at, log.len() as u64, "the items cover the whole log");
});
