//! The alert about a repaired webhook is not lost on the way: the keeper's `webhook_repaired`
//! event reaches the log even when the log cannot take it at the moment of the repair (here the
//! stream is gone, as during a failover without a leader), and even when the keeper stopped
//! between re-enabling a webhook and writing the event (here a repair left begun in its state).
//! Each is stored once, with the real keeper, NATS and the simulated Chat2Desk API.

use std::time::Duration;

use c2d_chat2desk::Chat2DeskApi;
use c2d_chat2desk::register::{gateway_url, gateway_webhook};
use c2d_keeper::repairs::Repair;
use c2d_keeper::webhook::{Problem, REPAIRED_HOOK_TYPE};
use c2d_keeper::{Config, State, TenantStatus};
use c2d_proto::events::{Event, Origin, STREAM};
use c2d_testkit::gateway::ACME_TOKEN;
use c2d_testkit::{InProcess, Pipeline, eventually, stored_events};
use c2dctl::simulator::{self, SimulatorConfig};

/// The keeper of tenant `acme`, in-process, checking every 200 ms.
async fn start_keeper(pipeline: &Pipeline, api: &str) -> InProcess<c2d_keeper::KeeperError> {
    let config = Config {
        nats_url: pipeline.nats.url(),
        addr: "127.0.0.1:0".parse().unwrap(),
        tenants: vec![c2d_keeper::cfg::Tenant {
            name: "acme".into(),
            api_token: "acme-api-token".into(),
            gateway_tokens: vec![ACME_TOKEN.into()],
        }],
        gateway_url: Some(pipeline.base_url.clone()),
        api_url: format!("{api}/v1"),
        check_interval: Duration::from_millis(200),
        silence: Duration::from_secs(3_600),
        redelivery_horizon: Duration::from_secs(4),
        margin: Duration::from_secs(1),
        lookback: Duration::from_secs(3_600),
        replicas: 1,
    };
    let listener = tokio::net::TcpListener::bind(config.addr).await.unwrap();
    InProcess::spawn(|shutdown| c2d_keeper::run(config, listener, shutdown))
}

/// The keeper's status of `acme` once `done` holds for it.
async fn status_when(
    pipeline: &Pipeline,
    what: &str,
    done: impl Fn(&TenantStatus) -> bool,
) -> TenantStatus {
    let jetstream = pipeline.nats.jetstream().await;
    let done = &done;
    let jetstream = &jetstream;
    eventually(what, Duration::from_secs(30), || async move {
        let state = State::existing(jetstream)
            .await
            .map_err(|e| e.to_string())?;
        let status = state.load("acme").await.map_err(|e| e.to_string())?;
        if done(&status) {
            Ok(())
        } else {
            Err(format!("{status:?}"))
        }
    })
    .await;
    let state = State::existing(jetstream).await.unwrap();
    state.load("acme").await.unwrap()
}

/// The keeper's events in the log.
async fn repair_events(pipeline: &Pipeline) -> Vec<Event> {
    let stored = stored_events(&pipeline.nats).await.unwrap_or_default();
    stored
        .into_iter()
        .map(|(_, event)| event)
        .filter(|e| e.hook_type == REPAIRED_HOOK_TYPE)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repairs_event_reaches_the_log_after_the_log_or_the_keeper_failed() {
    let pipeline = Pipeline::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let registered = gateway_url(&pipeline.base_url, "acme", ACME_TOKEN);
    let config = SimulatorConfig {
        accounts: vec![("acme".into(), "acme-api-token".into())],
        webhooks: vec![("acme".into(), registered)],
        rate: 1.0,
        events: Some(0),
        seed: 23,
        time_scale: 1.0,
        record: None,
        wait_for_webhooks: false,
        keep_serving: true,
    };
    tokio::spawn(simulator::run(config, listener, std::future::pending()));
    let account = Chat2DeskApi::new(&format!("{api}/v1"), "acme-api-token").unwrap();
    let keeper = start_keeper(&pipeline, &api).await;
    status_when(&pipeline, "the keeper finds the webhook right", |s| {
        s.webhook == "ok"
    })
    .await;

    // The log cannot take an event; meanwhile the webhook is deleted, and the keeper
    // registers it again.
    let jetstream = pipeline.nats.jetstream().await;
    let stream = jetstream
        .get_stream(STREAM)
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    jetstream.delete_stream(STREAM).await.unwrap();
    let webhooks = account.list().await.unwrap();
    let webhook = gateway_webhook(&webhooks, None, "acme").unwrap();
    account.delete(webhook.id).await.unwrap();
    let status = status_when(&pipeline, "the repair waits for its event", |s| {
        s.repairs == 1 && s.unannounced.len() == 1
    })
    .await;
    assert_eq!(status.unannounced[0].problem, Problem::Missing);
    assert!(status.unannounced[0].webhook_id.is_some());
    let repaired = account.list().await.unwrap();
    assert!(
        gateway_webhook(&repaired, None, "acme").is_some(),
        "the webhook is registered again"
    );

    // The log is back: the event is stored, once, and owed no more.
    jetstream.create_stream(stream.clone()).await.unwrap();
    status_when(&pipeline, "the event is stored", |s| {
        s.unannounced.is_empty()
    })
    .await;
    let events = repair_events(&pipeline).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].tenant, "acme");
    assert_eq!(events[0].origin(), Origin::Keeper);

    // The keeper stops after it began a repair and re-enabled the webhook, before it wrote
    // anything else: its state holds the repair begun, the webhook is right.
    keeper.stop().await;
    let state = State::existing(&jetstream).await.unwrap();
    let mut status = state.load("acme").await.unwrap();
    status.unannounced.push(Repair {
        problem: Problem::Disabled,
        found_at: 1_765_000_000,
        webhook_id: None,
    });
    state.save(&status).await.unwrap();
    let keeper = start_keeper(&pipeline, &api).await;
    let status = status_when(&pipeline, "the begun repair's event is stored", |s| {
        s.unannounced.is_empty()
    })
    .await;
    assert_eq!(status.repairs, 2, "counted as the repair it was");
    let events = repair_events(&pipeline).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1].event_time.map(|t| t.seconds), Some(1_765_000_000));
    keeper.stop().await;
}
