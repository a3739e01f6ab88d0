//! A stand-in for a language model's OpenAI-compatible chat-completions endpoint.
//!
//! The model c2d-hints may ask to rerank its hints is a third party that tests cannot reach,
//! so this local HTTP server speaks its protocol instead: it reads the candidates c2d-hints
//! sends in the user message and answers as [`ModelReply`] says, after a delay.

use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value as Json, json};

/// How the stand-in model answers.
#[derive(Debug, Clone, Copy)]
pub enum ModelReply {
    /// The candidates in reverse order: the last one is best.
    Reverse,
    /// No candidate fits, and the model writes this hint instead.
    Write(&'static str),
    /// An HTTP 500.
    Fail,
    /// Prose instead of the JSON it was asked for.
    Prose,
}

/// Serves a chat-completions endpoint on a free loopback port that answers `reply` after
/// `delay`; returns its URL (the value of `HINTS_PROVIDER_URL`).
pub async fn chat_completions(reply: ModelReply, delay: Duration) -> String {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |axum::Json(request): axum::Json<Json>| async move {
            tokio::time::sleep(delay).await;
            let prompt: Json =
                serde_json::from_str(request["messages"][1]["content"].as_str().unwrap_or("{}"))
                    .unwrap_or_default();
            let ids: Vec<i64> = prompt["candidates"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["id"].as_i64())
                .collect();
            let content = match reply {
                ModelReply::Reverse => {
                    json!({ "order": ids.iter().rev().collect::<Vec<_>>(), "hint": "" }).to_string()
                }
                ModelReply::Write(hint) => json!({ "order": [], "hint": hint }).to_string(),
                ModelReply::Fail | ModelReply::Prose => "I would suggest the second one.".into(),
            };
            let status = match reply {
                ModelReply::Fail => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::OK,
            };
            let body =
                json!({ "choices": [{ "message": { "role": "assistant", "content": content } }] });
            (status, axum::Json(body))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port for the stand-in model");
    let address = listener
        .local_addr()
        .expect("the stand-in model's listener has an address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/v1/chat/completions")
}
