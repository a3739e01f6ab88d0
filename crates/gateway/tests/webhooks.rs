//! The webhook contract over real HTTP against a real gateway process and a real nats-server:
//! every fixture and every quirk stored and read back decoded, retries stored once, bad input
//! answered clearly.

use std::collections::BTreeMap;

use c2d_proto::events::{DLQ_STREAM, DeadLetter, Event, Payload, STREAM};
use c2d_testkit::gateway::ACME_TOKEN;
use c2d_testkit::{
    GatewayProcess, NatsServer, fixture, http, stored_events, stream_messages, webhook_fixtures,
};
use prost::Message as _;
use prost_types::value::Kind;
use serde_json::json;

const GATEWAY: &str = env!("CARGO_BIN_EXE_c2d-gateway");

async fn start() -> (NatsServer, GatewayProcess) {
    let nats = NatsServer::start().await.expect("nats-server starts");
    let gateway = GatewayProcess::start(GATEWAY, &nats, &[])
        .await
        .expect("gateway starts");
    (nats, gateway)
}

fn payload_of(events: &[Event], hook_type: &str) -> Payload {
    events
        .iter()
        .find(|e| e.hook_type == hook_type)
        .unwrap_or_else(|| panic!("no {hook_type} event stored"))
        .payload
        .clone()
        .expect("payload")
}

#[tokio::test]
async fn every_fixture_is_stored_once_on_its_subject_with_typed_fields() {
    let (nats, gateway) = start().await;
    let fixtures = webhook_fixtures();
    assert_eq!(
        fixtures.len(),
        15,
        "14 hook types, ai_hints_requested in two forms"
    );

    let mut answers = BTreeMap::new();
    for (name, body) in &fixtures {
        let answer = http::post_json(&gateway.acme_url(), body.clone())
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{name}: {}", answer.text());
        answers.insert(name.clone(), answer.json());
    }
    // The hints request is answered in Chat2Desk's shape; the others with the event id.
    assert_eq!(
        answers["ai_hints_requested"],
        json!({"message_id": 8205, "hints": []})
    );
    assert_eq!(answers["inbox"]["status"], "ok");
    assert_eq!(answers["inbox"]["duplicate"], false);

    let stored = stored_events(&nats).await.unwrap();
    assert_eq!(stored.len(), fixtures.len());
    for ((message, event), (name, body)) in stored.iter().zip(&fixtures) {
        let expected =
            c2d_hooks::parse_delivery("acme", body.clone(), event.received_at.unwrap()).unwrap();
        assert_eq!(
            event, &expected,
            "{name}: the stored event is the parsed delivery, field for field"
        );
        assert_eq!(event.tenant, "acme");
        assert_eq!(event.raw, *body, "{name}: raw body kept");
        assert_eq!(
            message.subject.as_str(),
            format!("chat2desk.events.acme.{}", event.hook_type),
            "{name}"
        );
        let headers = &message.headers;
        assert_eq!(
            headers.get("Nats-Msg-Id").map(|v| v.as_str()),
            Some(event.event_id.as_str())
        );
        let traceparent = headers
            .get("traceparent")
            .expect("traceparent header")
            .as_str();
        assert!(
            c2d_telemetry::trace_id(traceparent).is_some(),
            "{traceparent}"
        );
        if let Some(answer_id) = answers[name].get("event_id") {
            assert_eq!(
                answer_id,
                &json!(event.event_id),
                "{name}: the answer names the stored event"
            );
        }
    }

    let events: Vec<Event> = stored.into_iter().map(|(_, e)| e).collect();
    let Payload::Inbox(inbox) = payload_of(&events, "inbox") else {
        panic!()
    };
    assert_eq!(
        (inbox.message_id, inbox.client_id, inbox.request_id),
        (Some(106_773_169), Some(100), Some(8_725_057))
    );
    assert_eq!(inbox.text.as_deref(), Some("Text"));
    assert_eq!(inbox.is_new_request, Some(true));
    let Payload::Outbox(outbox) = payload_of(&events, "outbox") else {
        panic!()
    };
    assert_eq!(outbox.operator_id, Some(41_164));
    let Payload::OutboxStatus(status) = payload_of(&events, "outbox_status") else {
        panic!()
    };
    assert_eq!(status.gateway_status.as_deref(), Some("failed"));
    assert_eq!(status.error.as_deref(), Some("timeout error"));
    let Payload::NewClient(client) = payload_of(&events, "new_client") else {
        panic!()
    };
    assert_eq!(client.channels[0].transports, ["telegram"]);
    let Payload::DeleteTagFromClient(tag) = payload_of(&events, "delete_tag_from_client") else {
        panic!()
    };
    assert_eq!((tag.id, tag.client_id), (Some(4835), Some(17_340_089)));
    let Payload::DialogTransferred(transfer) = payload_of(&events, "dialog_transferred") else {
        panic!()
    };
    assert_eq!(
        (transfer.current_operator_id, transfer.last_operator_id),
        (Some(39_538), Some(8236))
    );
    let Payload::CloseRequest(close) = payload_of(&events, "close_request") else {
        panic!()
    };
    assert_eq!(close.created.map(|t| t.seconds), Some(1_550_671_015));
    let Payload::NewQrCode(qr) = payload_of(&events, "new_qr_code") else {
        panic!()
    };
    assert_eq!(qr.phone.as_deref(), Some("339002538473"));
    assert!(
        events.iter().any(
            |e| matches!(e.payload, Some(Payload::AiHintChosen(ref c)) if c.hint_id == Some(2))
        )
    );
}

