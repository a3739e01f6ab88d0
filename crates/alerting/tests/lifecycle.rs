//! The alert lifecycle past firing and resolving, end to end through a real gateway and
//! nats-server: a burst of alerts grouped into one notification, repeated until someone
//! acknowledges it, a lesser alert inhibited by a greater one of the same tenant and notified
//! once that one resolves, rules tried on the recent log, and rules' last evaluation; and a
//! change written half-way (a failed write, a crash) notified once and resolved.

mod harness;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use c2d_proto::alerting::AlertingServiceClient;
use c2d_proto::alerting::v1::{
    AcknowledgeRequest, AlertState, GetAlertRequest, ListAlertsRequest, ListRulesRequest,
    TestRuleRequest,
};
use c2d_testkit::Pipeline;
use harness::{
    Received, Shared, evaluated_after, eventually, settled, start_alerting, start_receivers,
};
use serde_json::{Value as Json, json};
use tonic::Code;

fn rules_file(dir: &std::path::Path, receivers: &str) -> String {
    harness::rules_file(
        dir,
        receivers,
        r#"
[[rule]]
name = "whatsapp-disconnected"
kind = "event"
hook_type = "new_qr_code"
severity = "critical"
receiver = "ops"
resolve_after = "4s"

[[rule]]
name = "delivery-failed"
kind = "event"
hook_type = "outbox_status"
receiver = "ops"
resolve_after = "10m"
group_wait = "1s"
repeat_interval = "3s"

[[inhibit]]
source_rule = "whatsapp-disconnected"
target_rule = "delivery-failed"

# Never fires here (no client writes): its evaluation at every tick shows the clock went on.
[[rule]]
name = "clock"
kind = "wait"
after = "1h"
receiver = "ops"
"#,
    )
}

fn failure(channel: i64, n: i64) -> String {
    json!({"id": 1_000 + n, "client_id": 500 + n, "channel_id": channel, "gateway_status": "failed",
           "error": "timeout error", "hook_type": "outbox_status", "event_time": 1_714_557_600 + n})
    .to_string()
}

