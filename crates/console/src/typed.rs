//! An event as its typed protobuf reads, in the protobuf's own JSON mapping: the names and
//! shapes a consumer in any language gets from `chat2desk.events.v1.Event`, not a Rust dump.
//!
//! The console decodes through the descriptors the proto crate embeds (the same ones gRPC
//! reflection serves), so the view follows the contract whenever the contract changes, and
//! the client and request an event is about are found by field name in any hook type.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions, Value};

/// The full name of the event message.
const EVENT: &str = "chat2desk.events.v1.Event";

fn event_descriptor() -> Option<&'static MessageDescriptor> {
    static DESCRIPTOR: OnceLock<Option<MessageDescriptor>> = OnceLock::new();
    DESCRIPTOR
        .get_or_init(|| {
            let pool = DescriptorPool::decode(c2d_proto::FILE_DESCRIPTOR_SET).ok()?;
            pool.get_message_by_name(EVENT)
        })
        .as_ref()
}

/// The event stored as `bytes`, decoded by its descriptor; None if it is not an event.
pub fn decode(bytes: &[u8]) -> Option<DynamicMessage> {
    DynamicMessage::decode(event_descriptor()?.clone(), bytes).ok()
}

/// The event as protobuf JSON, pretty-printed, without its raw body (shown beside it).
pub fn json(mut event: DynamicMessage) -> String {
    event.clear_field_by_name("raw");
    let mut out = serde_json::Serializer::pretty(Vec::new());
    // The canonical mapping, as any protobuf library writes it (64-bit integers as strings).
    match event.serialize_with_options(&mut out, &SerializeOptions::new()) {
        Ok(()) => String::from_utf8_lossy(&out.into_inner()).into_owned(),
        Err(error) => format!("(cannot be written as JSON: {error})"),
    }
}

/// The first integer field called `name` (e.g. `client_id`, `request_id`) anywhere in the
/// event's payload.
pub fn id(event: &DynamicMessage, name: &str) -> Option<i64> {
    event.fields().find_map(|(field, value)| match value {
        Value::I64(id) if field.name() == name => Some(*id),
        Value::Message(inner) => id(inner, name),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use c2d_proto::events::v1::{Event, Message, event::Payload};
    use prost::Message as _;

    use super::*;

    #[test]
    fn an_event_reads_as_protobuf_json_and_its_ids_are_found_by_name() {
        let event = Event {
            event_id: "e-1".into(),
            tenant: "acme".into(),
            hook_type: "inbox".into(),
            raw: b"{\"secret\":1}".to_vec().into(),
            payload: Some(Payload::Inbox(Message {
                client_id: Some(4_242),
                request_id: Some(77),
                ..Default::default()
            })),
            ..Default::default()
        };
        let decoded = decode(&event.encode_to_vec()).expect("an event");
        assert_eq!(id(&decoded, "client_id"), Some(4_242));
        assert_eq!(id(&decoded, "request_id"), Some(77));
        assert_eq!(id(&decoded, "operator_id"), None);
        let json = json(decoded);
        assert!(json.contains("\"eventId\": \"e-1\""), "{json}");
        assert!(json.contains("\"clientId\": \"4242\""), "{json}");
        assert!(!json.contains("\"raw\""), "{json}");
        assert!(decode(b"\xff\xff").is_none());
    }
}
