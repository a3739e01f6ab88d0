//! Alerting end to end: webhooks POSTed through a real gateway into a real nats-server,
//! c2d-crm-sync naming the clients over real gRPC, c2d-alerting firing and resolving, and local
//! receivers speaking the webhook, Slack and Telegram shapes, the first of them failing twice.

mod harness;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use c2d_proto::alerting::AlertingServiceClient;
use c2d_proto::alerting::v1::{
    AlertState, CreateSilenceRequest, ExpireSilenceRequest, GetAlertRequest, ListAlertsRequest,
    ListRulesRequest,
};
use c2d_proto::crm::CrmServiceClient;
use c2d_proto::crm::v1::{GetClientRequest, get_client_request::By};
use c2d_testkit::{Pipeline, fixture, publish_deliveries, stream_messages};
use harness::{
    Received, Shared, evaluated_after, eventually, settled, start_alerting, start_receivers,
    webhook_count,
};
use serde_json::json;
use tonic::Code;

fn rules_file(dir: &std::path::Path, receivers: &str) -> String {
    harness::rules_file(
        dir,
        receivers,
        &format!(
            r#"
[[receiver]]
name = "slack"
kind = "slack"
url = "{receivers}/slack"

[[receiver]]
name = "vip"
kind = "telegram"
base_url = "{receivers}"
token = "${{TEST_BOT_TOKEN}}"
chat_id = "42"

[[rule]]
name = "whatsapp-disconnected"
kind = "event"
hook_type = "new_qr_code"
severity = "critical"
receiver = "ops"

[[rule]]
name = "client-waiting"
kind = "wait"
after = "1s"
receiver = "slack"
route = [{{ tag = "VIP", receiver = "vip" }}]

[[rule]]
name = "tenant-silent"
kind = "silence"
after = "2s"
receiver = "ops"
tenants = ["globex"]
"#
        ),
    )
}

