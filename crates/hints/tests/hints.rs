//! Hints through the whole path, as Chat2Desk gets them: a real nats-server, the gateway as its
//! own process, and c2d-hints following the event log. A scripted history of conversations is
//! POSTed as webhooks; then Chat2Desk's ai_hints_requested for a new, similarly worded question
//! is POSTed and the gateway's answer (Chat2Desk's response format) must carry the operators'
//! usual answer first. The operator's choice (the second form of ai_hints_requested, and the
//! Feedback RPC) changes the ranking, on every replica, for a hint the language model wrote too;
//! a hints service that is absent or slow costs the hints,
//! never the gateway's deadline nor the event.

use std::time::{Duration, Instant};

use c2d_hints::{Config, Hints};
use c2d_proto::hints::HintsServiceClient;
use c2d_proto::hints::v1::{FeedbackRequest, StatsRequest, StatsResponse};
use c2d_testkit::language_model::{ModelReply, chat_completions};
use c2d_testkit::{
    GatewayProcess, InProcess, NatsServer, free_port, stored_events, workspace_binary,
};
use serde_json::{Value as Json, json};

const TENANT: &str = "acme";

const DELIVERY: &str =
    "Your order ships within 3 business days; track it at https://shop.example/track";
const ESCALATE: &str = "Sorry for the delay! I've asked our courier team to check your delivery.";
const RETURNS: &str = "Returns are free within 30 days: reply RETURN and we send you a label.";
const PAYMENT: &str = "We accept Visa, Mastercard and Pix.";
const PEDIDO: &str =
    "Seu pedido chega em até 3 dias úteis. Acompanhe em https://loja.example/rastreio";
const ZAKAZ: &str = "Ваш заказ доставят в течение 3 рабочих дней.";

/// (client's question, operator's answer): what operators of this company usually say.
fn history() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Hi! Where is my order? It has not arrived yet", DELIVERY),
        ("my order did not arrive, where is it", DELIVERY),
        ("When will my package arrive?", DELIVERY),
        (
            "order not delivered yet, any news on my delivery?",
            DELIVERY,
        ),
        (
            "I ordered last week and the order still has not arrived",
            ESCALATE,
        ),
        ("How do I return a product?", RETURNS),
        ("I want to return these shoes, they are too small", RETURNS),
        ("Can I pay by card?", PAYMENT),
        ("do you take credit card payments", PAYMENT),
        ("Olá, onde está o meu pedido? Ainda não chegou", PEDIDO),
        ("meu pedido não chegou", PEDIDO),
        ("Здравствуйте, где мой заказ?", ZAKAZ),
        ("Когда доставят заказ?", ZAKAZ),
        (
            "please call me back",
            "Sure Maria, we will call you at +55 11 91234-5678 or write to maria.souza@example.com",
        ),
    ]
}

struct Stack {
    nats: NatsServer,
    gateway: GatewayProcess,
    hints_url: String,
    hints: InProcess<c2d_hints::HintsError>,
}

impl Stack {
    /// nats-server, the gateway pointed at a hints service on a free port, and c2d-hints there
    /// configured by `hints_env`.
    async fn start(hints_env: &[(&str, &str)], gateway_env: &[(&str, String)]) -> Stack {
        let nats = NatsServer::start().await.expect("nats-server starts");
        let port = free_port();
        let hints_url = format!("http://127.0.0.1:{port}");
        let mut env = vec![("GATEWAY_HINTS_URL", hints_url.clone())];
        env.extend(gateway_env.iter().cloned());
        let gateway = GatewayProcess::start(
            workspace_binary("c2d-gateway").unwrap().to_str().unwrap(),
            &nats,
            &env,
        )
        .await
        .expect("gateway starts");
        let hints = start_hints(&nats, port, hints_env).await;
        Stack {
            nats,
            gateway,
            hints_url,
            hints,
        }
    }

    async fn post(&self, body: Json) -> (u16, Json) {
        let answer = c2d_testkit::http::post_json(&self.gateway.acme_url(), body.to_string())
            .await
            .expect("the gateway answers");
        (answer.status, answer.json())
    }

