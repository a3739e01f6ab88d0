//! Threshold rules over AnalyticsService: a burst of delivery failures crosses one and fires,
//! and when deliveries succeed again the rate falls back under it and the alert resolves;
//! slow first answers push the first-response p90 over another, and a burst of client messages
//! against a quiet hour is a spike. Real gateway, nats-server,
//! c2d-analytics and c2d-alerting, over real gRPC.

mod harness;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use c2d_testkit::Pipeline;
use serde_json::{Value as Json, json};

async fn start_receiver(received: Arc<Mutex<Vec<Json>>>) -> String {
    let app = axum::Router::new()
        .route(
            "/ops",
            post(
                |State(received): State<Arc<Mutex<Vec<Json>>>>,
                 axum::Json(body): axum::Json<Json>| async move {
                    received.lock().unwrap().push(body);
                    "ok"
                },
            ),
        )
        .with_state(received);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ops", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn start_analytics(nats_url: &str, dir: &std::path::Path) -> String {
    let (nats_url, data) = (nats_url.to_owned(), dir.display().to_string());
    let config = c2d_analytics::Config::from_lookup(|name| match name {
        "NATS_URL" => Some(nats_url.clone()),
        "ANALYTICS_DATA_DIR" => Some(data.clone()),
        "ANALYTICS_METRICS_ADDR" => Some("127.0.0.1:0".into()),
        _ => None,
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let analytics = c2d_analytics::Analytics::open(config, c2d_analytics::Rebuild::No).unwrap();
    tokio::spawn(analytics.run(listener, std::future::pending()));
    endpoint
}

fn count(received: &Mutex<Vec<Json>>, status: &str) -> usize {
    count_of(received, "failing-deliveries", status)
}

fn count_of(received: &Mutex<Vec<Json>>, rule: &str, status: &str) -> usize {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|b| b["alerts"][0]["rule"] == rule && b["status"] == status)
        .count()
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    c2d_testkit::eventually(what, Duration::from_secs(15), || {
        let held = check();
        async move {
            if held {
                Ok(())
            } else {
                Err("not yet".to_owned())
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_failures_crosses_the_threshold_and_resolves_when_they_stop() {
    let pipeline = Pipeline::start().await;
    let nats_url = pipeline.nats.url();
    let dir = tempfile::tempdir().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let receiver = start_receiver(Arc::clone(&received)).await;
    let analytics = start_analytics(&nats_url, dir.path()).await;
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            r#"
[[receiver]]
name = "ops"
kind = "webhook"
url = "{receiver}"

[[rule]]
name = "failing-deliveries"
kind = "threshold"
metric = "delivery_failure_rate"
above = 25
window = "10m"
every = "200ms"
receiver = "ops"
tenants = ["acme"]

[[rule]]
name = "slow-answers"
kind = "threshold"
metric = "first_response_p90_seconds"
above = 300
window = "30m"
every = "200ms"
receiver = "ops"
tenants = ["globex"]

[[rule]]
name = "inbound-spike"
kind = "threshold"
metric = "inbound_spike_ratio"
baseline = "1h"
above = 3
window = "5m"
every = "200ms"
receiver = "ops"
tenants = ["globex"]
"#
        ),
    )
    .unwrap();
    let (rules, url) = (rules.display().to_string(), nats_url.clone());
    let config = c2d_alerting::Config::from_lookup(|name| match name {
        "NATS_URL" => Some(url.clone()),
        "ALERTING_RULES_FILE" => Some(rules.clone()),
        "ALERTING_ANALYTICS_URL" => Some(analytics.clone()),
        "ALERTING_METRICS_ADDR" => Some("127.0.0.1:0".into()),
        _ => None,
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let alerting = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(c2d_alerting::run(config, listener, std::future::pending()));

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let outbox = |n: i64| {
        json!({"message_id": 1_000 + n, "type": "to_client", "text": "Olá", "transport": "whatsapp",
               "client_id": 500 + n, "operator_id": 7, "channel_id": 10, "request_id": 9_000 + n,
               "hook_type": "outbox", "event_time": now - 60 + n})
        .to_string()
    };
    let failure = |n: i64| {
        json!({"id": 1_000 + n, "client_id": 500 + n, "channel_id": 10, "gateway_status": "failed",
               "error": "timeout error", "hook_type": "outbox_status", "event_time": now - 30 + n})
        .to_string()
    };
    // 4 messages out, 2 of them failed: 50%, above 25%.
    for n in 0..4 {
        pipeline.post(outbox(n)).await;
    }
    for n in 0..2 {
        pipeline.post(failure(n)).await;
    }
    eventually("the failure burst fires", || {
        count(&received, "firing") == 1
    })
    .await;
    {
        let received = received.lock().unwrap();
        let text = received[0]["text"].as_str().unwrap();
        assert!(
            text.contains("delivery_failure_rate is 50.0 over the last 10m, above 25"),
            "{text}"
        );
    }
    // Deliveries succeed again: 2 failures in 10 messages is 20%, under 25%.
    for n in 4..10 {
        pipeline.post(outbox(n)).await;
    }
    eventually("the alert resolves", || count(&received, "resolved") == 1).await;
    // Measured again after the resolution was seen (a flapping rule would fire again there),
    // and every notification sent: a second firing or resolution would be at the receiver.
    harness::evaluated_after(
        &alerting,
        "failing-deliveries",
        std::time::SystemTime::now(),
    )
    .await;
    harness::settled(&pipeline.nats.jetstream().await).await;
    assert_eq!(count(&received, "firing"), 1, "fired once");
    assert_eq!(count(&received, "resolved"), 1, "resolved once");

    // globex's clients wait 15 and 10 minutes for their first answers: the p90 of first
    // responses over the last 30 minutes is far above 5 minutes.
    let message = |hook: &str, request: i64, at: i64| {
        json!({"message_id": request * 10 + i64::from(hook == "outbox"), "type": if hook == "inbox" { "from_client" } else { "to_client" },
               "text": "Olá", "transport": "telegram", "client_id": 700 + request,
               "operator_id": if hook == "outbox" { json!(8) } else { json!(null) },
               "channel_id": 11, "request_id": request, "hook_type": hook, "event_time": at})
        .to_string()
    };
    for (request, asked, answered) in [(1, now - 1_200, now - 300), (2, now - 1_000, now - 400)] {
        pipeline
            .post_as("globex", message("inbox", request, asked))
            .await;
        pipeline
            .post_as("globex", message("outbox", request, answered))
            .await;
    }
    eventually("slow answers fire", || {
        count_of(&received, "slow-answers", "firing") == 1
    })
    .await;
    let text = received
        .lock()
        .unwrap()
        .iter()
        .find(|b| b["alerts"][0]["rule"] == "slow-answers")
        .map(|b| b["text"].as_str().unwrap().to_owned())
        .unwrap();
    assert!(
        text.contains("first_response_p90_seconds is 9") && text.contains("above 300"),
        "{text}"
    );
    // A trial of a threshold rule asks analytics now, without firing anything.
    let mut grpc = c2d_proto::alerting::AlertingServiceClient::connect(alerting.clone())
        .await
        .unwrap();
    let trial = grpc
        .test_rule(c2d_proto::alerting::v1::TestRuleRequest {
            rule: "slow-answers".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(trial.alerts.len(), 1, "{}", trial.explanation);
    assert!(
        trial.explanation.contains("globex: 9"),
        "{}",
        trial.explanation
    );
    assert_eq!(count_of(&received, "slow-answers", "firing"), 1);

    // The two questions above are globex's usual hour: less than one message per 5 minutes.
    // Five in the last minute are a spike.
    assert_eq!(count_of(&received, "inbound-spike", "firing"), 0);
    for request in 10..15 {
        pipeline
            .post_as("globex", message("inbox", request, now - 60 + request))
            .await;
    }
    eventually("the spike fires", || {
        count_of(&received, "inbound-spike", "firing") == 1
    })
    .await;
    let text = received
        .lock()
        .unwrap()
        .iter()
        .find(|b| b["alerts"][0]["rule"] == "inbound-spike")
        .map(|b| b["text"].as_str().unwrap().to_owned())
        .unwrap();
    assert!(text.contains("inbound_spike_ratio is 5.0"), "{text}");
}
