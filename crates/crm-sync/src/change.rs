//! A client change: the client's CRM-visible state, queued for every connector when it
//! differs from the state queued last.
//!
//! Connectors receive whole snapshots, not diffs: a CRM that missed one change (or received
//! them late) is right again after the next, and a retried change can never undo a newer
//! one. A change is queued only when something a CRM shows changed (profile, phones,
//! messengers, tags, open requests and their operators, first contact); a message alone moves
//! `last_contact_at`, which is sent with the next change rather than being one, so a busy chat
//! does not become a CRM call per message.

use serde_json::{Value as Json, json};
use sha2::{Digest as _, Sha256};
use sqlx::Transaction;
use sqlx::any::Any;

use crate::clock;
use crate::directory::{self, ClientView};
use crate::projection::ClientKey;
use crate::store::StoreError;

/// What sqlx's `Any` driver calls PostgreSQL.
const POSTGRES: &str = "PostgreSQL";

/// The client's state as connectors receive it (without `version`).
pub fn client_state(view: &ClientView) -> Json {
    let time = |at: Option<i64>| at.map(clock::rfc3339);
    let open_requests: Vec<Json> = view
        .open_requests
        .iter()
        .map(|r| {
            json!({
                "request_id": r.request_id,
                "operator_id": r.operator_id,
                "opened_at": time(r.opened_at),
                "transport": r.transport,
                "channel_id": r.channel_id,
            })
        })
        .collect();
    let channels: Vec<Json> = view
        .channels
        .iter()
        .map(|(transport, channel_id)| json!({"transport": transport, "channel_id": channel_id}))
        .collect();
    json!({
        "tenant": view.key.tenant,
        "client_id": view.key.client_id,
        "name": view.name,
        "phone": view.phone,
        "client_phone": view.client_phone,
        "avatar": view.avatar,
        "assigned_name": view.assigned_name,
        "comment": view.comment,
        "extra_comment_1": view.extra_comment_1,
        "extra_comment_2": view.extra_comment_2,
        "extra_comment_3": view.extra_comment_3,
        "external_id": view.external_id,
        "region_id": view.region_id,
        "country_id": view.country_id,
        "custom_fields": view.custom_fields,
        "channels": channels,
        "transports": view.transports(),
        "tags": view.tags,
        "open_requests": open_requests,
        "current_operator_id": view.current_operator_id,
        "first_contact_at": time(view.first_contact_at),
        "last_contact_at": time(view.last_contact_at),
    })
}

/// The fingerprint of what a CRM shows: the state without the fields that do not make a change.
fn fingerprint(state: &Json) -> String {
    let mut shown = state.clone();
    if let Some(object) = shown.as_object_mut() {
        object.remove("last_contact_at");
    }
    let digest = Sha256::digest(shown.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// After an event changed `client`: queues its new state for the connectors when what a CRM
/// shows changed (or always, with `force`). Returns how many changes were queued.
pub async fn queue_if_changed(
    transaction: &mut Transaction<'static, Any>,
    client: &ClientKey,
    connectors: &[String],
    force: bool,
) -> Result<u64, StoreError> {
    if connectors.is_empty() {
        return Ok(0);
    }
    // The client's row is locked before its state is read, so that the changes of one client
    // are queued one at a time even by several replicas sharing the directory (the owner of
    // its partition applying an event, another answering ResyncClient): each reads the state
    // the one before it committed and takes the next version. Unlocked, two took the same
    // version, and the second's state was dropped as a repeat of the first. SQLite has one
    // writer at a time, and no FOR UPDATE.
    let lock = if transaction.backend_name() == POSTGRES {
        " FOR UPDATE"
    } else {
        ""
    };
    let row: Option<(Option<String>, i64)> = sqlx::query_as(&format!(
        "SELECT crm_hash, crm_version FROM clients WHERE tenant = $1 AND client_id = $2{lock}"
    ))
    .bind(&client.tenant)
    .bind(client.client_id)
    .fetch_optional(&mut **transaction)
    .await?;
    let Some((previous, version)) = row else {
        return Ok(0);
    };
    let Some(view) = directory::read(transaction, client).await? else {
        return Ok(0);
    };
    let mut state = client_state(&view);
    let hash = fingerprint(&state);
    if !force && previous.as_deref() == Some(hash.as_str()) {
        return Ok(0);
    }
    let version = version + 1;
    sqlx::query(
        "UPDATE clients SET crm_hash = $1, crm_version = $2 WHERE tenant = $3 AND client_id = $4",
    )
    .bind(&hash)
    .bind(version)
    .bind(&client.tenant)
    .bind(client.client_id)
    .execute(&mut **transaction)
    .await?;
    state["version"] = json!(version);
    let payload = state.to_string();
    let key = idempotency_key(client, version, &hash);
    let now = clock::now_micros();
    for connector in connectors {
        sqlx::query(
            "INSERT INTO crm_outbox (connector, tenant, client_id, idempotency_key, payload, state,
                 attempts, queued_at, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)
             ON CONFLICT (connector, idempotency_key) DO NOTHING",
        )
        .bind(connector)
        .bind(&client.tenant)
        .bind(client.client_id)
        .bind(&key)
        .bind(&payload)
        .bind(now)
        .execute(&mut **transaction)
        .await?;
    }
    Ok(connectors.len() as u64)
}

/// How many hex digits of the state's fingerprint a key carries.
const KEY_STATE_DIGITS: usize = 16;

/// The key a CRM can deduplicate a change by: the same for every retry of the change, new for
/// every change. The version alone is not enough: a directory rebuilt from the log counts
/// versions from 1 again, and where its history differs from the old one (resyncs the log does
/// not hold, events the log no longer holds) a version would come again with another state,
/// which a CRM deduplicating by key would drop, and stay a change behind. With the state's
/// fingerprint in the key, a rebuild repeats exactly the keys of the changes it repeats.
pub fn idempotency_key(client: &ClientKey, version: i64, fingerprint: &str) -> String {
    let state = fingerprint.get(..KEY_STATE_DIGITS).unwrap_or(fingerprint);
    format!(
        "c2d:{}:{}:{}:{state}",
        client.tenant, client.client_id, version
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_the_version_and_the_state() {
        let client = ClientKey {
            tenant: "acme".into(),
            client_id: 501,
        };
        let ana = fingerprint(&json!({"name": "Ana", "last_contact_at": "2026-01-01T00:00:00Z"}));
        let ana_later =
            fingerprint(&json!({"name": "Ana", "last_contact_at": "2026-02-01T00:00:00Z"}));
        let ana_souza = fingerprint(&json!({"name": "Ana Souza"}));
        let key = idempotency_key(&client, 2, &ana);
        assert_eq!(key, format!("c2d:acme:501:2:{}", &ana[..KEY_STATE_DIGITS]));
        // A retry, or a rebuild repeating the same change: the same key.
        assert_eq!(idempotency_key(&client, 2, &ana_later), key);
        // A rebuild whose second change is another state: another key.
        assert_ne!(idempotency_key(&client, 2, &ana_souza), key);
    }
}