    /// POSTs the company's [`history`], each question an inbox of its own client and each
    /// answer the operator's outbox after it.
    async fn post_history(&self) {
        let mut message_id = 1_000;
        for (client, (question, answer)) in (1..).zip(history()) {
            message_id += 2;
            assert_eq!(self.post(inbox(message_id, client, question)).await.0, 200);
            assert_eq!(
                self.post(outbox(message_id + 1, client, answer)).await.0,
                200
            );
        }
    }

    async fn client(&self) -> HintsServiceClient<tonic::transport::Channel> {
        HintsServiceClient::connect(self.hints_url.clone())
            .await
            .expect("c2d-hints accepts connections")
    }

    /// Waits until c2d-hints has applied every event the stream holds.
    async fn caught_up(&self) {
        caught_up(&self.nats, &self.hints_url).await;
    }

    async fn stop(self) {
        self.hints.stop().await;
    }
}

/// Waits until the c2d-hints at `hints_url` has applied every event the stream holds.
async fn caught_up(nats: &NatsServer, hints_url: &str) {
    let client = HintsServiceClient::connect(hints_url.to_owned())
        .await
        .expect("c2d-hints accepts connections");
    let jetstream = nats.jetstream().await;
    c2d_testkit::eventually(
        "c2d-hints to catch up with the log",
        Duration::from_secs(30),
        || {
            let (mut client, jetstream) = (client.clone(), jetstream.clone());
            async move {
                let last = jetstream
                    .get_stream("CHAT2DESK")
                    .await
                    .map_err(|e| e.to_string())?
                    .get_info()
                    .await
                    .map_err(|e| e.to_string())?
                    .state
                    .last_sequence;
                let stats = tenant_stats(&mut client).await.map_err(|e| e.to_string())?;
                if stats.last_sequence >= last {
                    Ok(())
                } else {
                    Err(format!("at sequence {} of {last}", stats.last_sequence))
                }
            }
        },
    )
    .await;
}

/// What c2d-hints knows of the test's tenant.
async fn tenant_stats(
    client: &mut HintsServiceClient<tonic::transport::Channel>,
) -> Result<StatsResponse, tonic::Status> {
    let request = StatsRequest {
        tenant: TENANT.into(),
    };
    Ok(client.stats(request).await?.into_inner())
}

async fn start_hints(
    nats: &NatsServer,
    port: u16,
    env: &[(&str, &str)],
) -> InProcess<c2d_hints::HintsError> {
    let nats_url = nats.url();
    let addr = format!("127.0.0.1:{port}");
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let config = Config::from_lookup(|name| match name {
        "NATS_URL" => Some(nats_url.clone()),
        "HINTS_GRPC_ADDR" => Some(addr.clone()),
        "HINTS_METRICS_ADDR" => Some("127.0.0.1:0".into()),
        other => env.iter().find(|(k, _)| k == other).map(|(_, v)| v.clone()),
    })
    .expect("test configuration is valid");
    let listener = tokio::net::TcpListener::bind(config.grpc_addr)
        .await
        .expect("the hints port is free");
    InProcess::spawn(|shutdown| Hints::new(config).run(listener, shutdown))
}

fn inbox(message_id: i64, client: i64, text: &str) -> Json {
    json!({
        "message_id": message_id, "type": "from_client", "text": text, "transport": "whatsapp",
        "client_id": client, "operator_id": null, "dialog_id": client + 100_000, "channel_id": 17,
        "client": { "id": client, "phone": format!("+55119{client:08}"), "name": "Maria Souza" },
        "hook_type": "inbox", "request_id": client + 200_000, "is_new_request": 1,
        "event_time": "2026-11-20T10:00:00Z"
    })
}

fn outbox(message_id: i64, client: i64, text: &str) -> Json {
    json!({
        "message_id": message_id, "type": "to_client", "text": text, "transport": "whatsapp",
        "client_id": client, "operator_id": 41, "dialog_id": client + 100_000, "channel_id": 17,
        "client": { "id": client, "phone": format!("+55119{client:08}"), "name": "Maria Souza" },
        "hook_type": "outbox", "request_id": client + 200_000,
        "event_time": "2026-11-20T10:01:00Z"
    })
}

