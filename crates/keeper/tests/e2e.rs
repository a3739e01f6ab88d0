//! Issue 20's promise end to end, every part its own process: the simulated Chat2Desk sends
//! realistic traffic at a time scale where 5 hours pass in 5 seconds; the gateway is stopped
//! for longer than that, so Chat2Desk gives up on what it could not deliver and disables the
//! webhook; the gateway comes back, and c2d-keeper re-enables the webhook and backfills the gap
//! from the messages API, while the API answers a 429, a 503, a malformed page and a 401 on the
//! way. Then every message the simulator made is in the stream exactly once (by message id),
//! analytics' inbound and outbound counts equal the simulator's, and an alert about the
//! disabled webhook fired and resolved.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use c2d_chat2desk::{Chat2DeskApi, MessageQuery};
use c2d_proto::analytics::AnalyticsServiceClient;
use c2d_proto::analytics::v1::{SummaryRequest, TimeRange};
use c2d_proto::events::{Origin, Payload};
use c2d_testkit::gateway::TENANTS;
use c2d_testkit::{
    GatewayProcess, NatsServer, ServiceProcess, eventually, free_port, stored_events,
    workspace_binary,
};
use serde_json::{Value as Json, json};

const EVENTS: u64 = 2_400;
/// 10 s, 5 min, 2 h become 3 ms, 83 ms, 2 s; a webhook is disabled after 5 s of failures.
const TIME_SCALE: &str = "3600";
/// The gateway's outage: longer than the 5 (scaled) hours after which Chat2Desk disables.
const OUTAGE: Duration = Duration::from_secs(8);

fn bin(name: &str) -> String {
    workspace_binary(name).unwrap().to_str().unwrap().to_owned()
}

