//! Chat2Desk webhook bodies in, typed `chat2desk.events.v1.Event`s out. No I/O.
//!
//! The gateway calls [`parse_delivery`] for every request; tests, the simulator and users'
//! tools can call it on bodies they hold. It accepts every documented hook type and every quirk
//! of real deliveries (EVENTS.md): string ids, PHP booleans and empty arrays, lone objects for
//! lists, loose times, the `delete_tag_to_client` alias, a hints request without `hook_type`,
//! hook types that do not exist yet. What cannot be read as its documented type becomes a
//! warning on the event rather than a rejected delivery; only a body that is not a JSON object
//! at all is [`Undecodable`], and the gateway keeps those on the dead-letter subject.

mod body;
mod event_id;
mod fields;
pub mod json;
mod payloads;
pub mod time;

use bytes::Bytes;
use c2d_proto::events::{DeadLetter, Event, HookType, Origin, Payload, UNKNOWN_HOOK_TYPE, Unknown};
use prost_types::Timestamp;

use body::Json;
use event_id::delivery_id;
pub use event_id::{EVENT_ID_LEN, backfill_event_id, dead_letter_id, event_id};
use fields::Fields;
use json::struct_of;

/// Why a body is not an event. A retry of the same body cannot fix any of these, which is why
/// the gateway stores such bodies on the dead-letter subject and still answers 2xx.
#[derive(Debug, thiserror::Error)]
pub enum Undecodable {
    #[error("the body is empty; Chat2Desk sends one JSON object per delivery")]
    Empty,
    #[error("the body is not JSON ({0}); Chat2Desk sends one JSON object per delivery")]
    NotJson(#[source] serde_json::Error),
    #[error("the body is a JSON {0}, not an object; Chat2Desk sends one JSON object per delivery")]
    NotAnObject(&'static str),
}

/// Reads one webhook delivery of `tenant`, received at `received_at`, into an [`Event`] whose
/// `raw` is `body` itself.
pub fn parse_delivery(
    tenant: &str,
    body: Bytes,
    received_at: Timestamp,
) -> Result<Event, Undecodable> {
    read_delivery(tenant, body, received_at).map(|delivery| delivery.event)
}

/// A delivery read, and what in it the parser does not know.
pub struct Delivery {
    pub event: Event,
    /// Top-level fields of a known hook type's body that the parser does not read (sorted):
    /// a field Chat2Desk added. Empty for an unknown hook type, whose fields are all kept in
    /// its `Unknown` payload.
    pub unknown_fields: Vec<String>,
}

/// As [`parse_delivery`], also telling which fields the parser did not read: what the
/// gateway counts to notice that Chat2Desk changed its payloads.
pub fn read_delivery(
    tenant: &str,
    body: Bytes,
    received_at: Timestamp,
) -> Result<Delivery, Undecodable> {
    let json = decode(&body)?;
    let Json::Object(object) = &json else {
        return Err(Undecodable::NotAnObject(json_kind(&json)));
    };

    let mut warnings = Vec::new();
    let mut f = Fields::new(object, &mut warnings);
    let (hook_type, payload) = read_payload(&mut f);
    let event_time = f.time("event_time");
    if event_time.is_none() && !f.has("event_time") {
        f.warn_raw("event_time: absent, received_at used".to_owned());
    }
    let mut unknown_fields = match payload {
        Payload::Unknown(_) => Vec::new(),
        _ => f.unread(),
    };
    unknown_fields.sort_unstable();

    let event = Event {
        event_id: delivery_id(tenant, &json),
        tenant: tenant.to_owned(),
        hook_type,
        event_time: Some(event_time.unwrap_or(received_at)),
        received_at: Some(received_at),
        raw: body,
        warnings,
        payload: Some(payload),
        origin: Origin::Unspecified.into(),
    };
    Ok(Delivery {
        event,
        unknown_fields,
    })
}

/// Why a message or client read from Chat2Desk's API is not a backfilled event.
#[derive(Debug, thiserror::Error)]
pub enum NotBackfillable {
    #[error(transparent)]
    Undecodable(#[from] Undecodable),
    #[error("the body is a {0} event; only inbox, outbox and client_updated are backfilled")]
    NotBackfilled(String),
    #[error(
        "the body has no id (message_id, or the client's id), so it cannot be stored exactly once"
    )]
    NoId,
}

/// Reads what c2d-keeper rebuilt from Chat2Desk's API as a webhook body (an inbox or outbox
/// message, or a client's card as `client_updated`, with the webhook's field names) through
/// the same parser as a delivery, so that consumers cannot tell it from one; only the envelope
/// differs: `origin` is [`Origin::Backfill`] and the id is [`backfill_event_id`] of the message
/// id (or client id), stable however often it is backfilled.
pub fn parse_backfilled(
    tenant: &str,
    body: Bytes,
    received_at: Timestamp,
) -> Result<Event, NotBackfillable> {
    let mut event = parse_delivery(tenant, body, received_at)?;
    let id = match &event.payload {
        Some(Payload::Inbox(m) | Payload::Outbox(m)) => m.message_id,
        Some(Payload::ClientUpdated(c)) => c.id,
        _ => return Err(NotBackfillable::NotBackfilled(event.hook_type)),
    };
    let id = id.ok_or(NotBackfillable::NoId)?;
    event.event_id = backfill_event_id(tenant, &event.hook_type, id);
    event.origin = Origin::Backfill.into();
    Ok(event)
}

/// The record kept for a body that [`parse_delivery`] rejected.
pub fn dead_letter(
    tenant: &str,
    body: Bytes,
    content_type: &str,
    reason: &Undecodable,
    received_at: Timestamp,
) -> DeadLetter {
    DeadLetter {
        event_id: dead_letter_id(tenant, &body),
        tenant: tenant.to_owned(),
        reason: reason.to_string(),
        raw: body,
        content_type: content_type.to_owned(),
        received_at: Some(received_at),
    }
}

fn decode(body: &[u8]) -> Result<Json<'_>, Undecodable> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Undecodable::Empty);
    }
    serde_json::from_slice(body).map_err(Undecodable::NotJson)
}

