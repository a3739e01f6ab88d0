//! The event log, searched and read: what an integrator chasing a missing webhook looks at.
//!
//! A search selects subjects by tenant and hook type, and events by body text, client and
//! request, over a time range; it shows the newest first ([`crate::search`] walks back from
//! the end of the log). The page also follows the log: a live tail (Server-Sent Events) puts
//! each new event the search selects on top of the table as it is stored. Rows can be selected
//! and replayed to the gateway ([`crate::replay`]).
//!
//! A tenant login is bound to its tenant: a search for another tenant is refused (403), and
//! another tenant's event is not found (404), so its existence is not told either.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use c2d_proto::events::v1::Event;
use c2d_proto::events::{HookType, UNKNOWN_HOOK_TYPE};
use c2d_subscriber::StartAt;
use futures_util::StreamExt as _;

use crate::Console;
use crate::auth::Session;
use crate::html::{csrf_field, escape, page, refusal, tenant_field};
use crate::search::{self, Matcher};
use crate::time::when;

/// Rows shown for one search, newest first.
pub const SHOWN: usize = 200;

/// What a search asks for (the query string of `/events`).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Search {
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub hook_type: String,
    /// Text the raw body must contain (a message, a phone number...).
    #[serde(default)]
    pub text: String,
    /// The client id the event is about.
    #[serde(default)]
    pub client: String,
    /// The request id the event is about.
    #[serde(default)]
    pub request: String,
    /// How far back, e.g. `1h`, `30m`, `7d`; default one hour.
    #[serde(default)]
    pub since: String,
    /// Only events before this stream sequence: the next page of a search.
    #[serde(default)]
    pub before: Option<u64>,
    /// A live tail's start: events after this stream sequence.
    #[serde(default)]
    pub after: Option<u64>,
}

/// Why a search cannot be run as asked.
fn refused(status: StatusCode, session: &Session, why: &str) -> Response {
    refusal(status, "Events", Some(session), why)
}

/// GET /events: the search form and what it found.
pub async fn search(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> Response {
    let (session, subject, matcher) = match scoped(&console, &headers, &search) {
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
    let asked = search::Page {
        subject: &subject,
        since: start,
        before: search.before,
        matcher: &matcher,
        wanted: SHOWN,
        limit: console.config.search_limit,
    };
    let found =
        match search::newest(&console.nats, &console.jetstream, &session.principal, asked).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, "a search could not read the log");
                return refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &session,
                    &format!("The event log cannot be read now ({error}); try again."),
                );
            }
        };
    let rows: String = found
        .events
        .iter()
        .map(|stored| row(stored.stream_sequence, &stored.event))
        .collect();
    let note = match found.older_from {
        Some(before) => {
            let why = if found.limited {
                format!(
                    "This page read {} events (CONSOLE_SEARCH_LIMIT) and found {} matches. ",
                    found.read,
                    found.events.len()
                )
            } else {
                String::new()
            };
            let next = serde_urlencoded::to_string([
                ("tenant", search.tenant.trim()),
                ("hook_type", search.hook_type.trim()),
                ("client", search.client.trim()),
                ("request", search.request.trim()),
                ("text", search.text.trim()),
                ("since", search.since.trim()),
                ("before", &before.to_string()),
            ])
            .unwrap_or_default();
            format!(
                "<p id=\"older\">{why}<a href=\"/events?{}\">Older events</a></p>",
                escape(&next)
            )
        }
        None => String::new(),
    };
    let tenant_field = tenant_field(&session, &search.tenant, "tenant");
    let replay = if console.config.gateway_tokens.is_empty() {
        "<p>Replay is off: set CONSOLE_GATEWAY_TOKENS to replay events to the gateway.</p>"
            .to_owned()
    } else {
        "<button type=\"submit\" id=\"replay\">Replay the selected events to the gateway…</button>"
            .to_owned()
    };
    let body = format!(
        "<form class=\"search\" method=\"get\" action=\"/events\">{tenant_field}\
         <input name=\"hook_type\" placeholder=\"hook type\" value=\"{hook}\">\
         <input name=\"client\" placeholder=\"client id\" value=\"{client}\">\
         <input name=\"request\" placeholder=\"request id\" value=\"{request}\">\
         <input name=\"text\" placeholder=\"text in the body\" value=\"{text}\">\
         <input name=\"since\" placeholder=\"since (1h)\" value=\"{since}\">\
         <button type=\"submit\">Search</button></form>{note}\
         <p id=\"found\">{count} events (newest first, at most {SHOWN}; {read} read)</p>\
         <form method=\"post\" action=\"/events/replay\">{csrf}\
         <table><thead><tr><th></th><th>sequence</th><th>event time</th><th>tenant</th><th>hook type</th><th>event id</th></tr></thead>\
         <tbody>{rows}</tbody></table>{replay}</form>\
{tail}",
        hook = escape(search.hook_type.trim()),
        client = escape(search.client.trim()),
        request = escape(search.request.trim()),
        text = escape(&matcher.text),
        since = escape(search.since.trim()),
        count = found.events.len(),
        read = found.read,
        csrf = csrf_field(&session),
        tail = tail_script(&search, found.last_sequence),
    );
    page("Events", Some(&session), &body).into_response()
}

