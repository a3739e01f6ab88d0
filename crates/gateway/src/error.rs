//! Every answer the webhook endpoint gives other than success, and its HTTP status.
//!
//! Chat2Desk shows the answers of failing deliveries in its webhooks "errors" section, so each
//! body says what is wrong and what to do about it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::event_log::AppendError;

/// Why a webhook request was not stored.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error(
        "unknown tenant {0:?}: the webhook URL must name a tenant configured in GATEWAY_TOKENS"
    )]
    UnknownTenant(String),
    #[error(
        "missing token: add ?token=SECRET to the webhook URL or send Authorization: Bearer SECRET"
    )]
    MissingToken,
    #[error(
        "wrong token for this tenant: check the token in the webhook URL against GATEWAY_TOKENS"
    )]
    WrongToken,
    #[error("the query string cannot be read: {0}; the webhook URL takes only ?token=SECRET")]
    BadQuery(String),
    #[error(
        "body larger than {limit} bytes: raise GATEWAY_MAX_BODY_BYTES if such deliveries are legitimate"
    )]
    TooLarge { limit: usize },
    #[error("content type {0:?} is not accepted: send the webhook body as application/json")]
    UnsupportedMediaType(String),
    #[error("the request body could not be read: {0}; Chat2Desk retries the delivery")]
    UnreadableBody(String),
    #[error("the event could not be stored ({0}); retry later, it will be stored once")]
    Unavailable(AppendError),
    #[error(
        "the event ({size} bytes: the body and the fields read from it) is larger than the NATS server accepts; raise max_payload (e.g. 8MB) in the nats-server configuration, or lower GATEWAY_MAX_BODY_BYTES"
    )]
    EventTooLarge { size: usize },
    #[error("source address {0} is not in GATEWAY_ALLOWED_SOURCES: add Chat2Desk's network to it")]
    ForbiddenSource(String),
    #[error(
        "tenant {tenant} {why}: retry in {retry_after} s (limits: GATEWAY_TENANT_RATE, GATEWAY_TENANT_BURST, GATEWAY_TENANT_CONCURRENCY)"
    )]
    TooManyRequests {
        tenant: String,
        why: &'static str,
        retry_after: u64,
    },
    #[error(
        "the body did not arrive within {0} s: send it whole at once, or raise GATEWAY_BODY_TIMEOUT_SECS if a legitimate sender is that slow"
    )]
    BodyTimeout(u64),
    #[error(
        "this gateway is stopping and takes no new deliveries; retry, another replica stores it"
    )]
    Stopping,
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::UnknownTenant(_) => StatusCode::NOT_FOUND,
            Rejection::MissingToken | Rejection::WrongToken => StatusCode::UNAUTHORIZED,
            Rejection::BadQuery(_) | Rejection::UnreadableBody(_) => StatusCode::BAD_REQUEST,
            Rejection::TooLarge { .. } | Rejection::EventTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Rejection::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Rejection::Unavailable(_) | Rejection::Stopping => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::ForbiddenSource(_) => StatusCode::FORBIDDEN,
            Rejection::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Rejection::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The outcome label of the requests metric.
    pub fn outcome(&self) -> &'static str {
        match self {
            Rejection::UnknownTenant(_) => "unknown_tenant",
            Rejection::MissingToken | Rejection::WrongToken => "unauthorized",
            Rejection::BadQuery(_) | Rejection::UnreadableBody(_) => "bad_request",
            Rejection::TooLarge { .. } | Rejection::EventTooLarge { .. } => "too_large",
            Rejection::UnsupportedMediaType(_) => "unsupported_media_type",
            Rejection::Unavailable(_) => "unavailable",
            Rejection::ForbiddenSource(_) => "forbidden_source",
            Rejection::TooManyRequests { .. } => "too_many_requests",
            Rejection::BodyTimeout(_) => "body_timeout",
            Rejection::Stopping => "stopping",
        }
    }
}

/// A retry cannot make an event fit NATS: that is a 413, which Chat2Desk shows, not a 503.
impl From<AppendError> for Rejection {
    fn from(error: AppendError) -> Self {
        match error {
            AppendError::TooLarge { size } => Rejection::EventTooLarge { size },
            other => Rejection::Unavailable(other),
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({ "status": "error", "error": self.to_string() });
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            Rejection::Unavailable(_) | Rejection::Stopping => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            }
            Rejection::TooManyRequests { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            Rejection::MissingToken | Rejection::WrongToken => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