/// The envelope's hook type and the typed payload, from `hook_type` or, where Chat2Desk left it
/// out, from the fields present.
fn read_payload(f: &mut Fields<'_>) -> (String, Payload) {
    let named = f.text("hook_type").map(|name| name.trim().to_owned());
    let hook = match &named {
        Some(name) => HookType::parse(name),
        None if looks_like_hints(f) => Some(HookType::AiHintsRequested),
        None => None,
    };
    let Some(hook) = hook else {
        let mut hook_type = named.unwrap_or_else(|| UNKNOWN_HOOK_TYPE.to_owned());
        hook_type.truncate(hook_type.floor_char_boundary(64));
        let fields = Some(struct_of(f.all()));
        return (hook_type, Payload::Unknown(Unknown { fields }));
    };

    let payload = match hook {
        HookType::Inbox => Payload::Inbox(payloads::message(f)),
        HookType::Outbox => Payload::Outbox(payloads::message(f)),
        HookType::OutboxStatus => Payload::OutboxStatus(payloads::outbox_status(f)),
        HookType::NewClient => Payload::NewClient(payloads::client(f)),
        HookType::ClientUpdated => Payload::ClientUpdated(payloads::client(f)),
        HookType::AddTagToClient => Payload::AddTagToClient(payloads::tag(f)),
        HookType::AddTagToRequest => Payload::AddTagToRequest(payloads::tag(f)),
        HookType::DeleteTagFromClient => Payload::DeleteTagFromClient(payloads::tag(f)),
        HookType::DeleteTagFromRequest => Payload::DeleteTagFromRequest(payloads::tag(f)),
        HookType::CloseDialog => Payload::CloseDialog(payloads::dialog_event(f)),
        HookType::CloseRequest => Payload::CloseRequest(payloads::dialog_event(f)),
        HookType::DialogTransferred => Payload::DialogTransferred(payloads::dialog_event(f)),
        HookType::NewQrCode => Payload::NewQrCode(payloads::qr_code(f)),
        HookType::AiHintsRequested if f.has("hint_id") => {
            Payload::AiHintChosen(payloads::hint_chosen(f))
        }
        HookType::AiHintsRequested => Payload::AiHintsRequested(payloads::hints_request(f)),
    };
    (hook.as_str().to_owned(), payload)
}

/// A body without `hook_type` is an ai_hints_requested when it has a message id and nothing
/// but the fields of one of the two hints forms (Chat2Desk's own example omits `hook_type`).
fn looks_like_hints(f: &Fields<'_>) -> bool {
    const HINTS_FIELDS: [&str; 8] = [
        "client_id",
        "operator_id",
        "dialog_id",
        "request_id",
        "channel_id",
        "message_id",
        "hint_id",
        "event_time",
    ];
    f.has("message_id") && f.all().keys().all(|key| HINTS_FIELDS.contains(&key))
}

fn json_kind(json: &Json<'_>) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests;
