//! c2d-analytics as several replicas sharing the log's partitions, against a real nats-server
//! and gateway: every tenant's answers, asked of any replica, equal those of one replica that
//! read the whole log; and again after a replica is stopped and another added. While a
//! partition moves, its tenants are answered in full or told to ask again, never from a part
//! of their history; and a partition that moves keeps the history the log no longer holds,
//! whether its owner stopped or was killed.

use std::collections::BTreeMap;
use std::time::Duration;

use c2d_analytics::shared_snapshots::SharedSnapshots;
use c2d_analytics::{Analytics, Config, Rebuild};
use c2d_proto::analytics::AnalyticsServiceClient;
use c2d_proto::partitions::PARTITIONED_STREAM;
use c2d_testkit::partitions::wait_for_owners;
use c2d_testkit::replicas::{
    analytics_answers, conversation, post_conversations, requests_closed, requests_closed_or_status,
};
use c2d_testkit::{Killable, Pipeline, eventually, publish_deliveries, stream_messages};
use tonic_health::pb::health_check_response::ServingStatus;

const PARTITIONS: u32 = 8;
const TENANTS: usize = 12;

/// c2d-analytics in-process on a free port and a runtime of its own, as a pod: a replica when
/// `replica` is named, else one process that reads the whole log.
struct Running {
    addr: String,
    service: Killable<c2d_analytics::AnalyticsError>,
    _data: tempfile::TempDir,
}

async fn start(pipeline: &Pipeline, replica: Option<&str>) -> Running {
    start_with(pipeline, replica, Rebuild::No).await
}

async fn start_with(pipeline: &Pipeline, replica: Option<&str>, rebuild: Rebuild) -> Running {
    let data = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (url, dir) = (pipeline.nats.url(), data.path().display().to_string());
    let replica = replica.map(str::to_owned);
    let config = Config::from_lookup(|name| match name {
        "NATS_URL" => Some(url.clone()),
        "ANALYTICS_DATA_DIR" => Some(dir.clone()),
        "ANALYTICS_METRICS_ADDR" => Some("off".into()),
        "ANALYTICS_PARTITIONS" => replica.as_ref().map(|_| PARTITIONS.to_string()),
        "ANALYTICS_REPLICA" => replica.clone(),
        "ANALYTICS_ADVERTISE_ADDR" => Some(addr.clone()),
        "ANALYTICS_LEASE_SECS" => Some("2".into()),
        "ANALYTICS_SHARED_SNAPSHOT_SECS" => Some("1".into()),
        _ => None,
    })
    .unwrap();
    let analytics = Analytics::open(config, rebuild).unwrap();
    let service = Killable::spawn(|shutdown| {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        analytics.run(listener, shutdown)
    });
    Running {
        addr,
        service,
        _data: data,
    }
}

impl Running {
    async fn client(&self) -> AnalyticsServiceClient<tonic::transport::Channel> {
        c2d_testkit::grpc::connected(
            "AnalyticsService",
            &format!("http://{}", self.addr),
            Duration::from_secs(10),
            AnalyticsServiceClient::connect,
        )
        .await
    }

    async fn stop(self) {
        self.service.stop().await;
    }

    /// Stops it as a deleted pod stops: nothing saved, shared or released.
    fn kill(self) {
        self.service.kill();
    }
}

async fn answers(running: &Running, tenant: &str) -> Result<String, String> {
    analytics_answers(&mut running.client().await, tenant).await
}

async fn closed(running: &Running, tenant: &str) -> Result<u64, String> {
    requests_closed(&mut running.client().await, tenant).await
}

/// Waits until `running` counts `requests` closed requests of tenant-0: it has read that far.
async fn has_closed(running: &Running, requests: u64, what: &str) {
    eventually(what, Duration::from_secs(60), || async move {
        let closed = closed(running, "tenant-0").await?;
        (closed == requests)
            .then_some(())
            .ok_or(format!("{closed} requests closed"))
    })
    .await;
}

/// Waits until the partitions are shared by `replicas`, each owning some.
async fn owners_are(pipeline: &Pipeline, replicas: &[&str]) {
    wait_for_owners(&pipeline.nats, "analytics", PARTITIONS, replicas).await;
}

