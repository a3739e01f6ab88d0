//! A backfill against the simulated Chat2Desk API and a real stream: half of the account's
//! messages came by webhook, the keeper stores the other half and skips what the log holds,
//! through a 429, a 500 and a malformed page; run again with an index that has not seen what
//! the first run stored (a crash before the log was read back), it stores nothing twice,
//! because the ids are derived from the messages and JetStream drops the repeats.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use c2d_chat2desk::{Chat2DeskApi, MessageQuery};
use c2d_keeper::backfill::{Backfiller, webhook_body};
use c2d_keeper::calls::Retries;
use c2d_keeper::index::Index;
use c2d_keeper::log::EventLog;
use c2d_keeper::metrics::Metrics;
use c2d_proto::events::{Origin, Payload};
use c2d_testkit::{Pipeline, stored_events};
use c2dctl::simulator::{self, SimulatorConfig};
use serde_json::json;

const EVENTS: u64 = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_stores_what_the_log_lacks_once_however_often_it_runs() {
    let pipeline = Pipeline::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = SimulatorConfig {
        accounts: vec![("acme".into(), "acme-api-token".into())],
        webhooks: Vec::new(),
        rate: 2_000.0,
        events: Some(EVENTS),
        seed: 9,
        time_scale: 3_600.0,
        record: None,
        wait_for_webhooks: false,
        keep_serving: true,
    };
    tokio::spawn(simulator::run(config, listener, std::future::pending()));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats: serde_json::Value = c2d_testkit::http::get(&format!("{base}/simulator/stats"))
            .await
            .ok()
            .and_then(|a| serde_json::from_slice(&a.body).ok())
            .unwrap_or_default();
        if stats["generated"] == json!(EVENTS) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the traffic did not end: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Every message the account has; those with an even id arrive by webhook.
    let api = Chat2DeskApi::new(&format!("{base}/v1"), "acme-api-token").unwrap();
    let messages = api.all_messages(&MessageQuery::default()).await.unwrap();
    let mut delivered = 0;
    for message in &messages {
        if message["id"].as_i64().unwrap() % 2 == 0 {
            pipeline
                .post(webhook_body(message).unwrap().to_string())
                .await;
            delivered += 1;
        }
    }

    // The index as the follower would build it from the log.
    let index_from_log = || async {
        let mut index = Index::default();
        for (_, event) in stored_events(&pipeline.nats).await.unwrap() {
            index.observe(&event, 3_600);
        }
        index
    };
    let index = Mutex::new(index_from_log().await);
    // The same, read before the first pass stores anything: what a keeper that crashed after
    // the pass, before its follower read the stored events back, starts from.
    let stale = Mutex::new(index_from_log().await);
    let jetstream = pipeline.nats.jetstream().await;
    let log = EventLog::new(jetstream);
    let metrics = Metrics::default();
    let retries = Retries {
        backoff: Duration::from_millis(50),
        ..Retries::default()
    };
    let backfiller = Backfiller {
        api: &api,
        log: &log,
        index: &index,
        metrics: &metrics,
        retries,
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let faults = json!({"faults": [{"status": 429, "retry_after": 1}, {"status": 500}, {"malformed": true}]});
    c2d_testkit::http::post_json(&format!("{base}/simulator/faults"), faults.to_string())
        .await
        .unwrap();
    let first = backfiller.pass("acme", now - 3_600, now).await.unwrap();

    // Again, with an index that never saw what the first pass stored.
    let again = Backfiller {
        index: &stale,
        ..backfiller
    }
    .pass("acme", now - 3_600, now)
    .await
    .unwrap();

    let mut by_message: HashMap<i64, u32> = HashMap::new();
    let mut backfilled = 0;
    for (_, event) in stored_events(&pipeline.nats).await.unwrap() {
        if let Some(Payload::Inbox(m) | Payload::Outbox(m)) = &event.payload {
            *by_message.entry(m.message_id.unwrap()).or_default() += 1;
            backfilled += u64::from(event.origin() == Origin::Backfill);
        }
    }
    let duplicated = by_message.values().filter(|n| **n > 1).count();
    let lost = messages
        .iter()
        .filter(|m| !by_message.contains_key(&m["id"].as_i64().unwrap()))
        .count();
    println!(
        "{} messages, {delivered} by webhook; first pass: listed {}, stored {}, skipped {}; \
         again with a stale index: stored {}, skipped {}; in the stream {backfilled} backfilled, \
         {duplicated} duplicated, {lost} lost",
        messages.len(),
        first.listed,
        first.stored,
        first.skipped,
        again.stored,
        again.skipped
    );
    assert_eq!(first.listed as usize, messages.len());
    assert_eq!(first.stored as usize, messages.len() - delivered);
    assert_eq!(first.skipped as usize, delivered);
    assert_eq!(again.stored, 0, "a repeat is a JetStream duplicate");
    assert_eq!((duplicated, lost), (0, 0));
    assert_eq!(backfilled, first.stored);
    let errors = metrics.render();
    assert!(errors.contains("kind=\"rate_limited\"} 1"), "{errors}");
    assert!(errors.contains("kind=\"malformed\"} 1"), "{errors}");
}
