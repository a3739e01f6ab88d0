//! The whole system end to end, every part its own process as users run it: nats-server, the
//! gateway, crm-sync, analytics and alerting, and `c2dctl simulate` as Chat2Desk with two
//! accounts. The accounts' webhooks are registered through the simulated Chat2Desk API with
//! `c2dctl webhooks register`; a few thousand events flow; the gateway is killed (SIGKILL) in
//! the middle and comes back a moment later, so deliveries fail and Chat2Desk's retry schedule
//! (time-scaled) heals them. Then what the simulator recorded is the truth every answer must
//! agree with: each delivered event in the stream exactly once, analytics' counts, the CRM's
//! clients, and an alert per disconnected WhatsApp number.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use c2d_proto::alerting::AlertingServiceClient;
use c2d_proto::alerting::v1::ListAlertsRequest;
use c2d_proto::analytics::AnalyticsServiceClient;
use c2d_proto::analytics::v1::{SummaryRequest, TimeRange};
use c2d_proto::crm::CrmServiceClient;
use c2d_proto::crm::v1::{GetClientRequest, get_client_request::By};
use c2d_testkit::gateway::TENANTS;
use c2d_testkit::{
    GatewayProcess, NatsServer, ServiceProcess, eventually, free_port, stored_events,
    workspace_binary,
};
use serde_json::Value as Json;

const EVENTS: u64 = 3_000;
/// 10 s, 5 min, 2 h become 6 ms, 167 ms, 4 s; a webhook is disabled after 10 s of failures.
const TIME_SCALE: &str = "1800";

/// One line of the simulator's record.
#[derive(Debug, Clone, serde::Deserialize)]
struct Outcome {
    tenant: String,
    hook_type: String,
    event_id: String,
    body: String,
    delivered: bool,
    attempts: u32,
    lost: Option<String>,
}

fn secret(tenant: &str) -> String {
    TENANTS
        .split(',')
        .find_map(|pair| pair.strip_prefix(&format!("{tenant}=")))
        .expect("a test tenant")
        .to_owned()
}

