//! `make bench-hints`: Suggest latency with 100,000 indexed (question -> answer) pairs.
//!
//! The pairs are generated like a contact center's history: 400 kinds of question, each with
//! its own key words and a few operator answers, asked in many wordings (key words mixed with
//! common and rare filler words drawn with a Zipf-like skew), in English, Portuguese and
//! Russian word shapes. The same questions' new wordings are then asked, in-process (the
//! ranking alone) and over gRPC against a served HintsService (what the gateway waits for),
//! and the latency percentiles are printed with how often the right kind of answer came first.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use c2d_hints::knowledge::{Asked, Knowledge};
use c2d_hints::projection::Projection;
use c2d_hints::service::HintsGrpc;
use c2d_proto::hints::v1::SuggestRequest;
use c2d_proto::hints::{HintsServiceClient, HintsServiceServer};
use c2d_testkit::load::{quantile_ms, resident_kib};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PAIRS: usize = 100_000;
const KINDS: usize = 400;
const ASKS: usize = 20_000;
const GRPC_ASKS: usize = 5_000;

/// A small deterministic generator (xorshift64*), so every run indexes the same history.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Skewed towards small indexes, as word use is.
    fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
    }
}

/// Pseudo-words of one language's letters.
fn vocabulary(random: &mut Random, size: usize, letters: &[&str]) -> Vec<String> {
    (0..size)
        .map(|_| {
            let syllables = 2 + random.below(3);
            (0..syllables)
                .map(|_| letters[random.below(letters.len())])
                .collect::<String>()
        })
        .collect()
}

struct History {
    kinds: Vec<Vec<String>>,
    filler: Vec<String>,
}

impl History {
    fn new(random: &mut Random) -> History {
        let latin = [
            "ka", "ro", "te", "mi", "sa", "lo", "ne", "pu", "di", "ga", "vi", "ção",
        ];
        let cyrillic = ["ка", "ро", "те", "ми", "са", "ло", "не", "пу", "ди", "га"];
        let mut words = vocabulary(random, 12_000, &latin);
        words.extend(vocabulary(random, 6_000, &cyrillic));
        let kinds = (0..KINDS)
            .map(|_| {
                (0..4)
                    .map(|_| words[random.below(words.len())].clone())
                    .collect()
            })
            .collect();
        History {
            kinds,
            filler: words,
        }
    }

    /// A wording of a question of `kind`: two or three of its key words among filler words.
    fn question(&self, random: &mut Random, kind: usize) -> String {
        let keys = &self.kinds[kind];
        let mut words: Vec<&str> = (0..2 + random.below(2))
            .map(|_| keys[random.below(keys.len())].as_str())
            .collect();
        for _ in 0..3 + random.below(6) {
            words.push(&self.filler[random.zipf(self.filler.len())]);
        }
        words.join(" ")
    }

    fn answer(&self, random: &mut Random, kind: usize) -> String {
        format!(
            "Answer {kind}.{} about {}",
            random.below(8),
            self.kinds[kind][0]
        )
    }
}

fn percentiles(name: &str, mut micros: Vec<u32>, elapsed: Duration) {
    micros.sort_unstable();
    println!(
        "  {name:<10} {:>6} asks  {:>8.0} asks/s  p50 {:>6.3} ms  p99 {:>6.3} ms  max {:>6.3} ms",
        micros.len(),
        micros.len() as f64 / elapsed.as_secs_f64(),
        quantile_ms(&micros, 0.50),
        quantile_ms(&micros, 0.99),
        quantile_ms(&micros, 1.0),
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let history = History::new(&mut random);
    let mut knowledge = Knowledge::default();
    let rss_before = resident_kib(std::process::id()).unwrap_or(0);
    let started = Instant::now();
    for _ in 0..PAIRS {
        let kind = random.below(KINDS);
        let question = history.question(&mut random, kind);
        let answer = history.answer(&mut random, kind);
        knowledge.add_pair(&question, &answer);
    }
    let indexed = started.elapsed();
    let memory_kib = resident_kib(std::process::id())
        .unwrap_or(0)
        .saturating_sub(rss_before);
    println!(
        "bench-hints: {} pairs indexed ({} distinct answers) in {:.2} s, ~{} MiB resident ({} bytes per pair), {} cores",
        knowledge.index().pairs(),
        knowledge.index().answers(),
        indexed.as_secs_f64(),
        memory_kib / 1024,
        memory_kib * 1024 / knowledge.index().pairs().max(1) as u64,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );

    // In-process: the ranking alone.
    let asks: Vec<(usize, String)> = (0..ASKS)
        .map(|_| {
            let kind = random.below(KINDS);
            (kind, history.question(&mut random, kind))
        })
        .collect();
    let mut micros = Vec::with_capacity(ASKS);
    let mut right = 0usize;
    let started = Instant::now();
    for (kind, text) in &asks {
        let t = Instant::now();
        let asked = Asked {
            text: Some(text.clone()),
            ..Default::default()
        };
        let hints = knowledge
            .question(&asked)
            .map(|question| knowledge.suggest(&question, 5))
            .unwrap_or_default();
        micros.push(t.elapsed().as_micros() as u32);
        right += usize::from(
            hints
                .first()
                .is_some_and(|h| h.text.starts_with(&format!("Answer {kind}."))),
        );
    }
    let elapsed = started.elapsed();
    percentiles("in-process", micros, elapsed);

    // Over gRPC, one caller at a time, as the gateway asks for one operator.
    let mut projection = Projection::default();
    projection.tenants.insert("acme".into(), knowledge);
    let projection = Arc::new(RwLock::new(projection));
    let (_applied_tx, applied) = tokio::sync::watch::channel(0);
    let service = HintsGrpc::new(projection, applied, None, None, 5, Duration::ZERO);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(c2d_proto::server::serve(
        listener,
        HintsServiceServer::new(service),
        c2d_proto::server::Serving::default(),
        std::future::pending(),
    ));
    let mut client = HintsServiceClient::connect(url).await?;
    let mut micros = Vec::with_capacity(GRPC_ASKS);
    let started = Instant::now();
    for (_, text) in asks.iter().take(GRPC_ASKS) {
        let t = Instant::now();
        client
            .suggest(SuggestRequest {
                tenant: "acme".into(),
                text: Some(text.clone()),
                ..Default::default()
            })
            .await?;
        micros.push(t.elapsed().as_micros() as u32);
    }
    percentiles("gRPC", micros, started.elapsed());
    println!(
        "  the right kind of answer first in {:.1}% of asks; target: p99 < 20 ms with {PAIRS} pairs",
        100.0 * right as f64 / ASKS as f64
    );
    Ok(())
}
