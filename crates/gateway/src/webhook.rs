//! `POST /hooks/chat2desk/{tenant}`: one Chat2Desk delivery in, one stored event out.
//!
//! The order of the steps is the contract: the tenant and its token are checked before the
//! body is read; the body is read within the size limit; it is decoded into an event, or kept
//! as a dead letter when it is not JSON; it is appended to JetStream; and only then is 2xx
//! answered. Any failure to store answers 503, which Chat2Desk retries, and the retry carries
//! the same event id, so it is stored once.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use c2d_proto::events::{Payload, Subject, dlq_subject};
use c2d_telemetry::{TRACEPARENT, continue_trace, traceparent};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use prost::Message as _;
use serde_json::json;
use tracing::{Instrument, field};

use crate::Gateway;
use crate::error::Rejection;
use crate::event_log::Appended;
use crate::limits::Refused;
use crate::tenants::Access;

/// The handler of the webhook route. It takes the request whole: axum's `HeaderMap` and
/// `Extensions` extractors would clone both maps on every delivery.
pub async fn receive(
    State(gateway): State<Arc<Gateway>>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let started = Instant::now();
    let span = tracing::info_span!(
        "webhook",
        tenant = %tenant,
        hook_type = field::Empty,
        event_id = field::Empty,
        duplicate = field::Empty,
    );
    continue_trace(
        &span,
        headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()),
    );

    let answer = store(&gateway, &tenant, query.as_deref(), peer, &headers, body)
        .instrument(span.clone())
        .await;
    gateway
        .metrics
        .request_seconds
        .observe(started.elapsed().as_secs_f64());
    let _entered = span.enter();
    match answer {
        Ok((outcome, response)) => {
            gateway.metrics.request(outcome);
            response
        }
        Err(rejection) => {
            gateway.metrics.request(rejection.outcome());
            match &rejection {
                Rejection::Unavailable(error) => tracing::warn!(%error, "answered 503"),
                other => {
                    tracing::info!(status = other.status().as_u16(), error = %other, "rejected")
                }
            }
            rejection.into_response()
        }
    }
}

