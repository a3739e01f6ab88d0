//! What the state bucket holds, one record per key:
//!
//! | key                                          | value                       |
//! |----------------------------------------------|-----------------------------|
//! | `alert.{fingerprint}`                        | the alert                   |
//! | `timer.{rule}.{tenant}.{request}`            | a client waiting for answer |
//! | `seen.{tenant}`                              | when it was last heard from |
//! | `notify.{fingerprint}.{state}.{starts_at}…`  | a notification on its way   |
//! | `silence.{id}`                               | a silence                   |
//!
//! Values are JSON, the same as before the machine existed, so a bucket written by an older
//! c2d-alerting is read as it was.

use crate::alert::{AlertRecord, Silence};

use super::{Notification, Timer};

/// One entry of the state bucket, with what its key is made of.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Firing or resolved: kept until a week after it ended, for ListAlerts.
    Alert(AlertRecord),
    /// A client waiting: kept so that a restart does not reset the wait.
    Timer(Timer),
    /// When the tenant was last heard from (the value stored is `at` alone).
    Seen { tenant: String, at: i64 },
    /// A notification's key is not made of the alert alone: a repeat has its own, so that it
    /// does not replace a notification still on its way.
    Notification {
        key: String,
        notification: Notification,
    },
    /// Kept until a week after it ended, for ListSilences.
    Silence(Silence),
}

impl Record {
    /// The key it is stored under.
    pub fn key(&self) -> String {
        match self {
            Record::Alert(alert) => format!("alert.{}", alert.fingerprint),
            Record::Timer(timer) => Record::timer_key(timer),
            Record::Seen { tenant, .. } => format!("seen.{tenant}"),
            Record::Notification { key, .. } => key.clone(),
            Record::Silence(silence) => format!("silence.{}", silence.id),
        }
    }

    /// The key of a wait timer: one per rule, tenant and request, since a request waits once.
    pub fn timer_key(timer: &Timer) -> String {
        format!("timer.{}.{}.{}", timer.rule, timer.tenant, timer.request_id)
    }

    /// The value it is stored as.
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        match self {
            Record::Alert(alert) => serde_json::to_vec(alert),
            Record::Timer(timer) => serde_json::to_vec(timer),
            Record::Seen { at, .. } => serde_json::to_vec(at),
            Record::Notification { notification, .. } => serde_json::to_vec(notification),
            Record::Silence(silence) => serde_json::to_vec(silence),
        }
    }

    /// The record stored as `bytes` under `key`; None for a key that is none of alerting's
    /// kinds (left alone, in case a newer version wrote it).
    pub fn decode(key: &str, bytes: &[u8]) -> Result<Option<Record>, serde_json::Error> {
        let record = match key.split_once('.') {
            Some(("alert", _)) => Record::Alert(serde_json::from_slice(bytes)?),
            Some(("timer", _)) => Record::Timer(serde_json::from_slice(bytes)?),
            Some(("seen", tenant)) => Record::Seen {
                tenant: tenant.to_owned(),
                at: serde_json::from_slice(bytes)?,
            },
            Some(("notify", _)) => Record::Notification {
                key: key.to_owned(),
                notification: serde_json::from_slice(bytes)?,
            },
            Some(("silence", _)) => Record::Silence(serde_json::from_slice(bytes)?),
            _ => return Ok(None),
        };
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_read_back_as_it_was_written() {
        let timer = Record::Timer(Timer {
            rule: "waiting".into(),
            tenant: "acme".into(),
            request_id: 7,
            client_id: None,
            deadline: 42,
        });
        let seen = Record::Seen {
            tenant: "acme".into(),
            at: 42,
        };
        for record in [timer, seen] {
            let key = record.key();
            let bytes = record.encode().expect("encodes");
            assert_eq!(Record::decode(&key, &bytes).expect("decodes"), Some(record));
        }
        assert_eq!(
            String::from_utf8(
                Record::Seen {
                    tenant: "acme".into(),
                    at: 42
                }
                .encode()
                .expect("encodes")
            )
            .expect("utf-8"),
            "42",
            "the stored form is the bare time, as older versions wrote it"
        );
        assert_eq!(Record::decode("other.key", b"1").expect("ignored"), None);
        assert!(Record::decode("seen.acme", b"yesterday").is_err());
    }
}
