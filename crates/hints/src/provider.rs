//! The optional external provider: an OpenAI-compatible chat-completions endpoint that reranks
//! the local hints and may write one of its own.
//!
//! A language model reads the question and its context better than word overlap does, but it
//! is slow, paid and sometimes down; Chat2Desk waits for the webhook's answer. So the model
//! only ever improves an answer that already exists: it is given the question, the context
//! and the local candidates (masked, like everything this service keeps), and asked for JSON
//! `{"order": [ids best first], "hint": "a better answer, or empty"}`. The call has a hard
//! deadline; after it, or on any error or unreadable reply, the local ranking is answered.

use std::time::Duration;

use serde_json::{Value, json};

use crate::cfg::ProviderConfig;
use crate::knowledge::{Question, Suggestion};

const INSTRUCTIONS: &str = "You help customer-support operators. You get a client's question, \
the conversation before it, and candidate answers that operators gave to similar questions \
(each with an id). Reply with JSON only: {\"order\": [candidate ids, most helpful first, \
leaving out the ones that do not answer the question], \"hint\": \"a short answer in the \
client's language when no candidate fits, otherwise empty\"}. Never invent personal data; \
keep placeholders like [name] or [phone] as they are.";

/// Why the provider's answer was not used.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("the provider did not answer within {0:?}")]
    Deadline(Duration),
    #[error("the provider could not be asked: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the provider's reply is not the JSON asked for: {0}")]
    Reply(String),
}

/// What the provider made of the candidates.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reranked {
    /// Candidate ids, best first (unknown ids already dropped).
    pub order: Vec<i64>,
    /// A hint the provider wrote, if no candidate fitted.
    pub written: Option<String>,
}

/// A client of the configured endpoint.
pub struct Provider {
    http: reqwest::Client,
    config: ProviderConfig,
}

impl Provider {
    pub fn new(config: ProviderConfig) -> Result<Provider, ProviderError> {
        let http = reqwest::Client::builder()
            .timeout(config.deadline)
            .connect_timeout(config.deadline)
            .build()?;
        Ok(Provider { http, config })
    }

    /// The provider's ranking of `candidates` for `question`, within the deadline.
    pub async fn rerank(
        &self,
        question: &Question,
        candidates: &[Suggestion],
    ) -> Result<Reranked, ProviderError> {
        let deadline = self.config.deadline;
        tokio::time::timeout(deadline, self.ask(question, candidates))
            .await
            .map_err(|_| ProviderError::Deadline(deadline))?
    }

    async fn ask(
        &self,
        question: &Question,
        candidates: &[Suggestion],
    ) -> Result<Reranked, ProviderError> {
        let prompt = json!({
            "question": question.text,
            "context": question.context,
            "candidates": candidates
                .iter()
                .map(|c| json!({ "id": c.id, "text": c.text }))
                .collect::<Vec<_>>(),
        });
        let body = json!({
            "model": self.config.model,
            "temperature": 0,
            "response_format": { "type": "json_object" },
            "messages": [
                { "role": "system", "content": INSTRUCTIONS },
                { "role": "user", "content": prompt.to_string() },
            ],
        });
        let mut request = self.http.post(&self.config.url).json(&body);
        if let Some(key) = &self.config.key {
            request = request.bearer_auth(key);
        }
        let reply: Value = request.send().await?.error_for_status()?.json().await?;
        read_reply(&reply, candidates)
    }
}

/// The `order` and `hint` of a chat-completions reply, keeping only ids among `candidates`.
pub fn read_reply(reply: &Value, candidates: &[Suggestion]) -> Result<Reranked, ProviderError> {
    let content = reply
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError::Reply("no choices[0].message.content".into()))?;
    // Models sometimes wrap JSON in a code fence.
    let content = content
        .trim()
        .trim_start_matches("```json")
        .trim_start_matches("```")
        .trim_end_matches("```");
    let answer: Value =
        serde_json::from_str(content).map_err(|error| ProviderError::Reply(error.to_string()))?;
    let mut order = Vec::new();
    for id in answer["order"].as_array().into_iter().flatten() {
        let id = id
            .as_i64()
            .or_else(|| id.as_str().and_then(|s| s.trim().parse().ok()));
        if let Some(id) = id
            && candidates.iter().any(|c| c.id == id)
            && !order.contains(&id)
        {
            order.push(id);
        }
    }
    let written = answer["hint"]
        .as_str()
        .map(str::trim)
        .filter(|hint| !hint.is_empty())
        .map(str::to_owned);
    Ok(Reranked { order, written })
}

/// The candidates in the provider's order; those it left out follow in local order, since an
/// operator is better served by a weaker hint than by none.
pub fn apply(candidates: Vec<Suggestion>, order: &[i64]) -> Vec<Suggestion> {
    let (mut ranked, rest): (Vec<_>, Vec<_>) = candidates
        .into_iter()
        .partition(|candidate| order.contains(&candidate.id));
    ranked.sort_by_key(|candidate| order.iter().position(|id| *id == candidate.id));
    ranked.extend(rest);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates() -> Vec<Suggestion> {
        [(1, 90), (2, 60), (3, 40)]
            .into_iter()
            .map(|(id, relevance)| Suggestion {
                id,
                text: format!("answer {id}"),
                relevance,
            })
            .collect()
    }

    fn reply(content: &str) -> Value {
        json!({ "choices": [{ "message": { "role": "assistant", "content": content } }] })
    }

    #[test]
    fn a_reply_reorders_the_candidates_it_knows() {
        let reranked = read_reply(
            &reply("```json\n{\"order\": [3, \"1\", 99, 3], \"hint\": \"\"}\n```"),
            &candidates(),
        )
        .unwrap();
        assert_eq!(
            reranked,
            Reranked {
                order: vec![3, 1],
                written: None
            }
        );
        let ids: Vec<i64> = apply(candidates(), &reranked.order)
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, [3, 1, 2]);
    }

    #[test]
    fn a_written_hint_is_read_and_nonsense_is_an_error() {
        let reranked = read_reply(
            &reply(r#"{"order": [], "hint": " Try turning it off and on. "}"#),
            &[],
        )
        .unwrap();
        assert_eq!(
            reranked.written.as_deref(),
            Some("Try turning it off and on.")
        );
        assert!(read_reply(&reply("I think answer 2"), &candidates()).is_err());
        assert!(read_reply(&json!({}), &candidates()).is_err());
    }
}
