//! `make bench-scale`: how c2d-analytics' replay scales with replicas. One log of many
//! tenants, filed by the gateway's 16 partitions, is replayed from nothing by 1, 2 and 3
//! `c2d-analytics` processes (the release binary, as deployed) sharing the partitions through
//! their leases; each run is timed from the processes' start until every partition is read
//! by exactly the live replicas and each has caught up, as their `/metrics` report.
//!
//! On a 2-core machine three replicas and nats-server share two cores, so the total rate
//! cannot grow much: the figure that shows the scaling is each replica's CPU per event, which
//! stays flat while each replica's share of the log shrinks. The replicas' resident memory
//! after the replay, less an idle process's, gives the memory a tenant costs, the input the
//! 10,000-tenant model of docs/scaling.md needs.
//!
//! `BENCH_EVENTS` (default 600000) and `BENCH_TENANTS` (default 1000) set the log. Each run's
//! time includes the processes' start and the fifth of a lease (0.6 s here) replicas wait
//! before their first claim, so that replicas started together share from the start.

use std::time::{Duration, Instant};

use c2d_proto::events::STREAM;
use c2d_proto::partitions::PARTITIONED_STREAM;
use c2d_testkit::load::{bench_setting, contact_center_delivery, cpu_time, resident_kib};
use c2d_testkit::{NatsServer, Pipeline, ServiceProcess, free_port, http, publish_deliveries};

const PARTITIONS: u32 = 16;
/// 2024-03-01T00:00:00Z, and the 30 days the events spread over.
const START: i64 = 1_709_251_200;
const SPAN: i64 = 30 * 86_400;
const LEASE_SECS: u64 = 3;
const BINARY: &str = env!("CARGO_BIN_EXE_c2d-analytics");

fn main() -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(bench())
}

/// One replica, and where its metrics are served.
struct Replica {
    name: String,
    process: ServiceProcess,
    metrics_url: String,
}

/// What a replica reported at the end of a run.
struct Finished {
    name: String,
    handled: u64,
    partitions: u64,
    cpu: Duration,
    resident_kib: u64,
}

