//! `make bench-console`: how fast the console's pages answer for a tenant with a million
//! events (the target: under 200 ms).
//!
//! One tenant's traffic (`BENCH_EVENTS`, default 1,000,000: requests of an inbox, two outbox
//! and a closing, over the last 30 days) is parsed by the gateway's parser and stored in a
//! real nats-server, with a second tenant's (a tenth as many) interleaved. c2d-analytics is
//! built from that log in this process, and the console is served in this process too; each
//! page is then asked `RUNS` times over HTTP with a logged-in session, and p50/p99 printed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use c2d_analytics::Analytics;
use c2d_console::{Config, Console};
use c2d_testkit::load::{contact_center_delivery, quantile_ms, verdict};
use c2d_testkit::{Pipeline, publish_deliveries};
use reqwest::header::{COOKIE, SET_COOKIE};

const RUNS: usize = 30;
const ADMIN: &str = "admin-token-0123456789abcdef";
/// The target per page.
const TARGET_MS: f64 = 200.0;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(bench())
}

/// Delivery `n` of the busy tenant: requests of four events over the last 30 days (ending
/// two hours before `now`, so every event is in the past).
fn delivery(n: u64, now: i64) -> String {
    contact_center_delivery(n, now - 30 * 86_400, 30 * 86_400 - 7_200)
}

async fn bench() -> anyhow::Result<()> {
    let events = c2d_testkit::load::bench_setting("BENCH_EVENTS", 1_000_000);
    println!(
        "bench-console: {} cores, {events} events of tenant acme",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let pipeline = Pipeline::start().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let started = Instant::now();
    let deliveries = (0..events).flat_map(|n| {
        let acme = ("acme".to_owned(), delivery(n, now).into());
        let other = (n % 10 == 0).then(|| ("globex".to_owned(), delivery(n, now).into()));
        std::iter::once(acme).chain(other)
    });
    let bytes = publish_deliveries(&pipeline.nats, deliveries).await?;
    println!(
        "stored {} events ({:.0} MB) in {:.0} s",
        events + events.div_ceil(10),
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    // Analytics, built from the log.
    let data = tempfile::tempdir()?;
    let analytics_port = c2d_testkit::free_port();
    let (url, dir) = (pipeline.nats.url(), data.path().display().to_string());
    let analytics = Analytics::open(
        c2d_analytics::Config::from_lookup(|name| match name {
            "NATS_URL" => Some(url.clone()),
            "ANALYTICS_DATA_DIR" => Some(dir.clone()),
            "ANALYTICS_METRICS_ADDR" => Some("off".into()),
            _ => None,
        })?,
        c2d_analytics::Rebuild::Alone,
    )?;
    let projection = analytics.projection();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", analytics_port)).await?;
    tokio::spawn(analytics.run(listener, std::future::pending()));
    let total = events + events.div_ceil(10);
    let started = Instant::now();
    while projection.read().map(|p| p.last_sequence).unwrap_or(0) < total {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "analytics built in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let config = Config::from_lookup(|name| match name {
        "CONSOLE_ADMIN_TOKEN" => Some(ADMIN.into()),
        "CONSOLE_ANALYTICS_URL" => Some(format!("http://127.0.0.1:{analytics_port}")),
        "NATS_URL" => Some(pipeline.nats.url()),
        _ => None,
    })?;
    let console: Arc<Console> = Console::start(config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(console.serve(listener, std::future::pending()));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let login = http
        .post(format!("{base}/login"))
        .form(&[("token", ADMIN)])
        .send()
        .await?;
    let cookie = login.headers()[SET_COOKIE]
        .to_str()?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    let stream_last = total;
    let pages = [
        (
            "events of acme, newest 200",
            "/events?tenant=acme&since=31d".to_owned(),
        ),
        (
            "events of one client of acme",
            "/events?tenant=acme&client=1234&since=31d".to_owned(),
        ),
        (
            "events of one request of acme",
            format!("/events?tenant=acme&request={}&since=31d", events / 8),
        ),
        (
            "events, a rare text (reads CONSOLE_SEARCH_LIMIT)",
            format!("/events?tenant=acme&text=pedido%20{}&since=31d", events / 2),
        ),
        (
            "one event, typed and raw",
            format!("/events/{}", stream_last / 2),
        ),
        (
            "contact center, 24 hours",
            "/contact-center?tenant=acme&since=24h".to_owned(),
        ),
        (
            "contact center, 30 days",
            "/contact-center?tenant=acme&since=30d".to_owned(),
        ),
        ("dead letters", "/dead-letters".to_owned()),
    ];
    println!();
    println!(
        "{:<48} {:>9} {:>9} {:>7}",
        "page", "p50 ms", "p99 ms", "status"
    );
    let mut all_met = true;
    for (name, path) in pages {
        let mut micros = Vec::with_capacity(RUNS);
        let mut status = 0;
        for run in 0..RUNS + 3 {
            let started = Instant::now();
            let answer = http
                .get(format!("{base}{path}"))
                .header(COOKIE, &cookie)
                .send()
                .await?;
            status = answer.status().as_u16();
            let _ = answer.bytes().await?;
            if run >= 3 {
                micros.push(started.elapsed().as_micros() as u32);
            }
        }
        micros.sort_unstable();
        let (p50, p99) = (quantile_ms(&micros, 0.5), quantile_ms(&micros, 0.99));
        let met = p99 < TARGET_MS && status == 200;
        all_met &= met;
        println!(
            "{name:<48} {p50:>9.1} {p99:>9.1} {status:>7} {}",
            verdict(met)
        );
    }
    println!();
    println!(
        "every page p99 < {TARGET_MS:.0} ms for a tenant with {events} events: {}",
        verdict(all_met)
    );
    Ok(())
}
