//! The production shape on loopback: a 3-node NATS cluster with the CHAT2DESK stream at three
//! replicas, the gateway as its own process, and a consumer. Under a steady load of webhooks,
//! the node that leads the stream is killed (SIGKILL). A 2xx from the gateway promises the
//! event is stored: every event answered 2xx must be in the stream afterwards, once, and
//! reach the consumer.
//!
//! Run twice: with the spool, as in production, every delivery is answered 2xx through the
//! leader election (the gateway spools what JetStream cannot take meanwhile); without it, what
//! failed during the failover is answered 503 (Chat2Desk retries it, but only three times).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use c2d_subscriber::{Delivery, HandlerError, StartAt, Subscriber, SubscriberConfig};
use c2d_testkit::gateway::ACME_TOKEN;
use c2d_testkit::{GatewayProcess, NatsCluster, inbox, workspace_binary};

const POSTERS: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_stream_leader_under_load_with_the_spool_answers_every_delivery_2xx_once() {
    let refused = leader_kill(true).await;
    assert_eq!(
        refused, 0,
        "with the spool, no delivery is refused during the leader election"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_stream_leader_under_load_without_the_spool_loses_no_acknowledged_event() {
    leader_kill(false).await;
}

/// Kills the stream's leader under load; checks that every event answered 2xx is in the stream
/// once and reaches a consumer. Returns how many deliveries were refused.
async fn leader_kill(spool: bool) -> u64 {
    // Each phase says when it ended, to tell which one a slow run spent its time in.
    let started = Instant::now();
    let mut cluster = NatsCluster::start(3).await.expect("a 3-node NATS cluster");
    let gateway_bin = workspace_binary("c2d-gateway").unwrap();
    let spool_dir = tempfile::tempdir().unwrap();
    let spool_setting = if spool {
        spool_dir.path().display().to_string()
    } else {
        "off".to_owned()
    };
    let gateway = GatewayProcess::start(
        gateway_bin.to_str().unwrap(),
        &cluster.nodes[0],
        &[
            ("NATS_URL", cluster.urls()),
            ("GATEWAY_STREAM_REPLICAS", "3".into()),
            ("GATEWAY_SPOOL_DIR", spool_setting),
        ],
    )
    .await
    .expect("the gateway starts against the cluster");
    // With a spool the gateway is ready at once; the failover is tested once it stores directly.
    gateway
        .wait_for_jetstream(Duration::from_secs(60))
        .await
        .expect("the gateway reaches JetStream");
    let url = gateway.hook_url("acme", ACME_TOKEN);

    // A consumer, connected to the cluster like any service.
    let consumed: Arc<Mutex<HashSet<String>>> = Arc::default();
    let client = async_nats::connect(c2d_telemetry::env::list(&cluster.urls()))
        .await
        .unwrap();
    let subscriber = Subscriber::open(
        client.clone(),
        // A delivery lost in the failover comes back after ack_wait: short, for the test.
        SubscriberConfig::new("cluster-test")
            .start_at(StartAt::Beginning)
            .ack_wait(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    let (stop_consumer, consumer_stopped) = tokio::sync::oneshot::channel::<()>();
    let seen = Arc::clone(&consumed);
    let consumer = tokio::spawn(async move {
        subscriber
            .run(
                move |delivery: Delivery| {
                    let seen = Arc::clone(&seen);
                    async move {
                        seen.lock().unwrap().insert(delivery.event.event_id.clone());
                        Ok::<(), HandlerError>(())
                    }
                },
                async {
                    let _ = consumer_stopped.await;
                },
            )
            .await
    });

    // Steady load: each poster sends new events one after another and keeps the ids of those
    // answered 2xx.
    let running = Arc::new(AtomicBool::new(true));
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let refused = Arc::new(Mutex::new(0u64));
    let mut posters = Vec::new();
    for poster in 0..POSTERS {
        let (running, acknowledged, refused, url) = (
            Arc::clone(&running),
            Arc::clone(&acknowledged),
            Arc::clone(&refused),
            url.clone(),
        );
        posters.push(tokio::spawn(async move {
            let mut n = poster;
            let mut sent = 0u64;
            while running.load(Ordering::Relaxed) {
                sent += 1;
                match c2d_testkit::http::post(
                    &url,
                    &[("content-type", "application/json")],
                    inbox(n),
                )
                .await
                {
                    Ok(answer) if answer.status == 200 => {
                        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
                        acknowledged
                            .lock()
                            .unwrap()
                            .push(body["event_id"].as_str().unwrap().to_owned());
                    }
                    _ => {
                        // As a sender does: a refusal is retried later, not at once.
                        *refused.lock().unwrap() += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                n += POSTERS;
            }
            sent
        }));
    }

    // Under load before the kill: some hundreds of events acknowledged.
    c2d_testkit::eventually(
        "events stored before the kill",
        Duration::from_secs(60),
        || {
            let stored = acknowledged.lock().unwrap().len();
            async move {
                (stored >= 300)
                    .then_some(())
                    .ok_or(format!("{stored} stored"))
            }
        },
    )
    .await;
    let jetstream = async_nats::jetstream::new(client.clone());
    let leader = jetstream
        .get_stream(c2d_proto::events::STREAM)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .expect("the stream has a leader");
    let before_kill = acknowledged.lock().unwrap().len();
    cluster
        .node(&leader)
        .expect("the leader is one of ours")
        .stop();
    println!(
        "killed {leader}, the CHAT2DESK stream's leader, after {before_kill} events were acknowledged, at {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The load goes on until the cluster has recovered: a few hundred more events stored.
    let killed_at = Instant::now();
    while acknowledged.lock().unwrap().len() < before_kill + 300 {
        assert!(
            killed_at.elapsed() < Duration::from_secs(60),
            "the gateway does not store events again after the failover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "storing again {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );
    // And on for a few hundred more, with the cluster whole again but for the dead node.
    let recovered = acknowledged.lock().unwrap().len();
    c2d_testkit::eventually(
        "events stored after recovery",
        Duration::from_secs(60),
        || {
            let stored = acknowledged.lock().unwrap().len();
            async move {
                (stored >= recovered + 300)
                    .then_some(())
                    .ok_or(format!("{} stored since", stored - recovered))
            }
        },
    )
    .await;
    running.store(false, Ordering::Relaxed);
    let mut sent = 0;
    for poster in posters {
        sent += poster.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let refused = *refused.lock().unwrap();

    // What the gateway spooled during the election is forwarded before the stream is read.
    let ready = format!("{}/readyz", gateway.base_url());
    let deadline = Instant::now() + Duration::from_secs(60);
    while spool
        && !c2d_testkit::http::get(&ready)
            .await
            .is_ok_and(|answer| answer.text().contains("(spool: 0 events, 0 bytes)"))
    {
        assert!(
            Instant::now() < deadline,
            "the gateway's spool does not drain"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "load stopped and the spool empty at {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Every acknowledged event is stored once, on the surviving nodes (read once the stream
    // has its new leader).
    let deadline = Instant::now() + Duration::from_secs(30);
    let new_leader = loop {
        let info = match jetstream.get_stream(c2d_proto::events::STREAM).await {
            Ok(mut stream) => stream.info().await.ok().cloned(),
            Err(_) => None,
        };
        if let Some(leader) = info.and_then(|i| i.cluster).and_then(|c| c.leader) {
            break leader;
        }
        assert!(Instant::now() < deadline, "the stream has no new leader");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // A cluster that has just elected a leader may still time out a first read: the read is
    // tried again until the deadline (what it must find is checked below, unchanged).
    let stored = loop {
        match c2d_subscriber::history::read(client.clone(), StartAt::Beginning, None, usize::MAX)
            .await
        {
            Ok(history) => break history.events,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "the stream cannot be read: {error}"
                );
                println!("reading the stream after the failover: {error}; again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    println!(
        "{new_leader} leads the stream now; read it at {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut in_stream: HashSet<String> = HashSet::new();
    let mut duplicates = 0;
    for stored in &stored {
        if !in_stream.insert(stored.event.event_id.clone()) {
            duplicates += 1;
        }
    }
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !in_stream.contains(*id))
        .collect();
    println!(
        "spool {}: sent {sent}, answered 2xx {}, refused (503, retried by Chat2Desk) {refused}, in stream {}, duplicates {duplicates}, lost {}",
        if spool { "on" } else { "off" },
        acknowledged.len(),
        stored.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert_eq!(duplicates, 0);

    // And the consumer gets every one of them.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let missing = acknowledged
            .iter()
            .filter(|id| !consumed.lock().unwrap().contains(*id))
            .count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} acknowledged events never reached the consumer"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "the consumer saw all {} acknowledged events at {:.1} s",
        acknowledged.len(),
        started.elapsed().as_secs_f64()
    );
    let _ = stop_consumer.send(());
    let _ = consumer.await;
    refused
}
