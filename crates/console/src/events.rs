//! The event log, searched and read: what an integrator chasing a missing webhook looks at.
//!
//! A search reads back a bounded stretch of the log (`c2d_subscriber::history`: no consumer
//! is left on the server) on the subjects its tenant and hook type select, and keeps the
//! events whose raw body contains the text asked for; the newest are shown first. An event's
//! page shows it typed (the fields the parser read) beside the body Chat2Desk sent, with where
//! it is in the stream and the trace it belongs to.
//!
//! The search page also follows the log: a live tail (Server-Sent Events) puts each new event
//! the search selects on top of the table as it is stored.
//!
//! A tenant login is bound to its tenant: a search for another tenant is refused (403), and
//! another tenant's event is not found (404), so its existence is not told either.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use c2d_proto::events::v1::Event;
use c2d_proto::events::{HookType, STREAM, UNKNOWN_HOOK_TYPE};
use c2d_subscriber::{Delivery, HandlerError, StartAt, Subscriber, SubscriberConfig};
use prost::Message as _;

use crate::Console;
use crate::auth::Session;
use crate::html::{escape, page};

/// Rows shown for one search, newest first.
pub const SHOWN: usize = 200;

/// What a search asks for (the query string of `/events`).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Search {
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub hook_type: String,
    /// Text the raw body must contain (a client id, a message, a phone number...).
    #[serde(default)]
    pub text: String,
    /// How far back, e.g. `1h`, `30m`, `7d`; default one hour.
    #[serde(default)]
    pub since: String,
}

/// Why a search cannot be run as asked.
fn refused(status: StatusCode, session: &Session, why: &str) -> Response {
    let body = format!("<p class=\"error\">{}</p>", escape(why));
    (status, page("Events", Some(session), &body)).into_response()
}

/// GET /events: the search form and what it found.
pub async fn search(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> Response {
    let (session, subject) = match scoped(&console, &headers, &search) {
        Ok(scoped) => scoped,
        Err(answer) => return *answer,
    };
    let since = match search.since.trim() {
        "" => Duration::from_secs(3_600),
        text => match c2d_telemetry::env::duration(text) {
            Ok(since) => since,
            Err(_) => {
                return refused(
                    StatusCode::BAD_REQUEST,
                    &session,
                    "How far back: a duration such as 30m, 1h or 7d.",
                );
            }
        },
    };
    let start = SystemTime::now()
        .checked_sub(since)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let history = match c2d_subscriber::history::read(
        console.nats.clone(),
        StartAt::Time(start),
        Some(subject),
        console.config.search_limit,
    )
    .await
    {
        Ok(history) => history,
        Err(error) => {
            tracing::warn!(%error, "a search could not read the log");
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                &session,
                &format!("The event log cannot be read now ({error}); try again."),
            );
        }
    };
    let text = search.text.trim();
    let found: Vec<_> = history
        .events
        .iter()
        .rev()
        .filter(|stored| session.principal.may_see(&stored.event.tenant))
        .filter(|stored| text.is_empty() || contains(&stored.event.raw, text))
        .take(SHOWN)
        .collect();
    let rows: String = found
        .iter()
        .map(|stored| row(stored.stream_sequence, &stored.event))
        .collect();
    let note = if history.truncated {
        format!(
            "<p>The search read the first {} events of the range only (CONSOLE_SEARCH_LIMIT): narrow it.</p>",
            console.config.search_limit
        )
    } else {
        String::new()
    };
    let tenant_field = match session.principal.tenant() {
        Some(own) => format!(
            "<input type=\"hidden\" name=\"tenant\" value=\"{}\">",
            escape(own)
        ),
        None => format!(
            "<input name=\"tenant\" placeholder=\"tenant\" value=\"{}\">",
            escape(search.tenant.trim())
        ),
    };
    let body = format!(
        "<form class=\"search\" method=\"get\" action=\"/events\">{tenant_field}\
         <input name=\"hook_type\" placeholder=\"hook type\" value=\"{hook}\">\
         <input name=\"text\" placeholder=\"text in the body\" value=\"{text}\">\
         <input name=\"since\" placeholder=\"since (1h)\" value=\"{since}\">\
         <button type=\"submit\">Search</button></form>{note}\
         <p id=\"found\">{count} events (newest first, at most {SHOWN})</p>\
         <table><thead><tr><th>sequence</th><th>event time</th><th>tenant</th><th>hook type</th><th>event id</th></tr></thead>\
         <tbody>{rows}</tbody></table>\
         <script>const live = new EventSource('/events/live' + location.search);\
         live.onopen = () => document.body.dataset.live = 'open';\
         live.onmessage = (e) => document.querySelector('tbody').insertAdjacentHTML('afterbegin', e.data);</script>",
        hook = escape(search.hook_type.trim()),
        text = escape(text),
        since = escape(search.since.trim()),
        count = found.len(),
    );
    page("Events", Some(&session), &body).into_response()
}

