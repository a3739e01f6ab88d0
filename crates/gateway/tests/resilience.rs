//! The gateway under failure: NATS going away, the gateway killed or stopped mid-load.
//! Whatever happens, every delivery answered 2xx is in the stream, once.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use c2d_testkit::gateway::ACME_TOKEN;
use c2d_testkit::{GatewayProcess, NatsServer, http, inbox, stored_events};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

const GATEWAY: &str = env!("CARGO_BIN_EXE_c2d-gateway");

/// What a load run saw: the event ids answered 2xx and how many requests failed otherwise.
#[derive(Default)]
struct Tally {
    stored: Vec<String>,
    failed: Vec<u64>,
}

/// Posts distinct deliveries from `connections` concurrent senders until `stop` is set.
async fn load(url: String, connections: u64, stop: Arc<AtomicBool>) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut senders = Vec::new();
    for sender in 0..connections {
        let (url, stop, tally) = (url.clone(), stop.clone(), tally.clone());
        senders.push(tokio::spawn(async move {
            let mut n = sender;
            while !stop.load(Ordering::Relaxed) {
                match http::post_json(&url, inbox(n)).await {
                    Ok(answer) if answer.status == 200 => {
                        let id = answer.json()["event_id"].as_str().unwrap().to_owned();
                        tally.lock().await.stored.push(id);
                    }
                    _ => tally.lock().await.failed.push(n),
                }
                n += connections;
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    Arc::try_unwrap(tally).ok().unwrap().into_inner()
}

/// Waits until the gateway has answered `at_least` deliveries "stored" (its metrics say).
async fn wait_for_answers(gateway: &GatewayProcess, at_least: u64) {
    let what = format!("{at_least} deliveries answered stored");
    c2d_testkit::eventually(&what, Duration::from_secs(60), || async {
        let stored = metric(gateway, r#"c2d_gateway_requests_total{outcome="stored"}"#)
            .await
            .unwrap_or(0.0);
        if stored >= at_least as f64 {
            Ok(())
        } else {
            Err(format!("{stored} so far"))
        }
    })
    .await;
}

/// Every id answered 2xx is in the stream, and no message id is there twice.
async fn assert_all_answered_are_stored_once(nats: &NatsServer, answered: &[String]) -> usize {
    let stored = stored_events(nats).await.unwrap();
    let ids: Vec<&str> = stored.iter().map(|(_, e)| e.event_id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an event is in the stream twice");
    let missing: Vec<&String> = answered
        .iter()
        .filter(|id| !unique.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} events answered 2xx are not in the stream: {missing:?}",
        missing.len()
    );
    ids.len()
}

#[tokio::test]
async fn killing_the_gateway_mid_load_loses_no_event_answered_2xx() {
    let nats = NatsServer::start().await.unwrap();
    let mut gateway = GatewayProcess::start(GATEWAY, &nats, &[]).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(gateway.acme_url(), 32, stop.clone()));
    // The gateway counts an answer before it is written, and the kill can take one answer of
    // each of the 32 connections with it: 300 are answered for sure once it counted 332.
    wait_for_answers(&gateway, 300 + 32).await;
    gateway.process.kill(); // SIGKILL, with requests in flight
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let tally = running.await.unwrap();
    println!(
        "SIGKILL under load: {} answered 2xx, {} failed",
        tally.stored.len(),
        tally.failed.len()
    );
    assert!(tally.stored.len() >= 300);
    assert!(
        !tally.failed.is_empty(),
        "deliveries in flight at the kill, and after it, failed: the retries below have work"
    );
    let in_stream = assert_all_answered_are_stored_once(&nats, &tally.stored).await;

    // Chat2Desk retries what failed; a restarted gateway stores each exactly once.
    let gateway = GatewayProcess::start_on(GATEWAY, gateway.port, &nats, &[])
        .await
        .unwrap();
    for n in &tally.failed {
        assert_eq!(
            http::post_json(&gateway.acme_url(), inbox(*n))
                .await
                .unwrap()
                .status,
            200
        );
    }
    let total = assert_all_answered_are_stored_once(&nats, &tally.stored).await;
    println!("after retries: {in_stream} -> {total} events, 0 lost, 0 duplicated");
    assert_eq!(
        total,
        tally.stored.len() + tally.failed.len(),
        "every delivery once"
    );
}

/// A delivery whose body is half sent: in flight until [`SlowDelivery::finish`].
struct SlowDelivery {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl SlowDelivery {
    async fn start(gateway: &GatewayProcess, body: String) -> SlowDelivery {
        let mut stream = TcpStream::connect(("127.0.0.1", gateway.port))
            .await
            .unwrap();
        let head = format!(
            "POST /hooks/chat2desk/acme?token={ACME_TOKEN} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let (first, rest) = body.as_bytes().split_at(body.len() / 2);
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(first).await.unwrap();
        stream.flush().await.unwrap();
        SlowDelivery {
            stream,
            rest: rest.to_vec(),
        }
    }

    /// Sends the rest of the body; returns the answer's status line and body.
    async fn finish(mut self) -> (String, serde_json::Value) {
        self.stream.write_all(&self.rest).await.unwrap();
        let mut answer = Vec::new();
        self.stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer.lines().next().unwrap_or_default().to_owned();
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        (status, serde_json::from_str(body).unwrap_or_default())
    }
}

/// One value of the gateway's `/metrics`, by its exact name and labels.
async fn metric(gateway: &GatewayProcess, name: &str) -> Option<f64> {
    let metrics = http::get(&format!("{}/metrics", gateway.base_url()))
        .await
        .ok()?
        .text();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_fails_readiness_refuses_new_deliveries_and_exits_once_every_acknowledged_event_is_stored()
 {
    let nats = NatsServer::start().await.unwrap();
    let spool = tempfile::tempdir().unwrap();
    let mut gateway = spooling_gateway(&nats, &spool).await;
    // One delivery stays in flight across the signal: half its body is sent before.
    let slow = SlowDelivery::start(&gateway, inbox(1_000_000)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(gateway.acme_url(), 16, stop.clone()));
    wait_for_answers(&gateway, 300).await;

    gateway.process.sigterm().unwrap();
    // Readiness fails at once, and a new delivery gets 503 with Retry-After.
    let ready = format!("{}/readyz", gateway.base_url());
    let deadline = Instant::now() + Duration::from_secs(10);
    let readiness = loop {
        // (A connection opened just before the signal may be closed unanswered: asked again.)
        match http::get(&ready).await {
            Ok(answer) if answer.status == 503 => break answer.text(),
            _ => {}
        }
        assert!(Instant::now() < deadline, "still ready after SIGTERM");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(readiness.contains("stopping"), "{readiness}");
    let refused = http::post_json(&gateway.acme_url(), inbox(2_000_000))
        .await
        .unwrap();
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.headers["retry-after"], "10");
    assert!(refused.text().contains("stopping"), "{}", refused.text());
    assert_eq!(metric(&gateway, "c2d_gateway_stopping").await, Some(1.0));
    assert!(
        gateway.process.exited().unwrap().is_none(),
        "the gateway exited with a request in flight"
    );

    // The delivery in flight is finished, stored and answered; then the gateway exits.
    let (status, answer) = slow.finish().await;
    assert!(status.contains(" 200 "), "{status}: {answer}");
    let clean = tokio::task::spawn_blocking(move || gateway.process.wait())
        .await
        .unwrap()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let tally = running.await.unwrap();
    assert!(clean, "the gateway exits 0 after draining");

    let mut answered = tally.stored.clone();
    answered.push(answer["event_id"].as_str().unwrap().to_owned());
    let in_stream = assert_all_answered_are_stored_once(&nats, &answered).await;
    println!(
        "injected: SIGTERM with {} deliveries answered, one half-sent delivery in flight and 16 senders going on; \
         readiness during the drain: {:?}; answered 2xx {}, not answered 2xx (503 while stopping, or closed unanswered) {}, in stream {in_stream}, lost 0, duplicated 0",
        tally.stored.len(),
        readiness.trim(),
        answered.len(),
        tally.failed.len() + 1,
    );
    assert_eq!(
        in_stream,
        answered.len(),
        "nothing stored that was not answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_nats_is_down_keeps_the_spool_on_disk_and_the_next_gateway_forwards_it() {
    let mut nats = NatsServer::start().await.unwrap();
    let spool = tempfile::tempdir().unwrap();
    let env = [
        ("GATEWAY_SPOOL_DIR", spool.path().display().to_string()),
        ("GATEWAY_SHUTDOWN_GRACE_SECS", "2".to_owned()),
    ];
    let mut gateway = GatewayProcess::start(GATEWAY, &nats, &env).await.unwrap();
    let port = gateway.port;
    nats.stop();
    let answered = spool_deliveries(&gateway.acme_url(), 200).await;

    // The stop cannot forward: it says so in its metrics while it tries, then exits.
    gateway.process.sigterm().unwrap();
    let mut seen_stopping = None;
    while gateway.process.exited().unwrap().is_none() {
        if let (Some(1.0), Some(waiting)) = (
            metric(&gateway, "c2d_gateway_stopping").await,
            metric(&gateway, "c2d_gateway_spool_messages").await,
        ) {
            seen_stopping = Some(waiting);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen_stopping,
        Some(200.0),
        "while stopping, /metrics said 1 for c2d_gateway_stopping and 200 spooled"
    );

    // NATS back, a gateway on the same spool (the pod's volume) forwards what was left.
    nats.restart().await.unwrap();
    let gateway = GatewayProcess::start_on(GATEWAY, port, &nats, &env)
        .await
        .unwrap();
    let inherited = metric(&gateway, "c2d_gateway_spool_inherited_messages").await;
    wait_until_drained(&gateway).await;
    let in_stream = assert_all_answered_are_stored_once(&nats, &answered).await;
    println!(
        "injected: NATS down, 200 deliveries spooled, SIGTERM with a 2 s grace (exited with 200 left, said by /metrics while stopping); \
         restarted on the same spool after NATS returned: inherited {inherited:?}, in stream {in_stream}, lost 0, duplicated 0"
    );
    assert_eq!(inherited, Some(200.0));
    assert_eq!(in_stream, 200);
}

#[tokio::test]
async fn nats_down_answers_503_at_once_and_the_gateway_recovers_by_itself() {
    let mut nats = NatsServer::start().await.unwrap();
    let gateway = GatewayProcess::start(
        GATEWAY,
        &nats,
        &[("GATEWAY_PUBLISH_TIMEOUT_MS", "1000".into())],
    )
    .await
    .unwrap();
    assert_eq!(
        http::post_json(&gateway.acme_url(), inbox(1))
            .await
            .unwrap()
            .status,
        200
    );

    nats.stop();
    let started = Instant::now();
    let answer = http::post_json(&gateway.acme_url(), inbox(2))
        .await
        .unwrap();
    let waited = started.elapsed();
    println!("NATS down: answered {} after {waited:?}", answer.status);
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert_eq!(answer.headers["retry-after"], "10");
    assert!(
        answer.json()["error"]
            .as_str()
            .unwrap()
            .contains("retry later")
    );
    // Not a benchmark: a guard that the gateway does not hang while NATS is away.
    assert!(
        waited < Duration::from_secs(10),
        "answered after {waited:?}"
    );

    nats.restart().await.unwrap();
    let ready = format!("{}/readyz", gateway.base_url());
    let mut status = 0;
    for _ in 0..200 {
        status = http::get(&ready).await.unwrap().status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200, "ready again once NATS is back");
    // Chat2Desk's retry of the refused delivery is stored, once.
    let retry = http::post_json(&gateway.acme_url(), inbox(2))
        .await
        .unwrap();
    assert_eq!(retry.status, 200);
    let again = http::post_json(&gateway.acme_url(), inbox(2))
        .await
        .unwrap();
    assert_eq!(again.json()["duplicate"], true);
    let stored = stored_events(&nats).await.unwrap();
    assert_eq!(
        stored.len(),
        2,
        "inbox 1 before the outage and inbox 2 after it"
    );
}

/// `/readyz`'s body, which says how deep the spool is: "(spool: N events, B bytes)".
async fn readyz(gateway: &GatewayProcess) -> Option<String> {
    let answer = http::get(&format!("{}/readyz", gateway.base_url())).await;
    answer.ok().map(|answer| answer.text())
}

/// The spool's depth in events, from `/readyz`'s body.
async fn spool_depth(gateway: &GatewayProcess) -> Option<u64> {
    let text = readyz(gateway).await?;
    let (_, after) = text.split_once("spool: ")?;
    after.split(' ').next()?.parse().ok()
}

/// One answer while NATS is down and the spool fills: 200 adds the event id to `answered`;
/// 503 must carry Retry-After and say `why`, and returns true.
fn spooled_or_refused(answer: &http::Answer, why: &str, answered: &mut Vec<String>) -> bool {
    match answer.status {
        200 => {
            answered.push(answer.json()["event_id"].as_str().unwrap().to_owned());
            false
        }
        503 => {
            assert!(answer.text().contains(why), "{}", answer.text());
            assert!(answer.headers.get("retry-after").is_some());
            true
        }
        other => panic!("unexpected {other}: {}", answer.text()),
    }
}

/// Posts `count` deliveries while NATS is down; each must be spooled and answered 2xx.
/// Returns their event ids.
async fn spool_deliveries(url: &str, count: u64) -> Vec<String> {
    let mut answered = Vec::new();
    for n in 0..count {
        let answer = http::post_json(url, inbox(n)).await.unwrap();
        assert_eq!(answer.status, 200, "spooled: {}", answer.text());
        assert_eq!(answer.json()["spooled"], true);
        answered.push(answer.json()["event_id"].as_str().unwrap().to_owned());
    }
    answered
}

/// Waits until the gateway's spool is empty: everything forwarded to JetStream, and the log
/// emptied (no bytes wait either), so the next event is published directly.
async fn wait_until_drained(gateway: &GatewayProcess) {
    c2d_testkit::eventually("the spool to drain", Duration::from_secs(60), || async {
        match readyz(gateway).await {
            Some(text) if text.contains("(spool: 0 events, 0 bytes)") => Ok(()),
            seen => Err(format!("/readyz: {seen:?}")),
        }
    })
    .await;
}

/// A gateway against `nats` that spools in `spool` when JetStream cannot take an event.
async fn spooling_gateway(nats: &NatsServer, spool: &tempfile::TempDir) -> GatewayProcess {
    GatewayProcess::start(
        GATEWAY,
        nats,
        &[("GATEWAY_SPOOL_DIR", spool.path().display().to_string())],
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_spool_nats_down_under_load_is_answered_2xx_and_nothing_is_lost_or_doubled() {
    let mut nats = NatsServer::start().await.unwrap();
    let spool = tempfile::tempdir().unwrap();
    let gateway = spooling_gateway(&nats, &spool).await;
    let url = gateway.hook_url("acme", ACME_TOKEN);
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(url, 8, stop.clone()));
    wait_for_answers(&gateway, 200).await;

    nats.stop();
    let outage = Instant::now();
    // At least 2 s down, and until deliveries are spooled: those in flight at the stop wait
    // out the publish timeout (2 s) first, so a single look at 2 s could come just before them.
    let mut spooled = 0;
    while spooled == 0 || outage.elapsed() < Duration::from_secs(2) {
        assert!(
            outage.elapsed() < Duration::from_secs(20),
            "deliveries during the outage are spooled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        spooled = spooled.max(spool_depth(&gateway).await.unwrap_or(0));
    }
    nats.restart().await.unwrap();
    let outage = outage.elapsed();
    // The load goes on past the recovery, not for a guessed second: until a hundred more
    // deliveries were answered 2xx (stored, or spooled while the spool drains) since NATS
    // came back.
    let answered = || async {
        let mut answered = 0.0;
        for outcome in ["stored", "spooled"] {
            let name = format!(r#"c2d_gateway_requests_total{{outcome="{outcome}"}}"#);
            answered += metric(&gateway, &name).await.unwrap_or(0.0);
        }
        answered
    };
    let at_recovery = answered().await;
    c2d_testkit::eventually(
        "100 more deliveries answered 2xx after NATS came back",
        Duration::from_secs(60),
        || async {
            let now = answered().await;
            if now >= at_recovery + 100.0 {
                Ok(())
            } else {
                Err(format!("{} since", now - at_recovery))
            }
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let tally = running.await.unwrap();
    wait_until_drained(&gateway).await;

    let in_stream = assert_all_answered_are_stored_once(&nats, &tally.stored).await;
    println!(
        "injected: NATS killed for {:.1} s under load; sent {}, answered 2xx {} (the spool {spooled} deep at most), not 2xx {}, in stream {in_stream}, lost 0, duplicated 0",
        outage.as_secs_f64(),
        tally.stored.len() + tally.failed.len(),
        tally.stored.len(),
        tally.failed.len(),
    );
    assert!(
        tally.failed.is_empty(),
        "with room in the spool every delivery is answered 2xx: {} were not",
        tally.failed.len()
    );
    assert_eq!(in_stream, tally.stored.len());
}

/// A gateway that was SIGKILLed with `count` events in its spool (NATS down), then started
/// again on the same spool, after `damage` had its way with the spool's directory, once NATS
/// was back; its spool is drained.
struct Restarted {
    nats: NatsServer,
    gateway: GatewayProcess,
    url: String,
    /// The ids answered 2xx before the kill.
    answered: Vec<String>,
    _spool: tempfile::TempDir,
}

async fn kill_while_spooling(count: u64, damage: impl FnOnce(&std::path::Path)) -> Restarted {
    let mut nats = NatsServer::start().await.unwrap();
    let spool = tempfile::tempdir().unwrap();
    let env = [("GATEWAY_SPOOL_DIR", spool.path().display().to_string())];
    let mut gateway = GatewayProcess::start(GATEWAY, &nats, &env).await.unwrap();
    let port = gateway.port;
    let url = gateway.hook_url("acme", ACME_TOKEN);
    nats.stop();
    let answered = spool_deliveries(&url, count).await;
    gateway.process.kill();
    damage(spool.path());
    nats.restart().await.unwrap();
    gateway = GatewayProcess::start_on(GATEWAY, port, &nats, &env)
        .await
        .unwrap();
    wait_until_drained(&gateway).await;
    Restarted {
        nats,
        gateway,
        url,
        answered,
        _spool: spool,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_while_spooling_forwards_its_spool_after_restart() {
    // SIGKILL with 300 events on disk and NATS still down.
    let Restarted {
        nats,
        gateway: _running,
        url,
        answered,
        ..
    } = kill_while_spooling(300, |_| {}).await;
    // Chat2Desk retries one of them later: recognised, not stored again.
    let again = http::post_json(&url, inbox(7)).await.unwrap();
    assert_eq!(again.json()["duplicate"], true);
    let in_stream = assert_all_answered_are_stored_once(&nats, &answered).await;
    println!(
        "injected: SIGKILL of the gateway holding 300 spooled events, NATS down; after restart: in stream {in_stream}, lost 0, duplicated 0"
    );
    assert_eq!(in_stream, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_damaged_on_disk_loses_only_the_damaged_event_and_says_so() {
    // One flipped byte in the middle of the log, as a failing disk would leave it.
    let (mut middle, mut len) = (0, 0);
    let Restarted {
        nats,
        gateway,
        url,
        answered,
        ..
    } = kill_while_spooling(100, |dir| {
        let log = dir.join("spool.log");
        let mut bytes = std::fs::read(&log).unwrap();
        (middle, len) = (bytes.len() / 2, bytes.len());
        bytes[middle] ^= 0xff;
        std::fs::write(&log, &bytes).unwrap();
    })
    .await;
    let stored: HashSet<String> = stored_events(&nats)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, event)| event.event_id)
        .collect();
    let lost: Vec<&String> = answered.iter().filter(|id| !stored.contains(*id)).collect();
    let metrics = http::get(&format!("{}/metrics", gateway.base_url()))
        .await
        .unwrap()
        .text();
    let skipped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("c2d_gateway_spool_unreadable_bytes "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    println!(
        "injected: a byte flipped at offset {middle} of a {len} byte spool of 100 events; after restart: in stream {}, lost {} (the damaged record, {skipped} bytes skipped)",
        stored.len(),
        lost.len()
    );
    assert_eq!(lost.len(), 1, "only the damaged record is lost: {lost:?}");
    assert_eq!(stored.len(), 99);
    assert!(skipped > 0 && skipped < len as u64 / 50, "{skipped}");
    // Chat2Desk's retry of the lost one (the 10 s, 5 min or 2 h retry) is stored.
    let lost_n = answered.iter().position(|id| id == lost[0]).unwrap() as u64;
    let retry = http::post_json(&url, inbox(lost_n)).await.unwrap();
    assert_eq!(retry.json()["duplicate"], false, "{}", retry.text());
    assert_eq!(stored_events(&nats).await.unwrap().len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_answers_503_and_keeps_what_it_acknowledged() {
    let mut nats = NatsServer::start().await.unwrap();
    let spool = tempfile::tempdir().unwrap();
    let gateway = GatewayProcess::start(
        GATEWAY,
        &nats,
        &[
            ("GATEWAY_SPOOL_DIR", spool.path().display().to_string()),
            // Room for a few dozen events: the disk is "full" long before NATS is back.
            ("GATEWAY_SPOOL_MAX_BYTES", "40000".into()),
        ],
    )
    .await
    .unwrap();
    let url = gateway.hook_url("acme", ACME_TOKEN);
    nats.stop();
    let (mut answered, mut refused) = (Vec::new(), 0);
    for n in 0..200 {
        let answer = http::post_json(&url, inbox(n)).await.unwrap();
        if spooled_or_refused(&answer, "GATEWAY_SPOOL_MAX_BYTES", &mut answered) {
            refused += 1;
        }
    }
    assert!(
        !answered.is_empty() && refused > 0,
        "{} spooled, {refused} refused",
        answered.len()
    );
    let ready = http::get(&format!("{}/readyz", gateway.base_url()))
        .await
        .unwrap();
    assert_eq!(
        ready.status,
        503,
        "full spool and no NATS: not ready ({})",
        ready.text()
    );
    nats.restart().await.unwrap();
    wait_until_drained(&gateway).await;
    let in_stream = assert_all_answered_are_stored_once(&nats, &answered).await;
    println!(
        "injected: NATS down and a spool of 40000 bytes; sent 200, spooled and answered 2xx {}, answered 503 {refused}; after NATS came back: in stream {in_stream}, lost 0, duplicated 0",
        answered.len()
    );
    assert_eq!(in_stream, answered.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_really_full_disk_answers_503_keeps_what_it_acknowledged_and_spools_again_once_freed() {
    // A test that cannot run fails: passing without having run would hide it.
    assert!(
        c2d_testkit::gateway::small_disks_available(),
        "this machine cannot mount a small filesystem (unshare -rm failed), so this test cannot make a real ENOSPC: \
         run the tests as root or enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)"
    );
    let mut nats = NatsServer::start().await.unwrap();
    let spool = tempfile::tempdir().unwrap();
    // 256 KiB of disk, a limit far above it: the disk fills before the spool's own limit.
    let disk_bytes = 256 * 1024;
    let gateway = GatewayProcess::start_with_spool_disk(
        GATEWAY,
        &nats,
        spool.path(),
        disk_bytes,
        &[("GATEWAY_SPOOL_MAX_BYTES", (64 << 20).to_string())],
    )
    .await
    .unwrap();
    let url = gateway.hook_url("acme", ACME_TOKEN);
    let mut answered = Vec::new();
    let post = {
        let url = url.clone();
        move |n| {
            let url = url.clone();
            async move { http::post_json(&url, inbox(n)).await.unwrap() }
        }
    };

    nats.stop();
    let (mut sent, mut refused) = (0, 0);
    while refused < 20 {
        assert!(sent < 5_000, "{sent} events spooled on a 256 KiB disk");
        let answer = post(sent).await;
        sent += 1;
        if spooled_or_refused(&answer, "No space left on device", &mut answered) {
            refused += 1;
        }
    }
    let spooled_first = answered.len();
    assert!(
        spooled_first > 0,
        "nothing was spooled before the disk filled"
    );

    // NATS comes back: the spool drains and the log is emptied, which frees the disk.
    nats.restart().await.unwrap();
    wait_until_drained(&gateway).await;
    // A second outage: the freed disk takes events again.
    nats.stop();
    for n in 0..50 {
        let answer = post(10_000 + n).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        answered.push(answer.json()["event_id"].as_str().unwrap().to_owned());
    }
    nats.restart().await.unwrap();
    wait_until_drained(&gateway).await;

    let in_stream = assert_all_answered_are_stored_once(&nats, &answered).await;
    println!(
        "injected: NATS down and the spool on a {} KiB filesystem until the kernel said ENOSPC; sent {}, spooled and answered 2xx {spooled_first}, answered 503 {refused}; NATS back, spool drained; NATS down again: 50 more spooled on the freed disk; in stream {in_stream}, lost 0, duplicated 0",
        disk_bytes / 1024,
        sent + 50,
    );
    assert_eq!(in_stream, answered.len());
}

/// A delivery well within the body limit (1 MiB) whose event (the body, and the fields read
/// from it) is larger than a NATS server at 64 KiB accepts.
fn large_inbox(n: u64) -> String {
    serde_json::json!({
        "message_id": 900_000 + n, "type": "from_client", "text": "a".repeat(40_000),
        "client_id": 5, "hook_type": "inbox",
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_larger_than_nats_accepts_gets_413_and_is_not_spooled() {
    // A server left at 64 KiB, and a delivery well within the body limit (1 MiB) whose event
    // (the body, and the fields read from it) is larger than that.
    let mut nats = NatsServer::start_with_max_payload("64KB").await.unwrap();
    let spool = tempfile::tempdir().unwrap();
    let gateway = spooling_gateway(&nats, &spool).await;
    gateway
        .wait_for_jetstream(Duration::from_secs(20))
        .await
        .unwrap();
    let url = gateway.hook_url("acme", ACME_TOKEN);
    let too_large = |answer: &http::Answer, when: &str| {
        assert_eq!(answer.status, 413, "{when}: {}", answer.text());
        let error = answer.json()["error"].as_str().unwrap().to_owned();
        assert!(
            error.contains("max_payload") && error.contains("GATEWAY_MAX_BODY_BYTES"),
            "{when}: {error}"
        );
    };

    // NATS up: the client refuses to send it, and a retry could not change that: 413, not 503.
    too_large(
        &http::post_json(&url, large_inbox(1)).await.unwrap(),
        "NATS up",
    );
    // NATS down: it is not acknowledged into the spool, where it would be stuck behind the
    // server's limit and block every event after it.
    nats.stop();
    too_large(
        &http::post_json(&url, large_inbox(2)).await.unwrap(),
        "NATS down",
    );
    let small = http::post_json(&url, inbox(3)).await.unwrap();
    assert_eq!(small.status, 200, "{}", small.text());
    assert_eq!(small.json()["spooled"], true);
    assert_eq!(
        spool_depth(&gateway).await,
        Some(1),
        "only the small event waits"
    );

    nats.restart().await.unwrap();
    wait_until_drained(&gateway).await;
    let id = small.json()["event_id"].as_str().unwrap().to_owned();
    let in_stream = assert_all_answered_are_stored_once(&nats, &[id]).await;
    println!(
        "injected: NATS at max_payload 64KB, two deliveries of 40,000 characters (NATS up, then down) and a small one; answered 413 2, spooled 1; in stream {in_stream}"
    );
    assert_eq!(in_stream, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_spooled_before_nats_was_known_that_nats_refuses_is_set_aside_not_in_the_way() {
    // The gateway starts while NATS is down: it cannot know the server's max_payload yet, so
    // it spools a large event along with the others.
    let mut nats = NatsServer::start_with_max_payload("64KB").await.unwrap();
    nats.stop();
    let spool = tempfile::tempdir().unwrap();
    let env = [("GATEWAY_SPOOL_DIR", spool.path().display().to_string())];
    let mut gateway = GatewayProcess::start(GATEWAY, &nats, &env).await.unwrap();
    let port = gateway.port;
    let url = gateway.hook_url("acme", ACME_TOKEN);
    let mut answered = Vec::new();
    for body in [inbox(1), large_inbox(1), inbox(2)] {
        let answer = http::post_json(&url, body).await.unwrap();
        assert_eq!(answer.json()["spooled"], true, "{}", answer.text());
        answered.push(answer.json()["event_id"].as_str().unwrap().to_owned());
    }

    // NATS at 64 KB comes up: the small events are forwarded, the large one is set aside
    // rather than holding them up.
    nats.restart().await.unwrap();
    wait_until_drained(&gateway).await;
    let metrics = http::get(&format!("{}/metrics", gateway.base_url()))
        .await
        .unwrap()
        .text();
    assert!(
        metrics.contains("c2d_gateway_spool_set_aside 1"),
        "{metrics}"
    );
    let small = [answered[0].clone(), answered[2].clone()];
    assert_eq!(assert_all_answered_are_stored_once(&nats, &small).await, 2);
    assert!(spool.path().join("spool.rejected").exists());

    // The operator raises max_payload and restarts the gateway: the set-aside event is stored.
    nats.set_max_payload("8MB");
    nats.restart().await.unwrap();
    gateway.process.kill();
    gateway = GatewayProcess::start_on(GATEWAY, port, &nats, &env)
        .await
        .unwrap();
    wait_until_drained(&gateway).await;
    let in_stream = assert_all_answered_are_stored_once(&nats, &answered).await;
    println!(
        "injected: the gateway started with NATS down, spooled 3 events, one of 40,000 characters; NATS came up at max_payload 64KB: forwarded 2, set aside 1; max_payload raised to 8MB and the gateway restarted: in stream {in_stream}, lost 0, duplicated 0"
    );
    assert_eq!(in_stream, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_spool_empties_the_spool_of_a_gateway_that_is_gone_and_exits() {
    let mut nats = NatsServer::start().await.unwrap();
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().display().to_string();
    let mut gateway =
        GatewayProcess::start(GATEWAY, &nats, &[("GATEWAY_SPOOL_DIR", spool_dir.clone())])
            .await
            .unwrap();
    nats.stop();
    let answered = spool_deliveries(&gateway.acme_url(), 120).await;
    gateway.process.kill();
    nats.restart().await.unwrap();

    // As the Job in deploy/jobs/forward-spool.yaml runs it, on the orphaned volume.
    let mut forwarder = c2d_testkit::ServiceProcess::spawn_with_args(
        GATEWAY,
        &["--forward-spool"],
        &[
            ("NATS_URL", nats.url()),
            ("GATEWAY_SPOOL_DIR", spool_dir),
            (
                "GATEWAY_TOKENS",
                "none=forwarding-only-serves-no-webhooks".to_owned(),
            ),
        ],
    )
    .unwrap();
    let clean = tokio::task::spawn_blocking(move || forwarder.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(clean, "--forward-spool exits 0 once the spool is empty");
    let in_stream = assert_all_answered_are_stored_once(&nats, &answered).await;
    println!(
        "injected: SIGKILL of a gateway holding 120 spooled events, never restarted; c2d-gateway --forward-spool on its spool: in stream {in_stream}, lost 0, duplicated 0"
    );
    assert_eq!(in_stream, 120);
}