fn c2dctl(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_c2dctl"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("c2dctl runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "c2dctl {args:?}: {stderr}");
    // A command line logs at WARN unless asked: nothing of the NATS client's progress.
    assert!(
        !stderr.contains(" INFO "),
        "c2dctl {args:?} logged at INFO: {stderr}"
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_system_agrees_with_what_the_simulated_chat2desk_delivered() {
    let nats = NatsServer::start_with_users()
        .await
        .expect("nats-server starts");
    let dir = tempfile::tempdir().unwrap();
    let gateway_bin = workspace_binary("c2d-gateway").unwrap();
    let gateway_bin = gateway_bin.to_str().unwrap();
    let mut gateway = GatewayProcess::start(gateway_bin, &nats, &[])
        .await
        .unwrap();
    let gateway_port = gateway.port;

    // The consumers, on free ports; alerting tells a local receiver.
    let receiver = c2d_testkit::http::json_receiver("/alerts").await.unwrap();
    let alerts_received = Arc::clone(&receiver.received);
    let receiver = receiver.url;
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            "[[receiver]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{receiver}\"\n\n\
             [[rule]]\nname = \"whatsapp-disconnected\"\nkind = \"event\"\nhook_type = \"new_qr_code\"\nreceiver = \"ops\"\n"
        ),
    )
    .unwrap();
    let (crm_port, analytics_port, alerting_port) = (free_port(), free_port(), free_port());
    let (analytics_metrics, alerting_metrics) = (free_port(), free_port());
    let crm_url = format!("http://127.0.0.1:{crm_port}");
    let analytics_url = format!("http://127.0.0.1:{analytics_port}");
    let alerting_url = format!("http://127.0.0.1:{alerting_port}");
    let mut crm = ServiceProcess::spawn(
        workspace_binary("c2d-crm-sync").unwrap().to_str().unwrap(),
        &[
            nats.env_for("crm-sync").as_slice(),
            &[
                ("CRM_GRPC_ADDR", format!("127.0.0.1:{crm_port}")),
                (
                    "CRM_STORE_URL",
                    format!("sqlite://{}", dir.path().join("crm.db").display()),
                ),
                ("CRM_METRICS_ADDR", "off".into()),
            ],
        ]
        .concat(),
    )
    .unwrap();
    let mut analytics = ServiceProcess::spawn(
        workspace_binary("c2d-analytics").unwrap().to_str().unwrap(),
        &[
            nats.env_for("analytics").as_slice(),
            &[
                ("ANALYTICS_GRPC_ADDR", format!("127.0.0.1:{analytics_port}")),
                (
                    "ANALYTICS_METRICS_ADDR",
                    format!("127.0.0.1:{analytics_metrics}"),
                ),
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
        workspace_binary("c2d-alerting").unwrap().to_str().unwrap(),
        &[
            nats.env_for("alerting").as_slice(),
            &[
                ("ALERTING_GRPC_ADDR", format!("127.0.0.1:{alerting_port}")),
                (
                    "ALERTING_METRICS_ADDR",
                    format!("127.0.0.1:{alerting_metrics}"),
                ),
                ("ALERTING_RULES_FILE", rules.display().to_string()),
                ("ALERTING_CRM_URL", crm_url.clone()),
            ],
        ]
        .concat(),
    )
    .unwrap();
    c2d_testkit::grpc::wait_serving(&crm_url, c2d_proto::crm::SERVICE_NAME, &mut crm).await;
    c2d_testkit::grpc::wait_serving(
        &analytics_url,
        c2d_proto::analytics::SERVICE_NAME,
        &mut analytics,
    )
    .await;
    c2d_testkit::grpc::wait_serving(
        &alerting_url,
        c2d_proto::alerting::SERVICE_NAME,
        &mut alerting,
    )
    .await;

    // Chat2Desk, with two accounts; the traffic waits for their webhooks.
    let api_port = free_port();
    let api = format!("http://127.0.0.1:{api_port}");
    let record = dir.path().join("delivered.jsonl");
    let mut simulator = ServiceProcess::spawn_with_args(
        env!("CARGO_BIN_EXE_c2dctl"),
        &[
            "simulate",
            "--listen",
            &format!("127.0.0.1:{api_port}"),
            "--accounts",
            "acme=acme-api-token,globex=globex-api-token",
            "--rate",
            "400",
            "--events",
            &EVENTS.to_string(),
            "--seed",
            "7",
            "--time-scale",
            TIME_SCALE,
            "--record",
            record.to_str().unwrap(),
            "--wait-for-webhooks",
        ],
        &[],
    )
    .unwrap();
    simulator
        .wait_for_ok(&format!("{api}/simulator/stats"), Duration::from_secs(30))
        .await
        .unwrap();
    let gateway_url = gateway.base_url();
    for tenant in ["acme", "globex"] {
        let token = format!("{tenant}-api-token");
        let listed = c2dctl(&[
            "--json",
            "webhooks",
            "register",
            "--api-url",
            &format!("{api}/v1"),
            "--api-token",
            &token,
            "--gateway-url",
            &gateway_url,
            "--tenant",
            tenant,
            "--token",
            &secret(tenant),
        ]);
        let listed: Json = serde_json::from_str(&listed).unwrap();
        assert_eq!(listed[0]["name"], "c2d-gateway");
        assert_eq!(listed[0]["events"].as_array().unwrap().len(), 14);
        assert!(
            listed[0]["url"].as_str().unwrap().ends_with("token=***"),
            "{listed}"
        );
    }
    // Registering again updates the same webhook instead of adding one.
    let again = c2dctl(&[
        "--json",
        "webhooks",
        "register",
        "--api-url",
        &format!("{api}/v1"),
        "--api-token",
        "acme-api-token",
        "--gateway-url",
        &gateway_url,
        "--tenant",
        "acme",
        "--token",
        &secret("acme"),
    ]);
    let listed = c2dctl(&[
        "--json",
        "webhooks",
        "list",
        "--api-url",
        &format!("{api}/v1"),
        "--api-token",
        "acme-api-token",
    ]);
    assert_eq!(
        serde_json::from_str::<Json>(&listed)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1,
        "{again}"
    );

    // A third of the way in, the gateway dies mid-traffic and comes back a moment later.
    let stats = |api: String| async move {
        c2d_testkit::http::get(&format!("{api}/simulator/stats"))
            .await
            .ok()
            .and_then(|r| serde_json::from_slice::<Json>(&r.body).ok())
            .unwrap_or(Json::Null)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while stats(api.clone()).await["generated"].as_u64().unwrap_or(0) < EVENTS / 3 {
        assert!(Instant::now() < deadline, "the traffic does not flow");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let retried_before = stats(api.clone()).await["retried"].as_u64().unwrap_or(0);
    gateway.process.kill();
    let killed = Instant::now();
    // Down for 1.5 s at least, and until deliveries were seen failing against it: an outage
    // nobody ran into would prove nothing about the retries that heal it.
    c2d_testkit::eventually(
        "deliveries to fail while the gateway is down",
        Duration::from_secs(30),
        || async {
            let retried = stats(api.clone()).await["retried"].as_u64().unwrap_or(0);
            if retried > retried_before && killed.elapsed() >= Duration::from_millis(1_500) {
                Ok(())
            } else {
                Err(format!(
                    "{retried} retries (before the kill: {retried_before})"
                ))
            }
        },
    )
    .await;
    gateway = GatewayProcess::start_on(gateway_bin, gateway_port, &nats, &[])
        .await
        .unwrap();

    // The simulator ends once every delivery succeeded or was given up.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = simulator.exited().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the simulator did not finish: {}",
            stats(api.clone()).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "the simulator failed: {status}");
    let outcomes: Vec<Outcome> = std::fs::read_to_string(&record)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        outcomes.len() as u64,
        EVENTS,
        "one outcome per event (one webhook each)"
    );
    let lost: Vec<&Outcome> = outcomes.iter().filter(|o| !o.delivered).collect();
    assert!(
        lost.is_empty(),
        "the retry schedule heals the outage: {:?}",
        lost.first().map(|o| &o.lost)
    );
    let retried = outcomes.iter().filter(|o| o.attempts > 1).count();
    assert!(retried > 0, "the outage made some deliveries fail first");
    println!(
        "{} events delivered, {retried} of them after retries",
        outcomes.len()
    );

    // Every delivered event is in the stream exactly once (a delivery the gateway stored but
    // could not answer before it died came again, and was recognised).
    let stored = stored_events(&nats).await.unwrap();
    let mut in_stream: HashMap<&str, usize> = HashMap::new();
    for (_, event) in &stored {
        *in_stream.entry(event.event_id.as_str()).or_default() += 1;
    }
    let duplicated: Vec<_> = in_stream.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "duplicates in the stream: {duplicated:?}"
    );
    for outcome in &outcomes {
        assert_eq!(
            in_stream.get(outcome.event_id.as_str()),
            Some(&1),
            "{} of {} not stored",
            outcome.hook_type,
            outcome.tenant
        );
    }
    assert_eq!(stored.len(), outcomes.len(), "nothing else in the stream");

    // Analytics counts what was delivered, per tenant.
    let mut expected: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for o in &outcomes {
        *expected
            .entry((o.tenant.as_str(), o.hook_type.as_str()))
            .or_default() += 1;
    }
    let failed = |tenant: &str| {
        outcomes
            .iter()
            .filter(|o| o.tenant == tenant && o.hook_type == "outbox_status")
            .count() as u64
    };
    let now = std::time::SystemTime::now();
    let range = TimeRange {
        start: Some((now - Duration::from_secs(3_600)).into()),
        end: Some((now + Duration::from_secs(60)).into()),
    };
    for tenant in ["acme", "globex"] {
        let inbound = expected.get(&(tenant, "inbox")).copied().unwrap_or(0);
        let outbound = expected.get(&(tenant, "outbox")).copied().unwrap_or(0);
        let url = analytics_url.clone();
        eventually(
            &format!("analytics counts {tenant}"),
            Duration::from_secs(60),
            move || {
                let url = url.clone();
                async move {
                    let mut client = AnalyticsServiceClient::connect(url)
                        .await
                        .map_err(|e| e.to_string())?;
                    let answer = client
                        .channel_summary(SummaryRequest {
                            sla_business_minutes: 0,
                            tenant: tenant.into(),
                            range: Some(range),
                        })
                        .await
                        .map_err(|e| e.to_string())?
                        .into_inner();
                    let total = answer.total.unwrap_or_default();
                    let seen = (
                        total.inbound_messages,
                        total.outbound_messages,
                        total.delivery_failures,
                    );
                    if seen == (inbound, outbound, failed(tenant)) {
                        Ok(())
                    } else {
                        Err(format!(
                            "analytics says {seen:?}, the simulator delivered {:?}",
                            (inbound, outbound, failed(tenant))
                        ))
                    }
                }
            },
        )
        .await;
    }
    // The same through the command line.
    let summary: Json = serde_json::from_str(&c2dctl(&[
        "--json",
        "analytics",
        "summary",
        "--analytics-url",
        &analytics_url,
        "--tenant",
        "acme",
        "--by",
        "channel",
        "--since",
        "1h",
    ]))
    .unwrap();
    let total = summary
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["channel"] == "TOTAL")
        .unwrap();
    assert_eq!(total["inbound"], expected[&("acme", "inbox")]);
    assert!(
        total.get("frt_business_p90_s").is_some() && total.get("sla").is_some(),
        "business time beside wall-clock time: {total}"
    );

    // A calendar set through the command line is the one AnalyticsService keeps (as the
    // analytics NATS user, in the C2D_CALENDARS bucket).
    let calendar_file = dir.path().join("calendar.json");
    std::fs::write(
        &calendar_file,
        r#"{"time_zone": "America/Sao_Paulo", "weekly": {"mon": ["09:00-18:00"]}}"#,
    )
    .unwrap();
    let calendar = |extra: &[&str]| -> Json {
        let mut args = vec![
            "--json",
            "analytics",
            "calendar",
            "--analytics-url",
            &analytics_url,
            "--tenant",
            "globex",
        ];
        args.extend_from_slice(extra);
        serde_json::from_str(&c2dctl(&args)).unwrap()
    };
    let set = calendar(&["--set", calendar_file.to_str().unwrap()]);
    assert_eq!(set[0]["configured"], true);
    let shown = calendar(&[]);
    assert!(
        shown[0]["calendar"]
            .as_str()
            .unwrap()
            .contains("America/Sao_Paulo"),
        "{shown}"
    );
    assert_eq!(calendar(&["--delete"])[0]["configured"], false);

    // The CRM knows every new client, by the name they arrived with.
    let mut crm_client = CrmServiceClient::connect(crm_url.clone()).await.unwrap();
    let new_clients: Vec<(String, i64, String)> = outcomes
        .iter()
        .filter(|o| o.hook_type == "new_client")
        .map(|o| {
            let body: Json = serde_json::from_str(&o.body).unwrap();
            (
                o.tenant.clone(),
                body["id"].as_i64().unwrap(),
                body["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(new_clients.len() > 20, "{} new clients", new_clients.len());
    let last = new_clients.last().unwrap().clone();
    let url = crm_url.clone();
    eventually("crm-sync caught up", Duration::from_secs(60), move || {
        let (last, url) = (last.clone(), url.clone());
        async move {
            let mut client = CrmServiceClient::connect(url)
                .await
                .map_err(|e| e.to_string())?;
            client
                .get_client(GetClientRequest {
                    tenant: last.0,
                    by: Some(By::ClientId(last.1)),
                })
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    })
    .await;
    for (tenant, id, name) in &new_clients {
        let record = crm_client
            .get_client(GetClientRequest {
                tenant: tenant.clone(),
                by: Some(By::ClientId(*id)),
            })
            .await
            .unwrap_or_else(|e| panic!("client {id} of {tenant}: {e}"))
            .into_inner();
        assert_eq!(record.client_id, *id);
        assert!(record.name.is_some(), "{name}");
    }

    // One alert per WhatsApp number that asked for a new QR code, and its notification.
    let mut phones: BTreeSet<(String, String)> = BTreeSet::new();
    for o in outcomes.iter().filter(|o| o.hook_type == "new_qr_code") {
        let body: Json = serde_json::from_str(&o.body).unwrap();
        phones.insert((o.tenant.clone(), body["phone"].as_str().unwrap().to_owned()));
    }
    let mut alerting_client = AlertingServiceClient::connect(alerting_url.clone())
        .await
        .unwrap();
    let expected_alerts = phones.len();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alerts = alerting_client
            .list_alerts(ListAlertsRequest {
                state: 0,
                tenant: String::new(),
                rule: "whatsapp-disconnected".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .alerts;
        let seen: BTreeSet<(String, String)> = alerts
            .iter()
            .map(|a| {
                (
                    a.tenant.clone(),
                    a.labels.get("phone").cloned().unwrap_or_default(),
                )
            })
            .collect();
        if seen == phones && alerts_received.lock().unwrap().len() == expected_alerts {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alerts {seen:?} / notifications {} do not match the QR codes delivered {phones:?}",
            alerts_received.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // What an operator's Prometheus reads: each consumer caught up with nothing pending,
    // the events it handled, the gRPC calls this test made, the notifications delivered.
    let analytics_text = scrape(analytics_metrics).await;
    for line in [
        "c2d_analytics_consumer_caught_up 1",
        "c2d_analytics_consumer_lag_events 0",
        r#"c2d_analytics_grpc_requests_total{method="ChannelSummary",code="Ok"}"#,
    ] {
        assert!(analytics_text.contains(line), "{line} in {analytics_text}");
    }
    assert!(metric(&analytics_text, "c2d_analytics_events_handled_total") >= stored.len() as f64);
    let alerting_text = scrape(alerting_metrics).await;
    assert!(
        alerting_text
            .contains(r#"c2d_alerting_grpc_requests_total{method="ListAlerts",code="Ok"}"#),
        "{alerting_text}"
    );
    assert_eq!(
        metric(
            &alerting_text,
            r#"c2d_alerting_notifications_total{receiver="ops",outcome="delivered"}"#
        ),
        expected_alerts as f64
    );
    drop(gateway);
}

/// The text a service serves at `/metrics` on `port`.
async fn scrape(port: u16) -> String {
    let answer = c2d_testkit::http::get(&format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    answer.text()
}

/// The value of the sample `series` (a name with its labels) in an exposition; 0 when absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}