/// crm-sync in-process on SQLite, its endpoint.
async fn start_crm_sync(nats_url: &str, dir: &std::path::Path) -> String {
    let (nats_url, store) = (
        nats_url.to_owned(),
        format!("sqlite://{}", dir.join("crm.db").display()),
    );
    let config = c2d_crm_sync::Config::from_lookup(|name| match name {
        "NATS_URL" => Some(nats_url.clone()),
        "CRM_STORE_URL" => Some(store.clone()),
        "CRM_METRICS_ADDR" => Some("off".into()),
        _ => None,
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let crm = c2d_crm_sync::CrmSync::open(config).await.unwrap();
    tokio::spawn(crm.run(listener, std::future::pending()));
    endpoint
}

fn message(hook: &str, client: i64, request: i64, at: i64) -> String {
    json!({
        "message_id": request * 10 + at % 7, "type": if hook == "inbox" { "from_client" } else { "to_client" },
        "text": "Olá", "transport": "whatsapp", "client_id": client, "operator_id": if hook == "outbox" { json!(77) } else { json!(null) },
        "channel_id": 10, "request_id": request, "hook_type": hook, "event_time": at,
        "client": {"id": client, "name": "Ana"}
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_once_enriched_resolve_and_survive_restarts() {
    let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
    let pipeline = Pipeline::start().await;
    let nats_url = pipeline.nats.url();
    let dir = tempfile::tempdir().unwrap();
    let received: Shared = Arc::new(Mutex::new(Received {
        webhook_failures_left: 2,
        ..Default::default()
    }));
    let receivers = start_receivers(Arc::clone(&received)).await;
    let rules = rules_file(dir.path(), &receivers);
    let crm_url = start_crm_sync(&nats_url, dir.path()).await;
    let running = start_alerting(&nats_url, &rules, &[("ALERTING_CRM_URL", &crm_url)]).await;

    // Ana is a VIP, as the CRM directory knows.
    pipeline
        .post(json!({"id": 501, "name": "Ana Souza", "hook_type": "new_client", "event_time": 1_714_557_600}).to_string())
        .await;
    pipeline
        .post(json!({"id": 1, "name": "VIP", "client_id": 501, "hook_type": "add_tag_to_client", "event_time": 1_714_557_601}).to_string())
        .await;
    let crm = CrmServiceClient::connect(crm_url.clone()).await.unwrap();
    c2d_testkit::eventually(
        "the CRM directory to know Ana as a VIP",
        Duration::from_secs(10),
        || {
            let mut crm = crm.clone();
            async move {
                let answer = crm
                    .get_client(GetClientRequest {
                        tenant: "acme".into(),
                        by: Some(By::ClientId(501)),
                    })
                    .await
                    .map_err(|status| status.to_string())?
                    .into_inner();
                if answer.tags == ["VIP"] {
                    Ok(())
                } else {
                    Err(format!("tags {:?}", answer.tags))
                }
            }
        },
    )
    .await;

    // --- A lost WhatsApp connection: one notification, through two receiver failures. ---
    pipeline.post(fixture("new_qr_code")).await;
    eventually(&received, "the QR alert reaches ops", |r| {
        webhook_count(r, "whatsapp-disconnected", "acme", "firing") == 1
    })
    .await;
    {
        let state = received.lock().unwrap();
        assert_eq!(state.webhook_calls, 3, "two failures, then delivered");
        let body = &state.webhook[0];
        assert!(
            body["text"]
                .as_str()
                .unwrap()
                .contains("WhatsApp connection of phone 339002538473 lost, scan the new QR code"),
            "{body}"
        );
        assert_eq!(body["alerts"][0]["labels"]["phone"], "339002538473");
        assert_eq!(body["alerts"][0]["severity"], "critical");
    }
    // The same phone's next QR code is the same condition: no second notification.
    let again = String::from_utf8(fixture("new_qr_code").to_vec())
        .unwrap()
        .replace("2019-07-28T23:01:40Z", "2019-07-28T23:05:00Z");
    pipeline.post(again).await;

    // --- A VIP client waits: the VIP receiver hears of it, with her name; the answer resolves. ---
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    pipeline.post(message("inbox", 501, 9001, now)).await;
    // Another client is answered in time: nothing fires.
    pipeline.post(message("inbox", 502, 9002, now)).await;
    pipeline.post(message("outbox", 502, 9002, now + 1)).await;
    eventually(&received, "the wait alert reaches the VIP receiver", |r| {
        !r.telegram.is_empty()
    })
    .await;
    {
        let state = received.lock().unwrap();
        let (bot, chat, text) = &state.telegram[0];
        assert_eq!((bot.as_str(), chat.as_str()), ("bottest-token", "42"));
        assert!(
            text.starts_with("[FIRING] warning acme client-waiting: Ana Souza has waited 1s"),
            "{text}"
        );
        assert!(
            text.contains("request 9001") && text.contains("VIP"),
            "{text}"
        );
        assert!(
            state.slack.is_empty(),
            "request 9002 was answered in time: {:?}",
            state.slack
        );
    }
    pipeline.post(message("outbox", 501, 9001, now + 2)).await;
    eventually(&received, "the answer resolves it", |r| {
        r.telegram
            .iter()
            .any(|(_, _, text)| text.starts_with("[RESOLVED]") && text.contains("request 9001"))
    })
    .await;

    // --- A silent tenant fires, and its next event resolves it. globex, named by the rule, has
    // never spoken: it is watched from alerting's start. ---
    eventually(&received, "globex never spoke", |r| {
        webhook_count(r, "tenant-silent", "globex", "firing") == 1
    })
    .await;
    pipeline
        .post_as("globex", message("inbox", 700, 9700, now))
        .await;
    eventually(&received, "globex spoke", |r| {
        webhook_count(r, "tenant-silent", "globex", "resolved") == 1
    })
    .await;
    eventually(&received, "globex is silent again", |r| {
        webhook_count(r, "tenant-silent", "globex", "firing") == 2
    })
    .await;
    pipeline
        .post_as("globex", message("outbox", 700, 9700, now + 1))
        .await;
    eventually(&received, "globex spoke again", |r| {
        webhook_count(r, "tenant-silent", "globex", "resolved") == 2
    })
    .await;

    // --- Over gRPC. ---
    let mut alerting = AlertingServiceClient::connect(running.endpoint.clone())
        .await
        .unwrap();
    let firing = alerting
        .list_alerts(ListAlertsRequest {
            state: AlertState::Firing as i32,
            tenant: "acme".into(),
            rule: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(firing[0].rule, "whatsapp-disconnected");
    let qr_fingerprint = firing[0].fingerprint.clone();
    let one = alerting
        .get_alert(GetAlertRequest {
            fingerprint: qr_fingerprint.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.labels["phone"], "339002538473");
    let waited = alerting
        .list_alerts(ListAlertsRequest {
            state: 0,
            tenant: "acme".into(),
            rule: "client-waiting".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert_eq!(waited.len(), 1);
    assert_eq!(waited[0].state(), AlertState::Resolved);
    assert_eq!(waited[0].client.as_ref().unwrap().tags, ["VIP"]);
    assert_eq!(waited[0].receiver, "vip");
    let missing = alerting
        .get_alert(GetAlertRequest {
            fingerprint: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let bad_rule = alerting
        .list_alerts(ListAlertsRequest {
            state: 0,
            tenant: String::new(),
            rule: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_rule.code(), Code::InvalidArgument);
    let listed = alerting
        .list_rules(ListRulesRequest {})
        .await
        .unwrap()
        .into_inner()
        .rules;
    let kinds: Vec<(&str, &str)> = listed
        .iter()
        .map(|r| (r.name.as_str(), r.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("whatsapp-disconnected", "event"),
            ("client-waiting", "wait"),
            ("tenant-silent", "silence")
        ]
    );

    // --- A silence mutes; when it is expired, what still fires is notified. ---
    let silence = alerting
        .create_silence(CreateSilenceRequest {
            tenant: "acme".into(),
            rule: "client-waiting".into(),
            labels: Default::default(),
            duration_seconds: 3_600,
            comment: "maintenance".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(silence.active);
    let telegrams = received.lock().unwrap().telegram.len();
    pipeline.post(message("inbox", 501, 9004, now + 3)).await;
    let mut muted = None;
    for _ in 0..200 {
        let alerts = alerting
            .list_alerts(ListAlertsRequest {
                state: AlertState::Firing as i32,
                tenant: "acme".into(),
                rule: "client-waiting".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .alerts;
        if let Some(alert) = alerts
            .into_iter()
            .find(|a| a.labels["request_id"] == "9004")
        {
            muted = Some(alert);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let muted = muted.expect("request 9004's alert fires while silenced");
    assert_eq!(muted.silenced_by, silence.id);
    // Not a guessed pause: a tick of the clock after the firing (the muted alert would be
    // told there if the silence were ignored), then every notification queued sent.
    let jetstream = pipeline.nats.jetstream().await;
    evaluated_after(&running.endpoint, "client-waiting", SystemTime::now()).await;
    settled(&jetstream).await;
    assert_eq!(
        received.lock().unwrap().telegram.len(),
        telegrams,
        "silenced: not notified"
    );
    let expired = alerting
        .expire_silence(ExpireSilenceRequest {
            id: silence.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!expired.active);
    eventually(
        &received,
        "the alert is notified when the silence ends",
        |r| {
            r.telegram
                .iter()
                .any(|(_, _, text)| text.starts_with("[FIRING]") && text.contains("request 9004"))
        },
    )
    .await;
    let unknown = alerting
        .expire_silence(ExpireSilenceRequest { id: "nope".into() })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    // --- A restart with a client waiting: the timer survives, nothing is notified twice. ---
    running.stop().await;
    let before = {
        let state = received.lock().unwrap();
        (
            webhook_count(&state, "whatsapp-disconnected", "acme", "firing"),
            state.telegram.len(),
        )
    };
    // Arrives while alerting is down; the durable consumer keeps it.
    pipeline.post(message("inbox", 501, 9003, now + 3)).await;
    let running = start_alerting(&nats_url, &rules, &[("ALERTING_CRM_URL", &crm_url)]).await;
    eventually(
        &received,
        "the timer of request 9003 fires after the restart",
        |r| {
            r.telegram
                .iter()
                .any(|(_, _, text)| text.starts_with("[FIRING]") && text.contains("request 9003"))
        },
    )
    .await;
    // Every event taken in, a tick after the firing (a timer not deleted would fire again
    // there), and every notification sent: a second one would have arrived by now.
    evaluated_after(&running.endpoint, "client-waiting", SystemTime::now()).await;
    settled(&jetstream).await;
    {
        let state = received.lock().unwrap();
        assert_eq!(
            state.telegram.len(),
            before.1 + 1,
            "exactly the new alert: {:?}",
            state.telegram
        );
        assert_eq!(
            webhook_count(&state, "whatsapp-disconnected", "acme", "firing"),
            before.0,
            "the firing QR alert is not notified again"
        );
        assert_eq!(
            before.0, 1,
            "the second QR code of the same phone was not a new alert"
        );
    }

    // Every state change is on the alerts stream, once.
    let subjects: Vec<String> = stream_messages(&jetstream, c2d_proto::alerting::ALERTS_STREAM)
        .await
        .unwrap()
        .iter()
        .map(|m| m.subject.to_string())
        .collect();
    let count = |subject: &str| subjects.iter().filter(|s| *s == subject).count();
    assert_eq!(count("chat2desk.alerts.acme.resolved"), 1, "{subjects:?}");
    assert!(
        count("chat2desk.alerts.acme.firing") >= 3,
        "QR, 9001, 9003: {subjects:?}"
    );
    running.stop().await;
}

/// A tenant that kept talking while c2d-alerting was down, for longer than a silence rule's
/// `after`, is not called silent when it comes back: the events that arrived meanwhile are
/// read before the clock judges anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_that_spoke_while_alerting_was_down_is_not_called_silent() {
    let pipeline = Pipeline::start().await;
    let (nats_url, jetstream) = (pipeline.nats.url(), pipeline.nats.jetstream().await);
    let dir = tempfile::tempdir().unwrap();
    let received: Shared = Arc::default();
    let receivers = start_receivers(Arc::clone(&received)).await;
    let rules = harness::rules_file(
        dir.path(),
        &receivers,
        r#"
[[rule]]
name = "tenant-silent"
kind = "silence"
after = "6s"
receiver = "ops"
tenants = ["globex"]
"#,
    );
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let running = start_alerting(&nats_url, &rules, &[]).await;
    pipeline
        .post_as("globex", message("inbox", 700, 9700, now))
        .await;
    settled(&jetstream).await;
    running.stop().await;

    // Down for 8 s, longer than `after`. Another tenant's busy hour arrives first, so reading
    // the backlog takes a while, then globex writes every half second.
    let busy_hour = (0..20_000).map(|n| {
        let body = message("inbox", 800 + n % 50, 20_000 + n, now);
        ("acme".to_owned(), body.into())
    });
    publish_deliveries(&pipeline.nats, busy_hour).await.unwrap();
    for n in 1..=16 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        pipeline
            .post_as("globex", message("inbox", 700, 9700 + n, now + n))
            .await;
    }
    let running = start_alerting(&nats_url, &rules, &[]).await;
    evaluated_after(&running.endpoint, "tenant-silent", SystemTime::now()).await;
    settled(&jetstream).await;
    {
        let state = received.lock().unwrap();
        assert_eq!(
            webhook_count(&state, "tenant-silent", "globex", "firing"),
            0,
            "globex was never silent: {:?}",
            state.webhook
        );
    }
    running.stop().await;
}