/// Waits until `replica` reports SERVING: every partition it reads has caught up.
async fn is_ready(replica: &Running) {
    let endpoint = format!("http://{}", replica.addr);
    eventually("the replica is ready", Duration::from_secs(30), || {
        let endpoint = endpoint.clone();
        async move {
            match c2d_testkit::grpc::health(&endpoint, c2d_proto::analytics::SERVICE_NAME).await {
                Ok(ServingStatus::Serving) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
}

/// Waits until `replica` answers every tenant as `whole` does.
async fn agrees(replica: &Running, whole: &Running, what: &str) {
    eventually(what, Duration::from_secs(60), || async move {
        for n in 0..TENANTS {
            let tenant = format!("tenant-{n}");
            let expected = answers(whole, &tenant).await?;
            let got = answers(replica, &tenant).await?;
            if got != expected {
                return Err(format!("{tenant} differs"));
            }
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_answer_every_tenant_as_one_process_reading_the_whole_log_does() {
    let pipeline = Pipeline::start_partitioned(PARTITIONS, TENANTS).await;
    post_conversations(&pipeline, 0..5, TENANTS).await;
    let whole = start(&pipeline, None).await;
    let first = start(&pipeline, Some("analytics-0")).await;
    let second = start(&pipeline, Some("analytics-1")).await;
    // The whole-log process has every event once its answers stop changing with the log's.
    has_closed(&whole, 5, "the whole-log process caught up").await;
    owners_are(&pipeline, &["analytics-0", "analytics-1"]).await;
    agrees(
        &first,
        &whole,
        "analytics-0 answers every tenant, forwarding to analytics-1",
    )
    .await;
    agrees(
        &second,
        &whole,
        "analytics-1 answers every tenant, forwarding to analytics-0",
    )
    .await;

    for replica in [&first, &second] {
        is_ready(replica).await;
    }

    // analytics-0 stops (its partitions are released), analytics-2 joins, more events arrive.
    first.stop().await;
    let third = start(&pipeline, Some("analytics-2")).await;
    post_conversations(&pipeline, 5..8, TENANTS).await;
    has_closed(&whole, 8, "the whole-log process has the new events").await;
    owners_are(&pipeline, &["analytics-1", "analytics-2"]).await;
    agrees(&second, &whole, "analytics-1 after the change of replicas").await;
    agrees(&third, &whole, "analytics-2 after the change of replicas").await;
    is_ready(&third).await;
    second.stop().await;
    third.stop().await;
    whole.stop().await;
}

/// Asks the replicas at `addrs` for every tenant's closed requests, over and over until
/// `stop`; returns how many answers were "ask again" (UNAVAILABLE), and every answer that
/// was neither that nor `expected`.
async fn ask_meanwhile(
    addrs: Vec<String>,
    expected: Vec<u64>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> (usize, Vec<String>) {
    let (mut unavailable, mut wrong) = (0, Vec::new());
    while !*stop.borrow_and_update() {
        for addr in &addrs {
            let Ok(mut client) = AnalyticsServiceClient::connect(format!("http://{addr}")).await
            else {
                unavailable += 1;
                continue;
            };
            for (n, expected) in expected.iter().enumerate() {
                let tenant = format!("tenant-{n}");
                match requests_closed_or_status(&mut client, &tenant).await {
                    Ok(closed) if closed == *expected => {}
                    Ok(closed) => wrong.push(format!("{addr}: {tenant} {closed} of {expected}")),
                    Err(status) if status.code() == tonic::Code::Unavailable => unavailable += 1,
                    Err(status) => wrong.push(format!("{addr}: {tenant}: {status}")),
                }
            }
        }
    }
    (unavailable, wrong)
}

/// A replica that joins takes half the partitions and reads each one's history while it
/// already serves: the moved tenants are answered with UNAVAILABLE until then, by it and by
/// the replica that forwards to it, never with the part read so far.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_partition_is_unavailable_while_it_is_replayed_never_partial() {
    let pipeline = Pipeline::start_partitioned(PARTITIONS, TENANTS).await;
    // Straight to the stream: enough history that reading a partition takes a while.
    let deliveries = (0..400).flat_map(|request| {
        (0..TENANTS).flat_map(move |n| {
            conversation(request, n)
                .into_iter()
                .map(move |body| (format!("tenant-{n}"), body.to_string().into()))
        })
    });
    publish_deliveries(&pipeline.nats, deliveries)
        .await
        .unwrap();
    let first = start(&pipeline, Some("analytics-0")).await;
    owners_are(&pipeline, &["analytics-0"]).await;
    is_ready(&first).await;
    let mut expected = Vec::new();
    for n in 0..TENANTS {
        let closed = closed(&first, &format!("tenant-{n}")).await.unwrap();
        assert!(closed > 0);
        expected.push(closed);
    }

    let second = start(&pipeline, Some("analytics-1")).await;
    let (stop_asking, stop) = tokio::sync::watch::channel(false);
    let asking = tokio::spawn(ask_meanwhile(
        vec![first.addr.clone(), second.addr.clone()],
        expected,
        stop,
    ));
    owners_are(&pipeline, &["analytics-0", "analytics-1"]).await;
    is_ready(&second).await;
    has_closed(
        &second,
        closed(&first, "tenant-0").await.unwrap(),
        "analytics-1 answers",
    )
    .await;
    let _ = stop_asking.send(true);
    let (unavailable, wrong) = asking.await.unwrap();
    println!("while the partitions moved: {unavailable} answers were UNAVAILABLE");
    assert!(
        wrong.is_empty(),
        "answers from part of the history: {wrong:#?}"
    );
    second.stop().await;
    first.stop().await;
}

/// Every event the partitioned log holds is dropped, as its `max_age` drops old events: what a
/// partition's next owner cannot replay must come from a snapshot.
async fn log_forgets_its_history(pipeline: &Pipeline) {
    let jetstream = pipeline.nats.jetstream().await;
    let stream = jetstream.get_stream(PARTITIONED_STREAM).await.unwrap();
    stream.purge().await.unwrap();
}

/// Waits until every partition's shared snapshot holds the partition's last event.
async fn all_shared(pipeline: &Pipeline) {
    let shared = SharedSnapshots::open(&pipeline.client().await, 1)
        .await
        .unwrap();
    let jetstream = pipeline.nats.jetstream().await;
    let mut last = BTreeMap::new();
    for message in stream_messages(&jetstream, PARTITIONED_STREAM)
        .await
        .unwrap()
    {
        let partition: u32 = message
            .subject
            .split('.')
            .nth(2)
            .and_then(|n| n.parse().ok())
            .expect("chat2desk.partitioned.{n}.…");
        last.insert(partition, message.sequence);
    }
    let (shared, last) = (&shared, &last);
    eventually(
        "every partition's snapshot is shared",
        Duration::from_secs(30),
        || async move {
            for (&partition, &sequence) in last {
                let held = shared
                    .standing(partition)
                    .await
                    .map_err(|error| error.to_string())?;
                if held.is_none_or(|held| held.sequence < sequence) {
                    return Err(format!("partition {partition}: {held:?}, last {sequence}"));
                }
            }
            Ok(())
        },
    )
    .await;
}

/// A partition that moves keeps its tenants' whole history, also the part the log no longer
/// holds: its next owner starts from the snapshot its last owner shared, when that owner was
/// stopped (as in a rolling update) and when it was killed (as a deleted pod).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_partition_keeps_the_history_the_log_no_longer_holds() {
    let pipeline = Pipeline::start_partitioned(PARTITIONS, TENANTS).await;
    // Reads the whole log, CHAT2DESK, which keeps every event here.
    let whole = start(&pipeline, None).await;
    post_conversations(&pipeline, 0..4, TENANTS).await;
    let first = start(&pipeline, Some("analytics-0")).await;
    owners_are(&pipeline, &["analytics-0"]).await;
    has_closed(&first, 4, "analytics-0 read the partitions").await;
    first.stop().await;

    log_forgets_its_history(&pipeline).await;
    post_conversations(&pipeline, 4..6, TENANTS).await;
    let second = start(&pipeline, Some("analytics-1")).await;
    owners_are(&pipeline, &["analytics-1"]).await;
    has_closed(&whole, 6, "the whole-log process has the new events").await;
    agrees(
        &second,
        &whole,
        "analytics-1 holds what analytics-0 shared as it stopped, and the events after it",
    )
    .await;

    all_shared(&pipeline).await;
    second.kill();
    log_forgets_its_history(&pipeline).await;
    post_conversations(&pipeline, 6..7, TENANTS).await;
    let third = start(&pipeline, Some("analytics-2")).await;
    owners_are(&pipeline, &["analytics-2"]).await;
    has_closed(&whole, 7, "the whole-log process has the newest events").await;
    agrees(
        &third,
        &whole,
        "analytics-2 holds what analytics-1 shared before it was killed, and the events after it",
    )
    .await;
    third.stop().await;
    whole.stop().await;
}

/// Replicas that rebuild together (`--rebuild=ID`, one id for all of them, started one after
/// the other) never take up a partition's snapshot from before the rebuild, and always take up
/// one the rebuild wrote, also when a partition comes to them long after they started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_rebuilding_together_take_up_only_the_rebuilds_snapshots() {
    let pipeline = Pipeline::start_partitioned(PARTITIONS, TENANTS).await;
    post_conversations(&pipeline, 0..4, TENANTS).await;
    let before = start(&pipeline, Some("analytics-0")).await;
    owners_are(&pipeline, &["analytics-0"]).await;
    has_closed(&before, 4, "analytics-0 read the partitions").await;
    before.stop().await;
    // What the rebuild replays differs from what the snapshots before it hold.
    log_forgets_its_history(&pipeline).await;
    post_conversations(&pipeline, 4..6, TENANTS).await;

    let id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let first = start_with(&pipeline, Some("analytics-1"), Rebuild::Together(id)).await;
    owners_are(&pipeline, &["analytics-1"]).await;
    has_closed(
        &first,
        2,
        "analytics-1 rebuilt from the log, not from the snapshots before the rebuild",
    )
    .await;
    let second = start_with(&pipeline, Some("analytics-2"), Rebuild::Together(id)).await;
    owners_are(&pipeline, &["analytics-1", "analytics-2"]).await;
    all_shared(&pipeline).await;
    // From now on the rebuild's snapshots alone hold the first two conversations.
    log_forgets_its_history(&pipeline).await;
    post_conversations(&pipeline, 6..7, TENANTS).await;
    first.stop().await;
    owners_are(&pipeline, &["analytics-2"]).await;
    has_closed(
        &second,
        3,
        "analytics-2 took up the partitions analytics-1 rebuilt, from their snapshots",
    )
    .await;
    second.stop().await;
}