async fn store(
    gateway: &Gateway,
    tenant: &str,
    query: Option<&str>,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(&'static str, Response), Rejection> {
    // A stopping gateway takes nothing new: what it would accept now could be left behind.
    if gateway.is_stopping() {
        return Err(Rejection::Stopping);
    }
    allowed_source(gateway, peer, headers)?;
    authorize(gateway, tenant, query, headers)?;
    let (_permit, wait) = gateway
        .limits
        .admit(tenant, Instant::now())
        .map_err(|refused| match refused {
            Refused::Rate { retry_after_secs } => Rejection::TooManyRequests {
                tenant: tenant.to_owned(),
                why: "sends faster than its rate",
                retry_after: retry_after_secs,
            },
            Refused::Concurrency => Rejection::TooManyRequests {
                tenant: tenant.to_owned(),
                why: "has too many requests in flight",
                retry_after: 1,
            },
        })?;
    // Over its rate: the request waits its turn (a mass mailing's burst is slowed, not
    // refused), then goes on.
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let content_type = accepted_content_type(headers)?;
    let timeout = gateway.config.body_timeout;
    let body = tokio::time::timeout(timeout, read_body(body, gateway.config.max_body_bytes))
        .await
        .map_err(|_| Rejection::BodyTimeout(timeout.as_secs()))??;
    let received_at = prost_types::Timestamp::from(SystemTime::now());
    let span = tracing::Span::current();
    let traceparent = traceparent(&span);

    let event = match c2d_hooks::read_delivery(tenant, body.clone(), received_at) {
        Ok(delivery) => {
            let known = !matches!(delivery.event.payload, Some(Payload::Unknown(_)));
            let new = gateway.metrics.drift.observe(
                &delivery.event.hook_type,
                known,
                &delivery.unknown_fields,
            );
            // Told once per field (the metric counts every delivery): a field Chat2Desk now
            // sends in every body must not turn each delivery into a log line.
            if new {
                tracing::info!(unknown_fields = ?delivery.unknown_fields, "the body has fields the parser does not read (kept in the raw body); told once, c2d_gateway_payload_unknown_fields_total counts them");
            } else if !delivery.unknown_fields.is_empty() {
                tracing::debug!(unknown_fields = ?delivery.unknown_fields, "the body has fields the parser does not read");
            }
            delivery.event
        }
        Err(undecodable) => {
            let letter =
                c2d_hooks::dead_letter(tenant, body, content_type, &undecodable, received_at);
            span.record("event_id", letter.event_id.as_str());
            let appended = gateway
                .append(
                    dlq_subject(tenant),
                    &letter.event_id,
                    &traceparent,
                    letter.encode_to_vec().into(),
                )
                .await?;
            if !appended.spooled {
                gateway
                    .metrics
                    .stored(Subject::DeadLetter { tenant }, appended.duplicate);
            }
            tracing::warn!(reason = %undecodable, "stored an undecodable delivery on the dead-letter subject");
            let answer = json!({ "status": "dead_letter", "event_id": letter.event_id, "reason": letter.reason });
            return Ok(("dead_letter", axum::Json(answer).into_response()));
        }
    };

    span.record("hook_type", event.hook_type.as_str());
    span.record("event_id", event.event_id.as_str());
    if !event.warnings.is_empty() {
        tracing::info!(warnings = ?event.warnings, "stored with fields that did not match their documented types");
    }
    let subject = event.subject();
    // An operator waits for hints: they are asked for while the event is stored.
    let hints = async {
        match &event.payload {
            Some(Payload::AiHintsRequested(request)) => {
                let (answer, outcome) = gateway.hints.answer(tenant, request).await;
                gateway.metrics.hint(outcome);
                Some(answer)
            }
            _ => None,
        }
    };
    let append = gateway.append(
        subject,
        &event.event_id,
        &traceparent,
        event.encode_to_vec().into(),
    );
    let (appended, hints) = tokio::join!(append, hints);
    let Appended {
        duplicate, spooled, ..
    } = appended?;
    span.record("duplicate", duplicate);
    // A spooled event is counted once the forwarder has stored it.
    let outcome = if spooled {
        "spooled"
    } else {
        let stored_on = Subject::Event {
            tenant,
            hook_type: &event.hook_type,
        };
        gateway.metrics.stored(stored_on, duplicate);
        if duplicate { "duplicate" } else { "stored" }
    };

    let response = match hints {
        Some(answer) => axum::Json(answer).into_response(),
        None => stored_answer(&event.event_id, duplicate, spooled),
    };
    Ok((outcome, response))
}

/// The answer to a stored delivery, `{"status":"ok","event_id":...,"duplicate":...}` (and
/// `"spooled":true` when it waits in the spool), written directly: it is the answer to almost
/// every request, and an event id is hex, with nothing to escape.
fn stored_answer(event_id: &str, duplicate: bool, spooled: bool) -> Response {
    debug_assert!(event_id.bytes().all(|b| b.is_ascii_alphanumeric()));
    let spooled = if spooled { ",\"spooled\":true" } else { "" };
    let body = format!(
        "{{\"status\":\"ok\",\"event_id\":\"{event_id}\",\"duplicate\":{duplicate}{spooled}}}"
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// With GATEWAY_ALLOWED_SOURCES set, the client (the socket's peer, or the address a trusted
/// proxy wrote into `X-Forwarded-For`) must be in one of its networks.
fn allowed_source(
    gateway: &Gateway,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
) -> Result<(), Rejection> {
    let allowed = &gateway.config.allowed_sources;
    if allowed.is_empty() {
        return Ok(());
    }
    match client_address(peer, headers, gateway.config.trusted_proxy_hops)? {
        ip if allowed.iter().any(|net| net.contains(ip)) => Ok(()),
        ip => Err(Rejection::ForbiddenSource(ip.to_string())),
    }
}

/// The client's address behind `hops` proxies that each append the address they received the
/// request from to `X-Forwarded-For`: the `hops`-th address from the right. Everything to its
/// left came from the client, who can write any address there, so it is never read.
fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    hops: usize,
) -> Result<IpAddr, Rejection> {
    if hops == 0 {
        return peer.ok_or_else(|| Rejection::ForbiddenSource("unknown".into()));
    }
    // Several X-Forwarded-For headers are one list, in order.
    let mut addresses = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let value = value
            .to_str()
            .map_err(|_| Rejection::ForbiddenSource("an unreadable X-Forwarded-For".into()))?;
        addresses.extend(value.split(',').map(str::trim).filter(|a| !a.is_empty()));
    }
    let Some(written) = addresses.len().checked_sub(hops).map(|i| addresses[i]) else {
        return Err(Rejection::ForbiddenSource(format!(
            "unknown: X-Forwarded-For has {} addresses where GATEWAY_TRUST_FORWARDED_FOR={hops} proxies append one each",
            addresses.len()
        )));
    };
    written
        .parse()
        .map_err(|_| Rejection::ForbiddenSource(format!("{written:?}, not an address")))
}

/// The tenant must be configured and the token (query `token` or `Authorization: Bearer`)
/// must be one of its secrets.
fn authorize(
    gateway: &Gateway,
    tenant: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<(), Rejection> {
    let from_query = match query {
        Some(query) => query_token(query)?,
        None => None,
    };
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(|token| token.trim().to_owned());
    match gateway
        .config
        .tenants
        .check(tenant, from_query.or(from_header).as_deref())
    {
        Access::Granted => Ok(()),
        Access::UnknownTenant => Err(Rejection::UnknownTenant(tenant.to_owned())),
        Access::MissingToken => Err(Rejection::MissingToken),
        Access::WrongToken => Err(Rejection::WrongToken),
    }
}

/// The `token` parameter of the query string, percent-decoded. The usual query is just
/// `token=...` in plain characters, read as it is; only a pair with escapes is decoded.
fn query_token(query: &str) -> Result<Option<String>, Rejection> {
    for pair in query.split('&') {
        if pair.contains(['%', '+']) {
            let decoded: Vec<(String, String)> = serde_urlencoded::from_str(pair)
                .map_err(|error| Rejection::BadQuery(error.to_string()))?;
            if let Some((_, token)) = decoded.into_iter().find(|(name, _)| name == "token") {
                return Ok(Some(token));
            }
        } else if let ("token", token) = pair.split_once('=').unwrap_or((pair, "")) {
            return Ok(Some(token.to_owned()));
        }
    }
    Ok(None)
}

/// JSON, or no declared type, or text (some senders label JSON as text/plain). Form and
/// multipart bodies are not what Chat2Desk sends, and get 415.
fn accepted_content_type(headers: &HeaderMap) -> Result<&str, Rejection> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok("");
    };
    let text = value.to_str().map_err(|_| {
        Rejection::UnsupportedMediaType(String::from_utf8_lossy(value.as_bytes()).into_owned())
    })?;
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let accepted = essence.is_empty()
        || essence == "application/json"
        || essence == "text/json"
        || essence == "text/plain"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if accepted {
        Ok(text)
    } else {
        Err(Rejection::UnsupportedMediaType(text.to_owned()))
    }
}

