//! One event, as an integrator checks it: typed (the protobuf a consumer receives, in the
//! protobuf JSON mapping) beside the body Chat2Desk sent, with its subject, sequence, trace
//! id, and how it arrived: on Chat2Desk's first attempt, by one of its retries, or filled in
//! by the keeper (as far as the times tell). Another tenant's event is not found (404), so its
//! existence is not told.

use std::sync::Arc;

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use c2d_proto::events::STREAM;
use c2d_proto::events::v1::{Event, Origin};
use prost::Message as _;

use crate::Console;
use crate::html::{escape, page, refusal};
use crate::time::when;
use crate::typed;

/// Chat2Desk retries a failed delivery after 10 s, then 5 min, then 2 h: a delivery received
/// this long after its event came by a retry (or a clock between the two is off).
pub const FIRST_RETRY_SECS: i64 = 10;
/// Chat2Desk gives a delivery up after about 5 hours of failures (a margin for the last try).
pub const LAST_RETRY_SECS: i64 = 6 * 3_600;

/// GET /events/{sequence}: one event, typed beside raw.
pub async fn show(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(sequence): Path<u64>,
) -> Response {
    let (_, session) = match console.session(&headers) {
        Ok(session) => session,
        Err(login) => return *login,
    };
    let refused = |status, why: &str| refusal(status, "Event", Some(&session), why);
    let not_found = || {
        refused(
            StatusCode::NOT_FOUND,
            &format!("No event {sequence} that this login may see."),
        )
    };
    let message = match stored(&console, sequence).await {
        Ok(Some(message)) => message,
        Ok(None) => return not_found(),
        Err(why) => return refused(StatusCode::SERVICE_UNAVAILABLE, &why),
    };
    let Ok(event) = Event::decode(message.payload.clone()) else {
        return not_found();
    };
    if !session.principal.may_see(&event.tenant) {
        return not_found();
    }
    let trace = message
        .headers
        .get(c2d_telemetry::TRACEPARENT)
        .and_then(|value| value.as_str().split('-').nth(1).map(str::to_owned))
        .unwrap_or_else(|| "none".to_owned());
    let raw = String::from_utf8_lossy(&event.raw);
    let raw = serde_json::from_slice::<serde_json::Value>(&event.raw)
        .and_then(|json| serde_json::to_string_pretty(&json))
        .unwrap_or_else(|_| raw.into_owned());
    let typed = typed::decode(&message.payload)
        .map(typed::json)
        .unwrap_or_default();
    let body = format!(
        "<table>\
         <tr><th>subject</th><td><code>{subject}</code></td></tr>\
         <tr><th>sequence</th><td>{sequence}</td></tr>\
         <tr><th>event id</th><td><code>{id}</code></td></tr>\
         <tr><th>tenant</th><td>{tenant}</td></tr>\
         <tr><th>hook type</th><td>{hook}</td></tr>\
         <tr><th>event time</th><td>{time}</td></tr>\
         <tr><th>received</th><td>{received}</td></tr>\
         <tr><th>arrived</th><td id=\"arrival\">{arrival}</td></tr>\
         <tr><th>trace id</th><td><code>{trace}</code></td></tr>\
         <tr><th>warnings</th><td>{warnings}</td></tr>\
         </table>\
         <div class=\"side\"><section><h2>Typed (chat2desk.events.v1.Event as JSON)</h2><pre id=\"typed\">{typed}</pre></section>\
         <section><h2>Raw body from Chat2Desk</h2><pre id=\"raw\">{raw}</pre></section></div>",
        subject = escape(&message.subject),
        id = escape(&event.event_id),
        tenant = escape(&event.tenant),
        hook = escape(&event.hook_type),
        time = escape(&when(event.event_time.as_ref())),
        received = escape(&when(event.received_at.as_ref())),
        arrival = escape(&arrival(&event)),
        trace = escape(&trace),
        warnings = escape(&event.warnings.join("; ")),
        typed = escape(&typed),
        raw = escape(&raw),
    );
    page(&format!("Event {sequence}"), Some(&session), &body).into_response()
}

/// The message with stream sequence `sequence` of the event log; None when there is none (never
/// stored, or deleted); an error to show when the log could not be read.
pub async fn stored(console: &Console, sequence: u64) -> Result<Option<StreamMessage>, String> {
    let unreadable = |error: &dyn std::fmt::Display| {
        format!("The event log cannot be read now ({error}); try again.")
    };
    let stream = console
        .jetstream
        .get_stream(STREAM)
        .await
        .map_err(|error| unreadable(&error))?;
    match stream.get_raw_message(sequence).await {
        Ok(message) => Ok(Some(message)),
        Err(error) => match error.kind() {
            LastRawMessageErrorKind::NoMessageFound => Ok(None),
            LastRawMessageErrorKind::JetStream(inner)
                if inner.error_code() == ErrorCode::NO_MESSAGE_FOUND =>
            {
                Ok(None)
            }
            _ => Err(unreadable(&error)),
        },
    }
}

/// How the stored copy of `event` reached the log.
pub fn arrival(event: &Event) -> String {
    match event.origin() {
        Origin::Backfill => {
            return "filled in by c2d-keeper from Chat2Desk's API (the webhook had lost it)"
                .to_owned();
        }
        Origin::Keeper => return "c2d-keeper's own report about the webhook".to_owned(),
        Origin::Unspecified => {}
    }
    let (Some(happened), Some(received)) = (&event.event_time, &event.received_at) else {
        return "by the webhook".to_owned();
    };
    let late = received.seconds - happened.seconds;
    if late > LAST_RETRY_SECS {
        format!(
            "received {} after its event time: later than Chat2Desk retries (they end within 5 hours), so a replay, a backfill by hand, or a clock that is off",
            c2d_telemetry::env::human(std::time::Duration::from_secs(late as u64))
        )
    } else if late >= FIRST_RETRY_SECS {
        format!(
            "probably by a retry: received {} after the event (Chat2Desk retries after 10 s, 5 min and 2 h, when its earlier attempts failed). Any later copy of it was answered duplicate.",
            c2d_telemetry::env::human(std::time::Duration::from_secs(late as u64))
        )
    } else {
        "on Chat2Desk's first attempt, as far as the times tell. Any later copy of it (a retry, a replay) was answered duplicate.".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_received_after_the_first_retry_is_said_to_be_a_retry() {
        let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
        let mut event = Event {
            event_time: at(1_000),
            received_at: at(1_001),
            ..Default::default()
        };
        assert!(arrival(&event).starts_with("on Chat2Desk's first attempt"));
        event.received_at = at(1_000 + 300);
        assert!(
            arrival(&event).starts_with("probably by a retry: received 5m"),
            "{}",
            arrival(&event)
        );
        event.set_origin(Origin::Backfill);
        assert!(arrival(&event).contains("c2d-keeper"));
    }
}
