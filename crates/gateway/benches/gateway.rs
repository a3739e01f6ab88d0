//! `make bench-gateway`: the gateway's rate and latency over HTTP, beside a plain HTTP server
//! that only reads the body, a hand-written relay (what an integrator could write in an
//! afternoon: parse the JSON, publish it to JetStream, await the ack) and a raw JetStream
//! publisher, all measured in one run on this machine so that the ratios mean something. The
//! gateway and the hand relay run in alternation, `BENCH_ROUNDS` times (default 3), and their
//! medians are compared: both share the machine with nats-server, which varies from run to run.
//!
//! Every request carries a realistic Chat2Desk body (the fixtures, mostly messages), made
//! unique so that each is a new event. `BENCH_SECONDS` (default 10) and `BENCH_CONNECTIONS`
//! (default 64) change the run.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use c2d_testkit::load::{Cpu, LoadReport, Worker, closed_loop, median_run, post_load, verdict};
use c2d_testkit::{GatewayProcess, NatsServer, free_port, unique_fixture_bodies};
use prost::Message as _;

const GATEWAY: &str = env!("CARGO_BIN_EXE_c2d-gateway");
const PLAIN_SERVER_FLAG: &str = "--plain-http-server";
const HAND_RELAY_FLAG: &str = "--hand-relay";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Runtime::new()?;
    if let Some(at) = args.iter().position(|a| a == PLAIN_SERVER_FLAG) {
        let port: u16 = args
            .get(at + 1)
            .context("port after --plain-http-server")?
            .parse()?;
        return runtime.block_on(plain_http_server(port));
    }
    if let Some(at) = args.iter().position(|a| a == HAND_RELAY_FLAG) {
        let port: u16 = args
            .get(at + 1)
            .context("port after --hand-relay")?
            .parse()?;
        let nats_url = args.get(at + 2).context("NATS URL after the port")?.clone();
        return runtime.block_on(hand_relay(port, nats_url));
    }
    runtime.block_on(bench())
}