/// Webhook bodies about `rule` and `tenant`.
fn bodies(received: &Received, rule: &str, tenant: &str) -> Vec<Json> {
    received
        .webhook
        .iter()
        .filter(|b| b["alerts"][0]["rule"] == rule && b["alerts"][0]["tenant"] == tenant)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_grouped_repeated_until_acknowledged_inhibited_and_tried() {
    let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
    let pipeline = Pipeline::start().await;
    let nats_url = pipeline.nats.url();
    let dir = tempfile::tempdir().unwrap();
    let received: Shared = Arc::new(Mutex::new(Received::default()));
    let receivers = start_receivers(Arc::clone(&received)).await;
    let rules = rules_file(dir.path(), &receivers);
    let running = start_alerting(&nats_url, &rules, &[]).await;
    let mut grpc = AlertingServiceClient::connect(running.endpoint.clone())
        .await
        .unwrap();

    // Grouping: three channels fail at once; their alerts wait together for group_wait and
    // reach ops as one message.
    for n in 0..3 {
        pipeline.post_as("acme", failure(10 + n, n)).await;
    }
    eventually(&received, "the burst reaches ops", |r| {
        !bodies(r, "delivery-failed", "acme").is_empty()
    })
    .await;
    // All three events taken in and every notification sent (the repeat is 3 s away): a
    // burst split in two would show both halves now.
    let jetstream = pipeline.nats.jetstream().await;
    settled(&jetstream).await;
    let first = bodies(&received.lock().unwrap(), "delivery-failed", "acme");
    assert_eq!(first.len(), 1, "one message for the burst: {first:?}");
    assert_eq!(first[0]["status"], "firing");
    assert_eq!(first[0]["alerts"].as_array().unwrap().len(), 3);
    let text = first[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("[FIRING] 3 alerts of delivery-failed for acme:"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 4, "a line per alert: {text}");

    // Repeat: nobody acknowledged, so after repeat_interval the group is told again, still as
    // one message.
    eventually(&received, "the firing alerts are repeated", |r| {
        bodies(r, "delivery-failed", "acme").len() == 2
    })
    .await;
    let repeated = bodies(&received.lock().unwrap(), "delivery-failed", "acme");
    assert_eq!(repeated[1]["alerts"].as_array().unwrap().len(), 3);
    // Someone is on it: acknowledged alerts are not repeated any more.
    let firing = grpc
        .list_alerts(ListAlertsRequest {
            state: AlertState::Firing as i32,
            tenant: "acme".into(),
            rule: "delivery-failed".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert_eq!(firing.len(), 3);
    for alert in &firing {
        let acknowledged = grpc
            .acknowledge(AcknowledgeRequest {
                fingerprint: alert.fingerprint.clone(),
                by: "Marina".into(),
                comment: "calling the provider".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(acknowledged.acknowledgement.unwrap().by, "Marina");
    }
    let got = grpc
        .get_alert(GetAlertRequest {
            fingerprint: firing[0].fingerprint.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.acknowledgement.unwrap().comment, "calling the provider");
    let unknown = grpc
        .acknowledge(AcknowledgeRequest {
            fingerprint: "nope".into(),
            by: "Marina".into(),
            comment: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let anonymous = grpc
        .acknowledge(AcknowledgeRequest {
            fingerprint: firing[0].fingerprint.clone(),
            by: " ".into(),
            comment: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::InvalidArgument);

    // Inhibition: globex's WhatsApp number is disconnected; its delivery failure that follows
    // is kept and listed, but not notified while the greater alert fires.
    pipeline
        .post_as(
            "globex",
            json!({"phone": "5511999", "qrcode_data": "1@abc", "device_owner": "service", "hook_type": "new_qr_code"})
                .to_string(),
        )
        .await;
    eventually(&received, "the QR alert reaches ops", |r| {
        !bodies(r, "whatsapp-disconnected", "globex").is_empty()
    })
    .await;
    pipeline.post_as("globex", failure(20, 9)).await;
    let mut inhibited = None;
    for _ in 0..200 {
        let alerts = grpc
            .list_alerts(ListAlertsRequest {
                state: AlertState::Firing as i32,
                tenant: "globex".into(),
                rule: "delivery-failed".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .alerts;
        if let Some(alert) = alerts.into_iter().next() {
            inhibited = Some(alert);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let inhibited = inhibited.expect("globex's delivery failure fires");
    assert!(!inhibited.inhibited_by.is_empty(), "{inhibited:?}");
    // A tick after the firing (where a muted alert whose inhibitor resolved is told), then
    // every notification queued sent, group wait included: one for the inhibited alert would
    // be at the receiver now.
    evaluated_after(&running.endpoint, "clock", std::time::SystemTime::now()).await;
    settled(&jetstream).await;
    assert!(
        bodies(&received.lock().unwrap(), "delivery-failed", "globex").is_empty(),
        "inhibited: not notified while the QR alert fires"
    );
    // No new QR code for 4 s: the greater alert resolves, and the lesser one, still firing,
    // is notified now.
    eventually(&received, "the QR alert resolves", |r| {
        bodies(r, "whatsapp-disconnected", "globex")
            .iter()
            .any(|b| b["status"] == "resolved")
    })
    .await;
    eventually(&received, "the inhibited alert is notified", |r| {
        bodies(r, "delivery-failed", "globex").len() == 1
    })
    .await;

    // No more repeats for acme's acknowledged alerts.
    assert_eq!(
        bodies(&received.lock().unwrap(), "delivery-failed", "acme").len(),
        2,
        "acknowledged alerts are not repeated"
    );

    // Trials replay the recent log through a rule; nothing is kept or notified.
    let trial = grpc
        .test_rule(TestRuleRequest {
            rule: "delivery-failed".into(),
            tenant: "acme".into(),
            lookback_seconds: 600,
            max_events: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(trial.events_read, 3, "{}", trial.explanation);
    assert_eq!(trial.alerts.len(), 3);
    assert!(
        trial
            .alerts
            .iter()
            .all(|a| a.state == AlertState::Firing as i32 && a.tenant == "acme")
    );
    let trial = grpc
        .test_rule(TestRuleRequest {
            rule: "whatsapp-disconnected".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(trial.alerts.len(), 1, "{}", trial.explanation);
    assert_eq!(trial.alerts[0].labels["phone"], "5511999");
    assert_eq!(trial.alerts[0].state, AlertState::Resolved as i32);
    let unknown = grpc
        .test_rule(TestRuleRequest {
            rule: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);

    // Rules report their last evaluation.
    let rules = grpc
        .list_rules(ListRulesRequest {})
        .await
        .unwrap()
        .into_inner()
        .rules;
    let delivery = rules.iter().find(|r| r.name == "delivery-failed").unwrap();
    assert_eq!(delivery.firing, 4, "three for acme, one for globex");
    assert!(delivery.last_evaluated_at.is_some());
    assert!(
        delivery
            .last_result
            .starts_with("globex: Messages on channel 20"),
        "{}",
        delivery.last_result
    );
    assert!(delivery.description.contains("grouped for 1s"));

    let count = received.lock().unwrap().webhook.len();
    running.stop().await;
    assert_eq!(
        count, 5,
        "2 acme, 2 QR (firing, resolved), 1 globex delivery"
    );
}

/// The rules file of the two tests below: WhatsApp disconnected, resolved `resolve_after`
/// after its last QR code.
fn qr_rule_file(dir: &std::path::Path, receivers: &str, resolve_after: &str) -> String {
    harness::rules_file(
        dir,
        receivers,
        &format!(
            "[[rule]]\nname = \"whatsapp-disconnected\"\nkind = \"event\"\nhook_type = \"new_qr_code\"\n\
             receiver = \"ops\"\nresolve_after = \"{resolve_after}\"\n"
        ),
    )
}

/// A QR code for acme's phone 5511999, through the gateway.
async fn post_qr_code(pipeline: &Pipeline) {
    pipeline
        .post(
            json!({"phone": "5511999", "qrcode_data": "1@abc", "hook_type": "new_qr_code"})
                .to_string(),
        )
        .await;
}

/// The webhook receiver heard of one firing and of its resolution, under the same start.
fn fired_once_and_resolved(received: &Received) {
    let starts: Vec<(&Json, &Json)> = received
        .webhook
        .iter()
        .map(|b| (&b["status"], &b["alerts"][0]["starts_at"]))
        .collect();
    assert_eq!(starts.len(), 2, "one firing, one resolved: {starts:?}");
    assert_eq!(starts[0].0, "firing");
    assert_eq!(starts[1].0, "resolved");
    assert_eq!(starts[0].1, starts[1].1, "the same alert");
}

/// A state write that fails half-way is taken back. Here the state bucket stops taking alert
/// records, and only those (as a stream failing over between two writes would): each try of
/// the event writes the alert's notification and fails on the alert itself. Those
/// notifications are taken back, so once the bucket takes everything again the receiver hears
/// of the alert once, and its resolution under the same start. Left in place, each try's
/// notification went out, each with its own start, none of them ever resolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_whose_state_write_failed_half_way_is_notified_once() {
    let pipeline = Pipeline::start().await;
    let received: Shared = Arc::default();
    let receivers = start_receivers(Arc::clone(&received)).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = qr_rule_file(dir.path(), &receivers, "2s");
    let alerting = start_alerting(&pipeline.nats.url(), &rules, &[]).await;

    let jetstream = pipeline.nats.jetstream().await;
    let bucket = format!("KV_{}", c2d_alerting::engine::BUCKET);
    let whole = jetstream
        .get_stream(&bucket)
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    let mut without_alerts = whole.clone();
    without_alerts.subjects = ["notify", "seen", "timer", "silence"]
        .map(|kind| format!("$KV.{}.{kind}.>", c2d_alerting::engine::BUCKET))
        .to_vec();
    jetstream.update_stream(&without_alerts).await.unwrap();
    // Each try writes to the bucket at most four times (the tenant's last event and the
    // notification, then both taken back), so eight writes are at least two tries.
    let written = || async {
        let mut stream = jetstream
            .get_stream(&bucket)
            .await
            .map_err(|e| e.to_string())?;
        let info = stream.info().await.map_err(|e| e.to_string())?;
        Ok::<u64, String>(info.state.last_sequence)
    };
    let before = written().await.unwrap();
    post_qr_code(&pipeline).await;
    c2d_testkit::eventually(
        "alerting to try the event twice",
        Duration::from_secs(30),
        || async {
            let now = written().await?;
            if now >= before + 8 {
                Ok(())
            } else {
                Err(format!("{} writes", now - before))
            }
        },
    )
    .await;
    jetstream.update_stream(&whole).await.unwrap();

    eventually(&received, "the alert fires and resolves", |r| {
        harness::webhook_count(r, "whatsapp-disconnected", "acme", "resolved") > 0
    })
    .await;
    settled(&jetstream).await;
    alerting.stop().await;
    fired_once_and_resolved(&received.lock().unwrap());
}

/// A crash between a firing's two writes (its notification, then its alert) leaves the
/// notification alone in the bucket, here made by deleting the alert's record while alerting
/// is down. Started again, alerting sends the notification and keeps the alert as it told it,
/// so that it resolves under the same start; before, the receiver heard of a firing that never
/// resolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_whose_alert_was_never_kept_still_resolves() {
    use futures_util::TryStreamExt as _;
    let pipeline = Pipeline::start().await;
    let received: Shared = Arc::new(Mutex::new(Received {
        webhook_failures_left: usize::MAX,
        ..Received::default()
    }));
    let receivers = start_receivers(Arc::clone(&received)).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = qr_rule_file(dir.path(), &receivers, "5s");
    let alerting = start_alerting(&pipeline.nats.url(), &rules, &[]).await;
    post_qr_code(&pipeline).await;
    let jetstream = pipeline.nats.jetstream().await;
    let bucket = jetstream
        .get_key_value(c2d_alerting::engine::BUCKET)
        .await
        .unwrap();
    let alert_key = c2d_testkit::eventually(
        "the alert is kept, its notification tried",
        Duration::from_secs(10),
        || async {
            let keys: Vec<String> = bucket
                .keys()
                .await
                .map_err(|e| e.to_string())?
                .try_collect()
                .await
                .map_err(|e| e.to_string())?;
            let tried = received.lock().unwrap().webhook_calls > 0;
            match keys.into_iter().find(|key| key.starts_with("alert.")) {
                Some(key) if tried => Ok(key),
                _ => Err("not yet".to_owned()),
            }
        },
    )
    .await;
    alerting.stop().await;
    bucket.delete(&alert_key).await.unwrap();
    received.lock().unwrap().webhook_failures_left = 0;

    let alerting = start_alerting(&pipeline.nats.url(), &rules, &[]).await;
    eventually(&received, "the firing told, then resolved", |r| {
        harness::webhook_count(r, "whatsapp-disconnected", "acme", "resolved") > 0
    })
    .await;
    alerting.stop().await;
    fired_once_and_resolved(&received.lock().unwrap());
}
