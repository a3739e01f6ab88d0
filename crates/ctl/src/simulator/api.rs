//! The simulator's HTTP face: Chat2Desk's webhooks API under `/v1` (the same calls `c2dctl
//! webhooks` makes against the real one), its messages API (`GET /v1/messages` over every
//! message the traffic made, with Chat2Desk's paging and filters), its clients' cards
//! (`GET /v1/clients/{id}`), `GET /simulator/stats` with
//! its counters, and `POST /simulator/faults`, which makes the next API calls fail the ways the
//! real API does (401, 429 with Retry-After, 5xx, a malformed page) so that tests see a client
//! survive them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde_json::{Value as JsonValue, json};

use crate::chat2desk::{MAX_PAGE, MessageQuery, WebhookSpec};
use crate::simulator::accounts::{Accounts, Refusal};
use crate::simulator::delivery::{Counters, lock};

#[derive(Clone)]
struct Api {
    accounts: Arc<Mutex<Accounts>>,
    counters: Arc<Counters>,
    /// Failures the next `/v1` calls answer with, first first.
    faults: Arc<Mutex<VecDeque<Fault>>>,
}

/// One injected failure of an API call (`POST /simulator/faults`, `{"faults": [...]}`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Fault {
    /// The HTTP status to answer (401, 429, 500, 503, ...); 200 with `malformed`.
    #[serde(default = "ok")]
    pub status: u16,
    /// The `Retry-After` header of a 429, in seconds.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// A 200 whose body is not the documented page.
    #[serde(default)]
    pub malformed: bool,
}

fn ok() -> u16 {
    200
}

/// The routes.
pub fn router(accounts: Arc<Mutex<Accounts>>, counters: Arc<Counters>) -> axum::Router {
    let faults = Arc::new(Mutex::new(VecDeque::new()));
    let api = Api {
        accounts,
        counters,
        faults,
    };
    axum::Router::new()
        .route("/v1/webhooks", get(list).post(create))
        .route("/v1/webhooks/{id}", put(update).delete(delete))
        .route("/v1/messages", get(messages))
        .route("/v1/clients/{id}", get(client))
        .route("/simulator/stats", get(stats))
        .route("/simulator/alerts", axum::routing::post(alert))
        .route("/simulator/faults", axum::routing::post(inject))
        .layer(axum::middleware::from_fn_with_state(api.clone(), faulty))
        .with_state(api)
}

/// Answers a `/v1` call with the next injected fault, if any.
async fn faulty(
    State(api): State<Api>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !request.uri().path().starts_with("/v1/") {
        return next.run(request).await;
    }
    let fault = api
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pop_front();
    let Some(fault) = fault else {
        return next.run(request).await;
    };
    api.counters
        .faults
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(?fault, path = %request.uri().path(), "answering with an injected fault");
    if fault.malformed {
        return (StatusCode::OK, "{\"data\": \"<truncated").into_response();
    }
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        Json(json!({"status": "error", "errors": {"fault": ["injected by the simulator"]}})),
    )
        .into_response();
    if let Some(seconds) = fault.retry_after
        && let Ok(value) = seconds.to_string().parse()
    {
        response.headers_mut().insert("retry-after", value);
    }
    response
}

/// `POST /simulator/faults` with `{"faults": [{"status": 429, "retry_after": 1}, ...]}`.
async fn inject(State(api): State<Api>, Json(body): Json<JsonValue>) -> Response {
    let faults: Vec<Fault> = match serde_json::from_value(body["faults"].clone()) {
        Ok(faults) => faults,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("write {{\"faults\": [{{\"status\": 429, \"retry_after\": 1}}, {{\"malformed\": true}}]}}: {error}"),
            )
                .into_response();
        }
    };
    let mut queue = api.faults.lock().unwrap_or_else(|p| p.into_inner());
    queue.extend(faults);
    Json(json!({"queued": queue.len()})).into_response()
}

/// `GET /v1/messages`: the account's messages created within `start_date`..=`finish_date`,
/// of `type`, `client_id` and `channel_id` when given, oldest first, `limit` (at most 200,
/// default 200) from `offset`.
async fn messages(
    State(api): State<Api>,
    headers: HeaderMap,
    query: Result<Query<MessageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let tenant = match tenant(&api, &headers) {
        Ok(tenant) => tenant,
        Err(refusal) => return refused(refusal),
    };
    let query = match query {
        Ok(Query(query)) => query,
        Err(error) => return refused(invalid("query", error.body_text())),
    };
    let bound = |name: &'static str, value: &Option<String>| match value {
        None => Ok(None),
        Some(text) => c2d_hooks::time::parse_time_text(text)
            .map(|t| Some(t.seconds))
            .ok_or_else(|| {
                invalid(
                    name,
                    format!("{text:?} is not a date (2026-12-06T20:00:00Z)"),
                )
            }),
    };
    let (start, finish) = match (
        bound("start_date", &query.start_date),
        bound("finish_date", &query.finish_date),
    ) {
        (Ok(start), Ok(finish)) => (start, finish),
        (Err(refusal), _) | (_, Err(refusal)) => return refused(refusal),
    };
    let limit = query.limit.unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let offset = query.offset.unwrap_or(0);
    let accounts = lock(&api.accounts);
    let matching: Vec<&JsonValue> = accounts.accounts[&tenant]
        .messages
        .iter()
        .filter(|m| start.is_none_or(|s| m.created >= s) && finish.is_none_or(|f| m.created <= f))
        .map(|m| &m.json)
        .filter(|m| query.kind.as_ref().is_none_or(|k| m["type"] == json!(k)))
        .filter(|m| query.client_id.is_none_or(|c| m["client_id"] == json!(c)))
        .filter(|m| query.channel_id.is_none_or(|c| m["channel_id"] == json!(c)))
        .collect();
    let page: Vec<&JsonValue> = matching
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .copied()
        .collect();
    Json(json!({
        "status": "success",
        "data": page,
        "meta": {"total": matching.len(), "limit": limit, "offset": offset},
    }))
    .into_response()
}

