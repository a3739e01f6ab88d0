//! An alert as it is kept, notified and published: its identity (the fingerprint), its
//! lifecycle (firing, then resolved), and what it is about.

use c2d_proto::alerting::v1::{Alert, AlertClient, AlertState};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::rules::{Labels, Rule};

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Firing,
    Resolved,
}

impl State {
    /// As in subjects and notifications.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Firing => "firing",
            State::Resolved => "resolved",
        }
    }
}

/// The client an alert is about, as CrmService knows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientInfo {
    pub client_id: i64,
    pub name: Option<String>,
    pub tags: Vec<String>,
}

/// One alert. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub fingerprint: String,
    pub rule: String,
    pub tenant: String,
    pub state: State,
    pub severity: String,
    pub summary: String,
    pub labels: Labels,
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    pub updated_at: i64,
    pub client: Option<ClientInfo>,
    pub receiver: String,
    /// An event alert resolves at this time unless a new event renews it.
    pub resolve_at: Option<i64>,
    /// The last event that fired or renewed it: its redelivery changes nothing.
    pub last_event_id: Option<String>,
    /// The silence that kept its firing from being notified.
    #[serde(default)]
    pub silenced_by: Option<String>,
    /// The greater alert (fingerprint) that kept its firing from being notified.
    #[serde(default)]
    pub inhibited_by: Option<String>,
    /// Someone is on it: it is not repeated.
    #[serde(default)]
    pub acknowledgement: Option<Acknowledgement>,
    /// When its firing was last queued for its receiver (for repeats).
    #[serde(default)]
    pub notified_at: Option<i64>,
}

/// Who took an alert in hand, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub by: String,
    pub comment: String,
    pub at: i64,
}

/// Mutes notifications of matching alerts for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    /// Empty: any tenant.
    pub tenant: String,
    /// Empty: any rule.
    pub rule: String,
    pub labels: crate::rules::Labels,
    pub starts_at: i64,
    pub ends_at: i64,
    pub comment: String,
}

impl Silence {
    pub fn is_active(&self, now: i64) -> bool {
        self.starts_at <= now && now < self.ends_at
    }

    /// Whether it mutes `alert`.
    pub fn matches(&self, alert: &AlertRecord) -> bool {
        (self.tenant.is_empty() || self.tenant == alert.tenant)
            && (self.rule.is_empty() || self.rule == alert.rule)
            && self
                .labels
                .iter()
                .all(|(key, value)| alert.labels.get(key) == Some(value))
    }

    pub fn to_proto(&self, now: i64) -> c2d_proto::alerting::v1::Silence {
        c2d_proto::alerting::v1::Silence {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            rule: self.rule.clone(),
            labels: self.labels.clone().into_iter().collect(),
            starts_at: Some(timestamp(self.starts_at)),
            ends_at: Some(timestamp(self.ends_at)),
            comment: self.comment.clone(),
            active: self.is_active(now),
        }
    }
}

/// Unix milliseconds as a protobuf time.
pub fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1_000),
        nanos: (ms.rem_euclid(1_000) * 1_000_000) as i32,
    }
}

impl AlertRecord {
    /// A new firing alert of `rule` for `tenant`, about what `labels` say, since `at`.
    pub fn firing(rule: &Rule, tenant: &str, labels: Labels, summary: String, at: i64) -> Self {
        AlertRecord {
            fingerprint: fingerprint(&rule.name, tenant, &labels),
            rule: rule.name.clone(),
            tenant: tenant.to_owned(),
            state: State::Firing,
            severity: rule.severity.clone(),
            summary,
            labels,
            starts_at: at,
            ends_at: None,
            updated_at: at,
            client: None,
            receiver: rule.receiver.clone(),
            resolve_at: None,
            last_event_id: None,
            silenced_by: None,
            inhibited_by: None,
            acknowledgement: None,
            notified_at: None,
        }
    }

    /// Whether its firing was kept from its receiver (by a silence or a greater alert): then
    /// its resolution is not notified either.
    pub fn is_muted(&self) -> bool {
        self.silenced_by.is_some() || self.inhibited_by.is_some()
    }

    /// The key that makes a notification of this state of this alert unique: a retry or a
    /// restart sends the same key again.
    pub fn notification_key(&self) -> String {
        format!(
            "{}.{}.{}",
            self.fingerprint,
            self.state.as_str(),
            self.starts_at
        )
    }

    pub fn to_proto(&self) -> Alert {
        let time = timestamp;
        Alert {
            fingerprint: self.fingerprint.clone(),
            rule: self.rule.clone(),
            tenant: self.tenant.clone(),
            state: match self.state {
                State::Firing => AlertState::Firing,
                State::Resolved => AlertState::Resolved,
            } as i32,
            severity: self.severity.clone(),
            summary: self.summary.clone(),
            labels: self.labels.clone().into_iter().collect(),
            starts_at: Some(time(self.starts_at)),
            ends_at: self.ends_at.map(time),
            updated_at: Some(time(self.updated_at)),
            client: self.client.as_ref().map(|c| AlertClient {
                client_id: c.client_id,
                name: c.name.clone(),
                tags: c.tags.clone(),
            }),
            receiver: self.receiver.clone(),
            silenced_by: self.silenced_by.clone().unwrap_or_default(),
            inhibited_by: self.inhibited_by.clone().unwrap_or_default(),
            acknowledgement: self.acknowledgement.as_ref().map(|a| {
                c2d_proto::alerting::v1::Acknowledgement {
                    by: a.by.clone(),
                    comment: a.comment.clone(),
                    at: Some(time(a.at)),
                }
            }),
        }
    }
}

/// The fingerprint of a condition: the rule, the tenant and the labels that say what it is
/// about. The same condition always has the same fingerprint, so it fires once.
pub fn fingerprint(rule: &str, tenant: &str, labels: &Labels) -> String {
    let mut hasher = Sha256::new();
    hasher.update(rule.as_bytes());
    hasher.update([0]);
    hasher.update(tenant.as_bytes());
    for (key, value) in labels {
        hasher.update([0]);
        hasher.update(key.as_bytes());
        hasher.update([1]);
        hasher.update(value.as_bytes());
    }
    hasher.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_and_tell_conditions_apart() {
        let labels = Labels::from([("phone".to_owned(), "339002538473".to_owned())]);
        let a = fingerprint("qr", "acme", &labels);
        assert_eq!(a, fingerprint("qr", "acme", &labels.clone()));
        assert_eq!(a.len(), 24);
        assert_ne!(a, fingerprint("qr", "globex", &labels));
        assert_ne!(a, fingerprint("qr", "acme", &Labels::new()));
    }
}
