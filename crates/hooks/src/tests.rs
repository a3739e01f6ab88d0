//! Every fixture of `fixtures/chat2desk/` and every quirk of EVENTS.md, read field by field.

use super::*;
use c2d_proto::events::{HintChosen, HintsRequest, Tag};
use prost_types::value::Kind;

const RECEIVED: Timestamp = Timestamp {
    seconds: 1_700_000_000,
    nanos: 0,
};
/// 2019-07-28T23:01:40Z, the `event_time` of every documented example.
const DOCS_TIME: i64 = 1_564_354_900;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../../fixtures/chat2desk/", $name, ".json"))
    };
}

fn parse(body: &str) -> Event {
    parse_delivery("acme", Bytes::copy_from_slice(body.as_bytes()), RECEIVED).expect("decodes")
}

fn parse_json(body: serde_json::Value) -> Event {
    parse(&body.to_string())
}

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

#[test]
fn inbox() {
    let event = parse(fixture!("inbox"));
    assert_eq!(event.hook_type, "inbox");
    assert_eq!(event.tenant, "acme");
    assert_eq!(event.event_time, at(DOCS_TIME));
    assert_eq!(event.received_at, Some(RECEIVED));
    assert_eq!(event.raw, fixture!("inbox").as_bytes());
    assert!(event.warnings.is_empty(), "{:?}", event.warnings);
    let Some(Payload::Inbox(m)) = event.payload else {
        panic!("{:?}", event.payload)
    };
    assert_eq!(m.message_id, Some(106_773_169));
    assert_eq!(m.r#type.as_deref(), Some("from_client"));
    assert_eq!(m.text.as_deref(), Some("Text"));
    assert_eq!(m.transport.as_deref(), Some("telegram"));
    assert_eq!(m.client_id, Some(100));
    assert_eq!((m.operator_id, m.dialog_id), (None, None));
    assert_eq!(m.channel_id, Some(17));
    assert_eq!(
        (m.photo, m.coordinates, m.audio, m.pdf),
        (None, None, None, None)
    );
    let client = m.client.expect("client");
    assert_eq!(client.id, Some(17_340_089));
    assert_eq!(client.phone.as_deref(), Some("[tg] 807892"));
    assert_eq!(client.name.as_deref(), Some("Peter"));
    assert_eq!(
        (
            client.client_phone,
            client.assigned_name,
            client.external_id
        ),
        (None, None, None)
    );
    assert_eq!(m.request_id, Some(8_725_057));
    assert!(m.attachments.is_empty());
    assert_eq!(m.is_new_request, Some(true));
    assert_eq!(m.is_new_client, None);
    assert_eq!(m.extra_data, None, "PHP's [] is no extra data");
}

#[test]
fn outbox() {
    let event = parse(fixture!("outbox"));
    assert_eq!(event.hook_type, "outbox");
    let Some(Payload::Outbox(m)) = event.payload else {
        panic!()
    };
    assert_eq!(m.message_id, Some(106_773_577));
    assert_eq!(m.r#type.as_deref(), Some("to_client"));
    assert_eq!(m.text.as_deref(), Some("Bc["));
    assert_eq!(m.client_id, Some(17));
    assert_eq!(m.operator_id, Some(41_164));
    assert_eq!(m.dialog_id, Some(4_324_035));
    assert_eq!(m.channel_id, Some(17_404));
    assert_eq!(m.request_id, Some(8_725_095));
    assert_eq!((m.is_new_request, m.is_new_client), (None, None));
}

#[test]
fn outbox_status() {
    let event = parse(fixture!("outbox_status"));
    assert_eq!(event.hook_type, "outbox_status");
    let Some(Payload::OutboxStatus(s)) = event.payload else {
        panic!()
    };
    assert_eq!(s.id, Some(106_773_577));
    assert_eq!(s.external_id.as_deref(), Some("41164"));
    assert_eq!(s.dialog_id, Some(4_324_035));
    assert_eq!(s.client_id, Some(17));
    assert_eq!(s.channel_id, Some(17_404));
    assert_eq!(s.created, at(DOCS_TIME));
    assert_eq!(s.gateway_status.as_deref(), Some("failed"));
    assert_eq!(s.error.as_deref(), Some("timeout error"));
}

#[test]
fn new_client_and_client_updated() {
    for (fixture, hook) in [
        (fixture!("new_client"), "new_client"),
        (fixture!("client_updated"), "client_updated"),
    ] {
        let event = parse(fixture);
        assert_eq!(event.hook_type, hook);
        let client = match event.payload {
            Some(Payload::NewClient(c)) if hook == "new_client" => c,
            Some(Payload::ClientUpdated(c)) if hook == "client_updated" => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(client.id, Some(18_360_561));
        assert_eq!(client.phone.as_deref(), Some("[tg] 1938691"));
        assert_eq!(client.name.as_deref(), Some("Peter"));
        assert!(
            client
                .avatar
                .unwrap()
                .starts_with("https://storage.chat2desk.com/clients/avatars/")
        );
        assert_eq!(
            (client.assigned_name, client.comment, client.client_phone),
            (None, None, None)
        );
        assert_eq!(client.channels.len(), 1);
        assert_eq!(client.channels[0].id, Some(17_404));
        assert_eq!(client.channels[0].transports, ["telegram"]);
        assert_eq!((client.region_id, client.country_id), (None, None));
        assert_eq!(client.custom_fields, None);
    }
}

fn the_test_tag(all_client_channels: Option<i64>) -> Tag {
    Tag {
        id: Some(4835),
        name: Some("TestTag".into()),
        description: Some("This is test tag".into()),
        group_id: Some(1190),
        group_name: Some("Tag test group".into()),
        client_id: Some(17_340_089),
        all_client_channels,
    }
}

#[test]
fn the_four_tag_hooks() {
    let event = parse(fixture!("add_tag_to_client"));
    assert_eq!(event.hook_type, "add_tag_to_client");
    assert_eq!(
        event.payload,
        Some(Payload::AddTagToClient(the_test_tag(Some(21_288))))
    );

    let event = parse(fixture!("add_tag_to_request"));
    assert_eq!(event.hook_type, "add_tag_to_request");
    assert_eq!(
        event.payload,
        Some(Payload::AddTagToRequest(the_test_tag(None)))
    );

    let event = parse(fixture!("delete_tag_from_request"));
    assert_eq!(event.hook_type, "delete_tag_from_request");
    assert_eq!(
        event.payload,
        Some(Payload::DeleteTagFromRequest(the_test_tag(None)))
    );
}

#[test]
fn delete_tag_to_client_alias_is_read_as_delete_tag_from_client() {
    let event = parse(fixture!("delete_tag_from_client"));
    assert!(fixture!("delete_tag_from_client").contains("delete_tag_to_client"));
    assert_eq!(event.hook_type, "delete_tag_from_client");
    assert_eq!(
        event.subject(),
        "chat2desk.events.acme.delete_tag_from_client"
    );
    assert_eq!(
        event.payload,
        Some(Payload::DeleteTagFromClient(the_test_tag(None)))
    );
}

#[test]
fn close_dialog_and_close_request() {
    let event = parse(fixture!("close_dialog"));
    assert_eq!(event.hook_type, "close_dialog");
    let Some(Payload::CloseDialog(d)) = event.payload else {
        panic!()
    };
    assert_eq!(d.dialog_id, Some(4_324_035));
    assert_eq!(d.request_id, Some(8_725_057));
    assert_eq!(d.created, at(1_540_282_584));
    assert_eq!(d.updated, at(1_540_464_524));
    assert_eq!(d.client_id, Some(1000));
    assert_eq!(d.channel_id, Some(17_404));
    assert_eq!(d.operator_id, Some(41_164));
    assert_eq!(d.transport.as_deref(), Some("telegram"));
    assert_eq!(
        (d.current_operator_id, d.last_operator_id, d.scenario_id),
        (None, None, None)
    );

    let event = parse(fixture!("close_request"));
    assert_eq!(event.hook_type, "close_request");
    let Some(Payload::CloseRequest(d)) = event.payload else {
        panic!()
    };
    assert_eq!(d.dialog_id, Some(3_951_761));
    assert_eq!(d.request_id, Some(8_086_095));
    assert_eq!(d.created, at(1_550_671_015));
    assert_eq!(d.operator_id, Some(39_538));
}

#[test]
fn dialog_transferred() {
    let event = parse(fixture!("dialog_transferred"));
    assert_eq!(event.hook_type, "dialog_transferred");
    let Some(Payload::DialogTransferred(d)) = event.payload else {
        panic!()
    };
    assert_eq!(d.current_operator_id, Some(39_538));
    assert_eq!(d.last_operator_id, Some(8236));
    assert_eq!(d.scenario_id, Some(124));
    assert_eq!(d.client_id, Some(27_129_636));
}

#[test]
fn new_qr_code() {
    let event = parse(fixture!("new_qr_code"));
    assert_eq!(event.hook_type, "new_qr_code");
    let Some(Payload::NewQrCode(q)) = event.payload else {
        panic!()
    };
    assert!(q.qrcode_data.unwrap().starts_with("1@OxrhCyoevcoool+z5GK"));
    assert!(
        q.qrcode_image
            .unwrap()
            .starts_with("data:image/png;base64,iVBORw0KGgo")
    );
    assert_eq!(q.phone.as_deref(), Some("339002538473"));
    assert_eq!(q.device_owner.as_deref(), Some("service"));
}

#[test]
fn ai_hints_requested_both_forms() {
    let event = parse(fixture!("ai_hints_requested"));
    assert_eq!(event.hook_type, "ai_hints_requested");
    assert_eq!(
        event.payload,
        Some(Payload::AiHintsRequested(HintsRequest {
            client_id: Some(11_910),
            operator_id: Some(1),
            dialog_id: Some(331),
            request_id: Some(2343),
            channel_id: Some(1),
            message_id: Some(8205),
        }))
    );

    let event = parse(fixture!("ai_hints_requested.feedback"));
    assert_eq!(event.hook_type, "ai_hints_requested");
    assert_eq!(
        event.payload,
        Some(Payload::AiHintChosen(HintChosen {
            client_id: Some(11_910),
            message_id: Some(8205),
            hint_id: Some(2),
        }))
    );
}

#[test]
fn a_hints_request_without_hook_type_is_recognised() {
    let event = parse_json(serde_json::json!({
        "client_id": 11910, "operator_id": 1, "dialog_id": 331, "request_id": 2343,
        "channel_id": 1, "message_id": 8205, "event_time": "2019-07-28T23:01:40Z"
    }));
    assert_eq!(event.hook_type, "ai_hints_requested");
    assert!(matches!(
        event.payload,
        Some(Payload::AiHintsRequested(HintsRequest {
            message_id: Some(8205),
            ..
        }))
    ));

    let event =
        parse_json(serde_json::json!({"client_id": 11910, "message_id": 8205, "hint_id": 2}));
    assert_eq!(event.hook_type, "ai_hints_requested");
    assert!(matches!(
        event.payload,
        Some(Payload::AiHintChosen(HintChosen {
            hint_id: Some(2),
            ..
        }))
    ));
}

#[test]
fn string_ids_and_php_booleans() {
    let event = parse_json(serde_json::json!({
        "hook_type": "inbox", "message_id": "106773169", "client_id": " 100 ",
        "operator_id": "", "dialog_id": null, "channel_id": "17",
        "is_new_request": "1", "is_new_client": "", "text": "oi"
    }));
    let Some(Payload::Inbox(m)) = event.payload else {
        panic!()
    };
    assert_eq!(
        (m.message_id, m.client_id, m.channel_id),
        (Some(106_773_169), Some(100), Some(17))
    );
    assert_eq!((m.operator_id, m.dialog_id), (None, None));
    assert_eq!((m.is_new_request, m.is_new_client), (Some(true), None));

    for (raw, flag) in [
        ("true", Some(true)),
        ("false", Some(false)),
        ("0", Some(false)),
        ("\"0\"", Some(false)),
    ] {
        let event = parse(&format!(r#"{{"hook_type":"inbox","is_new_client":{raw}}}"#));
        let Some(Payload::Inbox(m)) = event.payload else {
            panic!()
        };
        assert_eq!(m.is_new_client, flag, "{raw}");
    }
}

#[test]
fn php_empty_arrays_and_lone_objects() {
    let event = parse_json(serde_json::json!({
        "hook_type": "new_client", "id": 5, "custom_fields": [], "channels": {"id": 9, "transports": "whatsapp"}
    }));
    let Some(Payload::NewClient(c)) = event.payload else {
        panic!()
    };
    assert_eq!(c.custom_fields, None);
    assert_eq!(c.channels.len(), 1);
    assert_eq!(c.channels[0].id, Some(9));
    assert_eq!(c.channels[0].transports, ["whatsapp"]);

    let event = parse_json(
        serde_json::json!({"hook_type": "inbox", "client": [], "extra_data": {"utm": "ads"}}),
    );
    let Some(Payload::Inbox(m)) = event.payload else {
        panic!()
    };
    assert_eq!(m.client, None);
    let extra = m.extra_data.expect("extra_data");
    assert_eq!(
        extra.fields["utm"].kind,
        Some(Kind::StringValue("ads".into()))
    );
    assert!(
        event.warnings.iter().all(|w| !w.starts_with("client")),
        "{:?}",
        event.warnings
    );
}

#[test]
fn custom_fields_keep_their_values() {
    let event = parse_json(serde_json::json!({
        "hook_type": "client_updated", "id": "18360561", "custom_fields": {"1": "VIP", "cpf": "123"}
    }));
    let Some(Payload::ClientUpdated(c)) = event.payload else {
        panic!()
    };
    assert_eq!(c.id, Some(18_360_561));
    let fields = c.custom_fields.expect("custom_fields").fields;
    assert_eq!(fields["1"].kind, Some(Kind::StringValue("VIP".into())));
    assert_eq!(fields["cpf"].kind, Some(Kind::StringValue("123".into())));
}

#[test]
fn times_in_every_form() {
    for (time, seconds) in [
        (r#""2019-07-28T23:01:40Z""#, DOCS_TIME),
        (r#""2019-07-29T02:01:40+03:00""#, DOCS_TIME),
        (r#""2019-07-28 23:01:40""#, DOCS_TIME),
        (r#""2019- 07-28T23:01:40Z""#, DOCS_TIME),
        ("1564354900", DOCS_TIME),
        (r#""1564354900""#, DOCS_TIME),
    ] {
        let event = parse(&format!(
            r#"{{"hook_type":"close_dialog","event_time":{time},"created":{time}}}"#
        ));
        assert_eq!(event.event_time, at(seconds), "event_time {time}");
        let Some(Payload::CloseDialog(d)) = event.payload else {
            panic!()
        };
        assert_eq!(d.created, at(seconds), "created {time}");
        assert!(event.warnings.is_empty(), "{time}: {:?}", event.warnings);
    }
}

#[test]
fn a_missing_or_bad_event_time_falls_back_to_received_at_with_a_warning() {
    let event = parse(r#"{"hook_type":"inbox"}"#);
    assert_eq!(event.event_time, Some(RECEIVED));
    assert_eq!(event.warnings, ["event_time: absent, received_at used"]);

    let event = parse(r#"{"hook_type":"inbox","event_time":"soon"}"#);
    assert_eq!(event.event_time, Some(RECEIVED));
    assert_eq!(
        event.warnings,
        [r#"event_time: expected a time (ISO 8601 or unix seconds), got "soon""#]
    );
}

#[test]
fn unicode_survives() {
    let text = "Olá! Preciso de ajuda com o pedido nº 42 — Здравствуйте, спасибо 🙏🏽";
    let event = parse_json(serde_json::json!({
        "hook_type": "inbox", "text": text, "client": {"name": "Иван Петрóв 🚀"}
    }));
    let Some(Payload::Inbox(m)) = event.payload else {
        panic!()
    };
    assert_eq!(m.text.as_deref(), Some(text));
    assert_eq!(m.client.unwrap().name.as_deref(), Some("Иван Петрóв 🚀"));
}

#[test]
fn a_big_base64_image_is_kept_whole() {
    let image = format!("data:image/png;base64,{}", "iVBORw0KGgo".repeat(60_000));
    let event = parse_json(
        serde_json::json!({"hook_type": "new_qr_code", "qrcode_image": image, "phone": 5511}),
    );
    let Some(Payload::NewQrCode(q)) = event.payload else {
        panic!()
    };
    assert_eq!(q.qrcode_image.as_deref(), Some(image.as_str()));
    assert_eq!(q.phone.as_deref(), Some("5511"));
}

#[test]
fn unknown_hook_types_are_kept_with_their_fields() {
    let event = parse_json(serde_json::json!({"hook_type": "video_call_started", "call_id": 7}));
    assert_eq!(event.hook_type, "video_call_started");
    assert_eq!(event.subject(), "chat2desk.events.acme.unknown");
    let Some(Payload::Unknown(u)) = event.payload else {
        panic!()
    };
    assert_eq!(
        u.fields.unwrap().fields["call_id"].kind,
        Some(Kind::NumberValue(7.0))
    );

    let event = parse_json(serde_json::json!({"something": "else"}));
    assert_eq!(event.hook_type, "unknown");
    assert!(matches!(event.payload, Some(Payload::Unknown(_))));
}

#[test]
fn attachments_in_any_shape() {
    let event = parse_json(serde_json::json!({
        "hook_type": "inbox",
        "attachments": [{"link": "https://x/1.jpg", "name": "1.jpg"}, "https://x/2.pdf"]
    }));
    let Some(Payload::Inbox(m)) = event.payload else {
        panic!()
    };
    assert_eq!(m.attachments.len(), 2);
    assert!(
        matches!(&m.attachments[0].kind, Some(Kind::StructValue(s)) if s.fields.contains_key("link"))
    );
    assert_eq!(
        m.attachments[1].kind,
        Some(Kind::StringValue("https://x/2.pdf".into()))
    );
}

#[test]
fn unreadable_values_become_warnings_not_rejections() {
    let event = parse_json(serde_json::json!({
        "hook_type": "inbox", "message_id": "abc", "is_new_client": "maybe", "event_time": 1564354900
    }));
    let Some(Payload::Inbox(m)) = event.payload else {
        panic!()
    };
    assert_eq!((m.message_id, m.is_new_client), (None, None));
    assert_eq!(event.warnings.len(), 2, "{:?}", event.warnings);
}

#[test]
fn the_event_id_is_the_same_for_a_retried_delivery() {
    let first = parse(fixture!("inbox"));
    let retry = parse(fixture!("inbox"));
    let reformatted = parse(
        &serde_json::from_str::<serde_json::Value>(fixture!("inbox"))
            .unwrap()
            .to_string(),
    );
    assert_eq!(first.event_id, retry.event_id);
    assert_eq!(first.event_id, reformatted.event_id);
    assert_ne!(first.event_id, parse(fixture!("outbox")).event_id);
    let other_tenant = parse_delivery(
        "globex",
        Bytes::from_static(fixture!("inbox").as_bytes()),
        RECEIVED,
    )
    .unwrap();
    assert_ne!(first.event_id, other_tenant.event_id);
}

#[test]
fn the_fixtures_ids_never_change() {
    // Computed by the parser that read bodies into serde_json::Value: ids deduplicate retries
    // across upgrades, so a new way of reading a body must give every body the same id.
    macro_rules! fixture_ids {
        ($($name:literal => $id:literal,)*) => {
            [$(($name, fixture!($name), $id)),*]
        };
    }
    for (name, body, id) in fixture_ids! {
        "add_tag_to_client" => "fad2aca351bb74d413723266db356a6a",
        "add_tag_to_request" => "ec4c349f7ebdca69afcdf4286553c9ad",
        "ai_hints_requested" => "a2e39945eeaa3cb9e5b345dfd468cb7a",
        "ai_hints_requested.feedback" => "fc1c868e8970244d794c953e01c87f6d",
        "ai_hints_requested.response" => "cbb2c1451b5d5a3f1a645719ebc64c27",
        "client_updated" => "f619cd3cf0516d9f542b3dbd9f624f62",
        "close_dialog" => "2d31e9f3080c8b5b593dd39efb2d82fc",
        "close_request" => "4751ee6c89d61bfc85173eaf82a01995",
        "delete_tag_from_client" => "427a8c02e90af752d3ec73000a17948a",
        "delete_tag_from_request" => "4a6dd940e68db8fe8a51ff18dea156f8",
        "dialog_transferred" => "0cb04a28466071d02cc66ecde113adad",
        "inbox" => "36efa9e814a666d204a0109567d8af88",
        "new_client" => "f28b783b58ead44b4c3c0c421e57f02f",
        "new_qr_code" => "3d97821f43ee6adb8324e804a2fc40b3",
        "outbox" => "7b83d07a8f8891763e9fdf964e6b1f35",
        "outbox_status" => "405f5433e362dac5f60ba9f0c47ce779",
    } {
        assert_eq!(parse(body).event_id, id, "{name}");
    }
}

#[test]
fn bodies_that_are_not_json_objects_are_undecodable() {
    let undecodable = |body: &'static [u8]| {
        parse_delivery("acme", Bytes::from_static(body), RECEIVED).unwrap_err()
    };
    assert!(matches!(undecodable(b""), Undecodable::Empty));
    assert!(matches!(undecodable(b"  \n"), Undecodable::Empty));
    assert!(matches!(
        undecodable(b"message_id=1&hook_type=inbox"),
        Undecodable::NotJson(_)
    ));
    assert!(matches!(
        undecodable(b"{\"hook_type\": \"inbox\""),
        Undecodable::NotJson(_)
    ));
    assert!(matches!(
        undecodable(b"[1,2]"),
        Undecodable::NotAnObject("array")
    ));
    assert!(matches!(
        undecodable(b"\"inbox\""),
        Undecodable::NotAnObject("string")
    ));
    assert!(matches!(
        undecodable(b"\xff\xfe{}"),
        Undecodable::NotJson(_)
    ));
}

#[test]
fn a_byte_order_mark_is_forgiven() {
    let event = parse("\u{feff}{\"hook_type\":\"inbox\",\"message_id\":1}");
    assert_eq!(event.hook_type, "inbox");
}

#[test]
fn dead_letters_keep_the_raw_bytes_and_the_reason() {
    let raw = Bytes::from_static(b"<xml/>");
    let reason = parse_delivery("acme", raw.clone(), RECEIVED).unwrap_err();
    let letter = dead_letter("acme", raw.clone(), "application/json", &reason, RECEIVED);
    assert_eq!(letter.raw, raw);
    assert_eq!(letter.tenant, "acme");
    assert_eq!(letter.event_id, dead_letter_id("acme", b"<xml/>"));
    assert!(
        letter.reason.starts_with("the body is not JSON"),
        "{}",
        letter.reason
    );
}

#[test]
fn a_backfilled_message_is_the_same_event_with_its_own_id_and_origin() {
    let body = r#"{"hook_type":"inbox","message_id":8205,"type":"from_client","text":"oi","client_id":7,"event_time":"2019-07-28T23:01:40Z"}"#;
    let delivered = parse_delivery("acme", Bytes::from(body), RECEIVED).unwrap();
    let backfilled = crate::parse_backfilled("acme", Bytes::from(body), RECEIVED).unwrap();
    assert_eq!(backfilled.payload, delivered.payload);
    assert_eq!(backfilled.event_time, delivered.event_time);
    assert_eq!(backfilled.origin(), c2d_proto::events::Origin::Backfill);
    assert_eq!(delivered.origin(), c2d_proto::events::Origin::Unspecified);
    assert_ne!(backfilled.event_id, delivered.event_id);
    assert_eq!(
        backfilled.event_id,
        crate::backfill_event_id("acme", "inbox", 8205)
    );
    let again = crate::parse_backfilled("acme", Bytes::from(body), RECEIVED).unwrap();
    assert_eq!(
        again.event_id, backfilled.event_id,
        "stable for the message"
    );
    let outbox = body.replace("\"inbox\"", "\"outbox\"");
    let other = crate::parse_backfilled("acme", Bytes::from(outbox), RECEIVED).unwrap();
    assert_ne!(other.event_id, backfilled.event_id);
    let card = r#"{"hook_type":"client_updated","id":7,"name":"Ana"}"#;
    let client = crate::parse_backfilled("acme", Bytes::from(card), RECEIVED).unwrap();
    assert_eq!(
        client.event_id,
        crate::backfill_event_id("acme", "client_updated", 7)
    );
    let tag = r#"{"hook_type":"add_tag_to_client","id":1}"#;
    assert!(crate::parse_backfilled("acme", Bytes::from(tag), RECEIVED).is_err());
    let no_id = r#"{"hook_type":"inbox","text":"oi"}"#;
    assert!(crate::parse_backfilled("acme", Bytes::from(no_id), RECEIVED).is_err());
}

/// Every documented field is read, so that real deliveries report no drift; a field the
/// documentation does not have is reported by name, and an unknown hook type reports none.
#[test]
fn unknown_fields_are_the_ones_the_parser_does_not_read() {
    let fixtures = [
        fixture!("inbox"),
        fixture!("outbox"),
        fixture!("outbox_status"),
        fixture!("new_client"),
        fixture!("client_updated"),
        fixture!("add_tag_to_client"),
        fixture!("add_tag_to_request"),
        fixture!("delete_tag_from_client"),
        fixture!("delete_tag_from_request"),
        fixture!("close_dialog"),
        fixture!("close_request"),
        fixture!("dialog_transferred"),
        fixture!("new_qr_code"),
        fixture!("ai_hints_requested"),
        fixture!("ai_hints_requested.feedback"),
    ];
    for body in fixtures {
        let delivery = read_delivery("acme", Bytes::copy_from_slice(body.as_bytes()), RECEIVED)
            .expect("decodes");
        assert!(
            delivery.unknown_fields.is_empty(),
            "{} reports {:?} unknown",
            delivery.event.hook_type,
            delivery.unknown_fields
        );
    }
    let mut changed: serde_json::Value = serde_json::from_str(fixture!("inbox")).unwrap();
    changed["sentiment"] = "positive".into();
    changed["zz_empty"] = "".into();
    let delivery = read_delivery("acme", changed.to_string().into(), RECEIVED).unwrap();
    assert_eq!(delivery.unknown_fields, ["sentiment"]);
    let new_type = serde_json::json!({"hook_type": "call_recorded", "duration": 30});
    let delivery = read_delivery("acme", new_type.to_string().into(), RECEIVED).unwrap();
    assert_eq!(delivery.event.hook_type, "call_recorded");
    assert!(delivery.unknown_fields.is_empty());
}
