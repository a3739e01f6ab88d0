//! A closed-loop HTTP load generator for benchmarks: `connections` keep-alive connections,
//! each sending its next request as soon as the previous one is answered, for a fixed time.
//! Rates and latencies measured this way compare fairly between two servers in one run.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latency of every successful request, sorted, in microseconds.
    pub latencies_us: Vec<u32>,
}

impl LoadReport {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q` quantile (0..=1) of latency in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        quantile_ms(&self.latencies_us, q)
    }
}

/// The `q` quantile of sorted microsecond latencies, in milliseconds.
pub fn quantile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted_us.len() as f64 * q).ceil() as usize).clamp(1, sorted_us.len());
    f64::from(sorted_us[rank - 1]) / 1000.0
}

/// One closed-loop client of a load run: it performs request `n` and says whether it
/// succeeded. Each worker keeps its own state (a connection, say) across calls.
pub trait Worker: Send + 'static {
    fn call(&mut self, n: u64) -> impl Future<Output = bool> + Send;
}

/// Runs `workers` workers made by `make_worker`, each calling again as soon as its previous
/// call returned, for `duration` after a `warmup` whose calls are not counted. `n` counts
/// calls across workers, so each call can send something unique.
pub async fn closed_loop<W: Worker>(
    workers: usize,
    warmup: Duration,
    duration: Duration,
    make_worker: impl Fn() -> W,
) -> anyhow::Result<LoadReport> {
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let measure_from = Instant::now() + warmup;
    let end = measure_from + duration;
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (mut worker, counter) = (make_worker(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            let mut errors = 0u64;
            while Instant::now() < end {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let sent = Instant::now();
                let ok = worker.call(n).await;
                let answered = Instant::now();
                if sent >= measure_from && answered <= end {
                    if ok {
                        let micros = answered.duration_since(sent).as_micros();
                        latencies.push(micros.min(u128::from(u32::MAX)) as u32);
                    } else {
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut latencies, task_errors) = task.await?;
        latencies_us.append(&mut latencies);
        errors += task_errors;
    }
    latencies_us.sort_unstable();
    Ok(LoadReport {
        requests: latencies_us.len() as u64,
        errors,
        elapsed: duration,
        latencies_us,
    })
}

/// POSTs `body(n)` to `url` over `connections` keep-alive connections (see [`closed_loop`]).
pub async fn post_load(
    url: &str,
    headers: &[(&'static str, String)],
    connections: usize,
    warmup: Duration,
    duration: Duration,
    body: Arc<dyn Fn(u64) -> Bytes + Send + Sync>,
) -> anyhow::Result<LoadReport> {
    let uri: hyper::Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
    let authority = uri.authority().context("URL without host")?.to_string();
    let path = uri
        .path_and_query()
        .map_or("/".to_owned(), |p| p.to_string());
    closed_loop(connections, warmup, duration, || HttpPoster {
        authority: authority.clone(),
        path: path.clone(),
        headers: headers.to_vec(),
        body: body.clone(),
        sender: None,
    })
    .await
}

/// A keep-alive HTTP/1.1 connection that POSTs; it reconnects after an error.
struct HttpPoster {
    authority: String,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Arc<dyn Fn(u64) -> Bytes + Send + Sync>,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl HttpPoster {
    async fn connect(
        &self,
    ) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(&self.authority).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }
}

impl Worker for HttpPoster {
    async fn call(&mut self, n: u64) -> bool {
        if self.sender.is_none() {
            match self.connect().await {
                Ok(sender) => self.sender = Some(sender),
                Err(_) => return false,
            }
        }
        let mut request = Request::post(&self.path).header(hyper::header::HOST, &self.authority);
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        let Ok(request) = request.body(Full::new((self.body)(n))) else {
            return false;
        };
        let sender = self.sender.as_mut().expect("connected above");
        match sender.send_request(request).await {
            Ok(response) => {
                let ok = response.status().is_success();
                ok && response.into_body().collect().await.is_ok()
            }
            Err(_) => {
                self.sender = None;
                false
            }
        }
    }
}

/// CPU time (user + system) a process has used so far, from `/proc/{pid}/stat`; `None` where
/// there is no procfs. Benchmarks print CPU per request beside rates, since on a small machine
/// the load generator, the server and NATS share the same cores.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold blanks.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this project runs on.
    Some(Duration::from_millis(ticks * 10))
}

/// A process's resident memory in KiB, from `/proc/{pid}/status`; `None` where there is no
/// procfs. What benchmarks report as the memory a read model costs.
pub fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU spent by some processes (a server, nats-server, this process) since [`Cpu::start`]:
/// what each costs per request or event, printed beside a rate.
pub struct Cpu {
    pids: Vec<u32>,
    before: Vec<Duration>,
}

impl Cpu {
    /// Starts counting for `pids`.
    pub fn start(pids: &[u32]) -> Cpu {
        let before = pids
            .iter()
            .map(|&pid| cpu_time(pid).unwrap_or_default())
            .collect();
        Cpu {
            pids: pids.to_vec(),
            before,
        }
    }

    /// Starts counting for `pids` once `warmup` has passed: joined with a [`closed_loop`] of
    /// the same warm-up, it counts the CPU of the measured calls alone.
    pub async fn start_after(warmup: Duration, pids: &[u32]) -> Cpu {
        tokio::time::sleep(warmup).await;
        Cpu::start(pids)
    }

    /// Microseconds of CPU per one of `count` (requests, events) since `start`, per process
    /// in the order given, with `decimals` digits: "12 µs + 3 µs".
    pub fn per(&self, count: u64, decimals: usize) -> String {
        self.micros_per(count)
            .iter()
            .map(|micros| format!("{micros:.decimals$} µs"))
            .collect::<Vec<_>>()
            .join(" + ")
    }

    /// Microseconds of CPU per one of `count` since `start`, per process in the order given.
    pub fn micros_per(&self, count: u64) -> Vec<f64> {
        let count = count.max(1) as f64;
        self.pids
            .iter()
            .zip(&self.before)
            .map(|(&pid, before)| {
                let used = cpu_time(pid).unwrap_or_default().saturating_sub(*before);
                used.as_secs_f64() * 1e6 / count
            })
            .collect()
    }
}

/// A benchmark's size setting: the number in environment variable `name` (`BENCH_EVENTS`,
/// say), or `default` when it is unset or not a number.
pub fn bench_setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The run with the median rate of a benchmark's alternating runs (an odd number, at least
/// one): the readers and servers compared share two cores with nats-server, whose speed
/// moves from run to run by more than the differences measured.
pub fn median_run<T>(mut runs: Vec<T>, rate: impl Fn(&T) -> f64) -> T {
    runs.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
    runs.swap_remove(runs.len() / 2)
}

/// How a benchmark reports a target.
pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}

/// Delivery `n` (a JSON body) of a busy contact center, for benchmarks over large logs:
/// requests of four events (the client's message, the operator's answer, a second answer,
/// the closing), request after request spread over `span` seconds from `start` (Unix).
pub fn contact_center_delivery(n: u64, start: i64, span: i64) -> String {
    let request = n / 4;
    let at = start + (request as i64 * 37) % span;
    let operator = 1 + request % 20;
    let transport = ["telegram", "whatsapp", "viber"][(request % 3) as usize];
    let (hook, at, operator_id) = match n % 4 {
        0 => ("inbox", at, None),
        1 => ("outbox", at + 30 + (request % 600) as i64, Some(operator)),
        2 => ("outbox", at + 700, Some(operator)),
        _ => (
            "close_request",
            at + 1_800 + (request % 3_600) as i64,
            Some(operator),
        ),
    };
    serde_json::json!({
        "message_id": n, "hook_type": hook, "type": if hook == "inbox" { "from_client" } else { "to_client" },
        "text": format!("Olá, pedido {n}"), "transport": transport, "client_id": 1_000 + request % 5_000,
        "operator_id": operator_id, "channel_id": 10 + request % 4, "request_id": request, "dialog_id": request,
        "event_time": at
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(quantile_ms(&sorted, 0.5), 50.0);
        assert_eq!(quantile_ms(&sorted, 0.99), 99.0);
        assert_eq!(quantile_ms(&sorted, 1.0), 100.0);
        assert!(quantile_ms(&[], 0.5).is_nan());
    }
}
