//! The external provider over real HTTP: a local server speaks OpenAI's chat-completions
//! protocol (the provider is a third party, so the test stands in for it), and HintsService
//! must take its ranking when it answers in time, and answer the local ranking when it is
//! slow, failing or talking nonsense, within the provider's deadline.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use c2d_hints::cfg::ProviderConfig;
use c2d_hints::projection::Projection;
use c2d_hints::provider::Provider;
use c2d_hints::service::HintsGrpc;
use c2d_proto::hints::HintsService;
use c2d_proto::hints::v1::{SuggestRequest, SuggestResponse};
use c2d_testkit::language_model::{ModelReply, chat_completions};

const SHIPS: &str = "Orders ship within 3 business days.";
const COURIER: &str = "I've asked the courier to check your delivery.";
const WRITTEN: &str = "Your parcel is at the depot and leaves today.";

fn service(url: Option<String>, deadline: Duration) -> HintsGrpc {
    let mut projection = Projection::default();
    let knowledge = projection.tenants.entry("acme".into()).or_default();
    knowledge.add_pair("where is my order? it has not arrived", SHIPS);
    knowledge.add_pair("my order has not arrived, where is the courier", COURIER);
    let provider = url.map(|url| {
        Arc::new(
            Provider::new(ProviderConfig {
                url,
                key: Some("sk-test".into()),
                model: "test-model".into(),
                deadline,
            })
            .unwrap(),
        )
    });
    let (_applied, applied) = tokio::sync::watch::channel(0);
    HintsGrpc::new(
        Arc::new(RwLock::new(projection)),
        applied,
        None,
        provider,
        5,
        Duration::ZERO,
    )
}

async fn suggest(service: &HintsGrpc) -> (SuggestResponse, Duration) {
    let started = Instant::now();
    let answer = service
        .suggest(tonic::Request::new(SuggestRequest {
            tenant: "acme".into(),
            text: Some("order not arrived, where is it?".into()),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    (answer, started.elapsed())
}

fn texts(answer: &SuggestResponse) -> Vec<&str> {
    answer.hints.iter().map(|h| h.text.as_str()).collect()
}

#[tokio::test]
async fn the_providers_ranking_is_taken_when_it_answers_in_time() {
    let (local, _) = suggest(&service(None, Duration::ZERO)).await;
    assert_eq!(local.ranked_by, "local");
    assert_eq!(texts(&local), [SHIPS, COURIER]);

    let url = chat_completions(ModelReply::Reverse, Duration::ZERO).await;
    let (answer, _) = suggest(&service(Some(url), Duration::from_secs(5))).await;
    assert_eq!(answer.ranked_by, "provider");
    assert_eq!(texts(&answer), [COURIER, SHIPS]);

    let url = chat_completions(ModelReply::Write(WRITTEN), Duration::ZERO).await;
    let (answer, _) = suggest(&service(Some(url), Duration::from_secs(5))).await;
    assert_eq!(texts(&answer), [WRITTEN, SHIPS, COURIER]);
    assert!(
        answer.hints[0].id > 0,
        "a written hint gets an id, so it can be chosen"
    );
}

#[tokio::test]
async fn a_slow_failing_or_confused_provider_leaves_the_local_ranking_within_the_deadline() {
    let deadline = Duration::from_millis(300);
    for (behaviour, delay) in [
        (ModelReply::Reverse, Duration::from_secs(10)),
        (ModelReply::Fail, Duration::ZERO),
        (ModelReply::Prose, Duration::ZERO),
    ] {
        let url = chat_completions(behaviour, delay).await;
        let (answer, elapsed) = suggest(&service(Some(url), deadline)).await;
        println!(
            "{behaviour:?} provider: answered in {elapsed:?} by {}",
            answer.ranked_by
        );
        assert_eq!(answer.ranked_by, "local", "{behaviour:?}");
        assert_eq!(texts(&answer), [SHIPS, COURIER], "{behaviour:?}");
        // Far below the slow provider's 10 s: the deadline cut it short.
        assert!(
            elapsed < Duration::from_secs(5),
            "{behaviour:?}: {elapsed:?}"
        );
    }
    // Nobody listening at all.
    let url = format!(
        "http://127.0.0.1:{}/v1/chat/completions",
        c2d_testkit::free_port()
    );
    let (answer, _) = suggest(&service(Some(url), deadline)).await;
    assert_eq!(answer.ranked_by, "local");
}
