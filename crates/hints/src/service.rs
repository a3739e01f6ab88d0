//! HintsService over gRPC: suggestions from the projection, feedback through the event log,
//! statistics.
//!
//! Chat2Desk names the message it wants hints for, and its inbox event reaches this service
//! through NATS while the hints request comes straight from the gateway: the two race. A
//! request for a message not seen yet waits up to `message_wait` for it (woken by each applied
//! event), then falls back to the conversation's latest client message.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use c2d_proto::hints::HintsService;
use c2d_proto::hints::v1::{
    FeedbackRequest, FeedbackResponse, Hint, StatsRequest, StatsResponse, SuggestRequest,
    SuggestResponse,
};
use rustc_hash::FxHashMap;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use crate::error::RequestError;
use crate::knowledge::{Asked, Question, Suggestion};
use crate::projection::Projection;
use crate::provider::{self, Provider};

/// How long feedback waits for JetStream, and then for its own event to be learned.
const FEEDBACK_TIMEOUT: Duration = Duration::from_secs(5);
/// No request gets more hints than this, whatever it asks.
const MAX_LIMIT: usize = 20;

/// The gRPC face of the projection.
#[derive(Clone)]
pub struct HintsGrpc {
    projection: Arc<RwLock<Projection>>,
    /// The stream sequence applied so far; changes wake requests waiting for a message.
    applied: watch::Receiver<u64>,
    /// Where feedback is written; None in benchmarks, which only suggest.
    jetstream: Option<async_nats::jetstream::Context>,
    provider: Option<Arc<Provider>>,
    max_hints: usize,
    message_wait: Duration,
    suggestions: Arc<Mutex<FxHashMap<String, u64>>>,
}