/// The live tail of a search page: events after the last one the page's search could see
/// (`after`), so none stored while the page loaded is missed; on a reconnect the browser sends
/// the last one it got (`Last-Event-ID`). A page of older events has no tail.
fn tail_script(search: &Search, last_sequence: u64) -> String {
    if search.before.is_some() {
        return String::new();
    }
    format!(
        "<script>const live = new EventSource('/events/live' + (location.search || '?') + '&after={last_sequence}');\
         live.onopen = () => document.body.dataset.live = 'open';\
         live.onmessage = (e) => document.querySelector('tbody').insertAdjacentHTML('afterbegin', e.data);</script>"
    )
}

/// What a search's events must hold besides their subject, or why the search is not one.
fn matcher(search: &Search) -> Result<Matcher, &'static str> {
    let id = |text: &str| match text.trim() {
        "" => Ok(None),
        text => text
            .parse::<i64>()
            .map(Some)
            .map_err(|_| "A client or request id is a number, as Chat2Desk gives it."),
    };
    Ok(Matcher {
        text: search.text.trim().to_owned(),
        client: id(&search.client)?,
        request: id(&search.request)?,
    })
}

/// The request's session, the subjects its search may read and what their events must hold,
/// or the answer to give instead (the login form, or a refusal): a search and its live tail
/// select alike.
fn scoped(
    console: &Console,
    headers: &HeaderMap,
    search: &Search,
) -> Result<(Session, String, Matcher), Box<Response>> {
    let (_, session) = console.session(headers)?;
    let subject = scope(&session, search)?;
    let matcher =
        matcher(search).map_err(|why| Box::new(refused(StatusCode::BAD_REQUEST, &session, why)))?;
    Ok((session, subject, matcher))
}

/// The subjects a search (or a live tail) of this session may read: its tenant's, or any for
/// the operator; a tenant's login asking for another tenant is refused (403).
fn scope(session: &Session, search: &Search) -> Result<String, Box<Response>> {
    let tenant = match session.principal.scope(&search.tenant) {
        Ok(tenant) => tenant.unwrap_or_else(|| "*".to_owned()),
        Err(out) => return Err(Box::new(refused(out.status(), session, &out.to_string()))),
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
        "<tr><td><input type=\"checkbox\" name=\"seq\" value=\"{sequence}\" aria-label=\"select {sequence}\"></td><td><a href=\"/events/{sequence}\">{sequence}</a></td><td>{time}</td><td>{tenant}</td><td>{hook}</td><td><code>{id}</code></td></tr>",
        time = escape(&when(event.event_time.as_ref())),
        tenant = escape(&event.tenant),
        hook = escape(&event.hook_type),
        id = escape(&event.event_id),
    )
}

/// GET /events/live: the search's new events as they are stored, as Server-Sent Events (each
/// one a table row), for the page's script to put on top. Each tail follows the log from the
/// request's time (`history::follow`: an ordered consumer that vanishes with the connection;
/// it acknowledges and dead-letters nothing, which the console's read-only user could not).
pub async fn live(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> Response {
    let (session, subject, matcher) = match scoped(&console, &headers, &search) {
        Ok(scoped) => scoped,
        Err(answer) => return *answer,
    };
    // After what the page (or, on a reconnect, the browser) saw last; without either, from the
    // moment of the request. The tail goes when the browser does (the stream is dropped).
    let seen = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .into_iter()
        .chain(search.after)
        .max();
    let start = match seen {
        Some(seen) => StartAt::Sequence(seen + 1),
        None => StartAt::Time(SystemTime::now()),
    };
    let tail =
        match c2d_subscriber::history::follow(console.nats.clone(), start, Some(subject)).await {
            Ok(tail) => tail,
            Err(error) => {
                return refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &session,
                    &format!("The event log cannot be read now ({error}); try again."),
                );
            }
        };
    let principal = session.principal.clone();
    let stream = tail.filter_map(move |stored| {
        let shown = (principal.may_see(&stored.event.tenant) && matcher.matches(&stored.event))
            .then(|| row(stored.stream_sequence, &stored.event));
        std::future::ready(shown.map(|row| {
            let event = SseEvent::default().id(stored.stream_sequence.to_string());
            Ok::<_, std::convert::Infallible>(event.data(row))
        }))
    });
    Sse::new(stream.take_until(console.stopped()))
        .keep_alive(KeepAlive::default())
        .into_response()
}
