//! The simulator's HTTP face: Chat2Desk's webhooks API under `/v1` (the same calls `c2dctl
//! webhooks` makes against the real one), and `GET /simulator/stats` with its counters.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde_json::{Value as JsonValue, json};

use crate::chat2desk::WebhookSpec;
use crate::simulator::accounts::{Accounts, Refusal};
use crate::simulator::delivery::{Counters, lock};

#[derive(Clone)]
struct Api {
    accounts: Arc<Mutex<Accounts>>,
    counters: Arc<Counters>,
}

/// The routes.
pub fn router(accounts: Arc<Mutex<Accounts>>, counters: Arc<Counters>) -> axum::Router {
    axum::Router::new()
        .route("/v1/webhooks", get(list).post(create))
        .route("/v1/webhooks/{id}", put(update).delete(delete))
        .route("/simulator/stats", get(stats))
        .route("/simulator/alerts", axum::routing::post(alert))
        .with_state(Api { accounts, counters })
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
