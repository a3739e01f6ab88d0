//! Replaying selected events to the gateway, as Chat2Desk would deliver them again: each raw
//! body is posted to the gateway's webhook of its tenant, with the tenant's secret in an
//! `Authorization` header (never in a URL). The gateway treats a replay as any delivery: an
//! event it holds already is answered `duplicate` and not stored twice, so a replay is safe to
//! repeat; what it is for is an event the log lost (a purge, a stream restored from an old
//! backup) or one sent to another environment's gateway. An operator's request for hints is
//! not replayed: it was answered when it was made, and posting it again would ask HintsService
//! for an answer nobody waits for.
//!
//! Two steps, both actions with the CSRF token: the selection is shown for confirmation, and
//! only the confirmed form posts. Every selected event must be one the login may see, or
//! nothing is replayed.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use c2d_proto::events::HookType;
use c2d_proto::events::v1::Event;
use futures_util::StreamExt as _;
use prost::Message as _;

use crate::Console;
use crate::auth::Session;
use crate::html::{csrf_field, escape, page, refusal, repeated_field};

const TITLE: &str = "Replay";
/// Events one replay may post.
pub const MOST: usize = 200;

/// The selection and whether it was confirmed, from the form.
fn selection(form: &[u8]) -> Result<(Vec<u64>, bool), String> {
    let mut sequences = repeated_field(form, "seq")?
        .into_iter()
        .map(|value| {
            value
                .parse::<u64>()
                .map_err(|_| format!("{value:?} is not a stream sequence"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let confirmed = repeated_field(form, "confirm")?.iter().any(|v| v == "yes");
    sequences.sort_unstable();
    sequences.dedup();
    Ok((sequences, confirmed))
}

/// POST /events/replay: first the confirmation page, then (with `confirm=yes`) the replay.
pub async fn replay(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    form: Bytes,
) -> Response {
    let (_, session) = match console.action_session(&headers, &form) {
        Ok(session) => session,
        Err(refused) => return *refused,
    };
    let refused = |status, why: &str| refusal(status, TITLE, Some(&session), why);
    let (sequences, confirmed) = match selection(&form) {
        Ok(selection) => selection,
        Err(why) => return refused(StatusCode::BAD_REQUEST, &why),
    };
    if sequences.is_empty() {
        return refused(
            StatusCode::BAD_REQUEST,
            "Select the events to replay first.",
        );
    }
    if sequences.len() > MOST {
        return refused(
            StatusCode::BAD_REQUEST,
            &format!("At most {MOST} events at a time; select fewer."),
        );
    }
    let events = match load(&console, &session, &sequences).await {
        Ok(events) => events,
        Err(refusal) => return *refusal,
    };
    // An operator's request for hints is answered to that operator, then and there: posted
    // again, the gateway would ask HintsService for an answer nobody waits for.
    if let Some((sequence, _)) = events
        .iter()
        .find(|(_, e)| e.hook_type == HookType::AiHintsRequested.as_str())
    {
        return refused(
            StatusCode::BAD_REQUEST,
            &format!(
                "Event {sequence} is an operator's request for hints, which is answered when it is made: it is not replayed. Leave it out of the selection."
            ),
        );
    }
    if let Some(event) = events
        .iter()
        .find(|(_, e)| console.config.gateway_tokens.secret(&e.tenant).is_none())
    {
        return refused(
            StatusCode::CONFLICT,
            &format!(
                "The console has no gateway secret for tenant {}: add it to CONSOLE_GATEWAY_TOKENS (as in the gateway's GATEWAY_TOKENS) to replay its events.",
                event.1.tenant
            ),
        );
    }
    if confirmed {
        post(&console, &session, &events).await
    } else {
        confirm(&console, &session, &events)
    }
}

/// The selected events, each one the login may see; a missing or hidden one refuses all.
async fn load(
    console: &Console,
    session: &Session,
    sequences: &[u64],
) -> Result<Vec<(u64, Event)>, Box<Response>> {
    let refused = |status, why: String| Box::new(refusal(status, TITLE, Some(session), &why));
    let mut events = Vec::with_capacity(sequences.len());
    for &sequence in sequences {
        let event = match crate::event::stored(console, sequence).await {
            Ok(message) => message.and_then(|message| Event::decode(message.payload).ok()),
            Err(why) => return Err(refused(StatusCode::SERVICE_UNAVAILABLE, why)),
        };
        match event {
            Some(event) if session.principal.may_see(&event.tenant) => {
                events.push((sequence, event))
            }
            _ => {
                return Err(refused(
                    StatusCode::NOT_FOUND,
                    format!("No event {sequence} that this login may see; nothing was replayed."),
                ));
            }
        }
    }
    Ok(events)
}

/// The confirmation: what will be posted where.
fn confirm(console: &Console, session: &Session, events: &[(u64, Event)]) -> Response {
    let rows: String = events
        .iter()
        .map(|(sequence, event)| {
            format!(
                "<tr><td>{sequence}<input type=\"hidden\" name=\"seq\" value=\"{sequence}\"></td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{} bytes</td></tr>",
                escape(&event.tenant),
                escape(&event.hook_type),
                escape(&event.event_id),
                event.raw.len()
            )
        })
        .collect();
    let body = format!(
        "<form method=\"post\" action=\"/events/replay\">{csrf}<input type=\"hidden\" name=\"confirm\" value=\"yes\">\
         <p id=\"confirm-question\">Post these {n} raw bodies again to the gateway at <code>{gateway}</code>, each to its tenant's webhook? \
         An event the log holds already is answered duplicate and not stored twice.</p>\
         <table><thead><tr><th>sequence</th><th>tenant</th><th>hook type</th><th>event id</th><th>body</th></tr></thead><tbody>{rows}</tbody></table>\
         <button type=\"submit\" id=\"confirm\">Replay {n} events</button> <a href=\"/events\">Cancel</a></form>",
        csrf = csrf_field(session),
        n = events.len(),
        gateway = escape(&console.config.gateway_url),
    );
    page(TITLE, Some(session), &body).into_response()
}

/// Replays posted at once: a slow gateway is not asked one event after another for minutes.
const AT_ONCE: usize = 8;

/// What the gateway made of one replayed body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Stored,
    Duplicate,
    Failed,
}

/// The gateway's answer to a replay, classified by what its body says.
fn outcome(status: StatusCode, json: &serde_json::Value) -> (Outcome, String) {
    if !status.is_success() {
        return (Outcome::Failed, format!("refused: {status} {json}"));
    }
    match (json["status"].as_str(), json["duplicate"].as_bool()) {
        (Some("ok"), Some(true)) => (
            Outcome::Duplicate,
            "duplicate: the log holds it already".to_owned(),
        ),
        (Some("ok"), _) if json["spooled"] == true => (
            Outcome::Stored,
            "stored (in the gateway's spool, on its way to the log)".to_owned(),
        ),
        (Some("ok"), _) => (Outcome::Stored, "stored".to_owned()),
        (Some("dead_letter"), _) => (
            Outcome::Failed,
            format!(
                "put on the dead-letter queue: {}",
                json["reason"].as_str().unwrap_or("not an event")
            ),
        ),
        _ => (
            Outcome::Failed,
            format!("an answer the console does not know: {json}"),
        ),
    }
}

/// Posts one event's raw body to its tenant's webhook.
async fn post_one(console: &Console, sequence: u64, event: &Event) -> (Outcome, String) {
    let secret = console
        .config
        .gateway_tokens
        .secret(&event.tenant)
        .unwrap_or_default();
    let url = format!(
        "{}/hooks/chat2desk/{}",
        console.config.gateway_url, event.tenant
    );
    let answer = console
        .http
        .post(&url)
        .bearer_auth(secret)
        .header("content-type", "application/json")
        .body(event.raw.clone())
        .send()
        .await;
    let (outcome, said) = match answer {
        Ok(answer) => {
            let status = answer.status();
            let text = answer.text().await.unwrap_or_default();
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|_| serde_json::Value::String(text.trim().to_owned()));
            outcome(status, &json)
        }
        Err(error) => (
            Outcome::Failed,
            format!(
                "not delivered: {} (check CONSOLE_GATEWAY_URL)",
                error.without_url()
            ),
        ),
    };
    tracing::info!(sequence, tenant = %event.tenant, outcome = ?outcome, "replayed to the gateway");
    (outcome, said)
}

/// Posts each event's raw body to the gateway (a few at once) and shows what it answered.
async fn post(console: &Console, session: &Session, events: &[(u64, Event)]) -> Response {
    let answers: Vec<(Outcome, String)> = futures_util::stream::iter(events.to_vec())
        .map(|(sequence, event)| async move { post_one(console, sequence, &event).await })
        .buffered(AT_ONCE)
        .collect()
        .await;
    let count = |wanted: Outcome| answers.iter().filter(|(o, _)| *o == wanted).count();
    let (stored, duplicates, failed) = (
        count(Outcome::Stored),
        count(Outcome::Duplicate),
        count(Outcome::Failed),
    );
    let rows: String = events
        .iter()
        .zip(&answers)
        .map(|((sequence, event), (_, said))| {
            format!(
                "<tr><td>{sequence}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&event.tenant),
                escape(&event.hook_type),
                escape(said)
            )
        })
        .collect();
    tracing::info!(
        principal = ?session.principal,
        stored,
        duplicates,
        failed,
        "events replayed to the gateway"
    );
    let body = format!(
        "<p id=\"replayed\">{n} replayed: {stored} stored, {duplicates} duplicates, {failed} failed.</p>\
         <table><thead><tr><th>sequence</th><th>tenant</th><th>hook type</th><th>the gateway's answer</th></tr></thead><tbody>{rows}</tbody></table>\
         <p><a href=\"/events\">Back to the events</a></p>",
        n = events.len()
    );
    let status = if failed > 0 {
        StatusCode::BAD_GATEWAY
    } else {
        StatusCode::OK
    };
    (status, page(TITLE, Some(session), &body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateways_answers_are_told_apart() {
        let ok = StatusCode::OK;
        let said = |json: serde_json::Value| outcome(ok, &json).0;
        assert_eq!(
            said(serde_json::json!({"status": "ok", "duplicate": true})),
            Outcome::Duplicate
        );
        assert_eq!(
            said(serde_json::json!({"status": "ok", "duplicate": false})),
            Outcome::Stored
        );
        assert_eq!(
            said(serde_json::json!({"status": "dead_letter", "reason": "x"})),
            Outcome::Failed
        );
        assert_eq!(said(serde_json::json!({"hints": []})), Outcome::Failed);
        let refused = outcome(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({"status": "error"}),
        );
        assert_eq!(refused.0, Outcome::Failed);
        assert!(refused.1.contains("401"));
    }

    #[test]
    fn the_selection_is_read_from_repeated_fields() {
        let (sequences, confirmed) = selection(b"csrf=x&seq=9&seq=3&seq=9&confirm=yes").unwrap();
        assert_eq!(sequences, [3, 9]);
        assert!(confirmed);
        assert!(selection(b"seq=nine").unwrap_err().contains("nine"));
        assert!(!selection(b"seq=1").unwrap().1);
    }
}
