//! Chat2Desk's REST API, as its public integrations call it, shared by `c2dctl` (its webhooks
//! commands and its simulator's stand-in of this API) and `c2d-keeper` (which keeps the webhook
//! registered and backfills what the webhook lost).
//!
//! Webhooks: `GET /v1/webhooks` lists, `POST /v1/webhooks` creates (at most 5 per account),
//! `PUT /v1/webhooks/{id}` changes (a null `url` deletes), `DELETE /v1/webhooks/{id}` deletes;
//! [`register`] points the account's `c2d-gateway` webhook at the gateway. Messages:
//! `GET /v1/messages` with `start_date`/`finish_date`, `limit`/`offset` paging and the `type`,
//! `client_id`, `channel_id` filters ([`messages`]). The API token goes in the `Authorization`
//! header as it is, without "Bearer". Errors come as 4xx with
//! `{"status": "error", "errors": {"field": ["message", ...]}}`, which [`ApiError`] turns into one
//! readable line; [`ApiError::is_transient`] says which are worth a retry.

pub mod messages;
pub mod register;

pub use messages::{MAX_PAGE, MessagePage, MessageQuery};
pub use register::{GATEWAY_WEBHOOK, RegisterError, Registered, gateway_of, gateway_url, register};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// Chat2Desk's API, unless `C2D_API_URL` says otherwise.
pub const DEFAULT_API_URL: &str = "https://api.chat2desk.com/v1";
/// At most this many webhooks per account.
pub const MAX_WEBHOOKS: usize = 5;

/// Every hook type, as Chat2Desk spells them in `events`.
pub fn every_hook_type() -> Vec<String> {
    c2d_proto::events::HookType::ALL
        .iter()
        .map(|h| h.as_str().to_owned())
        .collect()
}

/// One registered webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    /// The simulator's extension (real accounts show it under "errors"): disabled after 5
    /// hours without a successful delivery.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// What the real API reports of failed deliveries, kept as it comes (its form is not
    /// documented): where to look when Chat2Desk has disabled a webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Json>,
}

/// What a create or update sends. A `None` url in an update deletes the webhook.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Outer None: not sent; `Some(None)`: sent as null (deletes on update).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    pub url: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
}

/// `Option<Option<T>>` where an explicit null is `Some(None)` and a missing field is `None`.
mod nullable {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<Option<String>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

/// The API said no, or could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach the Chat2Desk API at {url}: {message}; check C2D_API_URL")]
    Unreachable { url: String, message: String },
    #[error(
        "the Chat2Desk API refused the token (HTTP {status}): check C2D_API_TOKEN (Chat2Desk: Settings -> API)"
    )]
    Unauthorized { status: u16 },
    #[error("the Chat2Desk API asks to slow down (HTTP 429){}", retry_after.map(|d| format!(", retry after {} s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// The answer's `Retry-After`, in seconds, when it had one.
        retry_after: Option<std::time::Duration>,
    },
    #[error("the Chat2Desk API answered HTTP {status}: {message}")]
    Refused { status: u16, message: String },
    #[error(
        "the Chat2Desk API answered something that is not what it documents: {0}; check C2D_API_URL (Chat2Desk's API, ending in /v1)"
    )]
    Unexpected(String),
}

impl ApiError {
    /// Whether the same call may succeed later as it is: the API unreachable, slowing us down
    /// (429), failing on its side (5xx), or answering a malformed page. A refused token or a
    /// refused request stays refused until someone changes the configuration.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Unreachable { .. } | ApiError::RateLimited { .. } => true,
            ApiError::Unexpected(_) => true,
            ApiError::Refused { status, .. } => *status >= 500,
            ApiError::Unauthorized { .. } => false,
        }
    }
}

/// A client of one account's API (webhooks, messages).
#[derive(Debug, Clone)]
pub struct Chat2DeskApi {
    http: reqwest::Client,
    base_url: String,
    token: String,
}