/// The whole body, refusing early (from `Content-Length`) or while reading, past `limit`.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, Rejection> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(Rejection::TooLarge { limit }),
        Err(error) => Err(Rejection::UnreadableBody(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_stored_answer_is_the_json_it_always_was() {
        for (duplicate, spooled) in [(false, false), (true, false), (false, true)] {
            let answer = stored_answer("0123abcd", duplicate, spooled);
            assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/json");
            let body = axum::body::to_bytes(answer.into_body(), 1024)
                .await
                .unwrap();
            let mut expected =
                json!({ "status": "ok", "event_id": "0123abcd", "duplicate": duplicate });
            if spooled {
                expected["spooled"] = json!(true);
            }
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
                expected
            );
        }
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_client_is_the_address_the_outermost_trusted_proxy_appended() {
        let peer = Some("10.0.0.9".parse().unwrap());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // A forged first address is what the client sent: one ingress appended the real one.
        let headers = forwarded(&["10.9.9.7, 198.51.100.4"]);
        assert_eq!(
            client_address(peer, &headers, 1).unwrap(),
            ip("198.51.100.4")
        );
        // Two proxies (a cloud balancer, then the ingress): the second from the right.
        let headers = forwarded(&["10.9.9.7", "203.0.113.5, 172.16.0.1"]);
        assert_eq!(
            client_address(peer, &headers, 2).unwrap(),
            ip("203.0.113.5")
        );
        // Not behind proxies: the socket's peer, whatever the header says.
        assert_eq!(client_address(peer, &headers, 0).unwrap(), ip("10.0.0.9"));
        // Fewer addresses than proxies: the request did not come through them.
        let error = client_address(peer, &forwarded(&["10.9.9.7"]), 2).unwrap_err();
        assert!(error.to_string().contains("has 1 addresses"), "{error}");
        assert!(client_address(peer, &forwarded(&["not-an-ip"]), 1).is_err());
    }
    use axum::http::HeaderValue;

    fn with_type(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn json_and_untyped_bodies_are_accepted() {
        assert!(accepted_content_type(&HeaderMap::new()).is_ok());
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "text/plain",
            "application/vnd.c2d+json",
        ] {
            assert!(accepted_content_type(&with_type(ok)).is_ok(), "{ok}");
        }
    }

    #[test]
    fn forms_and_files_get_415() {
        for bad in [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "image/png",
        ] {
            assert!(
                matches!(
                    accepted_content_type(&with_type(bad)),
                    Err(Rejection::UnsupportedMediaType(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_token_is_read_percent_decoded_from_the_query() {
        assert_eq!(
            query_token("token=a%2Bb&x=1").unwrap().as_deref(),
            Some("a+b")
        );
        assert_eq!(query_token("x=1").unwrap(), None);
        assert_eq!(
            query_token("x=1&token=s3cret").unwrap().as_deref(),
            Some("s3cret")
        );
        assert_eq!(query_token("t%6Fken=a+b").unwrap().as_deref(), Some("a b"));
        assert_eq!(query_token("token").unwrap().as_deref(), Some(""));
        assert_eq!(
            query_token("&&token=x&token=y").unwrap().as_deref(),
            Some("x")
        );
    }
}