/// `GET /v1/clients/{id}`: a client's card, or 404.
async fn client(State(api): State<Api>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let tenant = match tenant(&api, &headers) {
        Ok(tenant) => tenant,
        Err(refusal) => return refused(refusal),
    };
    let card = lock(&api.accounts).accounts[&tenant]
        .clients
        .get(&id)
        .cloned();
    match card {
        Some(card) => success(card),
        None => refused(Refusal {
            status: 404,
            field: "id",
            message: format!("no client {id} in this account"),
        }),
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status: 400,
        field,
        message: message.into(),
    }
}

/// The account of the `Authorization` header, or Chat2Desk's 401.
fn tenant(api: &Api, headers: &HeaderMap) -> Result<String, Refusal> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim();
    lock(&api.accounts)
        .by_token(token)
        .map(|a| a.tenant.clone())
        .ok_or_else(|| Refusal {
            status: 401,
            field: "token",
            message: "the API token is missing or unknown".into(),
        })
}

fn refused(refusal: Refusal) -> Response {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        Json(json!({"status": "error", "errors": {refusal.field: [refusal.message]}})),
    )
        .into_response()
}

fn success(data: JsonValue) -> Response {
    Json(json!({"status": "success", "data": data})).into_response()
}

/// A JSON body, or Chat2Desk's 400.
fn spec(body: &[u8]) -> Result<WebhookSpec, Refusal> {
    serde_json::from_slice(body).map_err(|e| Refusal {
        status: 400,
        field: "body",
        message: format!("not a webhook as JSON: {e}"),
    })
}

async fn list(State(api): State<Api>, headers: HeaderMap) -> Response {
    let tenant = match tenant(&api, &headers) {
        Ok(tenant) => tenant,
        Err(refusal) => return refused(refusal),
    };
    let accounts = lock(&api.accounts);
    let webhooks: Vec<_> = accounts.accounts[&tenant]
        .webhooks
        .iter()
        .map(|w| w.webhook.clone())
        .collect();
    success(json!(webhooks))
}

async fn create(State(api): State<Api>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let result = tenant(&api, &headers).and_then(|tenant| {
        let spec = spec(&body)?;
        lock(&api.accounts).create(&tenant, spec)
    });
    match result {
        Ok(webhook) => success(json!(webhook)),
        Err(refusal) => refused(refusal),
    }
}

async fn update(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Response {
    let result = tenant(&api, &headers).and_then(|tenant| {
        let spec = spec(&body)?;
        lock(&api.accounts).update(&tenant, id, spec)
    });
    match result {
        Ok(Some(webhook)) => success(json!(webhook)),
        Ok(None) => success(JsonValue::Null),
        Err(refusal) => refused(refusal),
    }
}

async fn delete(State(api): State<Api>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let result = tenant(&api, &headers).and_then(|tenant| lock(&api.accounts).delete(&tenant, id));
    match result {
        Ok(()) => success(JsonValue::Null),
        Err(refusal) => refused(refusal),
    }
}

/// A receiver for c2d-alerting's webhook notifications, so that a demo shows its alerts in the
/// simulator's log.
async fn alert(Json(body): Json<JsonValue>) -> Response {
    let text = body["text"].as_str().unwrap_or_default();
    tracing::warn!(target: "c2dctl::alert", "{text}");
    StatusCode::OK.into_response()
}

async fn stats(State(api): State<Api>) -> Response {
    let mut stats = api.counters.snapshot();
    let accounts = lock(&api.accounts);
    stats["messages"] = json!(
        accounts
            .accounts
            .values()
            .map(|a| (a.tenant.clone(), a.messages.len()))
            .collect::<std::collections::BTreeMap<_, _>>()
    );
    stats["webhooks"] = json!(
        accounts
            .accounts
            .values()
            .flat_map(|a| a.webhooks.iter().map(move |w| json!({
                // Without the query, which holds the gateway's token.
                "tenant": a.tenant, "id": w.webhook.id, "url": w.webhook.url.split('?').next(),
                "disabled": w.webhook.disabled,
            })))
            .collect::<Vec<_>>()
    );
    Json(stats).into_response()
}