/// Chat2Desk's hints request (first form of ai_hints_requested) for `message_id`.
fn hints_request(message_id: i64, client: i64) -> Json {
    json!({
        "client_id": client, "operator_id": 41, "dialog_id": client + 100_000,
        "request_id": client + 200_000, "channel_id": 17, "message_id": message_id,
        "hook_type": "ai_hints_requested", "event_time": "2026-11-21T09:00:00Z"
    })
}

/// Chat2Desk's report of an operator's choice (second form of ai_hints_requested).
fn hint_chosen(message_id: i64, client: i64, hint_id: i64) -> Json {
    json!({
        "client_id": client, "message_id": message_id, "hint_id": hint_id,
        "hook_type": "ai_hints_requested", "event_time": "2026-11-21T09:01:00Z"
    })
}

/// The texts of the hints in a gateway answer, checked to be in Chat2Desk's format.
fn hint_texts(answer: &Json, message_id: i64) -> Vec<String> {
    assert_eq!(answer["message_id"], json!(message_id), "{answer}");
    let hints = answer["hints"].as_array().expect("a hints list");
    for hint in hints {
        let mut keys: Vec<&str> = hint
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["id", "link", "relevance", "text", "url"], "{hint}");
        assert!(hint["id"].as_i64().unwrap() > 0);
        let relevance = hint["relevance"].as_u64().unwrap();
        assert!((1..=100).contains(&relevance), "{hint}");
    }
    hints
        .iter()
        .map(|h| h["text"].as_str().unwrap().to_owned())
        .collect()
}

