//! HubSpot's CRM contacts API: each change is an upsert through
//! `POST {base_url}/crm/v3/objects/contacts/batch/upsert`, authenticated with a private app's
//! token (`Authorization: Bearer`), keyed by a unique contact property.
//!
//! ```json
//! {"inputs": [{"idProperty": "chat2desk_client_id", "id": "18360561",
//!              "properties": {"chat2desk_client_id": "18360561", "firstname": "Peter", "phone": "+55..."}}]}
//! ```
//!
//! Changes of different clients go up to `batch_size` (default and most 100) per call, which
//! keeps well inside HubSpot's request rate limits. A batch HubSpot refuses as a whole (4xx,
//! or 207 for some inputs) is sent again one change per call, so that only the change at fault
//! becomes a dead letter; a transient failure (429, 5xx, no answer) is retried for the batch.
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
/// HubSpot's limit of inputs per batch call, and our default.
pub const MAX_BATCH: usize = 100;

/// Where and how the HubSpot connector sends.
pub struct HubSpotTarget {
    url: String,
    token: String,
    id_property: String,
    /// HubSpot property name -> path into the change.
    properties: Vec<(String, Path)>,
    batch_size: usize,
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
            .field("batch_size", &self.batch_size)
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
        let batch_size = match spec.batch_size {
            None => MAX_BATCH,
            Some(size) if (1..=MAX_BATCH).contains(&size) => size,
            Some(size) => {
                return Err(format!(
                    "batch_size {size} is out of range: HubSpot takes 1 to {MAX_BATCH} inputs per call"
                ));
            }
        };
        Ok(HubSpotTarget {
            batch_size,
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

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// One upsert input: `{"idProperty", "id", "properties"}`, every value a string.
    pub fn input(&self, state: &Json) -> Json {
        let properties: serde_json::Map<String, Json> = self
            .properties
            .iter()
            .map(|(name, path)| (name.clone(), Json::String(property_value(path.get(state)))))
            .collect();
        let id = properties
            .get(&self.id_property)
            .cloned()
            .unwrap_or_default();
        json!({"idProperty": self.id_property, "id": id, "properties": properties})
    }

    /// Sends `changes` in batches, concurrently: one result per change, in order.
    pub(super) async fn deliver_all(&self, changes: &[Change]) -> Vec<Result<(), DeliveryError>> {
        let batches = changes
            .chunks(self.batch_size)
            .map(|batch| self.deliver_batch(batch));
        futures_util::future::join_all(batches)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    async fn deliver_batch(&self, batch: &[Change]) -> Vec<Result<(), DeliveryError>> {
        let inputs: Vec<Result<Json, DeliveryError>> = batch
            .iter()
            .map(|change| super::state(change).map(|state| self.input(&state)))
            .collect();
        let sendable: Vec<&Json> = inputs.iter().filter_map(|i| i.as_ref().ok()).collect();
        let mut ids: Vec<&Json> = sendable.iter().map(|input| &input["id"]).collect();
        ids.sort_by_key(|id| id.to_string());
        ids.dedup();
        // HubSpot refuses a batch that names a contact twice: such a batch goes one by one.
        if sendable.len() > 1 && ids.len() == sendable.len() {
            let keys: Vec<&str> = batch.iter().map(|c| c.idempotency_key.as_str()).collect();
            match self.send(&sendable, &keys.join(",")).await {
                Ok(()) => return inputs.into_iter().map(|i| i.map(|_| ())).collect(),
                Err(error) if !error.permanent => {
                    return inputs
                        .into_iter()
                        .map(|i| i.and_then(|_| Err(error.clone())))
                        .collect();
                }
                // Refused as a whole: find the change at fault, one call each.
                Err(error) => {
                    tracing::info!(%error, size = sendable.len(), "HubSpot refused a batch; sending its changes one by one")
                }
            }
        }
        let mut results = Vec::with_capacity(batch.len());
        for (change, input) in batch.iter().zip(inputs) {
            results.push(match input {
                Ok(input) => self.send(&[&input], &change.idempotency_key).await,
                Err(error) => Err(error),
            });
        }
        results
    }

    async fn send(&self, inputs: &[&Json], keys: &str) -> Result<(), DeliveryError> {
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("Idempotency-Key", keys)
            .json(&json!({ "inputs": inputs }))
            .send()
            .await
            .map_err(|error| super::unreachable(&self.url, &error))?;
        let status = response.status();
        let retry_after = super::retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::MULTI_STATUS {
            // Some inputs failed (HubSpot lists them under "errors").
            return Err(DeliveryError {
                message: format!("HubSpot refused some contacts: {}", error_message(&text)),
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
        let input = target.input(
            &json!({"client_id": 42, "name": "Ana", "tags": ["vip", "new"], "client_phone": null}),
        );
        assert_eq!(
            input,
            json!({"idProperty": "chat2desk_client_id", "id": "42", "properties": {
                "firstname": "Ana", "chat2desk_tags": "vip;new", "phone": "", "chat2desk_client_id": "42"}})
        );
        assert_eq!(target.batch_size(), MAX_BATCH);
    }

    /// A local server with HubSpot's answers: refuses (400) any batch naming contact 13.
    async fn hubspot(calls: std::sync::Arc<std::sync::Mutex<Vec<usize>>>) -> String {
        use axum::http::StatusCode;
        let app = axum::Router::new().route(
            "/crm/v3/objects/contacts/batch/upsert",
            axum::routing::post(move |axum::Json(body): axum::Json<Json>| {
                let calls = calls.clone();
                async move {
                    let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
                    calls.lock().unwrap().push(inputs.len());
                    if inputs.iter().any(|input| input["id"] == "13") {
                        let error = json!({"status": "error", "message": "Property values were not valid", "category": "VALIDATION_ERROR"});
                        return (StatusCode::BAD_REQUEST, axum::Json(error));
                    }
                    (StatusCode::OK, axum::Json(json!({"status": "COMPLETE", "results": []})))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn change(client_id: i64) -> Change {
        Change {
            id: client_id,
            connector: "hubspot".into(),
            tenant: "acme".into(),
            client_id,
            idempotency_key: format!("c2d:acme:{client_id}:1"),
            payload: json!({"client_id": client_id, "name": "N"}).to_string(),
            attempts: 0,
            queued_at: 0,
            last_error: None,
        }
    }

    #[tokio::test]
    async fn changes_share_a_call_and_a_refused_batch_is_split_to_find_the_culprit() {
        let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let base_url = hubspot(calls.clone()).await;
        let spec: ConnectorSpec = toml::from_str(&format!(
            "name = \"h\"\nkind = \"hubspot\"\ntoken = \"t\"\nbase_url = \"{base_url}\"\n"
        ))
        .unwrap();
        let target =
            HubSpotTarget::from_spec(&spec, Duration::from_secs(5), &|_, v| Ok(v.to_owned()))
                .unwrap();

        let results = target
            .deliver_all(&[change(11), change(12), change(14)])
            .await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(*calls.lock().unwrap(), [3], "one call for three changes");

        calls.lock().unwrap().clear();
        let results = target
            .deliver_all(&[change(11), change(13), change(14)])
            .await;
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        let refused = results[1].as_ref().unwrap_err();
        assert!(
            refused.permanent && refused.message.contains("VALIDATION_ERROR"),
            "{refused:?}"
        );
        assert_eq!(
            *calls.lock().unwrap(),
            [3, 1, 1, 1],
            "the batch, then one call each"
        );
    }
}
