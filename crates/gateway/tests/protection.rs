//! The gateway against floods and strangers: a tenant over its rate gets 429 with Retry-After
//! while another tenant is served, but a mass mailing's burst is taken whole with the default
//! limits; a body that trickles in (slowloris) gets 408 instead of
//! holding a connection; a source outside GATEWAY_ALLOWED_SOURCES gets 403.

use std::time::{Duration, Instant};

use c2d_testkit::gateway::{ACME_TOKEN, TENANTS};
use c2d_testkit::{GatewayProcess, NatsServer, http, inbox};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const GATEWAY: &str = env!("CARGO_BIN_EXE_c2d-gateway");

fn globex_token() -> &'static str {
    TENANTS
        .split(',')
        .find_map(|pair| pair.strip_prefix("globex="))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_tenant_gets_429_and_the_others_are_served() {
    let nats = NatsServer::start().await.unwrap();
    let gateway = GatewayProcess::start(
        GATEWAY,
        &nats,
        &[
            // Slow enough that 60 deliveries in a row outrun it on a loaded machine too, and
            // refused at once rather than queued.
            ("GATEWAY_TENANT_RATE", "2".into()),
            ("GATEWAY_TENANT_BURST", "10".into()),
            ("GATEWAY_TENANT_WAIT_MS", "0".into()),
        ],
    )
    .await
    .unwrap();
    let acme = gateway.hook_url("acme", ACME_TOKEN);
    let (mut stored, mut limited, mut retry_after) = (0, 0, None);
    for n in 0..60 {
        let answer = http::post_json(&acme, inbox(n)).await.unwrap();
        match answer.status {
            200 => stored += 1,
            429 => {
                limited += 1;
                retry_after = answer.headers.get("retry-after").cloned();
                assert!(
                    answer.text().contains("GATEWAY_TENANT_RATE"),
                    "{}",
                    answer.text()
                );
            }
            other => panic!("unexpected {other}: {}", answer.text()),
        }
    }
    println!(
        "injected: 60 deliveries at once from one tenant (rate 2/s, burst 10): {stored} stored, {limited} answered 429"
    );
    assert!(
        stored >= 10 && limited > 0,
        "{stored} stored, {limited} limited"
    );
    assert_eq!(retry_after.unwrap(), "1");
    let globex = gateway.hook_url("globex", globex_token());
    assert_eq!(
        http::post_json(&globex, inbox(1_000)).await.unwrap().status,
        200
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        http::post_json(&acme, inbox(2_000)).await.unwrap().status,
        200,
        "after Retry-After"
    );
}

