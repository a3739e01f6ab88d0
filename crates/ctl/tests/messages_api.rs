//! The simulator's `GET /v1/messages` through the shared Chat2Desk client: every inbox and
//! outbox message the traffic made, delivered or not, with Chat2Desk's paging (limit at most
//! 200, offset), date and field filters; and injected faults (401, 429 with Retry-After, 5xx,
//! a malformed page) turned into errors that say whether a retry may help.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use c2dctl::chat2desk::{ApiError, Chat2DeskApi, MessageQuery};
use c2dctl::simulator::{self, SimulatorConfig};
use serde_json::json;

const EVENTS: u64 = 600;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_listed_page_by_page_and_faults_are_told_apart() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = SimulatorConfig {
        accounts: vec![("acme".into(), "acme-api-token".into())],
        // No webhook: every event is lost, and still listed by the messages API.
        webhooks: Vec::new(),
        rate: 2_000.0,
        events: Some(EVENTS),
        seed: 3,
        time_scale: 3_600.0,
        record: None,
        wait_for_webhooks: false,
        keep_serving: true,
    };
    tokio::spawn(simulator::run(config, listener, std::future::pending()));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats: serde_json::Value = serde_json::from_slice(
            &c2d_testkit::http::get(&format!("{base}/simulator/stats"))
                .await
                .map(|a| a.body.to_vec())
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        if stats["generated"].as_u64() == Some(EVENTS) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the traffic did not end: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let api = Chat2DeskApi::new(&format!("{base}/v1"), "acme-api-token").unwrap();
    let mut offset = 0;
    let mut listed = Vec::new();
    let mut pages = 0;
    loop {
        let page = api
            .messages(&MessageQuery {
                limit: Some(500),
                offset: Some(offset),
                ..MessageQuery::default()
            })
            .await
            .unwrap();
        assert!(page.data.len() <= 200, "limit is capped at 200");
        pages += 1;
        listed.extend(page.data.iter().cloned());
        match page.next_offset() {
            Some(next) => offset = next,
            None => break,
        }
    }
    let ids: HashSet<i64> = listed.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), listed.len(), "each message once");
    let inbound = listed.iter().filter(|m| m["type"] == "from_client").count();
    let outbound = listed.iter().filter(|m| m["type"] == "to_client").count();
    println!(
        "generated {EVENTS} events, listed {} messages ({inbound} inbound, {outbound} outbound) in {pages} pages",
        listed.len()
    );
    assert!(pages > 1 && inbound > 0 && outbound > 0);
    assert!(
        listed
            .iter()
            .all(|m| m.get("hook_type").is_none() && m["created"].is_string())
    );

    // Filters: type, client, and a date range that holds nothing.
    let inbox_only = api
        .messages(&MessageQuery {
            kind: Some("from_client".into()),
            ..MessageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(inbox_only.total, inbound as u64);
    let client = listed[0]["client_id"].as_i64().unwrap();
    let of_client = api
        .messages(&MessageQuery {
            client_id: Some(client),
            ..MessageQuery::default()
        })
        .await
        .unwrap();
    assert!(
        of_client
            .data
            .iter()
            .all(|m| m["client_id"] == json!(client))
    );
    let past = api
        .messages(&MessageQuery {
            start_date: Some("2019-07-28T00:00:00Z".into()),
            finish_date: Some("2019-07-29T00:00:00Z".into()),
            ..MessageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(past.total, 0);

    // Faults, one call each, then the API answers again.
    let answer = c2d_testkit::http::post_json(
        &format!("{base}/simulator/faults"),
        json!({"faults": [{"status": 401}, {"status": 429, "retry_after": 2}, {"status": 503}, {"malformed": true}]}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let mut seen = Vec::new();
    for _ in 0..4 {
        let error = api.messages(&MessageQuery::default()).await.unwrap_err();
        seen.push(format!("{} (transient: {})", error, error.is_transient()));
        match &error {
            ApiError::Unauthorized { .. } => assert!(!error.is_transient()),
            ApiError::RateLimited { retry_after } => {
                assert_eq!(*retry_after, Some(Duration::from_secs(2)))
            }
            ApiError::Refused { status, .. } => assert_eq!(*status, 503),
            ApiError::Unexpected(_) => assert!(error.is_transient()),
            other => panic!("{other}"),
        }
    }
    println!("injected 4 faults: {seen:#?}");
    assert_eq!(
        api.messages(&MessageQuery::default()).await.unwrap().total,
        listed.len() as u64
    );
}
