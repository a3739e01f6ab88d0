//! The message index: which message ids of each tenant are in the event log, and when each
//! tenant's webhook last delivered. It is a projection of the log, rebuilt at start by reading
//! the last `KEEPER_LOOKBACK` of it and kept by following it (see [`crate::follow`]); a backfill
//! skips every message it holds, so a message the webhook delivered is never stored again, and
//! fetches the card only of clients it does not hold.
//!
//! Why in memory, rebuilt from the log, rather than a KV entry per message: the log is the
//! truth the index must agree with, and reading it back cannot disagree with it; a KV copy
//! would double every write of the busiest subjects and could miss what was stored while the
//! keeper was down. A message id is 8 bytes (plus the set's overhead, ~50 bytes): a million
//! messages in the lookback cost ~50 MB.

use std::collections::{HashMap, HashSet};

use c2d_proto::events::{Event, Origin, Payload};

use crate::gaps::Gap;

/// What the log says of one tenant.
#[derive(Debug, Default)]
struct Tenant {
    messages: HashSet<i64>,
    /// Clients whose card is in the log (new_client, client_updated).
    clients: HashSet<i64>,
    /// The last webhook delivery (received_at, unix seconds).
    last_delivery: Option<i64>,
}

/// Message ids and last deliveries, per tenant.
#[derive(Debug, Default)]
pub struct Index {
    tenants: HashMap<String, Tenant>,
}

impl Index {
    /// Takes in one event of the log. A webhook delivery that ends a silence longer than
    /// `silence` (seconds) answers the gap it ends.
    pub fn observe(&mut self, event: &Event, silence: i64) -> Option<Gap> {
        let tenant = self.tenant(&event.tenant);
        if let Some(Payload::Inbox(m) | Payload::Outbox(m)) = &event.payload
            && let Some(id) = m.message_id
        {
            tenant.messages.insert(id);
        }
        if let Some(Payload::NewClient(c) | Payload::ClientUpdated(c)) = &event.payload
            && let Some(id) = c.id
        {
            tenant.clients.insert(id);
        }
        if event.origin() != Origin::Unspecified {
            return None;
        }
        let received = event.received_at.as_ref()?.seconds;
        let gap = tenant
            .last_delivery
            .filter(|last| received - last > silence)
            .map(|last| Gap::new(last, received, "silence", None));
        tenant.last_delivery = Some(tenant.last_delivery.map_or(received, |l| l.max(received)));
        gap
    }

    /// Whether this message of the tenant is in the log.
    pub fn contains(&self, tenant: &str, message_id: i64) -> bool {
        self.holds(tenant, |t| &t.messages, message_id)
    }

    /// Records a message the keeper stored itself, before the log shows it.
    pub fn insert(&mut self, tenant: &str, message_id: i64) {
        self.tenant(tenant).messages.insert(message_id);
    }

    /// Whether this client's card is in the log.
    pub fn knows_client(&self, tenant: &str, client_id: i64) -> bool {
        self.holds(tenant, |t| &t.clients, client_id)
    }

    /// Records a client card the keeper stored itself.
    pub fn insert_client(&mut self, tenant: &str, client_id: i64) {
        self.tenant(tenant).clients.insert(client_id);
    }

    fn holds(&self, tenant: &str, set: impl Fn(&Tenant) -> &HashSet<i64>, id: i64) -> bool {
        self.tenants
            .get(tenant)
            .is_some_and(|t| set(t).contains(&id))
    }

    fn tenant(&mut self, tenant: &str) -> &mut Tenant {
        self.tenants.entry(tenant.to_owned()).or_default()
    }

    /// The tenant's last webhook delivery, unix seconds.
    pub fn last_delivery(&self, tenant: &str) -> Option<i64> {
        self.tenants.get(tenant).and_then(|t| t.last_delivery)
    }

    /// Message ids held, all tenants.
    pub fn len(&self) -> usize {
        self.tenants.values().map(|t| t.messages.len()).sum()
    }

    /// Whether no message id is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2d_proto::events::Message;
    use prost_types::Timestamp;

    fn inbox(id: i64, at: i64, origin: Origin) -> Event {
        Event {
            tenant: "acme".into(),
            hook_type: "inbox".into(),
            received_at: Some(Timestamp {
                seconds: at,
                nanos: 0,
            }),
            payload: Some(Payload::Inbox(Message {
                message_id: Some(id),
                ..Message::default()
            })),
            origin: origin.into(),
            ..Event::default()
        }
    }

    #[test]
    fn messages_are_known_and_silences_become_gaps() {
        let mut index = Index::default();
        assert_eq!(index.observe(&inbox(1, 100, Origin::Unspecified), 60), None);
        assert_eq!(index.observe(&inbox(2, 150, Origin::Unspecified), 60), None);
        let gap = index
            .observe(&inbox(3, 400, Origin::Unspecified), 60)
            .unwrap();
        assert_eq!((gap.from, gap.to), (150, 400));
        // A backfilled message is known, and says nothing of the webhook.
        assert_eq!(index.observe(&inbox(4, 9_000, Origin::Backfill), 60), None);
        assert_eq!(index.last_delivery("acme"), Some(400));
        assert!(index.contains("acme", 4) && !index.contains("acme", 5));
        assert!(!index.contains("globex", 1));
        index.insert("acme", 5);
        assert_eq!(index.len(), 5);
        assert!(!index.knows_client("acme", 7));
        index.insert_client("acme", 7);
        assert!(index.knows_client("acme", 7));
    }
}