#[tokio::test]
async fn quirks_of_real_deliveries_are_stored_as_typed_events() {
    let (nats, gateway) = start().await;
    let image = format!(
        "data:image/png;base64,{}",
        "iVBORw0KGgoAAAANSUhEUgAA".repeat(25_000)
    );
    let quirks = [
        json!({"hook_type": "inbox", "message_id": "501", "client_id": "77", "operator_id": "", "dialog_id": null,
               "is_new_request": "1", "is_new_client": "", "client": [], "extra_data": [], "text": "Olá! Привет 👋",
               "event_time": "2024-03-10 12:00:00"}),
        json!({"hook_type": "new_client", "id": "900", "channels": {"id": "12", "transports": ["whatsapp"]},
               "custom_fields": [], "event_time": "2024-03-10T15:00:00+03:00"}),
        json!({"hook_type": "delete_tag_to_client", "id": 4835, "client_id": "900", "event_time": 1710072000}),
        json!({"client_id": 11910, "operator_id": 1, "dialog_id": 331, "request_id": 2343, "channel_id": 1, "message_id": 8206}),
        json!({"hook_type": "new_qr_code", "qrcode_image": image, "phone": 5511999, "event_time": "2024-03-10T12:00:00Z"}),
        json!({"hook_type": "video_call_started", "call_id": 1, "event_time": "2024-03-10T12:00:00Z"}),
    ];
    for body in &quirks {
        let answer = http::post_json(&gateway.acme_url(), body.to_string())
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{body:.200}: {}", answer.text());
    }

    let stored = stored_events(&nats).await.unwrap();
    let subjects: Vec<&str> = stored.iter().map(|(m, _)| m.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "chat2desk.events.acme.inbox",
            "chat2desk.events.acme.new_client",
            "chat2desk.events.acme.delete_tag_from_client",
            "chat2desk.events.acme.ai_hints_requested",
            "chat2desk.events.acme.new_qr_code",
            "chat2desk.events.acme.unknown",
        ]
    );
    let events: Vec<Event> = stored.into_iter().map(|(_, e)| e).collect();
    const NOON_UTC: i64 = 1_710_072_000; // 2024-03-10T12:00:00Z

    let Some(Payload::Inbox(m)) = &events[0].payload else {
        panic!()
    };
    assert_eq!(
        (m.message_id, m.client_id, m.operator_id, m.dialog_id),
        (Some(501), Some(77), None, None)
    );
    assert_eq!((m.is_new_request, m.is_new_client), (Some(true), None));
    assert_eq!((m.client.as_ref(), m.extra_data.as_ref()), (None, None));
    assert_eq!(m.text.as_deref(), Some("Olá! Привет 👋"));
    assert_eq!(events[0].event_time.unwrap().seconds, NOON_UTC);

    let Some(Payload::NewClient(c)) = &events[1].payload else {
        panic!()
    };
    assert_eq!(
        (c.id, c.channels.len(), c.channels[0].id),
        (Some(900), 1, Some(12))
    );
    assert_eq!(events[1].event_time.unwrap().seconds, NOON_UTC);

    assert_eq!(events[2].hook_type, "delete_tag_from_client");
    assert_eq!(events[2].event_time.unwrap().seconds, NOON_UTC);
    assert!(
        matches!(&events[3].payload, Some(Payload::AiHintsRequested(r)) if r.message_id == Some(8206))
    );
    let Some(Payload::NewQrCode(q)) = &events[4].payload else {
        panic!()
    };
    assert_eq!(q.qrcode_image.as_deref(), Some(image.as_str()));
    assert_eq!(q.phone.as_deref(), Some("5511999"));
    assert_eq!(events[5].hook_type, "video_call_started");
    let Some(Payload::Unknown(u)) = &events[5].payload else {
        panic!()
    };
    assert_eq!(
        u.fields.as_ref().unwrap().fields["call_id"].kind,
        Some(Kind::NumberValue(1.0))
    );
}