/// `outbox_status` of message `n`: a mass mailing whose channel failed reports every message.
fn failed_status(n: u64) -> String {
    format!(
        r#"{{"id": {id}, "dialog_id": 4324035, "client_id": {n}, "channel_id": 17404,
            "created": "2026-12-06T10:00:00Z", "gateway_status": "failed",
            "error": "channel disconnected", "hook_type": "outbox_status"}}"#,
        id = 500_000_000 + n
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_mailings_burst_is_absorbed_with_the_default_limits() {
    const STATUSES: u64 = 4_000;
    const SENDERS: u64 = 32;
    let nats = NatsServer::start().await.unwrap();
    // The limits as a user gets them: blank is the default.
    let defaults = [
        "GATEWAY_TENANT_RATE",
        "GATEWAY_TENANT_BURST",
        "GATEWAY_TENANT_WAIT_MS",
    ]
    .map(|name| (name, String::new()));
    let gateway = GatewayProcess::start(GATEWAY, &nats, &defaults)
        .await
        .unwrap();
    let acme = gateway.hook_url("acme", ACME_TOKEN);
    let started = Instant::now();
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let acme = acme.clone();
            tokio::spawn(async move {
                let mut refused = Vec::new();
                for n in (sender..STATUSES).step_by(SENDERS as usize) {
                    let answer = http::post_json(&acme, failed_status(n)).await.unwrap();
                    if answer.status != 200 {
                        refused.push((answer.status, answer.text()));
                    }
                }
                refused
            })
        })
        .collect();
    let mut refused = Vec::new();
    for sender in senders {
        refused.extend(sender.await.unwrap());
    }
    let elapsed = started.elapsed();
    println!(
        "measured: {STATUSES} outbox_status from one tenant over {SENDERS} connections in {elapsed:.1?} ({:.0}/s), {} refused",
        STATUSES as f64 / elapsed.as_secs_f64(),
        refused.len()
    );
    assert!(
        refused.is_empty(),
        "a burst was refused: {:?}",
        &refused[..refused.len().min(3)]
    );
    let stored = c2d_testkit::stored_events(&nats).await.unwrap();
    assert_eq!(stored.len() as u64, STATUSES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_in_gets_408() {
    let nats = NatsServer::start().await.unwrap();
    let gateway =
        GatewayProcess::start(GATEWAY, &nats, &[("GATEWAY_BODY_TIMEOUT_SECS", "1".into())])
            .await
            .unwrap();
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", gateway.port))
        .await
        .unwrap();
    let started = Instant::now();
    socket
        .write_all(
            format!(
                "POST /hooks/chat2desk/acme?token={ACME_TOKEN} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"message_id\": 1,"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = vec![0; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut answer))
        .await
        .expect("the gateway answers a stalled body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    println!(
        "injected: a body that stops after 16 of 500 bytes; answered after {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        answer.lines().next().unwrap_or_default()
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("GATEWAY_BODY_TIMEOUT_SECS"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_sources_may_post() {
    let nats = NatsServer::start().await.unwrap();
    let direct = GatewayProcess::start(
        GATEWAY,
        &nats,
        &[("GATEWAY_ALLOWED_SOURCES", "10.9.9.0/24".into())],
    )
    .await
    .unwrap();
    let refused = http::post_json(&direct.hook_url("acme", ACME_TOKEN), inbox(1))
        .await
        .unwrap();
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(refused.text().contains("127.0.0.1"), "{}", refused.text());

    // Behind an ingress that appends to X-Forwarded-For, the client is the address the ingress
    // appended (the rightmost); what the client wrote before it is not trusted.
    let behind = GatewayProcess::start(
        GATEWAY,
        &nats,
        &[
            (
                "GATEWAY_ALLOWED_SOURCES",
                "10.9.9.0/24, 2001:db8::/32".into(),
            ),
            ("GATEWAY_TRUST_FORWARDED_FOR", "true".into()),
        ],
    )
    .await
    .unwrap();
    let url = behind.hook_url("acme", ACME_TOKEN);
    let headers = |from: &'static str| {
        [
            ("content-type", "application/json"),
            ("x-forwarded-for", from),
        ]
    };
    // Chat2Desk (10.9.9.7) behind the ingress, having sent a header of its own.
    let allowed = http::post(&url, &headers("172.16.0.1, 10.9.9.7"), inbox(2))
        .await
        .unwrap();
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    let stranger = http::post(&url, &headers("198.51.100.4"), inbox(3))
        .await
        .unwrap();
    assert_eq!(stranger.status, 403);
    // A stranger forging an allowed address in front of the one the ingress appended.
    let forged = http::post(&url, &headers("10.9.9.7, 198.51.100.4"), inbox(4))
        .await
        .unwrap();
    assert_eq!(forged.status, 403, "{}", forged.text());
    assert!(forged.text().contains("198.51.100.4"), "{}", forged.text());
    println!(
        "injected: X-Forwarded-For \"10.9.9.7, 198.51.100.4\" (a forged allowed address before the one the ingress appended): answered {}",
        forged.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_trickle_in_get_the_connection_closed() {
    let nats = NatsServer::start().await.unwrap();
    let gateway = GatewayProcess::start(
        GATEWAY,
        &nats,
        &[("GATEWAY_HEADER_TIMEOUT_SECS", "1".into())],
    )
    .await
    .unwrap();
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", gateway.port))
        .await
        .unwrap();
    let started = Instant::now();
    // The request line and one header, then nothing more: a slowloris.
    socket
        .write_all(b"POST /hooks/chat2desk/acme HTTP/1.1\r\nHost: gw\r\n")
        .await
        .unwrap();
    let mut answer = vec![0; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut answer))
        .await
        .expect("the gateway does not wait forever for headers");
    let closed_after = started.elapsed();
    println!(
        "injected: request headers that stop halfway; the connection was closed after {:.1} s ({})",
        closed_after.as_secs_f64(),
        match &read {
            Ok(0) => "no answer".to_owned(),
            Ok(n) => String::from_utf8_lossy(&answer[..*n])
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
            Err(error) => error.to_string(),
        }
    );
    assert!(closed_after < Duration::from_secs(5));
    // The gateway still serves everyone else.
    let ok = http::post_json(&gateway.hook_url("acme", ACME_TOKEN), inbox(9))
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
}
