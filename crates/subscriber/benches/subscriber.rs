//! `make bench-subscriber`: how fast the SDK consumes (decode, handler, ack) against a raw
//! ordered read of the same stream (no decode, no acks), in one run on this machine.
//!
//! `BENCH_EVENTS` (default 200000) sets the stream's size; each reader reads it once in
//! each of [`RUNS`] rounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use c2d_proto::events::STREAM;
use c2d_subscriber::{Delivery, HandlerError, Subscriber, SubscriberConfig};
use c2d_testkit::load::{Cpu, median_run, verdict};
use c2d_testkit::{
    NatsServer, Pipeline, ordered_read_rate, publish_deliveries, unique_fixture_bodies,
};
use tokio::sync::Notify;

/// Rounds, each a run of every reader in turn.
const RUNS: usize = 7;

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

    // The readers share the machine with nats-server, and its speed drifts over a run by
    // more than the differences measured: the readers take turns, and each SDK reader is
    // judged by the median of its ratios to the raw read of the same round.
    let reader_and_nats = [std::process::id(), nats.pid().unwrap_or_default()];
    // (concurrency, name); 0 is the raw read.
    let readers = [
        (0, "raw ordered read (no decode, no ack)"),
        (1, "c2d-subscriber, in order"),
        (16, "c2d-subscriber, concurrency 16"),
    ];
    let mut runs: Vec<Vec<(f64, String)>> = vec![Vec::new(); readers.len()];
    for run in 0..RUNS {
        for ((concurrency, _), runs) in readers.iter().zip(&mut runs) {
            let cpu = Cpu::start(&reader_and_nats);
            let rate = match concurrency {
                0 => ordered_read_rate(nats, events).await?,
                _ => sdk_consume(nats, events, *concurrency, run).await?,
            };
            runs.push((rate, cpu.per(events, 1)));
        }
    }
    let ratios: Vec<f64> = runs[1..]
        .iter()
        .map(|sdk| {
            let per_round = sdk
                .iter()
                .zip(&runs[0])
                .map(|((sdk, _), (raw, _))| sdk / raw);
            median_run(per_round.collect(), |ratio| *ratio)
        })
        .collect();
    println!();
    println!(
        "{:<40} {:>12}  CPU per event: reader + nats-server (medians of {RUNS} rounds)",
        "reader", "events/s"
    );
    for ((_, name), runs) in readers.iter().zip(runs) {
        let (rate, cpu) = median_run(runs, |(rate, _)| *rate);
        println!("{name:<40} {rate:>12.0}  {cpu}");
    }
    println!();
    for ((_, name), ratio) in readers[1..].iter().zip(ratios) {
        let ratio = 100.0 * ratio;
        println!(
            "{name} / raw read: {ratio:.0}% (median of the rounds' ratios; target >= 60%) {}",
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
async fn sdk_consume(
    nats: &NatsServer,
    count: u64,
    concurrency: usize,
    run: usize,
) -> anyhow::Result<f64> {
    // A new durable each run, reading the whole stream from the beginning, and deleted after
    // it so that no run's consumers weigh on the next.
    let durable = format!("bench-{concurrency}-{run}");
    let config = SubscriberConfig::new(durable.clone()).concurrency(concurrency);
    let client = nats.client().await;
    let subscriber = Subscriber::open(client.clone(), config).await?;
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
    let rate = count as f64 / started.elapsed().as_secs_f64();
    Subscriber::reset(client, &durable).await?;
    Ok(rate)
}
