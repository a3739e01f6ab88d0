//! Backfilling one stretch of a gap: every message Chat2Desk's API lists for it
//! (`GET /v1/messages`, page by page), turned back into the webhook body it would have been
//! (`hook_type` inbox for `from_client`, outbox for `to_client`; `message_id` for `id`,
//! `event_time` for `created`) and read by c2d-hooks' parser like any delivery, so consumers
//! see the same typed event; the envelope alone says `ORIGIN_BACKFILL`, with an id derived from
//! the message. A message the index holds (the webhook delivered it, or a backfill did) is
//! skipped; the deterministic id makes a backfill repeated within JetStream's duplicate window
//! a duplicate even before the index knows it. A message's client whose card the log does not
//! hold (its new_client delivery may be lost too) is read from `GET /v1/clients/{id}` and
//! stored first, as a `client_updated`.

use std::sync::Mutex;

use c2d_chat2desk::{ApiError, Chat2DeskApi, MAX_PAGE, MessageQuery};
use c2d_proto::events::Payload;
use serde_json::Value as Json;

use crate::calls::{Retries, retrying};
use crate::index::Index;
use crate::log::{AppendError, EventLog};
use crate::metrics::Metrics;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Messages the API listed.
    pub listed: u64,
    /// Stored now.
    pub stored: u64,
    /// In the log already (the index knew them, or JetStream recognised the id).
    pub skipped: u64,
    /// Listed but not webhook messages (system notes, comments...): no event to make.
    pub other: u64,
    /// Cards of clients the log did not know, stored as client_updated before their message.
    pub clients: u64,
}

/// Why a pass stopped; what it stored until then stays stored, and the next check repeats
/// the stretch (nothing is stored twice).
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("listing messages failed: {0}")]
    Api(#[from] ApiError),
    #[error(transparent)]
    Append(#[from] AppendError),
}

/// What a pass needs.
pub struct Backfiller<'a> {
    /// The tenant's account.
    pub api: &'a Chat2DeskApi,
    /// Where the events go.
    pub log: &'a EventLog,
    /// What is stored already.
    pub index: &'a Mutex<Index>,
    /// What is counted.
    pub metrics: &'a Metrics,
    /// How API calls are retried.
    pub retries: Retries,
}

impl Backfiller<'_> {
    /// Backfills `tenant`'s messages created from `from` to `until` (unix seconds, inclusive).
    pub async fn pass(&self, tenant: &str, from: i64, until: i64) -> Result<Pass, BackfillError> {
        let mut pass = Pass::default();
        let mut offset = 0;
        loop {
            let query = MessageQuery {
                start_date: Some(rfc3339(from)),
                finish_date: Some(rfc3339(until)),
                limit: Some(MAX_PAGE),
                offset: Some(offset),
                ..MessageQuery::default()
            };
            let page = retrying(
                self.retries,
                self.metrics,
                tenant,
                "listing messages",
                || self.api.messages(&query),
            )
            .await?;
            for message in &page.data {
                pass.listed += 1;
                self.one(tenant, message, (from, until), &mut pass).await?;
            }
            match page.next_offset() {
                Some(next) => offset = next,
                None => break,
            }
        }
        self.metrics.backfill(tenant, pass.stored, pass.skipped);
        Ok(pass)
    }

    async fn one(
        &self,
        tenant: &str,
        message: &Json,
        (from, until): (i64, i64),
        pass: &mut Pass,
    ) -> Result<(), BackfillError> {
        let Some(body) = webhook_body(message) else {
            pass.other += 1;
            return Ok(());
        };
        let event = match c2d_hooks::parse_backfilled(tenant, body.to_string().into(), now()) {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%tenant, %error, "a listed message cannot be backfilled; skipped");
                pass.other += 1;
                return Ok(());
            }
        };
        let Some(Payload::Inbox(m) | Payload::Outbox(m)) = &event.payload else {
            pass.other += 1;
            return Ok(());
        };
        let Some(message_id) = m.message_id else {
            pass.other += 1;
            return Ok(());
        };
        // Only what the window holds: an API that reads the dates coarser (by day, in the
        // account's time zone) lists more, and a message after the window may still come by
        // webhook. One without a creation time cannot be placed, so it is not stored either.
        let created = event.event_time.as_ref().map(|t| t.seconds);
        if !created.is_some_and(|created| (from..=until).contains(&created)) {
            tracing::debug!(%tenant, message_id, ?created, from, until, "listed outside the window asked for; left for its own window");
            pass.other += 1;
            return Ok(());
        }
        if lock(self.index).contains(tenant, message_id) {
            pass.skipped += 1;
            return Ok(());
        }
        if let Some(client_id) = m.client.as_ref().and_then(|c| c.id).or(m.client_id)
            && !lock(self.index).knows_client(tenant, client_id)
        {
            pass.clients += u64::from(self.client(tenant, client_id).await?);
        }
        let duplicate = self.log.append(&event).await?;
        lock(self.index).insert(tenant, message_id);
        if duplicate {
            pass.skipped += 1;
        } else {
            pass.stored += 1;
        }
        Ok(())
    }

    /// Stores the card of a client the log does not know (its new_client delivery may be what
    /// the gap lost) as a `client_updated`: the client as it is now, which a projection applies
    /// whether or not it knew the client, and which says nothing of when it was new. True when
    /// stored now.
    async fn client(&self, tenant: &str, client_id: i64) -> Result<bool, BackfillError> {
        let card = retrying(
            self.retries,
            self.metrics,
            tenant,
            "reading a client",
            || self.api.client(client_id),
        )
        .await?;
        let Some(serde_json::Value::Object(mut card)) = card else {
            // No such client (404) or no card to store: not asked for again.
            lock(self.index).insert_client(tenant, client_id);
            return Ok(false);
        };
        card.insert("hook_type".into(), Json::from("client_updated"));
        card.insert("id".into(), Json::from(client_id));
        let body = Json::Object(card).to_string();
        match c2d_hooks::parse_backfilled(tenant, body.into(), now()) {
            Ok(event) => {
                let duplicate = self.log.append(&event).await?;
                // Known once stored: a failed append asks for the card again next pass.
                lock(self.index).insert_client(tenant, client_id);
                Ok(!duplicate)
            }
            Err(error) => {
                lock(self.index).insert_client(tenant, client_id);
                tracing::warn!(%tenant, client_id, %error, "a client's card cannot be backfilled; skipped");
                Ok(false)
            }
        }
    }
}