/// The request's session and the subjects its search may read, or the answer to give instead
/// (the login form, or a refusal).
fn scoped(
    console: &Console,
    headers: &HeaderMap,
    search: &Search,
) -> Result<(Session, String), Box<Response>> {
    let (_, session) = console.session(headers)?;
    let subject = scope(&session, search)?;
    Ok((session, subject))
}

/// The subjects a search (or a live tail) of this session may read: its tenant's, or any for
/// the operator; a tenant's login asking for another tenant is refused (403), whatever its
/// page showed.
fn scope(session: &Session, search: &Search) -> Result<String, Box<Response>> {
    let tenant = match (session.principal.tenant(), search.tenant.trim()) {
        (Some(own), "") => own.to_owned(),
        (_, "") => "*".to_owned(),
        (_, asked) if !session.principal.may_see(asked) => {
            return Err(Box::new(refused(
                StatusCode::FORBIDDEN,
                session,
                &format!(
                    "This login sees tenant {} only.",
                    session.principal.tenant().unwrap_or("")
                ),
            )));
        }
        (_, asked) if !c2d_proto::events::is_valid_tenant(asked) => {
            return Err(Box::new(refused(
                StatusCode::BAD_REQUEST,
                session,
                "Not a tenant name.",
            )));
        }
        (_, asked) => asked.to_owned(),
    };
    let hook_type = match search.hook_type.trim() {
        "" => "*",
        UNKNOWN_HOOK_TYPE => UNKNOWN_HOOK_TYPE,
        name => match HookType::parse(name) {
            Some(hook) => hook.as_str(),
            None => {
                return Err(Box::new(refused(
                    StatusCode::BAD_REQUEST,
                    session,
                    &format!("{name:?} is not a hook type."),
                )));
            }
        },
    };
    Ok(format!("chat2desk.events.{tenant}.{hook_type}"))
}

/// One event as a row of the search's table (and of the live tail).
pub fn row(sequence: u64, event: &Event) -> String {
    format!(
        "<tr><td><a href=\"/events/{sequence}\">{sequence}</a></td><td>{time}</td><td>{tenant}</td><td>{hook}</td><td><code>{id}</code></td></tr>",
        time = escape(&when(event.event_time.as_ref())),
        tenant = escape(&event.tenant),
        hook = escape(&event.hook_type),
        id = escape(&event.event_id),
    )
}

