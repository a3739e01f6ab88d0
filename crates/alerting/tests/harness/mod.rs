//! What the alerting tests share: local receivers speaking the webhook, Slack and Telegram
//! shapes (the webhook one can fail on purpose), c2d-alerting in-process on a free port, and a
//! patient wait for what the receivers got.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use c2d_testkit::InProcess;
use serde_json::{Value as Json, json};

/// What the local receivers got.
#[derive(Default)]
pub struct Received {
    /// The webhook receiver answers 500 to this many calls first.
    pub webhook_failures_left: usize,
    pub webhook_calls: usize,
    /// Accepted webhook bodies.
    pub webhook: Vec<Json>,
    pub slack: Vec<String>,
    /// (chat_id, text), with the bot token of the URL.
    pub telegram: Vec<(String, String, String)>,
}

pub type Shared = Arc<Mutex<Received>>;

async fn webhook(State(state): State<Shared>, axum::Json(body): axum::Json<Json>) -> StatusCode {
    let mut state = state.lock().unwrap();
    state.webhook_calls += 1;
    if state.webhook_failures_left > 0 {
        state.webhook_failures_left -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    state.webhook.push(body);
    StatusCode::OK
}

async fn slack(State(state): State<Shared>, axum::Json(body): axum::Json<Json>) -> &'static str {
    state
        .lock()
        .unwrap()
        .slack
        .push(body["text"].as_str().unwrap().to_owned());
    "ok"
}

async fn telegram(
    State(state): State<Shared>,
    Path(bot): Path<String>,
    axum::Json(body): axum::Json<Json>,
) -> axum::Json<Json> {
    state.lock().unwrap().telegram.push((
        bot,
        body["chat_id"].as_str().unwrap().to_owned(),
        body["text"].as_str().unwrap().to_owned(),
    ));
    axum::Json(json!({"ok": true, "result": {"message_id": 1}}))
}