async fn bench() -> anyhow::Result<()> {
    let events = bench_setting("BENCH_EVENTS", 600_000);
    let tenants = bench_setting("BENCH_TENANTS", 1_000);
    println!(
        "bench-scale: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let pipeline = Pipeline::start_partitioned(PARTITIONS, 1).await;
    // A request's four events belong to one tenant; requests go round the tenants.
    let bytes = publish_deliveries(
        &pipeline.nats,
        (0..events).map(|n| {
            let tenant = format!("tenant-{}", (n / 4) % tenants);
            (tenant, contact_center_delivery(n, START, SPAN).into())
        }),
    )
    .await?;
    let (log_bytes, partitioned_bytes) = filed(&pipeline.nats, events).await?;
    println!(
        "log: {events} events of {tenants} tenants, {:.0} MB of events; {STREAM} {:.0} MB and {PARTITIONED_STREAM} {:.0} MB on disk ({PARTITIONS} partitions)",
        bytes as f64 / 1e6,
        log_bytes as f64 / 1e6,
        partitioned_bytes as f64 / 1e6,
    );
    let idle_kib = idle_resident_kib().await?;

    println!();
    println!(
        "{:<9} {:>9} {:>11}   per replica: events, partitions, CPU per event, resident memory",
        "replicas", "seconds", "events/s"
    );
    let nats_pid = pipeline.nats.pid().unwrap_or_default();
    let mut per_tenant = None;
    for replicas in 1..=3 {
        let nats_before = cpu_time(nats_pid).unwrap_or_default();
        let (seconds, finished) = replay(&pipeline.nats, replicas, events).await?;
        let nats_cpu = cpu_time(nats_pid).unwrap_or_default() - nats_before;
        let shares: Vec<String> = finished
            .iter()
            .map(|f| {
                format!(
                    "{}: {} ev, {} p, {:.1} µs, {:.0} MB",
                    f.name,
                    f.handled,
                    f.partitions,
                    f.cpu.as_secs_f64() * 1e6 / f.handled.max(1) as f64,
                    f.resident_kib as f64 / 1024.0
                )
            })
            .collect();
        println!(
            "{replicas:<9} {seconds:>9.2} {:>11.0}   {}; nats-server {:.1} µs per event",
            events as f64 / seconds,
            shares.join("; "),
            nats_cpu.as_secs_f64() * 1e6 / events as f64
        );
        if replicas == 1 {
            let held = finished[0].resident_kib.saturating_sub(idle_kib);
            per_tenant = Some(held as f64 * 1024.0 / tenants as f64);
        }
    }
    if let Some(per_tenant) = per_tenant {
        println!();
        println!(
            "memory: an idle replica {:.0} MB; one replica holding all {tenants} tenants ({} events each) {:.1} KB per tenant above it",
            idle_kib as f64 / 1024.0,
            events / tenants,
            per_tenant / 1e3
        );
    }
    Ok(())
}

/// Waits until the gateway's source has filed every event in the partitioned copy; the two
/// streams' sizes on disk.
async fn filed(nats: &NatsServer, events: u64) -> anyhow::Result<(u64, u64)> {
    let jetstream = nats.jetstream().await;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut partitioned = jetstream.get_stream(PARTITIONED_STREAM).await?;
        let partitioned = partitioned.info().await?.state.clone();
        if partitioned.messages >= events {
            let mut log = jetstream.get_stream(STREAM).await?;
            return Ok((log.info().await?.state.bytes, partitioned.bytes));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{PARTITIONED_STREAM} holds {} of {events} events after 10 minutes",
            partitioned.messages
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The resident memory of a replica that holds nothing: started against a server without the
/// log, where it waits for the stream.
async fn idle_resident_kib() -> anyhow::Result<u64> {
    let empty = NatsServer::start().await?;
    let dir = tempfile::tempdir()?;
    let replica = spawn(&empty, &dir, "idle")?;
    replica.wait_until_serving().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(resident_kib(replica.process.id()).unwrap_or(0))
}

fn spawn(nats: &NatsServer, dir: &tempfile::TempDir, name: &str) -> anyhow::Result<Replica> {
    let (grpc, metrics) = (free_port(), free_port());
    let env = [
        ("NATS_URL", nats.url()),
        ("ANALYTICS_GRPC_ADDR", format!("127.0.0.1:{grpc}")),
        ("ANALYTICS_METRICS_ADDR", format!("127.0.0.1:{metrics}")),
        (
            "ANALYTICS_DATA_DIR",
            dir.path().join(name).display().to_string(),
        ),
        ("ANALYTICS_PARTITIONS", PARTITIONS.to_string()),
        ("ANALYTICS_REPLICA", name.to_owned()),
        ("ANALYTICS_ADVERTISE_ADDR", format!("127.0.0.1:{grpc}")),
        ("ANALYTICS_LEASE_SECS", LEASE_SECS.to_string()),
        // Saved once when it stops: the runs compare replay, not snapshot writing.
        ("ANALYTICS_SNAPSHOT_SECS", "3600".to_owned()),
        ("RUST_LOG", "error".to_owned()),
    ];
    Ok(Replica {
        name: name.to_owned(),
        process: ServiceProcess::spawn(BINARY, &env)?,
        metrics_url: format!("http://127.0.0.1:{metrics}/metrics"),
    })
}

impl Replica {
    /// The replica's metrics as name → value (samples without labels).
    async fn metrics(&self) -> Option<std::collections::HashMap<String, f64>> {
        let answer = http::get(&self.metrics_url).await.ok()?;
        (answer.status == 200).then(|| {
            answer
                .text()
                .lines()
                .filter(|line| !line.starts_with('#'))
                .filter_map(|line| {
                    let (name, value) = line.split_once(' ')?;
                    Some((name.to_owned(), value.trim().parse().ok()?))
                })
                .collect()
        })
    }

    async fn wait_until_serving(&self) -> anyhow::Result<()> {
        for _ in 0..600 {
            if self.metrics().await.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("{} did not serve its metrics in 30 s", self.name)
    }
}

/// `replicas` fresh replicas replay the log; the seconds until all of them caught up with
/// every partition shared, and what each did.
async fn replay(
    nats: &NatsServer,
    replicas: usize,
    events: u64,
) -> anyhow::Result<(f64, Vec<Finished>)> {
    let dir = tempfile::tempdir()?;
    let names: Vec<String> = (0..replicas)
        .map(|n| format!("bench-{replicas}-{n}"))
        .collect();
    let started = Instant::now();
    let mut running = names
        .iter()
        .map(|name| spawn(nats, &dir, name))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let deadline = started + Duration::from_secs(900);
    let finished = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        anyhow::ensure!(
            Instant::now() < deadline,
            "{replicas} replicas did not replay {events} events in 15 minutes"
        );
        let mut finished = Vec::new();
        for replica in &running {
            let Some(metrics) = replica.metrics().await else {
                break;
            };
            let value = |name: &str| metrics.get(name).copied().unwrap_or(0.0) as u64;
            if value("c2d_analytics_consumer_caught_up") != 1 {
                break;
            }
            finished.push(Finished {
                name: replica.name.clone(),
                handled: value("c2d_analytics_events_handled_total"),
                partitions: value("c2d_analytics_partitions_read"),
                cpu: Duration::ZERO,
                resident_kib: 0,
            });
        }
        let shared = finished.iter().map(|f| f.partitions).sum::<u64>() == u64::from(PARTITIONS);
        let all_read = finished.iter().map(|f| f.handled).sum::<u64>() >= events;
        if finished.len() == replicas && shared && all_read {
            break finished;
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut finished = finished;
    for (done, replica) in finished.iter_mut().zip(&running) {
        done.cpu = cpu_time(replica.process.id()).unwrap_or_default();
        done.resident_kib = resident_kib(replica.process.id()).unwrap_or(0);
    }
    // Stopped cleanly: each releases its leases, so the next run starts from a free bucket.
    for replica in &running {
        replica.process.sigterm()?;
    }
    for replica in &mut running {
        replica.process.wait()?;
    }
    Ok((seconds, finished))
}