/// Posts a new client message and the hints request for it; returns the gateway's answer.
async fn ask(stack: &Stack, message_id: i64, client: i64, text: &str) -> Json {
    let (status, _) = stack.post(inbox(message_id, client, text)).await;
    assert_eq!(status, 200);
    let (status, answer) = stack.post(hints_request(message_id, client)).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

#[tokio::test]
async fn operators_usual_answer_comes_first_and_choices_change_the_ranking() {
    let stack = Stack::start(&[], &[]).await;
    stack.post_history().await;
    stack.caught_up().await;
    let mut client = stack.client().await;
    let stats = tenant_stats(&mut client).await.unwrap();
    println!("indexed: {stats:?}");
    assert_eq!(stats.answers, 7);
    assert!(stats.pairs >= 12, "{stats:?}");

    // A new client asks about a late order in other words.
    let answer = ask(
        &stack,
        5_001,
        501,
        "Hello, my order still hasn't arrived. Where is it??",
    )
    .await;
    let texts = hint_texts(&answer, 5_001);
    println!("hints for the late order: {texts:#?}");
    assert_eq!(texts[0], DELIVERY);
    assert!(
        texts.contains(&ESCALATE.to_owned()),
        "the other delivery answer is offered too"
    );
    assert!(
        !texts.contains(&PAYMENT.to_owned()),
        "unrelated answers are not offered"
    );

    println!("the gateway's answer: {answer}");

    // c2dctl asks the same service (which runs on this test's runtime: not blocked meanwhile).
    let output = tokio::process::Command::new(workspace_binary("c2dctl").unwrap())
        .args([
            "--json",
            "hints",
            "suggest",
            "--hints-url",
            &stack.hints_url,
        ])
        .args(["--tenant", TENANT, "my order did not arrive"])
        .output()
        .await
        .expect("c2dctl runs");
    assert!(output.status.success(), "{output:?}");
    let rows: Json = serde_json::from_slice(&output.stdout).expect("c2dctl --json prints JSON");
    assert_eq!(rows[0]["text"], json!(DELIVERY), "{rows}");

    // In Portuguese and Russian, answered in the client's language.
    let answer = ask(&stack, 5_003, 502, "oi, o pedido ainda nao chegou").await;
    assert_eq!(hint_texts(&answer, 5_003)[0], PEDIDO);
    let answer = ask(&stack, 5_005, 503, "где заказ? когда доставят?").await;
    assert_eq!(hint_texts(&answer, 5_005)[0], ZAKAZ);

    // Another client's personal data is never in a hint.
    let answer = ask(&stack, 5_007, 504, "could you call me back please?").await;
    let texts = hint_texts(&answer, 5_007);
    assert_eq!(
        texts[0],
        "Sure [name], we will call you at [phone] or write to [email]"
    );

    // The operator chose the escalation answer for the late order (Chat2Desk's feedback form,
    // through the gateway): questions like it now get that answer first.
    let escalate_id = answer_id(&stack, 5_001, 501, ESCALATE).await;
    let (status, _) = stack.post(hint_chosen(5_001, 501, escalate_id)).await;
    assert_eq!(status, 200);
    stack.caught_up().await;
    let answer = ask(
        &stack,
        5_009,
        505,
        "my order hasn't arrived yet, where is it?",
    )
    .await;
    let texts = hint_texts(&answer, 5_009);
    println!("after the choice: {texts:#?}");
    assert_eq!(texts[0], ESCALATE);

    // The Feedback RPC writes the same event to the log and answers once it is learned.
    let delivery_id = answer_id(&stack, 5_009, 505, DELIVERY).await;
    for _ in 0..2 {
        let learned = client
            .feedback(FeedbackRequest {
                tenant: TENANT.into(),
                message_id: 5_009,
                hint_id: delivery_id,
                client_id: Some(505),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(learned.learned, "{learned:?}");
    }
    let unknown = client
        .feedback(FeedbackRequest {
            tenant: TENANT.into(),
            message_id: 5_009,
            hint_id: 7,
            client_id: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!unknown.learned, "an unknown hint teaches nothing");
    let stats = tenant_stats(&mut client).await.unwrap();
    assert_eq!(
        stats.feedback, 2,
        "the same choice sent twice is one event: {stats:?}"
    );

    // Every hints request and choice is in the event log too.
    let events = stored_events(&stack.nats).await.unwrap();
    let hints_events = events
        .iter()
        .filter(|(_, e)| e.hook_type == "ai_hints_requested")
        .count();
    // Five requests, the choice through the gateway, and one for the two identical RPCs.
    assert_eq!(hints_events, 5 + 1 + 1);

    // Bad requests say what to fix.
    let error = client
        .suggest(c2d_proto::hints::v1::SuggestRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(error.message().contains("tenant"), "{}", error.message());
    stack.stop().await;
}

/// A hint the language model wrote is known at first only to the replica that suggested it;
/// the operator's choice of it reaches the log before the operator sends it as a message. So
/// another replica, and any replica replaying the log after a restart, sees the choice before
/// the answer. The choice must wait for the answer rather than be dropped, or replicas rank
/// differently and a restart forgets what operators chose.
#[tokio::test]
async fn a_chosen_hint_the_model_wrote_is_learned_by_every_replica_and_after_a_restart() {
    const WRITTEN: &str = "Your parcel is at the depot and leaves today.";
    let model = chat_completions(ModelReply::Write(WRITTEN), Duration::ZERO).await;
    let stack = Stack::start(
        &[
            ("HINTS_PROVIDER_URL", model.as_str()),
            ("HINTS_PROVIDER_DEADLINE_MS", "5000"),
        ],
        &[],
    )
    .await;
    stack.post_history().await;
    let question = "my order has not arrived, is my parcel still at the depot?";
    let answer = ask(&stack, 6_001, 601, question).await;
    assert_eq!(hint_texts(&answer, 6_001)[0], WRITTEN, "{answer}");
    let written_id = answer["hints"][0]["id"].as_i64().unwrap();

    // The operator chooses the written hint, then sends it.
    let (status, _) = stack.post(hint_chosen(6_001, 601, written_id)).await;
    assert_eq!(status, 200);
    assert_eq!(stack.post(outbox(6_002, 601, WRITTEN)).await.0, 200);
    stack.caught_up().await;
    let suggested_here = tenant_stats(&mut stack.client().await).await.unwrap();
    assert_eq!(suggested_here.feedback, 1, "{suggested_here:?}");

    // A second replica, without the model, reads the same log from its beginning.
    let port = free_port();
    let replica = start_hints(&stack.nats, port, &[]).await;
    let replica_url = format!("http://127.0.0.1:{port}");
    caught_up(&stack.nats, &replica_url).await;
    let mut client = HintsServiceClient::connect(replica_url).await.unwrap();
    let elsewhere = tenant_stats(&mut client).await.unwrap();
    println!(
        "the replica that suggested the hint: {suggested_here:?}\nthe other one: {elsewhere:?}"
    );
    assert_eq!(
        (elsewhere.feedback, elsewhere.pairs, elsewhere.answers),
        (
            suggested_here.feedback,
            suggested_here.pairs,
            suggested_here.answers
        ),
        "both replicas learned the same from the log"
    );
    let answer = client
        .suggest(c2d_proto::hints::v1::SuggestRequest {
            tenant: TENANT.into(),
            text: Some("is my parcel still at the depot? my order has not arrived".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.ranked_by, "local");
    assert_eq!(
        (answer.hints[0].text.as_str(), answer.hints[0].id),
        (WRITTEN, written_id),
        "{answer:?}"
    );
    replica.stop().await;
    stack.stop().await;
}

/// The id of the hint with `text` among those suggested for `message_id`.
async fn answer_id(stack: &Stack, message_id: i64, client: i64, text: &str) -> i64 {
    let answer = stack
        .client()
        .await
        .suggest(c2d_proto::hints::v1::SuggestRequest {
            tenant: TENANT.into(),
            message_id: Some(message_id),
            client_id: Some(client),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    answer
        .hints
        .iter()
        .find(|hint| hint.text == text)
        .unwrap_or_else(|| panic!("{text:?} is among the hints: {answer:?}"))
        .id
}

#[tokio::test]
async fn an_absent_or_slow_hints_service_costs_the_hints_not_the_deadline_nor_the_event() {
    const DEADLINE_MS: u64 = 300;
    // A hints service that waits 30 s for a message that never comes: slow, for real.
    let stack = Stack::start(
        &[("HINTS_MESSAGE_WAIT_MS", "30000")],
        &[("GATEWAY_HINTS_DEADLINE_MS", DEADLINE_MS.to_string())],
    )
    .await;
    // And a second gateway whose hints service is not there at all.
    let absent = GatewayProcess::start(
        workspace_binary("c2d-gateway").unwrap().to_str().unwrap(),
        &stack.nats,
        &[
            (
                "GATEWAY_HINTS_URL",
                format!("http://127.0.0.1:{}", free_port()),
            ),
            ("GATEWAY_HINTS_DEADLINE_MS", DEADLINE_MS.to_string()),
        ],
    )
    .await
    .unwrap();

    for (name, url, message_id) in [
        ("slow", stack.gateway.acme_url(), 9_001),
        ("absent", absent.acme_url(), 9_002),
    ] {
        let started = Instant::now();
        let answer = c2d_testkit::http::post_json(&url, hints_request(message_id, 77).to_string())
            .await
            .unwrap();
        let elapsed = started.elapsed();
        println!(
            "{name} hints service: answered {} in {elapsed:?} (deadline {DEADLINE_MS} ms): {}",
            answer.status,
            answer.text()
        );
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.json(),
            json!({ "message_id": message_id, "hints": [] })
        );
        // Far below the 30 s the slow service would take: the deadline cut it short.
        assert!(elapsed < Duration::from_secs(5), "{name}: {elapsed:?}");
    }
    let metrics = c2d_testkit::http::get(&format!("{}/metrics", stack.gateway.base_url()))
        .await
        .unwrap()
        .text();
    assert!(
        metrics.contains(r#"c2d_gateway_hints_requests_total{outcome="deadline"} 1"#),
        "{metrics}"
    );
    let metrics = c2d_testkit::http::get(&format!("{}/metrics", absent.base_url()))
        .await
        .unwrap()
        .text();
    assert!(
        metrics.contains(r#"c2d_gateway_hints_requests_total{outcome="failed"} 1"#),
        "{metrics}"
    );

    // Both requests are stored events all the same.
    let stored: Vec<Option<i64>> = stored_events(&stack.nats)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|(_, event)| match event.payload {
            Some(c2d_proto::events::Payload::AiHintsRequested(request)) => Some(request.message_id),
            _ => None,
        })
        .collect();
    println!("stored hints requests: {stored:?}");
    assert_eq!(stored, [Some(9_001), Some(9_002)]);
    stack.stop().await;
}
