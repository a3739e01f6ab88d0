//! `make bench-analytics`: how fast c2d-analytics rebuilds from the log, against a raw ordered
//! read of the same stream in the same run, and how fast it answers a 30-day per-operator
//! summary over one million events.
//!
//! `BENCH_EVENTS` (default 200000) sets the stream for the rebuild; `BENCH_QUERY_EVENTS`
//! (default 1000000) the projection queried.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use c2d_analytics::partitioned::Projections;
use c2d_analytics::projection::Projection;
use c2d_analytics::service::AnalyticsGrpc;
use c2d_analytics::{Analytics, Config};
use c2d_proto::analytics::AnalyticsServiceClient;
use c2d_proto::analytics::v1::{SummaryRequest, TimeRange};
use c2d_proto::events::Event;
use c2d_testkit::load::{Cpu, bench_setting, median_run, quantile_ms, verdict};
use c2d_testkit::{Pipeline, ordered_read_rate, publish_deliveries};
use prost_types::Timestamp;
use tokio::sync::{broadcast, watch};

// As the c2d-analytics binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// 2024-03-01T00:00:00Z: the first of the 30 days.
const START: i64 = 1_709_251_200;
const DAYS: i64 = 30;
/// Runs of each reader, alternating; the medians are compared.
const RUNS: usize = 5;

fn main() -> anyhow::Result<()> {
    // As the c2d-analytics binary; the raw reader runs with it too.
    c2d_analytics::allocator::keep_freed_memory();
    // As the binary, too: logs at RUST_LOG (default info) on stderr, so per-event costs of
    // the log setup (spans) are measured.
    let _telemetry = c2d_telemetry::init("c2d-analytics-bench")?;
    tokio::runtime::Runtime::new()?.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let events = bench_setting("BENCH_EVENTS", 200_000);
    let query_events = bench_setting("BENCH_QUERY_EVENTS", 1_000_000);
    println!(
        "bench-analytics: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let pipeline = Pipeline::start().await;
    let bytes = publish_deliveries(
        &pipeline.nats,
        (0..events).map(|n| ("acme".to_owned(), delivery(n).into())),
    )
    .await?;
    println!("stream: {events} events, {:.0} MB", bytes as f64 / 1e6);
    // Both readers share the machine with nats-server and vary from run to run: alternating
    // runs, medians compared.
    let reader_and_nats = [std::process::id(), pipeline.nats.pid().unwrap_or_default()];
    let (mut raws, mut rebuilds) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let cpu = Cpu::start(&reader_and_nats);
        raws.push((
            ordered_read_rate(&pipeline.nats, events).await?,
            cpu.per(events, 1),
        ));
        let cpu = Cpu::start(&reader_and_nats);
        rebuilds.push((rebuild_rate(&pipeline, events).await?, cpu.per(events, 1)));
    }
    let ((raw, raw_cpu), (rebuild, rebuild_cpu)) = (
        median_run(raws, |(rate, _)| *rate),
        median_run(rebuilds, |(rate, _)| *rate),
    );
    println!();
    println!(
        "{:<42} {:>12}  CPU per event: reader + nats-server (median of {RUNS} alternating runs)",
        "reader", "events/s"
    );
    println!(
        "{:<42} {:>12.0}  {raw_cpu}",
        "raw ordered read (no decode, no ack)", raw
    );
    println!(
        "{:<42} {:>12.0}  {rebuild_cpu}",
        "c2d-analytics --rebuild", rebuild
    );
    let ratio = 100.0 * rebuild / raw;
    println!(
        "rebuild / raw read: {ratio:.0}% (target >= 60%) {}",
        verdict(ratio >= 60.0)
    );
    let (decode, apply) = in_process_rates(events);
    println!(
        "in this process, without NATS: decode {decode:.0} events/s, decode and apply {apply:.0} events/s"
    );

    let (p50, p99, operators) = query_latency(query_events).await?;
    println!();
    println!(
        "OperatorSummary over {DAYS} days of {query_events} events ({operators} operators), over gRPC:"
    );
    println!(
        "p50 {p50:.2} ms, p99 {p99:.2} ms (target p99 < 5 ms) {}",
        verdict(p99 < 5.0)
    );
    Ok(())
}

