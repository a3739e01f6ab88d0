//! The generic HTTP connector: one request per change to a configured URL, with a JSON body
//! built from the connector's mapping (the whole change when there is none), custom headers,
//! bearer or basic auth, and the change's `Idempotency-Key` header.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value as Json;

use super::mapping::Template;
use super::{ConnectorSpec, DeliveryError};
use crate::outbox::Change;

/// Where and how the generic connector sends.
#[derive(Debug)]
pub struct HttpTarget {
    url: String,
    method: reqwest::Method,
    headers: HeaderMap,
    auth: Auth,
    body: Option<Template>,
    client: reqwest::Client,
}

enum Auth {
    None,
    Bearer(String),
    Basic { username: String, password: String },
}

/// Secrets stay out of logs and panics.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Bearer(_) => f.write_str("Bearer(***)"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}:***)"),
        }
    }
}

type Expand<'a> = dyn Fn(&str, &str) -> Result<String, String> + 'a;

impl HttpTarget {
    pub(super) fn from_spec(
        spec: &ConnectorSpec,
        timeout: Duration,
        expand: &Expand<'_>,
    ) -> Result<HttpTarget, String> {
        if spec.batch_size.is_some() {
            return Err(
                "batch_size is for kind \"hubspot\"; the http connector sends one change per call"
                    .into(),
            );
        }
        let url = expand(
            "url",
            spec.url
                .as_deref()
                .ok_or("kind \"http\" needs url = \"https://...\"")?,
        )?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("url {url:?} must start with http:// or https://"));
        }
        let method = match spec
            .method
            .as_deref()
            .unwrap_or("POST")
            .to_ascii_uppercase()
            .as_str()
        {
            "POST" => reqwest::Method::POST,
            "PUT" => reqwest::Method::PUT,
            "PATCH" => reqwest::Method::PATCH,
            other => return Err(format!("method {other:?} is not one of POST, PUT, PATCH")),
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &spec.headers {
            let value = expand(&format!("headers.{name}"), value)?;
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| format!("the value of header {name:?} is not valid"))?;
            // Header values may be API keys: Debug prints them as "Sensitive".
            value.set_sensitive(true);
            headers.insert(
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("header name {name:?} is not valid"))?,
                value,
            );
        }
        let auth = match (
            &spec.bearer_token,
            &spec.basic_username,
            &spec.basic_password,
        ) {
            (Some(token), None, None) => Auth::Bearer(expand("bearer_token", token)?),
            (None, Some(username), password) => Auth::Basic {
                username: expand("basic_username", username)?,
                password: match password {
                    Some(password) => expand("basic_password", password)?,
                    None => String::new(),
                },
            },
            (None, None, None) => Auth::None,
            _ => return Err("give bearer_token or basic_username/basic_password, not both".into()),
        };
        let body = match &spec.body {
            None => None,
            Some(value) => {
                let json = serde_json::to_value(value).map_err(|e| e.to_string())?;
                Some(Template::parse(&json).map_err(|e| format!("body: {e}"))?)
            }
        };
        Ok(HttpTarget {
            url,
            method,
            headers,
            auth,
            body,
            client: super::client(timeout)?,
        })
    }

    pub(super) async fn deliver(&self, change: &Change, state: &Json) -> Result<(), DeliveryError> {
        let body = match &self.body {
            Some(template) => template.render(state),
            None => state.clone(),
        };
        let mut request = self
            .client
            .request(self.method.clone(), &self.url)
            .headers(self.headers.clone())
            .header("Idempotency-Key", &change.idempotency_key)
            .json(&body);
        request = match &self.auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Basic { username, password } => request.basic_auth(username, Some(password)),
        };
        let response = request
            .send()
            .await
            .map_err(|error| super::unreachable(&self.url, &error))?;
        let status = response.status();
        let retry_after = super::retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        DeliveryError::from_response(status, retry_after, &text)
    }
}
