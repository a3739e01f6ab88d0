//! The synchronous answer to `ai_hints_requested`.
//!
//! Chat2Desk reads hints from the webhook's answer itself (fixtures/chat2desk/
//! ai_hints_requested.response.json), and an operator is waiting for them. The gateway asks
//! HintsService (c2d-hints) while it stores the event, and gives it at most the configured
//! deadline: a hints service that is down, slow or failing costs the operator the hints, never
//! the event and never a late or failed webhook answer (an empty list, still 2xx).

use std::time::Duration;

use c2d_proto::events::v1::HintsRequest;
use c2d_proto::hints::HintsServiceClient;
use c2d_proto::hints::v1::SuggestRequest;
use tonic::transport::{Channel, Endpoint};

use serde::Serialize;

/// The body Chat2Desk expects in answer to a hints request.
#[derive(Debug, Serialize, PartialEq)]
pub struct HintsAnswer {
    pub message_id: Option<i64>,
    pub hints: Vec<Hint>,
}

/// One suggested answer, as Chat2Desk shows it to the operator.
#[derive(Debug, Serialize, PartialEq)]
pub struct Hint {
    pub id: i64,
    pub text: String,
    pub url: String,
    /// 0 to 100.
    pub relevance: u32,
    pub link: String,
}

/// GATEWAY_HINTS_URL is not a URL tonic can connect to.
#[derive(Debug, thiserror::Error)]
#[error(
    "GATEWAY_HINTS_URL={url:?} is not a valid URL ({reason}); write e.g. http://127.0.0.1:50054, or off"
)]
pub struct HintsUrlError {
    url: String,
    reason: String,
}

/// How a hints request was answered, for the `hints` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// HintsService answered in time (possibly with no hints).
    Answered,
    /// The deadline passed first.
    Deadline,
    /// HintsService failed or could not be reached.
    Failed,
    /// No hints service is configured.
    Off,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Deadline => "deadline",
            Outcome::Failed => "failed",
            Outcome::Off => "off",
        }
    }
}

/// The gateway's client of HintsService, with its deadline.
pub struct Hints {
    client: Option<HintsServiceClient<Channel>>,
    deadline: Duration,
}

impl Hints {
    /// A client of HintsService at `url` (None: hints are off). The connection is made on the
    /// first request and re-made after failures, so the gateway starts without c2d-hints.
    pub fn new(url: Option<&str>, deadline: Duration) -> Result<Hints, HintsUrlError> {
        let client = match url {
            None => None,
            Some(url) => {
                let endpoint =
                    Endpoint::from_shared(url.to_owned()).map_err(|error| HintsUrlError {
                        url: url.to_owned(),
                        reason: error.to_string(),
                    })?;
                // The deadline is applied per request in `answer`, so it is told apart from a
                // failure; connecting gets no longer than the deadline either.
                let channel = endpoint
                    .connect_timeout(deadline)
                    .tcp_nodelay(true)
                    .connect_lazy();
                Some(HintsServiceClient::new(channel))
            }
        };
        Ok(Hints { client, deadline })
    }

    /// The answer to `request` of `tenant`: HintsService's hints, or an empty list when it
    /// does not answer well within the deadline.
    pub async fn answer(&self, tenant: &str, request: &HintsRequest) -> (HintsAnswer, Outcome) {
        let empty = HintsAnswer::empty(request.message_id);
        let Some(client) = &self.client else {
            return (empty, Outcome::Off);
        };
        let mut client = client.clone();
        let suggest = client.suggest(SuggestRequest {
            tenant: tenant.to_owned(),
            message_id: request.message_id,
            dialog_id: request.dialog_id,
            client_id: request.client_id,
            text: None,
            limit: 0,
        });
        match tokio::time::timeout(self.deadline, suggest).await {
            Ok(Ok(response)) => {
                let response = response.into_inner();
                let hints = response
                    .hints
                    .into_iter()
                    .map(|hint| Hint {
                        id: hint.id,
                        text: hint.text,
                        url: hint.url,
                        relevance: hint.relevance,
                        link: hint.link,
                    })
                    .collect();
                (
                    HintsAnswer {
                        message_id: request.message_id,
                        hints,
                    },
                    Outcome::Answered,
                )
            }
            Ok(Err(status)) => {
                tracing::warn!(code = ?status.code(), error = status.message(), "HintsService failed; answered an empty hints list");
                (empty, Outcome::Failed)
            }
            Err(_) => {
                tracing::warn!(deadline = ?self.deadline, "HintsService did not answer within the deadline; answered an empty hints list");
                (empty, Outcome::Deadline)
            }
        }
    }
}

impl HintsAnswer {
    /// No hints for `message_id`.
    pub fn empty(message_id: Option<i64>) -> Self {
        HintsAnswer {
            message_id,
            hints: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_in_chat2desks_shape() {
        let answer = HintsAnswer {
            message_id: Some(8205),
            hints: vec![Hint {
                id: 1,
                text: "answer 1".into(),
                url: String::new(),
                relevance: 90,
                link: String::new(),
            }],
        };
        let documented: serde_json::Value = serde_json::from_str(include_str!(
            "../../../fixtures/chat2desk/ai_hints_requested.response.json"
        ))
        .unwrap();
        let mut expected = documented.clone();
        expected["hints"].as_array_mut().unwrap().truncate(1);
        assert_eq!(serde_json::to_value(&answer).unwrap(), expected);
        assert_eq!(
            serde_json::to_value(HintsAnswer::empty(Some(8205))).unwrap(),
            serde_json::json!({"message_id": 8205, "hints": []})
        );
    }
}