/// The baseline an integrator would compare us with: a relay written in an afternoon. An axum
/// handler parses the body as `serde_json::Value` (to route it by its hook type and refuse what
/// is not JSON), publishes the body as it came to JetStream and awaits the ack; no event id,
/// no typed parse, no protobuf, no spool, no tracing.
async fn hand_relay(port: u16, nats_url: String) -> anyhow::Result<()> {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::response::IntoResponse as _;
    use axum::routing::post;
    let jetstream = async_nats::jetstream::new(async_nats::connect(nats_url).await?);
    let relay = |State(jetstream): State<async_nats::jetstream::Context>,
                 Path(tenant): Path<String>,
                 body: Bytes| async move {
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return (StatusCode::BAD_REQUEST, "not JSON").into_response();
        };
        let hook = json["hook_type"].as_str().unwrap_or("inbox");
        let subject = format!("chat2desk.events.{tenant}.{hook}");
        let stored = match jetstream.publish(subject, body).await {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        if stored {
            axum::Json(serde_json::json!({"status": "ok"})).into_response()
        } else {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    };
    let app = axum::Router::new()
        .route("/hooks/chat2desk/{tenant}", post(relay))
        .with_state(jetstream);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// The baseline: an axum server that reads the body and answers 200, nothing else.
async fn plain_http_server(port: u16) -> anyhow::Result<()> {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/hooks/chat2desk/{tenant}",
        post(|body: Bytes| async move {
            axum::Json(serde_json::json!({"status": "ok", "len": body.len()}))
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn bench() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let connections: usize = std::env::var("BENCH_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let (warmup, duration) = (Duration::from_secs(2), Duration::from_secs(seconds));
    println!(
        "bench-gateway: {connections} connections, {seconds} s per target after 2 s warm-up, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // 1. The plain HTTP server, as its own process like the gateway.
    let (plain_report, plain_cpu) =
        baseline_run(&[PLAIN_SERVER_FLAG], None, connections, warmup, duration).await?;

    // 2. The gateway against a real nats-server: as in production with its spool on (NATS is
    //    healthy, so events go straight to JetStream), and with the spool off, to show its cost.
    let nats = NatsServer::start().await?;
    let spool = tempfile::tempdir()?;
    // The spool off first: a second run writes to a fuller stream, so this order does not
    // flatter the production setting.
    let (unspooled_report, unspooled_cpu) =
        gateway_run(&nats, "off".into(), 0, connections, warmup, duration).await?;
    let rounds: u64 = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let (mut relays, mut gateways) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let relay = baseline_run(
            &[HAND_RELAY_FLAG],
            Some(&nats),
            connections,
            warmup,
            duration,
        );
        relays.push(relay.await?);
        gateways.push(
            gateway_run(
                &nats,
                spool.path().display().to_string(),
                // Other bodies than the other runs', or JetStream would take them as retries
                // (each run sends far fewer than 100 million).
                (round + 1) * 100_000_000,
                connections,
                warmup,
                duration,
            )
            .await?,
        );
    }
    let relays_and_gateways: u64 = relays
        .iter()
        .chain(&gateways)
        .map(|(report, _)| report.requests)
        .sum::<u64>()
        + unspooled_report.requests;
    let (relay_report, relay_cpu) = median_run(relays, |(report, _)| report.rate());
    let (gateway_report, gateway_cpu) = median_run(gateways, |(report, _)| report.rate());
    let stored = nats
        .jetstream()
        .await
        .get_stream("CHAT2DESK")
        .await?
        .get_info()
        .await?
        .state
        .messages;

    // 3. Raw JetStream publishing of the same events, no HTTP, same concurrency.
    let nats_pid = [nats.pid().context("nats-server runs")?];
    let (raw_report, raw_cpu) = tokio::join!(
        raw_publish(&nats, connections, warmup, duration),
        Cpu::start_after(warmup, &nats_pid),
    );
    let raw_report = raw_report?;
    let raw_cpu = raw_cpu.per(raw_report.requests, 0);
    let micros = |cpu: &[f64]| format!("{:.0} µs", cpu[0]);
    let two = |cpu: &[f64]| format!("{:.0} µs + {:.0} µs", cpu[0], cpu[1]);

    println!();
    println!(
        "{:<30} {:>11} {:>8} {:>8} {:>7}  server CPU per request",
        "target", "requests/s", "p50 ms", "p99 ms", "errors"
    );
    for (name, report, cpu) in [
        (
            "plain HTTP server (body only)",
            &plain_report,
            micros(&plain_cpu),
        ),
        ("raw JetStream publish", &raw_report, raw_cpu),
        ("hand relay (median)", &relay_report, two(&relay_cpu)),
        ("c2d-gateway (median)", &gateway_report, two(&gateway_cpu)),
        (
            "c2d-gateway, spool off",
            &unspooled_report,
            two(&unspooled_cpu),
        ),
    ] {
        println!(
            "{name:<30} {:>11.0} {:>8.2} {:>8.2} {:>7}  {cpu}",
            report.rate(),
            report.quantile_ms(0.5),
            report.quantile_ms(0.99),
            report.errors
        );
    }
    let versus_relay = gateway_report.rate() / relay_report.rate();
    let versus_plain = 100.0 * gateway_report.rate() / plain_report.rate();
    let versus_raw = 100.0 * gateway_report.rate() / raw_report.rate();
    let p99 = gateway_report.quantile_ms(0.99);
    println!();
    println!(
        "gateway / plain HTTP server:   {versus_plain:.0}% (target >= 50%) {}",
        verdict(versus_plain >= 50.0)
    );
    println!("gateway / raw JetStream:       {versus_raw:.0}%");
    println!(
        "gateway / hand relay:          {versus_relay:.2}x (medians of {rounds} alternating runs; target >= 1.2x) {}",
        verdict(versus_relay >= 1.2)
    );
    println!(
        "gateway CPU per request:       {:.1} µs (target <= 18 µs) {}",
        gateway_cpu[0],
        verdict(gateway_cpu[0] <= 18.0)
    );
    println!(
        "gateway / gateway, spool off:  {:.0}% (the spool's cost while NATS is healthy)",
        100.0 * gateway_report.rate() / unspooled_report.rate()
    );
    println!(
        "gateway p99 at {connections} connections: {p99:.2} ms (target < 10 ms) {}",
        verdict(p99 < 10.0)
    );
    println!(
        "events in the stream before the raw publisher's: {stored}, for {relays_and_gateways} requests answered 2xx in the measured seconds (the warm-ups stored the rest)"
    );
    print_budget(plain_report.rate(), &plain_cpu, &gateway_cpu);
    Ok(())
}

/// What half the plain server's rate leaves the gateway, from this run's own measurements: the
/// CPU of all cores split over that many requests a second, less what the load generator and
/// nats-server spend per request. `plain` is [plain server, load generator], `gateway`
/// [gateway, nats-server, load generator], in µs per request.
fn print_budget(plain_rate: f64, plain: &[f64], gateway: &[f64]) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let half = plain_rate / 2.0;
    let budget = cores * 1e6 / half;
    let (spent, nats) = (gateway[0], gateway[1]);
    // The generator's lesser cost of the two runs: the budget is as kind to the gateway as
    // this run allows.
    let generator = plain[1].min(gateway[2]);
    let left = budget - generator - nats;
    println!(
        "CPU budget at half the plain server's rate ({half:.0} requests/s on {cores} cores): \
         {budget:.1} µs per request in all; the load generator spends at least {generator:.1} \
         ({:.1} against the plain server, {:.1} against the gateway) and nats-server {nats:.1} \
         storing the event, which leaves {left:.1} µs for the gateway; it spends {spent:.1}, \
         and the plain server {:.1} on the HTTP alone",
        plain[1], gateway[2], plain[0]
    );
}

/// One run of a baseline server, this benchmark's own binary started with `flag` (and the port,
/// and `nats`' URL when it has one): the report, and the CPU the server, nats-server (when
/// there is one) and this process (the load generator) spent per request.
async fn baseline_run(
    flag: &[&str],
    nats: Option<&NatsServer>,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<(LoadReport, Vec<f64>)> {
    let port = free_port();
    let mut args: Vec<String> = flag.iter().map(|a| a.to_string()).collect();
    args.push(port.to_string());
    args.extend(nats.map(NatsServer::url));
    let mut server = std::process::Command::new(std::env::current_exe()?)
        .args(&args)
        .spawn()?;
    wait_for_port(port).await?;
    let mut pids = vec![server.id()];
    if let Some(nats) = nats {
        pids.push(nats.pid().context("nats-server runs")?);
    }
    pids.push(std::process::id());
    let json = [("content-type", "application/json".to_owned())];
    let url = format!("http://127.0.0.1:{port}/hooks/chat2desk/acme");
    let (report, cpu) = tokio::join!(
        post_load(
            &url,
            &json,
            connections,
            warmup,
            duration,
            unique_fixture_bodies(),
        ),
        Cpu::start_after(warmup, &pids),
    );
    let report = report?;
    // Read before the server goes: a process that has exited has no CPU time to read.
    let cpu = cpu.micros_per(report.requests);
    let _ = server.kill();
    let _ = server.wait();
    Ok((report, cpu))
}

/// The gateway's load run against `nats`, with GATEWAY_SPOOL_DIR = `spool_dir` and bodies
/// numbered from `first_body`: the report, and the CPU the gateway, nats-server and this
/// process (the load generator) spent per request.
async fn gateway_run(
    nats: &NatsServer,
    spool_dir: String,
    first_body: u64,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<(LoadReport, Vec<f64>)> {
    let gateway = GatewayProcess::start(
        GATEWAY,
        nats,
        &[
            ("RUST_LOG", "info".into()),
            ("GATEWAY_SPOOL_DIR", spool_dir),
        ],
    )
    .await?;
    gateway.wait_for_jetstream(Duration::from_secs(30)).await?;
    let pids = [
        gateway.process.id(),
        nats.pid().context("nats-server runs")?,
        std::process::id(),
    ];
    let bodies = unique_fixture_bodies();
    let (json, url) = (
        [("content-type", "application/json".to_owned())],
        gateway.acme_url(),
    );
    let (report, cpu) = tokio::join!(
        post_load(
            &url,
            &json,
            connections,
            warmup,
            duration,
            Arc::new(move |n| bodies(first_body + n)),
        ),
        Cpu::start_after(warmup, &pids),
    );
    let report = report?;
    let cpu = cpu.micros_per(report.requests);
    Ok((report, cpu))
}

/// Publishes encoded events straight to JetStream from `connections` concurrent workers, each
/// awaiting its ack, for `duration`.
async fn raw_publish(
    nats: &NatsServer,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<LoadReport> {
    let jetstream = nats.jetstream().await;
    closed_loop(connections, warmup, duration, || RawPublisher {
        jetstream: jetstream.clone(),
        bodies: unique_fixture_bodies(),
    })
    .await
}

/// Does what the gateway does to a body, minus HTTP: parse, encode, publish, await the ack.
struct RawPublisher {
    jetstream: async_nats::jetstream::Context,
    bodies: Arc<dyn Fn(u64) -> Bytes + Send + Sync>,
}

impl Worker for RawPublisher {
    async fn call(&mut self, n: u64) -> bool {
        let received = prost_types::Timestamp::from(std::time::SystemTime::now());
        let Ok(event) =
            c2d_hooks::parse_delivery("bench", (self.bodies)(900_000_000 + n), received)
        else {
            return false;
        };
        let publish = async_nats::jetstream::message::PublishMessage::build()
            .payload(event.encode_to_vec().into())
            .message_id(&event.event_id);
        match self.jetstream.send_publish(event.subject(), publish).await {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        }
    }
}

async fn wait_for_port(port: u16) -> anyhow::Result<()> {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("the plain HTTP server did not start on port {port}")
}