impl Chat2DeskApi {
    /// `base_url` ends in `/v1` (e.g. [`DEFAULT_API_URL`]); `token` is the account's API token.
    pub fn new(base_url: &str, token: &str) -> Result<Chat2DeskApi, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .user_agent(concat!("c2d-events/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Unreachable {
                url: base_url.into(),
                message: e.to_string(),
            })?;
        Ok(Chat2DeskApi {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    /// `GET /v1/webhooks`: the account's webhooks.
    pub async fn list(&self) -> Result<Vec<Webhook>, ApiError> {
        let answer = self.call(reqwest::Method::GET, "/webhooks", None).await?;
        serde_json::from_value(answer.get("data").cloned().unwrap_or(Json::Null))
            .map_err(|e| ApiError::Unexpected(format!("{e}: {answer}")))
    }

    /// `POST /v1/webhooks`.
    pub async fn create(&self, spec: &WebhookSpec) -> Result<Webhook, ApiError> {
        let answer = self
            .call(reqwest::Method::POST, "/webhooks", Some(spec))
            .await?;
        webhook(answer)
    }

    /// Changes a webhook; `Ok(None)` when a null url deleted it.
    pub async fn update(&self, id: i64, spec: &WebhookSpec) -> Result<Option<Webhook>, ApiError> {
        let answer = self
            .call(reqwest::Method::PUT, &format!("/webhooks/{id}"), Some(spec))
            .await?;
        if spec.url == Some(None) {
            return Ok(None);
        }
        webhook(answer).map(Some)
    }

    /// `DELETE /v1/webhooks/{id}`.
    pub async fn delete(&self, id: i64) -> Result<(), ApiError> {
        self.call(reqwest::Method::DELETE, &format!("/webhooks/{id}"), None)
            .await
            .map(|_| ())
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&WebhookSpec>,
    ) -> Result<Json, ApiError> {
        self.call_with(method, path, &[], body).await
    }

    async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&WebhookSpec>,
    ) -> Result<Json, ApiError> {
        let url = format!("{}{path}", self.base_url);
        let mut request = self
            .http
            .request(method, &url)
            .header("Authorization", &self.token);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| ApiError::Unreachable {
            url: url.clone(),
            message: e.without_url().to_string(),
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(std::time::Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        let json: Json = serde_json::from_str(&text).unwrap_or(Json::Null);
        match status {
            200..=299 => Ok(json),
            401 | 403 => Err(ApiError::Unauthorized { status }),
            429 => Err(ApiError::RateLimited { retry_after }),
            _ => Err(ApiError::Refused {
                status,
                message: error_message(&json).unwrap_or_else(|| text.chars().take(300).collect()),
            }),
        }
    }
}

/// A create or update answer: the webhook itself, or under `data`.
fn webhook(answer: Json) -> Result<Webhook, ApiError> {
    let data = answer.get("data").cloned().unwrap_or(answer);
    serde_json::from_value(data.clone()).map_err(|e| ApiError::Unexpected(format!("{e}: {data}")))
}

/// `{"errors": {"url": ["is invalid"]}}` as `url: is invalid`; `{"message": ...}` as it is.
pub fn error_message(json: &Json) -> Option<String> {
    if let Some(errors) = json.get("errors").and_then(Json::as_object) {
        let parts: Vec<String> = errors
            .iter()
            .map(|(field, messages)| {
                let messages = match messages {
                    Json::Array(items) => items
                        .iter()
                        .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(", "),
                    other => other
                        .as_str()
                        .map_or_else(|| other.to_string(), str::to_owned),
                };
                format!("{field}: {messages}")
            })
            .collect();
        return Some(parts.join("; "));
    }
    json.get("message")
        .and_then(Json::as_str)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_null_url_is_sent_as_null_and_a_missing_one_not_at_all() {
        let delete = WebhookSpec {
            url: Some(None),
            ..WebhookSpec::default()
        };
        assert_eq!(serde_json::to_string(&delete).unwrap(), r#"{"url":null}"#);
        let rename = WebhookSpec {
            name: Some("crm".into()),
            ..WebhookSpec::default()
        };
        assert_eq!(serde_json::to_string(&rename).unwrap(), r#"{"name":"crm"}"#);
        let parsed: WebhookSpec = serde_json::from_str(r#"{"url":null}"#).unwrap();
        assert_eq!(parsed.url, Some(None));
        let parsed: WebhookSpec = serde_json::from_str(r#"{"name":"x"}"#).unwrap();
        assert_eq!(parsed.url, None);
    }

    #[test]
    fn api_errors_read_as_one_line() {
        let json: Json = serde_json::json!({"status": "error", "errors": {"url": ["is required"], "events": ["unknown: foo"]}});
        assert_eq!(
            error_message(&json).unwrap(),
            "events: unknown: foo; url: is required"
        );
    }
}
