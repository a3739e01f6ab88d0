//! Any bytes as a webhook body: the parser never panics, never loops, and what it answers is
//! consistent — an event that survives its own protobuf encoding with the body as its raw
//! bytes and the same id on a second reading (Chat2Desk's retry), or a reason that a dead
//! letter can carry.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use prost_types::Timestamp;

fuzz_target!(|body: &[u8]| {
    let received_at = Timestamp {
        seconds: 1_709_251_200,
        nanos: 0,
    };
    let body = Bytes::copy_from_slice(body);
    match c2d_hooks::parse_delivery("acme", body.clone(), received_at) {
        Ok(event) => {
            assert_eq!(event.raw, body, "the raw body is kept as it came");
            assert_eq!(event.event_id.len(), c2d_hooks::EVENT_ID_LEN);
            let encoded = event.encode_to_vec();
            let decoded = c2d_proto::events::Event::decode(encoded.as_slice())
                .expect("an encoded event decodes");
            assert_eq!(decoded, event);
            let again = c2d_hooks::parse_delivery("acme", body, received_at)
                .expect("the same body parses again");
            assert_eq!(again.event_id, event.event_id, "a retry has the same id");
        }
        Err(undecodable) => {
            let letter =
                c2d_hooks::dead_letter("acme", body, "application/json", &undecodable, received_at);
            assert!(!letter.reason.is_empty());
            assert_eq!(letter.event_id.len(), c2d_hooks::EVENT_ID_LEN);
        }
    }
});
