//! `c2dctl hints`: what HintsService would suggest, teaching it a choice, what it knows.

use c2d_proto::hints::HintsServiceClient;
use c2d_proto::hints::v1::{FeedbackRequest, StatsRequest, SuggestRequest};
use serde_json::json;
use tonic::transport::Channel;

use c2dctl::output::Rows;

async fn connect(url: &str) -> anyhow::Result<HintsServiceClient<Channel>> {
    HintsServiceClient::connect(url.to_owned())
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot reach HintsService at {url}: {e}; is c2d-hints running? (--hints-url)"
            )
        })
}

/// The hints for a question, best first.
pub async fn suggest(url: String, request: SuggestRequest) -> anyhow::Result<Rows> {
    if request.text.is_none() && request.message_id.is_none() && request.client_id.is_none() {
        anyhow::bail!("give the question's text, or --message-id of a client's message");
    }
    let answer = connect(&url).await?.suggest(request).await?.into_inner();
    let mut rows = Rows::new(&["hint_id", "relevance", "text"]);
    for hint in answer.hints {
        rows.push(vec![
            json!(hint.id),
            json!(hint.relevance),
            json!(hint.text),
        ]);
    }
    Ok(rows)
}

/// Records that the operator chose `hint_id` for `message_id`.
pub async fn feedback(
    url: String,
    tenant: String,
    message_id: i64,
    hint_id: i64,
) -> anyhow::Result<Rows> {
    let answer = connect(&url)
        .await?
        .feedback(FeedbackRequest {
            tenant,
            message_id,
            hint_id,
            client_id: None,
        })
        .await?
        .into_inner();
    let mut rows = Rows::new(&["learned", "event_id"]);
    rows.push(vec![json!(answer.learned), json!(answer.event_id)]);
    Ok(rows)
}

/// What the service knows of a tenant.
pub async fn stats(url: String, tenant: String) -> anyhow::Result<Rows> {
    let stats = connect(&url)
        .await?
        .stats(StatsRequest { tenant })
        .await?
        .into_inner();
    let mut rows = Rows::new(&[
        "pairs",
        "answers",
        "conversations",
        "messages",
        "feedback",
        "suggestions",
        "last_sequence",
    ]);
    rows.push(vec![
        json!(stats.pairs),
        json!(stats.answers),
        json!(stats.conversations),
        json!(stats.messages),
        json!(stats.feedback),
        json!(stats.suggestions),
        json!(stats.last_sequence),
    ]);
    Ok(rows)
}