impl HintsGrpc {
    pub fn new(
        projection: Arc<RwLock<Projection>>,
        applied: watch::Receiver<u64>,
        jetstream: Option<async_nats::jetstream::Context>,
        provider: Option<Arc<Provider>>,
        max_hints: usize,
        message_wait: Duration,
    ) -> Self {
        HintsGrpc {
            projection,
            applied,
            jetstream,
            provider,
            max_hints,
            message_wait,
            suggestions: Arc::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Projection> {
        self.projection
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits (at most `message_wait`) until the inbox event of `message_id` has been applied.
    async fn wait_for_message(&self, tenant: &str, message_id: i64) {
        let deadline = Instant::now() + self.message_wait;
        let mut applied = self.applied.clone();
        loop {
            let known = self
                .read()
                .tenant(tenant)
                .is_some_and(|k| k.knows_message(message_id));
            if known {
                return;
            }
            match tokio::time::timeout_at(deadline, applied.changed()).await {
                Ok(Ok(())) => {}
                // The deadline passed, or the service is stopping.
                _ => return,
            }
        }
    }

    /// The local hints and the question they answer.
    fn local(
        &self,
        tenant: &str,
        asked: &Asked,
        limit: usize,
    ) -> Option<(Question, Vec<Suggestion>)> {
        let projection = self.read();
        let knowledge = projection.tenant(tenant)?;
        let question = knowledge.question(asked)?;
        let hints = knowledge.suggest(&question, limit);
        Some((question, hints))
    }

    /// The provider's take on the local hints, or the local hints when it fails.
    async fn reranked(
        &self,
        tenant: &str,
        question: &Question,
        hints: Vec<Suggestion>,
        limit: usize,
    ) -> (Vec<Suggestion>, &'static str) {
        let Some(provider) = &self.provider else {
            return (hints, "local");
        };
        match provider.rerank(question, &hints).await {
            Ok(reranked) => {
                let mut hints = provider::apply(hints, &reranked.order);
                if let Some(text) = reranked.written {
                    let id = self
                        .projection
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .tenants
                        .entry(tenant.to_owned())
                        .or_default()
                        .register_answer(&text);
                    // Written because no candidate fitted: first unless the provider ranked some.
                    let at = if reranked.order.is_empty() {
                        0
                    } else {
                        hints.len()
                    };
                    let relevance = hints.first().map_or(50, |h| h.relevance);
                    hints.retain(|h| h.id != id);
                    hints.insert(
                        at.min(hints.len()),
                        Suggestion {
                            id,
                            text,
                            relevance,
                        },
                    );
                }
                hints.truncate(limit);
                (hints, "provider")
            }
            Err(error) => {
                tracing::warn!(%error, "the hints provider was not used; answering the local ranking");
                (hints, "local")
            }
        }
    }
}

#[tonic::async_trait]
impl HintsService for HintsGrpc {
    async fn suggest(
        &self,
        request: Request<SuggestRequest>,
    ) -> Result<Response<SuggestResponse>, Status> {
        let request = request.into_inner();
        if request.tenant.is_empty() {
            return Err(RequestError::NoTenant.into());
        }
        let asked = Asked {
            message_id: request.message_id,
            dialog_id: request.dialog_id,
            client_id: request.client_id,
            text: request.text.filter(|t| !t.trim().is_empty()),
        };
        if asked == (Asked::default()) {
            return Err(RequestError::NothingAsked.into());
        }
        let limit = match request.limit as usize {
            0 => self.max_hints,
            n => n.min(MAX_LIMIT),
        };
        if let (None, Some(id)) = (&asked.text, asked.message_id) {
            self.wait_for_message(&request.tenant, id).await;
        }
        *self
            .suggestions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(request.tenant.clone())
            .or_default() += 1;

        let Some((question, hints)) = self.local(&request.tenant, &asked, limit) else {
            tracing::debug!(tenant = %request.tenant, ?asked, "no question known for this hints request");
            return Ok(Response::new(SuggestResponse {
                message_id: request.message_id,
                ranked_by: "local".into(),
                ..Default::default()
            }));
        };
        let (hints, ranked_by) = self
            .reranked(&request.tenant, &question, hints, limit)
            .await;
        tracing::debug!(tenant = %request.tenant, hints = hints.len(), ranked_by, "hints suggested");
        Ok(Response::new(SuggestResponse {
            message_id: request.message_id,
            hints: hints
                .into_iter()
                .map(|s| Hint {
                    id: s.id,
                    text: s.text,
                    relevance: s.relevance,
                    ..Default::default()
                })
                .collect(),
            question: question.text,
            ranked_by: ranked_by.into(),
        }))
    }

    async fn feedback(
        &self,
        request: Request<FeedbackRequest>,
    ) -> Result<Response<FeedbackResponse>, Status> {
        let request = request.into_inner();
        if request.tenant.is_empty() {
            return Err(RequestError::NoTenant.into());
        }
        if request.message_id <= 0 || request.hint_id <= 0 {
            return Err(RequestError::IncompleteFeedback.into());
        }
        let known = self
            .read()
            .tenant(&request.tenant)
            .is_some_and(|k| k.index().answer(request.hint_id).is_some());
        if !known {
            return Ok(Response::new(FeedbackResponse::default()));
        }
        let Some(jetstream) = &self.jetstream else {
            return Err(RequestError::LogUnavailable("no event log connected".into()).into());
        };
        // The feedback form of ai_hints_requested, as Chat2Desk sends it; without event_time,
        // so the same choice sent twice has one event id and is stored once.
        let mut body = json!({
            "hook_type": "ai_hints_requested",
            "message_id": request.message_id,
            "hint_id": request.hint_id,
        });
        if let Some(client) = request.client_id {
            body["client_id"] = json!(client);
        }
        let event = c2d_hooks::parse_delivery(
            &request.tenant,
            body.to_string().into(),
            SystemTime::now().into(),
        )
        .map_err(|error| Status::internal(error.to_string()))?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.event_id.as_str());
        let payload = prost::Message::encode_to_vec(&event);
        let stored = async {
            jetstream
                .publish_with_headers(event.subject(), headers, payload.into())
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
        };
        let ack = tokio::time::timeout(FEEDBACK_TIMEOUT, stored)
            .await
            .map_err(|_| RequestError::LogUnavailable("no acknowledgement within 5 s".into()))?
            .map_err(RequestError::LogUnavailable)?;
        // Answer once learned, so a caller's next Suggest sees the choice.
        let mut applied = self.applied.clone();
        let learned = tokio::time::timeout(
            FEEDBACK_TIMEOUT,
            applied.wait_for(|sequence| *sequence >= ack.sequence),
        )
        .await
        .is_ok_and(|waited| waited.is_ok());
        Ok(Response::new(FeedbackResponse {
            learned,
            event_id: event.event_id,
        }))
    }

    async fn stats(
        &self,
        request: Request<StatsRequest>,
    ) -> Result<Response<StatsResponse>, Status> {
        let request = request.into_inner();
        if request.tenant.is_empty() {
            return Err(RequestError::NoTenant.into());
        }
        let suggestions = self
            .suggestions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&request.tenant)
            .copied()
            .unwrap_or(0);
        let projection = self.read();
        let mut stats = StatsResponse {
            suggestions,
            last_sequence: projection.last_sequence,
            ..Default::default()
        };
        if let Some(knowledge) = projection.tenant(&request.tenant) {
            stats.pairs = knowledge.index().pairs() as u64;
            stats.answers = knowledge.index().answers() as u64;
            stats.conversations = knowledge.conversations() as u64;
            stats.messages = knowledge.messages() as u64;
            stats.feedback = knowledge.choices();
        }
        Ok(Response::new(stats))
    }
}