/// Delivery `n` of a busy contact center, over the 30 days.
fn delivery(n: u64) -> String {
    c2d_testkit::load::contact_center_delivery(n, START, DAYS * 86_400)
}

/// Events per second of a rebuild from the beginning of the stream.
async fn rebuild_rate(pipeline: &Pipeline, events: u64) -> anyhow::Result<f64> {
    let data = tempfile::tempdir()?;
    let url = pipeline.nats.url();
    let dir = data.path().display().to_string();
    let config = Config::from_lookup(|name| match name {
        "NATS_URL" => Some(url.clone()),
        "ANALYTICS_DATA_DIR" => Some(dir.clone()),
        "ANALYTICS_SNAPSHOT_SECS" => Some("3600".into()),
        "ANALYTICS_METRICS_ADDR" => Some("127.0.0.1:0".into()),
        _ => None,
    })?;
    let analytics = Analytics::open(config, c2d_analytics::Rebuild::Alone)?;
    let projection = analytics.projection();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let running = tokio::spawn(analytics.run(listener, async move {
        let _ = stopped.await;
    }));
    while projection.read().map(|p| p.last_sequence).unwrap_or(0) < events {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(());
    running.await??;
    Ok(rate)
}

/// Events per second of decoding the stream's payloads, and of decoding and applying them to
/// a new projection, in this process without NATS: the part of a rebuild that is analytics'
/// own.
fn in_process_rates(events: u64) -> (f64, f64) {
    use prost::Message as _;
    let payloads: Vec<bytes::Bytes> = (0..events)
        .map(|n| event(n).encode_to_vec().into())
        .collect();
    let started = Instant::now();
    for payload in &payloads {
        std::hint::black_box(Event::decode(payload.clone()).expect("decodes"));
    }
    let decode = events as f64 / started.elapsed().as_secs_f64();
    let mut projection = Projection::default();
    let started = Instant::now();
    for (sequence, payload) in (1..).zip(&payloads) {
        projection.apply(sequence, &Event::decode(payload.clone()).expect("decodes"));
    }
    let apply = events as f64 / started.elapsed().as_secs_f64();
    (decode, apply)
}

/// p50 and p99 in ms of a 30-day OperatorSummary over gRPC, on a projection of `events`.
async fn query_latency(events: u64) -> anyhow::Result<(f64, f64, usize)> {
    let mut projection = Projection::default();
    for n in 0..events {
        projection.apply(n + 1, &event(n));
    }
    let projection = Arc::new(RwLock::new(projection));
    let (minutes, _) = broadcast::channel(16);
    let (_stop_tx, stop) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service = AnalyticsGrpc::new(Projections::Whole(projection), minutes, stop);
    tokio::spawn(c2d_proto::server::serve(
        listener,
        c2d_proto::analytics::AnalyticsServiceServer::new(service),
        c2d_proto::server::Serving::default(),
        std::future::pending(),
    ));
    let mut client = AnalyticsServiceClient::connect(format!("http://{addr}")).await?;
    let request = SummaryRequest {
        sla_business_minutes: 0,
        tenant: "acme".into(),
        range: Some(TimeRange {
            start: Some(Timestamp {
                seconds: START,
                nanos: 0,
            }),
            end: Some(Timestamp {
                seconds: START + DAYS * 86_400,
                nanos: 0,
            }),
        }),
    };
    let mut operators = 0;
    for _ in 0..50 {
        operators = client
            .operator_summary(request.clone())
            .await?
            .into_inner()
            .summaries
            .len();
    }
    let mut latencies = Vec::with_capacity(1_000);
    for _ in 0..1_000 {
        let sent = Instant::now();
        std::hint::black_box(client.operator_summary(request.clone()).await?);
        latencies.push(sent.elapsed().as_micros() as u32);
    }
    latencies.sort_unstable();
    Ok((
        quantile_ms(&latencies, 0.5),
        quantile_ms(&latencies, 0.99),
        operators,
    ))
}

/// The event of delivery `n`, parsed as the gateway would, for the query benchmark (no NATS).
fn event(n: u64) -> Event {
    c2d_hooks::parse_delivery(
        "acme",
        delivery(n).into(),
        Timestamp {
            seconds: START,
            nanos: 0,
        },
    )
    .expect("the bench's own deliveries parse")
}
