//! The dead-letter queue (`CHAT2DESK_DLQ`): bodies the gateway could not read as an event, and
//! events a consumer gave up on, each with why. The newest first, as an integrator reads them
//! after "my webhook did not arrive"; a tenant's login sees its own only.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use c2d_proto::events::{DLQ_STREAM, DeadLetter};
use c2d_subscriber::dead_letter::HEADER_CONSUMER;
use prost::Message as _;

use crate::Console;
use crate::html::{escape, page};

/// Dead letters shown, newest first.
pub const SHOWN: usize = 200;
/// How many of the newest dead letters a page looks through (a tenant's may be sparse).
pub const SCANNED: u64 = 5_000;

/// GET /dead-letters.
pub async fn list(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let (_, session) = match console.session(&headers) {
        Ok(session) => session,
        Err(login) => return *login,
    };
    let unavailable = |error: &dyn std::fmt::Display| {
        let body = format!(
            "<p class=\"error\">The dead-letter queue cannot be read now ({}); try again.</p>",
            escape(&error.to_string())
        );
        (
            StatusCode::SERVICE_UNAVAILABLE,
            page("Dead letters", Some(&session), &body),
        )
            .into_response()
    };
    let mut stream = match console.jetstream.get_stream(DLQ_STREAM).await {
        Ok(stream) => stream,
        Err(error) => return unavailable(&error),
    };
    let state = match stream.info().await {
        Ok(info) => info.state.clone(),
        Err(error) => return unavailable(&error),
    };
    let mut rows = String::new();
    let mut shown = 0;
    let oldest = state
        .first_sequence
        .max(state.last_sequence.saturating_sub(SCANNED));
    for sequence in (oldest..=state.last_sequence).rev() {
        if shown == SHOWN || state.messages == 0 {
            break;
        }
        // A sequence may have been deleted; a message may not be a dead letter: skipped.
        let Ok(message) = stream.get_raw_message(sequence).await else {
            continue;
        };
        let Ok(letter) = DeadLetter::decode(message.payload.clone()) else {
            continue;
        };
        if !session.principal.may_see(&letter.tenant) {
            continue;
        }
        let from = match message
            .headers
            .get(HEADER_CONSUMER)
            .map(|value| value.as_str().to_owned())
        {
            Some(consumer) => format!("consumer {consumer}"),
            None => "the gateway".to_owned(),
        };
        let body = if from == "the gateway" {
            let mut text = String::from_utf8_lossy(&letter.raw).into_owned();
            if text.len() > 160 {
                text.truncate(text.floor_char_boundary(157));
                text.push_str("...");
            }
            text
        } else {
            format!("an event, {} bytes", letter.raw.len())
        };
        rows.push_str(&format!(
            "<tr><td>{sequence}</td><td>{tenant}</td><td>{from}</td><td>{reason}</td><td><code>{body}</code></td></tr>",
            tenant = escape(&letter.tenant),
            from = escape(&from),
            reason = escape(&letter.reason),
            body = escape(&body),
        ));
        shown += 1;
    }
    let body = format!(
        "<p id=\"found\">{shown} dead letters (newest first, at most {SHOWN})</p>\
         <table><thead><tr><th>sequence</th><th>tenant</th><th>from</th><th>why</th><th>body</th></tr></thead>\
         <tbody>{rows}</tbody></table>"
    );
    page("Dead letters", Some(&session), &body).into_response()
}
