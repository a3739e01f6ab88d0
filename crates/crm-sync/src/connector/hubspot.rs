//! HubSpot's CRM contacts API: each change is an upsert through
//! `POST {base_url}/crm/v3/objects/contacts/batch/upsert`, authenticated with a private app's
//! token (`Authorization: Bearer`), keyed by a unique contact property.
//!
//! ```json
//! {"inputs": [{"idProperty": "chat2desk_client_id", "id": "18360561",
//!              "properties": {"chat2desk_client_id": "18360561", "firstname": "Peter", "phone": "+55..."}}]}
//! ```
//!
//! The `id_property` (default `chat2desk_client_id`) must be a contact property with unique
//! values in the HubSpot account: create it once under Settings > Properties. Property values
//! are strings, lists joined by `;` (HubSpot's multi-select format), nulls sent as "" (which
//! clears the property). HubSpot answers errors as `{"status": "error", "message": ...,
//! "category": ...}`; 429 (rate limits) and 5xx are retried, other 4xx dead-lettered.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::mapping::Path;
use super::{ConnectorSpec, DeliveryError};
use crate::outbox::Change;

/// HubSpot's API, unless `base_url` says otherwise (tests point it at a local server).
pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";
/// The unique contact property that holds the Chat2Desk client id.
pub const DEFAULT_ID_PROPERTY: &str = "chat2desk_client_id";

/// Where and how the HubSpot connector sends.
pub struct HubSpotTarget {
    url: String,
    token: String,
    id_property: String,
    /// HubSpot property name -> path into the change.
    properties: Vec<(String, Path)>,
    client: reqwest::Client,
}

/// The token stays out of logs and panics.
impl std::fmt::Debug for HubSpotTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSpotTarget")
            .field("url", &self.url)
            .field("token", &"***")
            .field("id_property", &self.id_property)
            .field("properties", &self.properties)
            .finish_non_exhaustive()
    }
}

type Expand<'a> = dyn Fn(&str, &str) -> Result<String, String> + 'a;

impl HubSpotTarget {
    pub(super) fn from_spec(
        spec: &ConnectorSpec,
        timeout: Duration,
        expand: &Expand<'_>,
    ) -> Result<HubSpotTarget, String> {
        let token = expand(
            "token",
            spec.token.as_deref().ok_or(
                "kind \"hubspot\" needs token = \"${HUBSPOT_TOKEN}\" (a private app token)",
            )?,
        )?;
        let base_url = expand(
            "base_url",
            spec.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
        )?;
        let id_property = spec
            .id_property
            .clone()
            .unwrap_or_else(|| DEFAULT_ID_PROPERTY.to_owned());
        let default_properties = || {
            BTreeMap::from([
                (id_property.clone(), "$.client_id".to_owned()),
                ("firstname".to_owned(), "$.name".to_owned()),
                ("phone".to_owned(), "$.client_phone".to_owned()),
            ])
        };
        let mut properties = Vec::new();
        for (property, path) in spec.properties.clone().unwrap_or_else(default_properties) {
            let parsed = Path::parse(&path).map_err(|e| format!("properties.{property}: {e}"))?;
            properties.push((property, parsed));
        }
        if !properties.iter().any(|(name, _)| *name == id_property) {
            properties.push((
                id_property.clone(),
                Path::parse("$.client_id").map_err(|e| e.to_string())?,
            ));
        }
        Ok(HubSpotTarget {
            url: format!(
                "{}/crm/v3/objects/contacts/batch/upsert",
                base_url.trim_end_matches('/')
            ),
            token,
            id_property,
            properties,
            client: super::client(timeout)?,
        })
    }

    /// The upsert body for one change.
    pub fn body(&self, state: &Json) -> Json {
        let properties: serde_json::Map<String, Json> = self
            .properties
            .iter()
            .map(|(name, path)| (name.clone(), Json::String(property_value(path.get(state)))))
            .collect();
        let id = properties
            .get(&self.id_property)
            .cloned()
            .unwrap_or_default();
        json!({"inputs": [{"idProperty": self.id_property, "id": id, "properties": properties}]})
    }

    pub(super) async fn deliver(&self, change: &Change, state: &Json) -> Result<(), DeliveryError> {
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("Idempotency-Key", &change.idempotency_key)
            .json(&self.body(state))
            .send()
            .await
            .map_err(|error| super::unreachable(&self.url, &error))?;
        let status = response.status();
        let retry_after = super::retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::MULTI_STATUS {
            // Some inputs failed: with one input per call, this one did.
            return Err(DeliveryError {
                message: format!("HubSpot refused the contact: {}", error_message(&text)),
                permanent: true,
                retry_after: None,
            });
        }
        DeliveryError::from_response(status, retry_after, &error_message(&text))
    }
}

/// HubSpot's `message` (and `category`) from an error body, else the body itself.
fn error_message(body: &str) -> String {
    match serde_json::from_str::<Json>(body) {
        Ok(error) if error.get("message").is_some() => format!(
            "{} ({})",
            error["message"].as_str().unwrap_or_default(),
            error["category"].as_str().unwrap_or("no category")
        ),
        _ => body.to_owned(),
    }
}

/// A value as HubSpot wants it: a string.
fn property_value(value: &Json) -> String {
    match value {
        Json::Null => String::new(),
        Json::String(text) => text.clone(),
        Json::Array(items) => items
            .iter()
            .map(property_value)
            .collect::<Vec<_>>()
            .join(";"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upsert_body_has_hubspots_shape() {
        let spec: ConnectorSpec = toml::from_str(
            "name = \"h\"\nkind = \"hubspot\"\ntoken = \"t\"\n[properties]\nfirstname = \"$.name\"\nchat2desk_tags = \"$.tags\"\nphone = \"$.client_phone\"\n",
        )
        .unwrap();
        let target =
            HubSpotTarget::from_spec(&spec, Duration::from_secs(1), &|_, v| Ok(v.to_owned()))
                .unwrap();
        assert_eq!(
            target.url,
            "https://api.hubapi.com/crm/v3/objects/contacts/batch/upsert"
        );
        let body = target.body(
            &json!({"client_id": 42, "name": "Ana", "tags": ["vip", "new"], "client_phone": null}),
        );
        assert_eq!(
            body,
            json!({"inputs": [{"idProperty": "chat2desk_client_id", "id": "42", "properties": {
                "firstname": "Ana", "chat2desk_tags": "vip;new", "phone": "", "chat2desk_client_id": "42"}}]})
        );
    }
}
