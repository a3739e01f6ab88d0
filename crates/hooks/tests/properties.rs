//! The parser against anything a network can deliver: it must answer (an event or a reason)
//! for any bytes and any JSON, never panic, and never loop. Real deliveries are loose (see
//! EVENTS.md), hostile ones are worse.

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Value as Json, json};

const FIELDS: &[&str] = &[
    "message_id",
    "type",
    "text",
    "transport",
    "client_id",
    "operator_id",
    "dialog_id",
    "channel_id",
    "request_id",
    "client",
    "is_new_request",
    "is_new_client",
    "event_time",
    "extra_data",
    "attachments",
    "id",
    "name",
    "phone",
    "channels",
    "custom_fields",
    "tags",
    "gateway_status",
    "error",
    "created",
    "updated",
    "qrcode_data",
    "qrcode_image",
    "hint_id",
    "current_operator_id",
    "last_operator_id",
    "group_id",
    "all_client_channels",
];
const HOOK_TYPES: &[&str] = &[
    "inbox",
    "outbox",
    "outbox_status",
    "new_client",
    "add_tag_to_client",
    "add_tag_to_request",
    "delete_tag_from_client",
    "delete_tag_to_client",
    "delete_tag_from_request",
    "client_updated",
    "close_dialog",
    "close_request",
    "dialog_transferred",
    "new_qr_code",
    "ai_hints_requested",
    "something_new",
    "",
];

fn any_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Json::from),
        "[0-9]{0,20}".prop_map(Json::from),
        "\\PC{0,40}".prop_map(Json::from),
        Just(json!("2019-07-28T23:01:40Z")),
        Just(json!("2019-07-28 23:01:40+03:00")),
        Just(json!([])),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Json::from),
            proptest::collection::btree_map(
                proptest::sample::select(FIELDS).prop_map(str::to_owned),
                inner,
                0..8
            )
            .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

fn delivery() -> impl Strategy<Value = Json> {
    (
        proptest::sample::select(HOOK_TYPES),
        proptest::collection::btree_map(proptest::sample::select(FIELDS), any_json(), 0..16),
    )
        .prop_map(|(hook_type, fields)| {
            let mut object: serde_json::Map<String, Json> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            if !hook_type.is_empty() {
                object.insert("hook_type".into(), json!(hook_type));
            }
            Json::Object(object)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn any_bytes_get_an_answer(bytes in proptest::collection::vec(any::<u8>(), 0..2_048)) {
        let _ = c2d_hooks::parse_delivery("acme", Bytes::from(bytes), prost_types::Timestamp::default());
    }

    #[test]
    fn any_delivery_shaped_json_gets_an_event_or_a_reason(body in delivery()) {
        let text = body.to_string();
        match c2d_hooks::parse_delivery("acme", Bytes::from(text.clone()), prost_types::Timestamp::default()) {
            // An object is always an event: unknown or mistyped fields become warnings.
            Ok(event) => {
                prop_assert_eq!(event.tenant, "acme");
                prop_assert_eq!(event.raw.as_ref(), text.as_bytes());
                // The same bytes again (Chat2Desk's retry) get the same id.
                let again = c2d_hooks::parse_delivery("acme", Bytes::from(text), prost_types::Timestamp::default());
                prop_assert_eq!(event.event_id, again.map(|e| e.event_id).unwrap_or_default());
            }
            Err(reason) => prop_assert!(!reason.to_string().is_empty()),
        }
    }
}