/// GET /events/live: the search's new events as they are stored, as Server-Sent Events (each
/// one a table row), for the page's script to put on top. Each tail reads with an ordered
/// consumer of its own that starts at the request's time and vanishes with the connection.
pub async fn live(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> Response {
    let (session, subject) = match scoped(&console, &headers, &search) {
        Ok(scoped) => scoped,
        Err(answer) => return *answer,
    };
    // From the moment of the request, not from when the consumer is made: nothing stored in
    // between is missed.
    let config = SubscriberConfig::new("console-live")
        .filters([subject])
        .start_at(StartAt::Time(SystemTime::now()))
        .position_kept_by_handler();
    let subscriber = match Subscriber::open(console.nats.clone(), config).await {
        Ok(subscriber) => subscriber,
        Err(error) => {
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                &session,
                &format!("The event log cannot be read now ({error}); try again."),
            );
        }
    };
    let (rows, received) = tokio::sync::mpsc::channel::<String>(256);
    let closed = rows.clone();
    let text = search.text.trim().to_owned();
    tokio::spawn(subscriber.run(
        move |delivery: Delivery| {
            let (rows, text, principal) = (rows.clone(), text.clone(), session.principal.clone());
            async move {
                let event = &delivery.event;
                if principal.may_see(&event.tenant)
                    && (text.is_empty() || contains(&event.raw, &text))
                {
                    // A browser that went away stops the tail (below); nothing to retry.
                    let _ = rows.send(row(delivery.stream_sequence, event)).await;
                }
                Ok::<(), HandlerError>(())
            }
        },
        async move { closed.closed().await },
    ));
    let stream = futures_util::stream::unfold(received, |mut received| async move {
        let row = received.recv().await?;
        Some((
            Ok::<_, std::convert::Infallible>(SseEvent::default().data(row)),
            received,
        ))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

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
    let not_found = || {
        refused(
            StatusCode::NOT_FOUND,
            &session,
            &format!("No event {sequence} that this login may see."),
        )
    };
    let message = match console.jetstream.get_stream(STREAM).await {
        Ok(stream) => match stream.get_raw_message(sequence).await {
            Ok(message) => message,
            Err(_) => return not_found(),
        },
        Err(error) => {
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                &session,
                &format!("The event log cannot be read now ({error}); try again."),
            );
        }
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
    let typed = format!("{:#?}", event.payload);
    let body = format!(
        "<table>\
         <tr><th>subject</th><td><code>{subject}</code></td></tr>\
         <tr><th>sequence</th><td>{sequence}</td></tr>\
         <tr><th>event id</th><td><code>{id}</code></td></tr>\
         <tr><th>tenant</th><td>{tenant}</td></tr>\
         <tr><th>hook type</th><td>{hook}</td></tr>\
         <tr><th>event time</th><td>{time}</td></tr>\
         <tr><th>received</th><td>{received}</td></tr>\
         <tr><th>origin</th><td>{origin}</td></tr>\
         <tr><th>trace id</th><td><code>{trace}</code></td></tr>\
         <tr><th>warnings</th><td>{warnings}</td></tr>\
         </table>\
         <div class=\"side\"><section><h2>Typed</h2><pre id=\"typed\">{typed}</pre></section>\
         <section><h2>Raw body from Chat2Desk</h2><pre id=\"raw\">{raw}</pre></section></div>",
        subject = escape(&message.subject),
        id = escape(&event.event_id),
        tenant = escape(&event.tenant),
        hook = escape(&event.hook_type),
        time = escape(&when(event.event_time.as_ref())),
        received = escape(&when(event.received_at.as_ref())),
        origin = escape(event.origin().as_str_name()),
        trace = escape(&trace),
        warnings = escape(&event.warnings.join("; ")),
        typed = escape(&typed),
        raw = escape(&raw),
    );
    page(&format!("Event {sequence}"), Some(&session), &body).into_response()
}

/// Whether `raw` contains `text`, ignoring ASCII case.
fn contains(raw: &[u8], text: &str) -> bool {
    let text = text.as_bytes();
    raw.windows(text.len())
        .any(|window| window.eq_ignore_ascii_case(text))
}

/// A timestamp as UTC `YYYY-MM-DD HH:MM:SS`.
fn when(timestamp: Option<&prost_types::Timestamp>) -> String {
    let Some(timestamp) = timestamp else {
        return String::new();
    };
    let days = timestamp.seconds.div_euclid(86_400);
    let seconds = timestamp.seconds.rem_euclid(86_400);
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        seconds / 3_600,
        seconds % 3_600 / 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_utc() {
        let at = prost_types::Timestamp {
            seconds: 1_564_354_900,
            nanos: 0,
        };
        assert_eq!(when(Some(&at)), "2019-07-28 23:01:40");
        assert_eq!(when(None), "");
    }

    #[test]
    fn text_is_found_whatever_its_case() {
        assert!(contains(br#"{"text":"Hello World"}"#, "hello world"));
        assert!(!contains(b"abc", "abcd"));
    }
}