pub async fn start_receivers(state: Shared) -> String {
    let app = axum::Router::new()
        .route("/ops", post(webhook))
        .route("/slack", post(slack))
        .route("/{bot}/sendMessage", post(telegram))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

pub struct Running {
    service: InProcess<c2d_alerting::AlertingError>,
    pub endpoint: String,
}

impl Running {
    pub async fn stop(self) {
        self.service.stop().await;
    }
}

/// c2d-alerting in-process with the rules file at `rules`, a 100 ms clock, and `more`
/// settings (ALERTING_CRM_URL, ALERTING_ANALYTICS_URL, ...).
pub async fn start_alerting(nats_url: &str, rules: &str, more: &[(&str, &str)]) -> Running {
    let mut settings: std::collections::HashMap<String, String> = [
        ("NATS_URL", nats_url),
        ("ALERTING_RULES_FILE", rules),
        ("ALERTING_TICK_MS", "100"),
        ("TEST_BOT_TOKEN", "test-token"),
        ("ALERTING_METRICS_ADDR", "127.0.0.1:0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    settings.extend(more.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let config = c2d_alerting::Config::from_lookup(|name| settings.get(name).cloned())
        .expect("valid test configuration");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let service = InProcess::spawn(|shutdown| c2d_alerting::run(config, listener, shutdown));
    for _ in 0..200 {
        if c2d_testkit::grpc::health(&endpoint, c2d_proto::alerting::SERVICE_NAME)
            .await
            .is_ok()
        {
            return Running { service, endpoint };
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("AlertingService did not come up");
}

/// Waits until `check` holds over what the receivers got.
pub async fn eventually(received: &Shared, what: &str, check: impl Fn(&Received) -> bool) {
    for _ in 0..400 {
        if check(&received.lock().unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let state = received.lock().unwrap();
    panic!(
        "{what}: webhook {:?}, slack {:?}, telegram {:?}",
        state.webhook, state.slack, state.telegram
    );
}

/// Waits until c2d-alerting has taken in every event stored so far (its durable consumer
/// `alerting` has none pending nor unacknowledged: the engine writes what an event decides
/// before the event is acknowledged) and has no notification left to send (no `notify.` key in
/// its state bucket: one is deleted only once its receiver took it, or it was given up). What
/// alerting was going to tell about those events has then reached the receivers, so a test
/// may assert that something was *not* told, instead of sleeping a guessed while first.
pub async fn settled(jetstream: &async_nats::jetstream::Context) {
    use futures_util::TryStreamExt as _;
    c2d_testkit::eventually(
        "alerting to take in every event and send every notification",
        Duration::from_secs(20),
        || async {
            let stream = jetstream
                .get_stream(c2d_proto::events::STREAM)
                .await
                .map_err(|e| format!("the events stream: {e}"))?;
            let consumer = stream
                .consumer_info("alerting")
                .await
                .map_err(|e| format!("the alerting consumer: {e}"))?;
            if consumer.num_pending > 0 || consumer.num_ack_pending > 0 {
                return Err(format!(
                    "{} events not yet delivered, {} not yet acknowledged",
                    consumer.num_pending, consumer.num_ack_pending
                ));
            }
            let bucket = jetstream
                .get_key_value(c2d_alerting::engine::BUCKET)
                .await
                .map_err(|e| format!("the state bucket: {e}"))?;
            let keys: Vec<String> = bucket
                .keys()
                .await
                .map_err(|e| format!("the state bucket's keys: {e}"))?
                .try_collect()
                .await
                .map_err(|e| format!("the state bucket's keys: {e}"))?;
            let waiting: Vec<&String> = keys.iter().filter(|k| k.starts_with("notify.")).collect();
            if waiting.is_empty() {
                Ok(())
            } else {
                Err(format!("notifications still to send: {waiting:?}"))
            }
        },
    )
    .await;
}

/// Waits until alerting has decided on something after `since`: the rule `rule` (a wait rule,
/// which every tick of the clock re-counts, or a threshold rule, at each measurement) was last
/// evaluated later than `since`. The engine reads the clock once per input under its lock, so
/// that evaluation saw everything decided before `since`: whatever a tick or a measurement
/// would still have done wrongly about it (notify a muted alert, fire a timer twice, flap a
/// resolved threshold) has been decided by then, and [`settled`] then sees it sent.
pub async fn evaluated_after(endpoint: &str, rule: &str, since: std::time::SystemTime) {
    let since_ms = since
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let grpc = c2d_proto::alerting::AlertingServiceClient::connect(endpoint.to_owned())
        .await
        .expect("AlertingService is up");
    c2d_testkit::eventually(
        &format!("rule {rule} to be evaluated after {since_ms} ms"),
        Duration::from_secs(20),
        || {
            let mut grpc = grpc.clone();
            async move {
                let rules = grpc
                    .list_rules(c2d_proto::alerting::v1::ListRulesRequest {})
                    .await
                    .map_err(|e| format!("ListRules: {e}"))?
                    .into_inner()
                    .rules;
                let rule = rules
                    .iter()
                    .find(|r| r.name == rule)
                    .ok_or_else(|| format!("no rule {rule} in {rules:?}"))?;
                let at = rule
                    .last_evaluated_at
                    .map(|at| at.seconds * 1_000 + i64::from(at.nanos) / 1_000_000);
                match at {
                    Some(at) if at > since_ms => Ok(()),
                    at => Err(format!("last evaluated at {at:?} ms")),
                }
            }
        },
    )
    .await;
}

pub fn webhook_count(received: &Received, rule: &str, tenant: &str, status: &str) -> usize {
    received
        .webhook
        .iter()
        .filter(|b| {
            b["alerts"][0]["rule"] == rule
                && b["alerts"][0]["tenant"] == tenant
                && b["status"] == status
        })
        .count()
}

/// Writes a rules file into `dir` whose webhook receiver `ops` is the local one at
/// `receivers`, followed by `rest`; its path.
pub fn rules_file(dir: &std::path::Path, receivers: &str, rest: &str) -> String {
    let path = dir.join("rules.toml");
    let text = format!(
        "[[receiver]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{receivers}/ops\"\ninitial_backoff = \"50ms\"\n{rest}"
    );
    std::fs::write(&path, text).expect("the rules file is written");
    path.display().to_string()
}