/// The webhook body a listed message would have come as, or None for a message no webhook
/// sends (Chat2Desk lists system notes and comments too).
pub fn webhook_body(message: &Json) -> Option<Json> {
    let fields = message.as_object()?;
    let hook_type = match fields.get("type").and_then(Json::as_str)? {
        "from_client" => "inbox",
        "to_client" => "outbox",
        _ => return None,
    };
    let mut body = serde_json::Map::new();
    body.insert("hook_type".into(), Json::from(hook_type));
    for (name, value) in fields {
        let name = match name.as_str() {
            "id" => "message_id",
            "created" => "event_time",
            "hook_type" => continue,
            other => other,
        };
        body.insert(name.to_owned(), value.clone());
    }
    Some(Json::Object(body))
}

/// The index's lock; a panic elsewhere does not stop the keeper.
pub fn lock(index: &Mutex<Index>) -> std::sync::MutexGuard<'_, Index> {
    index
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Now, as an event's `received_at`.
pub fn now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(std::time::SystemTime::now())
}

/// Unix seconds as the API's date filters take them.
pub fn rfc3339(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| seconds.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_listed_message_becomes_the_webhook_body_it_would_have_been() {
        let listed = json!({"id": 8205, "type": "from_client", "text": "oi", "client_id": 7,
                            "channel_id": 3, "created": "2026-12-06T20:00:00Z"});
        let body = webhook_body(&listed).unwrap();
        assert_eq!(body["hook_type"], "inbox");
        assert_eq!(body["message_id"], 8205);
        assert_eq!(body["event_time"], "2026-12-06T20:00:00Z");
        let event = c2d_hooks::parse_backfilled("acme", body.to_string().into(), now()).unwrap();
        let Some(Payload::Inbox(message)) = event.payload else {
            panic!("an inbox");
        };
        assert_eq!(
            (message.message_id, message.client_id),
            (Some(8205), Some(7))
        );
        let outbox = webhook_body(&json!({"id": "9", "type": "to_client"})).unwrap();
        assert_eq!(outbox["hook_type"], "outbox");
        assert_eq!(webhook_body(&json!({"id": 1, "type": "system"})), None);
        assert_eq!(webhook_body(&json!([1])), None);
        assert_eq!(rfc3339(1_765_051_200), "2025-12-06T20:00:00Z");
    }
}