#[tokio::test]
async fn a_retried_delivery_is_answered_2xx_and_stored_once() {
    let (nats, gateway) = start().await;
    let first = http::post_json(&gateway.acme_url(), fixture("inbox"))
        .await
        .unwrap();
    // Chat2Desk's retry, re-encoded: same JSON, other spacing.
    let reencoded = serde_json::from_slice::<serde_json::Value>(&fixture("inbox"))
        .unwrap()
        .to_string();
    let retry = http::post_json(&gateway.acme_url(), reencoded)
        .await
        .unwrap();
    let again = http::post_json(&gateway.acme_url(), fixture("inbox"))
        .await
        .unwrap();
    assert_eq!((first.status, retry.status, again.status), (200, 200, 200));
    assert_eq!(first.json()["duplicate"], false);
    assert_eq!(retry.json()["duplicate"], true);
    assert_eq!(again.json()["duplicate"], true);
    assert_eq!(first.json()["event_id"], retry.json()["event_id"]);
    assert_eq!(stored_events(&nats).await.unwrap().len(), 1);

    // The same body from another tenant is another event.
    let globex = http::post_json(
        &gateway.hook_url("globex", "globex-secret-1"),
        fixture("inbox"),
    )
    .await
    .unwrap();
    assert_eq!(globex.json()["duplicate"], false);
    let stored = stored_events(&nats).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        stored[1].0.subject.as_str(),
        "chat2desk.events.globex.inbox"
    );

    let metrics = http::get(&format!("{}/metrics", gateway.base_url()))
        .await
        .unwrap()
        .text();
    assert!(
        metrics.contains(r#"c2d_gateway_dedupe_hits_total{tenant="acme",hook_type="inbox"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"c2d_gateway_events_total{tenant="acme",hook_type="inbox"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn bodies_that_are_not_json_go_to_the_dead_letter_subject_and_get_2xx() {
    let (nats, gateway) = start().await;
    for body in [
        "message_id=1&hook_type=inbox",
        "{\"hook_type\": \"inbox\"",
        "[1,2,3]",
    ] {
        let answer = http::post_json(&gateway.acme_url(), body).await.unwrap();
        assert_eq!(answer.status, 200, "{body}");
        assert_eq!(answer.json()["status"], "dead_letter");
    }
    // A retry of the same broken body is recognised too.
    let retry = http::post_json(&gateway.acme_url(), "[1,2,3]")
        .await
        .unwrap();
    assert_eq!(retry.status, 200);

    assert!(
        stored_events(&nats).await.unwrap().is_empty(),
        "consumers of chat2desk.events.> never see them"
    );
    let letters = stream_messages(&nats.jetstream().await, DLQ_STREAM)
        .await
        .unwrap();
    assert_eq!(letters.len(), 3);
    let first = DeadLetter::decode(letters[0].payload.clone()).unwrap();
    assert_eq!(letters[0].subject.as_str(), "chat2desk.dlq.acme");
    assert_eq!(first.tenant, "acme");
    assert_eq!(first.raw, "message_id=1&hook_type=inbox".as_bytes());
    assert_eq!(first.content_type, "application/json");
    assert!(first.reason.contains("not JSON"), "{}", first.reason);
    let last = DeadLetter::decode(letters[2].payload.clone()).unwrap();
    assert!(last.reason.contains("array"), "{}", last.reason);

    let metrics = http::get(&format!("{}/metrics", gateway.base_url()))
        .await
        .unwrap()
        .text();
    assert!(
        metrics
            .contains(r#"c2d_gateway_dead_letters_total{tenant="acme",hook_type="undecodable"} 3"#),
        "{metrics}"
    );
    println!(
        "injected: 3 malformed bodies (not JSON objects); answered 2xx and kept on chat2desk.dlq.acme with the raw bytes and the reason: 3 dead letters, 0 events, 0 lost"
    );
}

#[tokio::test]
async fn bad_requests_get_clear_answers_and_store_nothing() {
    let nats = NatsServer::start().await.unwrap();
    let gateway = GatewayProcess::start(
        GATEWAY,
        &nats,
        &[("GATEWAY_MAX_BODY_BYTES", "65536".into())],
    )
    .await
    .unwrap();
    let base = gateway.base_url();
    let body = fixture("inbox");

    let missing = http::post_json(&format!("{base}/hooks/chat2desk/acme"), body.clone())
        .await
        .unwrap();
    assert_eq!(missing.status, 401);
    assert!(
        missing.json()["error"]
            .as_str()
            .unwrap()
            .contains("?token="),
        "{}",
        missing.text()
    );

    let wrong = http::post_json(&gateway.hook_url("acme", "globex-secret-1"), body.clone())
        .await
        .unwrap();
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.headers["www-authenticate"], "Bearer");

    let unknown = http::post_json(&gateway.hook_url("initech", ACME_TOKEN), body.clone())
        .await
        .unwrap();
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.json()["error"]
            .as_str()
            .unwrap()
            .contains("GATEWAY_TOKENS")
    );

    let too_large = http::post_json(&gateway.acme_url(), vec![b' '; 65_537])
        .await
        .unwrap();
    assert_eq!(too_large.status, 413);
    assert!(
        too_large.json()["error"]
            .as_str()
            .unwrap()
            .contains("GATEWAY_MAX_BODY_BYTES")
    );

    let form = http::post(
        &gateway.acme_url(),
        &[("content-type", "application/x-www-form-urlencoded")],
        "a=1",
    )
    .await
    .unwrap();
    assert_eq!(form.status, 415);

    let not_found = http::post_json(&format!("{base}/hooks/other/acme"), body.clone())
        .await
        .unwrap();
    assert_eq!(not_found.status, 404);

    assert!(stored_events(&nats).await.unwrap().is_empty());
    assert!(
        stream_messages(&nats.jetstream().await, DLQ_STREAM)
            .await
            .unwrap()
            .is_empty()
    );

    // The bearer header is as good as the query token, and a body at the limit is accepted.
    let bearer = http::post(
        &format!("{base}/hooks/chat2desk/acme"),
        &[
            ("content-type", "application/json"),
            ("authorization", &format!("Bearer {ACME_TOKEN}")),
        ],
        body,
    )
    .await
    .unwrap();
    assert_eq!(bearer.status, 200, "{}", bearer.text());
    let mut at_limit = json!({"hook_type": "inbox", "text": ""})
        .to_string()
        .into_bytes();
    at_limit.resize(65_536, b' ');
    assert_eq!(
        http::post_json(&gateway.acme_url(), at_limit)
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(stored_events(&nats).await.unwrap().len(), 2);

    let metrics = http::get(&format!("{base}/metrics")).await.unwrap().text();
    for line in [
        r#"c2d_gateway_requests_total{outcome="unauthorized"} 2"#,
        r#"c2d_gateway_requests_total{outcome="unknown_tenant"} 1"#,
        r#"c2d_gateway_requests_total{outcome="too_large"} 1"#,
        r#"c2d_gateway_requests_total{outcome="unsupported_media_type"} 1"#,
        r#"c2d_gateway_requests_total{outcome="stored"} 2"#,
        "c2d_gateway_nats_connected 1",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    println!(
        "injected: no token, a wrong token, an unknown tenant, a body of 65537 bytes (limit 65536), a form body, a wrong path; answered 401, 401, 404, 413, 415, 404; stored 0 of them (and 2 good deliveries stored)"
    );
}

#[tokio::test]
async fn health_and_readiness_follow_nats() {
    let (nats, gateway) = start().await;
    let base = gateway.base_url();
    assert_eq!(
        http::get(&format!("{base}/healthz")).await.unwrap().status,
        200
    );
    assert_eq!(
        http::get(&format!("{base}/readyz")).await.unwrap().status,
        200
    );
    let stream = nats
        .jetstream()
        .await
        .get_stream(STREAM)
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    assert_eq!(
        stream.config.storage,
        async_nats::jetstream::stream::StorageType::File
    );
    assert!(stream.config.duplicate_window >= std::time::Duration::from_secs(3 * 3600));
    assert_eq!(stream.config.subjects, ["chat2desk.events.>"]);
    drop(nats);
    let mut ready = 200;
    for _ in 0..100 {
        ready = http::get(&format!("{base}/readyz")).await.unwrap().status;
        if ready == 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(ready, 503, "readyz reports the lost NATS connection");
    assert_eq!(
        http::get(&format!("{base}/healthz")).await.unwrap().status,
        200,
        "the process itself is fine"
    );
}

#[tokio::test]
async fn with_partitions_every_event_is_filed_again_in_its_tenants_partition() {
    use c2d_proto::partitions::{PARTITIONED_STREAM, partition_of};
    const PARTITIONS: u32 = 8;
    let nats = NatsServer::start().await.expect("nats-server starts");
    let tenants: Vec<String> = (0..50).map(|n| format!("tenant-{n}")).collect();
    let tokens: Vec<String> = tenants.iter().map(|t| format!("{t}={t}-secret")).collect();
    let gateway = GatewayProcess::start(
        GATEWAY,
        &nats,
        &[
            ("GATEWAY_TOKENS", tokens.join(",")),
            ("GATEWAY_PARTITIONS", PARTITIONS.to_string()),
        ],
    )
    .await
    .expect("gateway starts");
    for (n, tenant) in tenants.iter().enumerate() {
        let url = gateway.hook_url(tenant, &format!("{tenant}-secret"));
        let answer = http::post_json(&url, c2d_testkit::inbox(n as u64))
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    let jetstream = nats.jetstream().await;
    c2d_testkit::eventually(
        "every event filed in the partitioned stream",
        std::time::Duration::from_secs(30),
        || {
            let jetstream = jetstream.clone();
            async move {
                let filed = stream_messages(&jetstream, PARTITIONED_STREAM)
                    .await
                    .map_err(|e| e.to_string())?
                    .len();
                (filed == 50).then_some(()).ok_or(format!("{filed} filed"))
            }
        },
    )
    .await;
    let log = stream_messages(&jetstream, STREAM).await.unwrap();
    let partitioned = stream_messages(&jetstream, PARTITIONED_STREAM)
        .await
        .unwrap();
    let mut partitions_used = std::collections::BTreeSet::new();
    for (original, filed) in log.iter().zip(&partitioned) {
        let tokens: Vec<&str> = filed.subject.split('.').collect();
        let ["chat2desk", "partitioned", partition, tenant, "inbox"] = tokens[..] else {
            panic!("unexpected subject {}", filed.subject);
        };
        assert_eq!(
            partition,
            partition_of(tenant, PARTITIONS).to_string(),
            "nats-server and partition_of agree for {tenant}"
        );
        assert_eq!(
            original.subject.as_str(),
            format!("chat2desk.events.{tenant}.inbox"),
            "in the log's order"
        );
        assert_eq!(original.payload, filed.payload);
        partitions_used.insert(partition.to_owned());
    }
    assert!(
        partitions_used.len() > 4,
        "50 tenants spread: {partitions_used:?}"
    );
}
