//! Deterministic event ids, the base of exactly-once storage.
//!
//! Chat2Desk retries a failed delivery after 10 s, 5 min and 2 h with the same body. The id is
//! a hash of the tenant and the body, so each retry carries the id of the first try; the
//! gateway sends it as `Nats-Msg-Id`, and JetStream's duplicate window (at least 3 h) drops the
//! copies. The body is hashed in a canonical form (object keys sorted, no blanks), so a retry
//! that re-encodes the same JSON differently is still the same event.

use sha2::{Digest, Sha256};

use crate::body::Json;

/// Length of an id in hex characters: 128 bits, far beyond any collision risk in a stream.
pub const EVENT_ID_LEN: usize = 32;

/// The id of a delivery whose body is `body`, built rather than received (the simulator's):
/// the id the gateway gives the same body.
pub fn event_id(tenant: &str, body: &serde_json::Value) -> String {
    delivery_id(tenant, &Json::from(body))
}

/// The id of a decoded delivery: tenant and canonical JSON body.
///
/// The canonical form is compact JSON with object keys sorted, which is how a body's
/// [`Json`] writes itself. These bytes are hashed into ids that JetStream deduplicates by for
/// three hours and more, so they must never change between versions: a retry that reaches an
/// upgraded gateway has to get the id its first try got (`ids_never_change` pins them).
/// Strings and scalars are written by serde_json's compact serializer, which has one form per
/// value (one escape per character).
pub(crate) fn delivery_id(tenant: &str, body: &Json<'_>) -> String {
    let mut canonical = Vec::with_capacity(1024);
    // Writing into a Vec cannot fail, and a body's JSON always serializes.
    let _ = serde_json::to_writer(&mut canonical, body);
    digest(b"chat2desk-event-v1", tenant, &canonical)
}

/// The id of a message (or client card) c2d-keeper read from Chat2Desk's API instead of a
/// webhook: tenant, hook type and message id (client id), so that listing the same message again (a backfill repeated, two
/// overlapping gaps) gives the same id and JetStream's duplicate window drops the copy. Its own
/// domain keeps it apart from every webhook id, which stays what it always was.
pub fn backfill_event_id(tenant: &str, hook_type: &str, id: i64) -> String {
    let content = format!("{hook_type}\0{id}");
    digest(b"chat2desk-backfill-v1", tenant, content.as_bytes())
}

/// The id of a delivery that could not be decoded: tenant and raw bytes.
pub fn dead_letter_id(tenant: &str, raw: &[u8]) -> String {
    digest(b"chat2desk-dlq-v1", tenant, raw)
}

fn digest(domain: &[u8], tenant: &str, content: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(domain);
    hasher.update([0]);
    hasher.update(tenant.as_bytes());
    hasher.update([0]);
    hasher.update(content);
    let hash = hasher.finalize();
    let mut id = String::with_capacity(EVENT_ID_LEN);
    for byte in &hash[..EVENT_ID_LEN / 2] {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    id
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_same_delivery_gets_the_same_id() {
        let body = json!({"hook_type": "inbox", "message_id": 1});
        assert_eq!(event_id("acme", &body), event_id("acme", &body.clone()));
        assert_eq!(event_id("acme", &body).len(), EVENT_ID_LEN);
    }

    #[test]
    fn key_order_and_blanks_do_not_change_the_id() {
        let a: Json<'_> = serde_json::from_str(r#"{"a":1,"b":{"y":[1,2],"x":"é"}}"#).unwrap();
        let b: Json<'_> =
            serde_json::from_str("{ \"b\": {\"x\": \"\\u00e9\", \"y\": [1, 2]},\n \"a\": 1 }")
                .unwrap();
        assert_eq!(delivery_id("acme", &a), delivery_id("acme", &b));
    }

    #[test]
    fn tenant_and_content_change_the_id() {
        let body = json!({"message_id": 1});
        assert_ne!(event_id("acme", &body), event_id("globex", &body));
        assert_ne!(
            event_id("acme", &body),
            event_id("acme", &json!({"message_id": 2}))
        );
        assert_ne!(dead_letter_id("acme", b"x"), dead_letter_id("acme", b"y"));
    }

    #[test]
    fn ids_never_change() {
        // Computed by the first version of this module: ids deduplicate retries across
        // upgrades, so any change here is a bug.
        for (body, id) in [
            (
                r#"{"hook_type":"inbox","message_id":1}"#,
                "b3035098d65d5149dd439c338b9436e3",
            ),
            (
                r#"{"text":"Olá \"mundo\"\n\t\u0001 / <b>é</b> 😀","z":[1,-2,3.5,1e300,null,true,false,{"b":2,"a":1}],"a":{"y":"x","x":18446744073709551615}}"#,
                "be7ba515ebbb3ff670d5b3476830b2da",
            ),
            (
                r#"{"photo":"data:image/png;base64,iVBORw0KGgo=","hook_type":"new_qr_code","empty":{},"list":[]}"#,
                "4842f2b4f469a3e0990af87f4dd5ed20",
            ),
        ] {
            // As the gateway reads a body, and as the simulator builds one.
            let read: Json<'_> = serde_json::from_str(body).unwrap();
            assert_eq!(delivery_id("acme", &read), id, "{body}");
            let built: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(event_id("acme", &built), id, "{body}");
        }
    }

    #[test]
    fn canonical_form_is_sorted_and_compact() {
        let value = json!({"b": [true, null], "a": "x"});
        let out = serde_json::to_string(&Json::from(&value)).unwrap();
        assert_eq!(out, r#"{"a":"x","b":[true,null]}"#);
    }
}
