//! `make bench-subscriber`: how fast the SDK consumes (decode, handler, ack) against a raw
//! ordered read of the same stream (no decode, no acks), in one run on this machine.
//!
//! `BENCH_EVENTS` (default 200000) sets the stream's size.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use c2d_proto::events::STREAM;
use c2d_subscriber::{Delivery, HandlerError, Subscriber, SubscriberConfig};
use c2d_testkit::load::{Cpu, verdict};
use c2d_testkit::{
    NatsServer, Pipeline, ordered_read_rate, publish_deliveries, unique_fixture_bodies,
};
use tokio::sync::Notify;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let events = c2d_testkit::load::bench_setting("BENCH_EVENTS", 200_000);
    // The gateway creates the streams, as in production.
    let pipeline = Pipeline::start().await;
    let nats = &pipeline.nats;
    let filled = fill(nats, events).await?;
    println!(
        "bench-subscriber: {events} events ({:.0} MB) in {STREAM}, {} cores",
        filled as f64 / 1e6,
        cores()
    );

    let reader_and_nats = [std::process::id(), nats.pid().unwrap_or_default()];
    let cpu = Cpu::start(&reader_and_nats);
    let raw = ordered_read_rate(nats, events).await?;
    let mut rows = vec![(
        "raw ordered read (no decode, no ack)",
        raw,
        cpu.per(events, 1),
    )];
    for (concurrency, name) in [
        (1, "c2d-subscriber, in order"),
        (16, "c2d-subscriber, concurrency 16"),
    ] {
        let cpu = Cpu::start(&reader_and_nats);
        let rate = sdk_consume(nats, events, concurrency).await?;
        rows.push((name, rate, cpu.per(events, 1)));
    }
    println!();
    println!(
        "{:<40} {:>12}  CPU per event: reader + nats-server",
        "reader", "events/s"
    );
    for (name, rate, cpu) in &rows {
        println!("{name:<40} {rate:>12.0}  {cpu}");
    }
    println!();
    for (name, rate, _) in &rows[1..] {
        let ratio = 100.0 * rate / raw;
        println!(
            "{name} / raw read: {ratio:.0}% (target >= 60%) {}",
            verdict(ratio >= 60.0)
        );
    }
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// Publishes `count` realistic events (the fixtures, made unique).
async fn fill(nats: &NatsServer, count: u64) -> anyhow::Result<u64> {
    let bodies = unique_fixture_bodies();
    publish_deliveries(nats, (0..count).map(|n| ("bench".to_owned(), bodies(n)))).await
}

/// Consumes every event through the SDK with a handler that only counts.
async fn sdk_consume(nats: &NatsServer, count: u64, concurrency: usize) -> anyhow::Result<f64> {
    let config = SubscriberConfig::new(format!("bench-{concurrency}")).concurrency(concurrency);
    let subscriber = Subscriber::open(nats.client().await, config).await?;
    let seen = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let (seen_in, done_in) = (seen.clone(), done.clone());
    let started = Instant::now();
    subscriber
        .run(
            move |delivery: Delivery| {
                let (seen, done) = (seen_in.clone(), done_in.clone());
                async move {
                    std::hint::black_box(&delivery.event);
                    if seen.fetch_add(1, Ordering::Relaxed) + 1 == count {
                        done.notify_one();
                    }
                    Ok::<(), HandlerError>(())
                }
            },
            async move { done.notified().await },
        )
        .await?;
    Ok(count as f64 / started.elapsed().as_secs_f64())
}