async fn get_json(url: &str) -> Json {
    c2d_testkit::http::get(url)
        .await
        .ok()
        .and_then(|r| serde_json::from_slice(&r.body).ok())
        .unwrap_or(Json::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_chat2desk_disabled_the_webhook_every_message_is_stored_exactly_once() {
    let nats = NatsServer::start_with_users()
        .await
        .expect("nats-server starts");
    let dir = tempfile::tempdir().unwrap();
    let gateway_bin = bin("c2d-gateway");
    let mut gateway = GatewayProcess::start(&gateway_bin, &nats, &[])
        .await
        .unwrap();
    let gateway_port = gateway.port;

    // Alerting tells a local receiver; its rule turns the keeper's event into an alert.
    let receiver = c2d_testkit::http::json_receiver("/alerts").await.unwrap();
    let received = Arc::clone(&receiver.received);
    let receiver = receiver.url;
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            "[[receiver]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{receiver}\"\n\n\
             [[rule]]\nname = \"webhook-disabled\"\nkind = \"event\"\nhook_type = \"webhook_repaired\"\n\
             severity = \"critical\"\nreceiver = \"ops\"\nresolve_after = \"3s\"\n"
        ),
    )
    .unwrap();
    let (analytics_port, alerting_port) = (free_port(), free_port());
    let analytics_url = format!("http://127.0.0.1:{analytics_port}");
    let mut analytics = ServiceProcess::spawn(
        &bin("c2d-analytics"),
        &[
            nats.env_for("analytics").as_slice(),
            &[
                ("ANALYTICS_GRPC_ADDR", format!("127.0.0.1:{analytics_port}")),
                ("ANALYTICS_METRICS_ADDR", "127.0.0.1:0".into()),
                (
                    "ANALYTICS_DATA_DIR",
                    dir.path().join("analytics").display().to_string(),
                ),
            ],
        ]
        .concat(),
    )
    .unwrap();
    let mut alerting = ServiceProcess::spawn(
        &bin("c2d-alerting"),
        &[
            nats.env_for("alerting").as_slice(),
            &[
                ("ALERTING_GRPC_ADDR", format!("127.0.0.1:{alerting_port}")),
                ("ALERTING_METRICS_ADDR", "127.0.0.1:0".into()),
                ("ALERTING_RULES_FILE", rules.display().to_string()),
                ("ALERTING_TICK_MS", "200".into()),
            ],
        ]
        .concat(),
    )
    .unwrap();
    c2d_testkit::grpc::wait_serving(
        &analytics_url,
        c2d_proto::analytics::SERVICE_NAME,
        &mut analytics,
    )
    .await;
    c2d_testkit::grpc::wait_serving(
        &format!("http://127.0.0.1:{alerting_port}"),
        c2d_proto::alerting::SERVICE_NAME,
        &mut alerting,
    )
    .await;

    // Chat2Desk with one account, its webhook registered as a user does.
    let api_port = free_port();
    let api = format!("http://127.0.0.1:{api_port}");
    let c2dctl = bin("c2dctl");
    let mut simulator = ServiceProcess::spawn_with_args(
        &c2dctl,
        &[
            "simulate",
            "--listen",
            &format!("127.0.0.1:{api_port}"),
            "--accounts",
            "acme=acme-api-token",
            "--rate",
            "120",
            "--events",
            &EVENTS.to_string(),
            "--seed",
            "20",
            "--time-scale",
            TIME_SCALE,
            "--wait-for-webhooks",
            "--keep-serving",
        ],
        &[],
    )
    .unwrap();
    simulator
        .wait_for_ok(&format!("{api}/simulator/stats"), Duration::from_secs(30))
        .await
        .unwrap();
    let secret = TENANTS
        .split(',')
        .find_map(|pair| pair.strip_prefix("acme="))
        .unwrap();
    let registered = Command::new(&c2dctl)
        .args([
            "webhooks",
            "register",
            "--api-url",
            &format!("{api}/v1"),
            "--api-token",
            "acme-api-token",
            "--gateway-url",
            &gateway.base_url(),
            "--tenant",
            "acme",
            "--token",
            secret,
        ])
        .output()
        .unwrap();
    assert!(registered.status.success(), "{registered:?}");

    // The keeper, checking twice a second, with Chat2Desk's redelivery horizon scaled too
    // (2 h 10 s of retries are 2 s here).
    let keeper_port = free_port();
    let mut keeper = ServiceProcess::spawn(
        &bin("c2d-keeper"),
        &[
            nats.env_for("keeper").as_slice(),
            &[
                ("KEEPER_ADDR", format!("127.0.0.1:{keeper_port}")),
                ("KEEPER_API_TOKENS", "acme=acme-api-token".into()),
                ("GATEWAY_TOKENS", TENANTS.into()),
                ("KEEPER_GATEWAY_URL", gateway.base_url()),
                ("C2D_API_URL", format!("{api}/v1")),
                ("KEEPER_CHECK_INTERVAL", "500ms".into()),
                ("KEEPER_SILENCE", "3s".into()),
                ("KEEPER_REDELIVERY_HORIZON", "4s".into()),
                ("KEEPER_BACKFILL_MARGIN", "1s".into()),
            ],
        ]
        .concat(),
    )
    .unwrap();
    keeper
        .wait_for_ok(
            &format!("http://127.0.0.1:{keeper_port}/healthz"),
            Duration::from_secs(30),
        )
        .await
        .unwrap();

    // A quarter in, the gateway goes down for longer than Chat2Desk's 5 (scaled) hours.
    let deadline = Instant::now() + Duration::from_secs(60);
    while get_json(&format!("{api}/simulator/stats")).await["generated"]
        .as_u64()
        .unwrap_or(0)
        < EVENTS / 4
    {
        assert!(Instant::now() < deadline, "the traffic does not flow");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gateway.process.kill();
    let stopped = Instant::now();
    // The keeper re-enables the webhook as soon as it sees it disabled, gateway up or not
    // (deliveries of new events then follow Chat2Desk's retry schedule again).
    let (mut disabled_at, mut reenabled_at) = (None, None);
    while stopped.elapsed() < OUTAGE {
        let stats = get_json(&format!("{api}/simulator/stats")).await;
        match stats["webhooks"][0]["disabled"].as_bool() {
            Some(true) => disabled_at = disabled_at.or(Some(Instant::now())),
            Some(false) if disabled_at.is_some() => {
                reenabled_at = reenabled_at.or(Some(Instant::now()))
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let disabled_at = disabled_at.expect("Chat2Desk (simulated) disabled the webhook");
    // The API misbehaves the ways the real one does, on whatever the keeper calls next.
    let faults = json!({"faults": [{"status": 429, "retry_after": 1}, {"status": 503},
                                   {"malformed": true}, {"status": 401}, {"status": 500}]});
    let answer =
        c2d_testkit::http::post_json(&format!("{api}/simulator/faults"), faults.to_string())
            .await
            .unwrap();
    assert_eq!(answer.status, 200);
    gateway = GatewayProcess::start_on(&gateway_bin, gateway_port, &nats, &[])
        .await
        .unwrap();

    // The keeper re-enables the webhook within a bounded time.
    eventually(
        "the keeper re-enables the webhook",
        Duration::from_secs(30),
        || {
            let api = api.clone();
            async move {
                let stats = get_json(&format!("{api}/simulator/stats")).await;
                if stats["webhooks"][0]["disabled"] == json!(false) {
                    Ok(())
                } else {
                    Err(format!("{stats}"))
                }
            }
        },
    )
    .await;
    let reenabled_after = reenabled_at.unwrap_or_else(Instant::now) - disabled_at;

    // The traffic ends; its deliveries too.
    eventually("the traffic ends", Duration::from_secs(120), || {
        let api = api.clone();
        async move {
            let stats = get_json(&format!("{api}/simulator/stats")).await;
            if stats["generated"] == json!(EVENTS) && stats["in_flight"] == json!(0) {
                Ok(())
            } else {
                Err(format!("{stats}"))
            }
        }
    })
    .await;
    let stats = get_json(&format!("{api}/simulator/stats")).await;

    // The truth: every message the simulated account has, as its API lists them.
    let account = Chat2DeskApi::new(&format!("{api}/v1"), "acme-api-token").unwrap();
    let listed = account
        .all_messages(&MessageQuery::default())
        .await
        .unwrap();
    let truth: HashMap<i64, String> = listed
        .iter()
        .map(|m| {
            (
                m["id"].as_i64().unwrap(),
                m["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    let messages_clients: Vec<i64> = listed
        .iter()
        .filter_map(|m| m["client_id"].as_i64())
        .collect();
    let clients: std::collections::HashSet<i64> = messages_clients.iter().copied().collect();
    let inbound = truth.values().filter(|t| *t == "from_client").count() as u64;
    let outbound = truth.len() as u64 - inbound;

    // Every message in the stream exactly once, by message id.
    let counts = Mutex::new((0u64, 0u64, 0u64, 0u64));
    let client_counts = Mutex::new((0usize, 0usize, 0usize, 0usize));
    eventually("every message stored once", Duration::from_secs(60), || {
        let (nats, truth, counts, clients, client_counts) =
            (&nats, &truth, &counts, &clients, &client_counts);
        async move {
            let stored = stored_events(nats).await.map_err(|e| e.to_string())?;
            let mut by_message: HashMap<i64, u32> = HashMap::new();
            let mut cards: HashMap<i64, (u32, u32)> = HashMap::new();
            let (mut webhook, mut backfilled) = (0, 0);
            for (_, event) in &stored {
                if let Some(Payload::NewClient(c) | Payload::ClientUpdated(c)) = &event.payload {
                    let card = cards.entry(c.id.unwrap_or_default()).or_default();
                    match (&event.payload, event.origin()) {
                        (Some(Payload::NewClient(_)), _) => card.0 += 1,
                        (_, Origin::Backfill) => card.1 += 1,
                        _ => {}
                    }
                }
                if let Some(Payload::Inbox(m) | Payload::Outbox(m)) = &event.payload {
                    *by_message
                        .entry(m.message_id.unwrap_or_default())
                        .or_default() += 1;
                    match event.origin() {
                        Origin::Backfill => backfilled += 1,
                        _ => webhook += 1,
                    }
                }
            }
            let duplicated = by_message.values().filter(|n| **n > 1).count() as u64;
            let lost = truth
                .keys()
                .filter(|id| !by_message.contains_key(id))
                .count() as u64;
            *counts.lock().unwrap() = (webhook, backfilled, duplicated, lost);
            let without_card = clients.iter().filter(|c| !cards.contains_key(c)).count();
            let cards_twice = cards.values().filter(|(new, back)| new + back > 1).count();
            *client_counts.lock().unwrap() = (
                clients.len(),
                cards.values().filter(|c| c.1 > 0).count(),
                without_card,
                cards_twice,
            );
            if duplicated > 0 {
                panic!("{duplicated} messages stored more than once");
            }
            if lost == 0 && by_message.len() == truth.len() && without_card == 0 {
                Ok(())
            } else {
                Err(format!(
                    "{lost} of {} messages not stored, {without_card} clients without a card",
                    truth.len()
                ))
            }
        }
    })
    .await;
    let (by_webhook, backfilled, duplicated, lost) = *counts.lock().unwrap();
    let (client_total, client_backfilled, without_card, cards_twice) =
        *client_counts.lock().unwrap();

    // Analytics counts what the simulator made.
    let now = std::time::SystemTime::now();
    let range = TimeRange {
        start: Some((now - Duration::from_secs(3_600)).into()),
        end: Some((now + Duration::from_secs(60)).into()),
    };
    let seen = Mutex::new((0, 0));
    eventually(
        "analytics counts every message",
        Duration::from_secs(60),
        || {
            let (url, seen) = (analytics_url.clone(), &seen);
            async move {
                let mut client = AnalyticsServiceClient::connect(url)
                    .await
                    .map_err(|e| e.to_string())?;
                let total = client
                    .channel_summary(SummaryRequest {
                        sla_business_minutes: 0,
                        tenant: "acme".into(),
                        range: Some(range),
                    })
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner()
                    .total
                    .unwrap_or_default();
                let now_seen = (total.inbound_messages, total.outbound_messages);
                *seen.lock().unwrap() = now_seen;
                if now_seen == (inbound, outbound) {
                    Ok(())
                } else {
                    Err(format!(
                        "analytics {now_seen:?}, simulator {:?}",
                        (inbound, outbound)
                    ))
                }
            }
        },
    )
    .await;

    // The alert about the webhook fired and resolved.
    eventually(
        "the alert fired and resolved",
        Duration::from_secs(30),
        || {
            let received = Arc::clone(&received);
            async move {
                let notes = received.lock().unwrap().clone();
                let of_rule = |status: &str| {
                    notes.iter().any(|n| {
                        n["status"] == status
                            && n["alerts"]
                                .as_array()
                                .is_some_and(|a| a.iter().any(|a| a["rule"] == "webhook-disabled"))
                    })
                };
                if of_rule("firing") && of_rule("resolved") {
                    Ok(())
                } else {
                    Err(format!("notifications: {notes:?}"))
                }
            }
        },
    )
    .await;

    // What the keeper says of it.
    let jetstream = nats.jetstream().await;
    let status = c2d_keeper::State::existing(&jetstream)
        .await
        .unwrap()
        .load("acme")
        .await
        .unwrap();
    let shown = Command::new(&c2dctl)
        .args(["--json", "keeper", "status", "--nats-url", &nats.url()])
        .envs(nats.env_for("admin"))
        .output()
        .unwrap();
    assert!(shown.status.success(), "{shown:?}");
    let shown: Json = serde_json::from_slice(&shown.stdout).unwrap();
    println!("c2dctl keeper status: {shown}");
    assert_eq!(shown[0]["tenant"], "acme");
    assert_eq!(shown[0]["backfilled"], json!(status.backfilled));
    assert_eq!(shown[0]["pending"], json!(0));
    let metrics = c2d_testkit::http::get(&format!("http://127.0.0.1:{keeper_port}/metrics"))
        .await
        .unwrap()
        .text();
    let api_errors: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("c2d_keeper_api_errors_total{"))
        .collect();
    println!(
        "simulator: {} events generated, {} delivered, {} lost by Chat2Desk; {} messages ({inbound} inbound, {outbound} outbound)",
        stats["generated"],
        stats["delivered"],
        stats["lost"],
        truth.len()
    );
    println!(
        "stream: {by_webhook} messages by webhook, {backfilled} backfilled, {duplicated} duplicated, {lost} lost"
    );
    let seen = *seen.lock().unwrap();
    println!("analytics: inbound {}, outbound {}", seen.0, seen.1);
    println!(
        "clients: {client_total} wrote messages, {client_backfilled} cards backfilled, {without_card} without a card, {cards_twice} with a card stored twice"
    );
    assert_eq!(
        cards_twice, 0,
        "a client's card is stored once (new_client or backfilled)"
    );
    println!(
        "keeper: re-enabled the webhook {:?} after it was seen disabled; repairs {}, gaps found {}, backfilled {}, already stored {}, pending {}; faults injected {}; API errors {api_errors:?}",
        reenabled_after,
        status.repairs,
        status.gaps_found,
        status.backfilled,
        status.already_stored,
        status.pending(),
        stats["faults"]
    );
    assert!(
        stats["lost"].as_u64().unwrap_or(0) > 0,
        "Chat2Desk gave up on some"
    );
    assert!(backfilled > 0 && status.repairs >= 1);
    assert_eq!(
        status.backfilled, backfilled,
        "the keeper's count is the stream's"
    );
    assert_eq!(stats["faults"], json!(5), "every injected fault was met");
    assert!(
        keeper.exited().unwrap().is_none(),
        "the keeper survived the faults"
    );
    drop(gateway);
}
