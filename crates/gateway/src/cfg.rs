//! The gateway's configuration: environment variables, each default written down once, here.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `NATS_URL` | `nats://127.0.0.1:4222` | NATS server(s), comma-separated |
//! | `NATS_USER`, `NATS_PASSWORD` | none | the gateway's NATS user (`gateway` in the deployment); `NATS_CREDS` and `NATS_TLS_*` as in [`c2d_subscriber::connect`] |
//! | `GATEWAY_ADDR` | `127.0.0.1:8080` | where the HTTP server listens (`0.0.0.0:8080` in a container) |
//! | `GATEWAY_TOKENS` | required | `tenant=secret,tenant2=secret2`; a tenant listed twice accepts both secrets (token rotation) |
//! | `GATEWAY_MAX_BODY_BYTES` | `1048576` | largest accepted body; larger gets 413 |
//! | `GATEWAY_PUBLISH_TIMEOUT_MS` | `2000` | how long a request waits for JetStream's ack before answering 503 |
//! | `GATEWAY_STREAM_REPLICAS` | `1` | replicas of the `CHAT2DESK` stream (3 on a NATS cluster) |
//! | `GATEWAY_DUPLICATE_WINDOW_SECS` | `21600` | how long a retried delivery is recognised; at least 3 h to cover Chat2Desk's retries (10 s, 5 min, 2 h), 6 h covers the 5 h until it disables a webhook |
//! | `GATEWAY_PARTITIONS` | `0` | partitions of `CHAT2DESK_PARTITIONED`, the copy of the log that services running several replicas read (docs/scaling.md); `0`: no such copy. Chosen once: a new count needs that stream deleted, and it is filled again from the log |
//! | `GATEWAY_STREAM_MAX_AGE_DAYS` | `0` | drop events older than this; 0 keeps the log forever |
//! | `GATEWAY_SHUTDOWN_GRACE_SECS` | `25` | how long a stopping gateway (SIGTERM) takes to finish the requests in flight and forward its spool; it answers 503 to new deliveries meanwhile, and what the spool still holds after it stays on disk for the next start (the pod's `terminationGracePeriodSeconds` must exceed its preStop sleep plus this) |
//! | `GATEWAY_SPOOL_DIR` | `data/gateway/spool` | where events wait, on disk, when JetStream cannot take them (they are answered 2xx and forwarded later); `off`: answer 503 instead |
//! | `GATEWAY_SPOOL_MAX_BYTES` | `1073741824` | how many bytes of events may wait in the spool; beyond it webhooks get 503 and Chat2Desk retries |
//! | `GATEWAY_TENANT_RATE` | `1000` | requests per second a tenant may sustain; over it a request waits its turn (`GATEWAY_TENANT_WAIT_MS`), then 429 with `Retry-After` |
//! | `GATEWAY_TENANT_BURST` | `20000` | requests a tenant may send at once above its rate: a mass mailing's `outbox_status` burst is taken at full speed (each 429 spends one of Chat2Desk's three retries) |
//! | `GATEWAY_TENANT_WAIT_MS` | `2000` | how long a request over the rate waits for its turn before it is refused; `0` refuses at once |
//! | `GATEWAY_TENANT_CONCURRENCY` | `256` | requests of one tenant handled (or waiting their turn) at the same time; over it: 429 |
//! | `GATEWAY_BODY_TIMEOUT_SECS` | `10` | a body that takes longer to arrive gets 408 (slowloris) |
//! | `GATEWAY_HEADER_TIMEOUT_SECS` | `10` | a client that does not send its request headers within this is disconnected |
//! | `GATEWAY_ALLOWED_SOURCES` | any | networks that may post, e.g. `203.0.113.0/24,2001:db8::/32`; others get 403 |
//! | `GATEWAY_TRUST_FORWARDED_FOR` | `false` | behind proxies that append to `X-Forwarded-For`, how many: the client is the address the outermost trusted proxy appended, N-th from the right (`true` = 1, an ingress; the leftmost addresses are whatever the client sent, and never trusted) |
//! | `GATEWAY_HINTS_URL` | `http://127.0.0.1:50054` | HintsService (c2d-hints), asked for the answer to ai_hints_requested; `off`: always an empty list |
//! | `GATEWAY_HINTS_DEADLINE_MS` | `2000` | how long a hints request may wait for HintsService; after it, an empty list (the event is stored either way) |

use std::net::SocketAddr;
use std::time::Duration;

use c2d_subscriber::connect::NatsCredentials;

use crate::tenants::{Tenants, TenantsError};

pub use c2d_proto::events::DEFAULT_NATS_URL;
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_millis(2_000);
pub const DEFAULT_STREAM_REPLICAS: usize = 1;
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(6 * 3_600);
/// Chat2Desk's last retry comes 2 h 5 min 10 s after the first try: a shorter window would
/// store that retry twice.
pub const MIN_DUPLICATE_WINDOW: Duration = Duration::from_secs(3 * 3_600);
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(25);
pub const DEFAULT_SPOOL_DIR: &str = "data/gateway/spool";
pub const DEFAULT_TENANT_RATE: f64 = 1_000.0;
/// Deep enough for the statuses of a mass mailing that fail at once (a channel gone): a refusal
/// spends one of the three retries Chat2Desk gives a delivery.
pub const DEFAULT_TENANT_BURST: f64 = 20_000.0;
pub const DEFAULT_TENANT_WAIT: Duration = Duration::from_millis(2_000);
pub const DEFAULT_TENANT_CONCURRENCY: usize = 256;
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 1024 * 1024 * 1024;
pub const DEFAULT_HINTS_URL: &str = "http://127.0.0.1:50054";
pub const DEFAULT_HINTS_DEADLINE: Duration = Duration::from_millis(2_000);

/// Everything the gateway needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub nats_url: String,
    /// Who the gateway is to NATS (`NATS_USER`, `NATS_PASSWORD`, `NATS_TLS_*`; see
    /// [`c2d_subscriber::connect`]).
    pub nats_credentials: NatsCredentials,
    pub addr: SocketAddr,
    pub tenants: Tenants,
    pub max_body_bytes: usize,
    pub publish_timeout: Duration,
    pub stream: StreamSettings,
    pub shutdown_grace: Duration,
    /// Where events wait when JetStream cannot take them; None: no spool (503 instead).
    pub spool_dir: Option<std::path::PathBuf>,
    pub spool_max_bytes: u64,
    pub limits: crate::limits::LimitSettings,
    /// A request whose body takes longer than this gets 408 (slow senders hold no connection).
    pub body_timeout: Duration,
    /// A client must send a request's headers within this (slowloris).
    pub header_timeout: Duration,
    /// Only these networks may post; empty: any.
    pub allowed_sources: Vec<crate::limits::Cidr>,
    /// How many proxies in front append to `X-Forwarded-For` (0: the socket's peer is the
    /// client). The client is the address the outermost of them appended.
    pub trusted_proxy_hops: usize,
    /// Where HintsService is; None: hints requests are answered with an empty list.
    pub hints_url: Option<String>,
    /// Chat2Desk waits for the hints; after this the answer is an empty list.
    pub hints_deadline: Duration,
}

/// How the gateway creates the event log's streams.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSettings {
    pub replicas: usize,
    pub duplicate_window: Duration,
    /// `Duration::ZERO` keeps events forever.
    pub max_age: Duration,
    /// Partitions of the partitioned copy of the log; 0: none.
    pub partitions: u32,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            replicas: DEFAULT_STREAM_REPLICAS,
            duplicate_window: DEFAULT_DUPLICATE_WINDOW,
            max_age: Duration::ZERO,
            partitions: 0,
        }
    }
}

/// A configuration value that cannot be used; the message says which and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    NatsCredentials(#[from] c2d_subscriber::connect::CredentialsError),
    #[error("{name}={value:?} is not valid: {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(
        "GATEWAY_TOKENS is not set: give each Chat2Desk account a tenant name and a secret, e.g. GATEWAY_TOKENS=acme=$(openssl rand -hex 24)"
    )]
    NoTokens,
    #[error("GATEWAY_TOKENS: {0}")]
    Tokens(#[from] TenantsError),
    #[error(
        "GATEWAY_DUPLICATE_WINDOW_SECS must be at least 10800 (3 h): Chat2Desk retries a delivery up to 2 h after the first try, and a shorter window would store the retry twice"
    )]
    DuplicateWindowTooShort,
    #[error("GATEWAY_ALLOWED_SOURCES: {0}")]
    Sources(String),
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration from any source of variables (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let tokens = get("GATEWAY_TOKENS").ok_or(ConfigError::NoTokens)?;
        let duplicate_window = Duration::from_secs(parse(
            &get,
            "GATEWAY_DUPLICATE_WINDOW_SECS",
            DEFAULT_DUPLICATE_WINDOW.as_secs(),
            "a number of seconds, at least 10800",
        )?);
        if duplicate_window < MIN_DUPLICATE_WINDOW {
            return Err(ConfigError::DuplicateWindowTooShort);
        }
        Ok(Config {
            nats_url: get("NATS_URL").unwrap_or_else(|| DEFAULT_NATS_URL.to_owned()),
            nats_credentials: NatsCredentials::from_lookup(&lookup)?,
            addr: parse(
                &get,
                "GATEWAY_ADDR",
                DEFAULT_ADDR.parse().expect("valid default"),
                "host:port, e.g. 0.0.0.0:8080",
            )?,
            tenants: tokens.parse()?,
            max_body_bytes: parse(
                &get,
                "GATEWAY_MAX_BODY_BYTES",
                DEFAULT_MAX_BODY_BYTES,
                "a number of bytes, e.g. 1048576",
            )?,
            publish_timeout: Duration::from_millis(parse(
                &get,
                "GATEWAY_PUBLISH_TIMEOUT_MS",
                DEFAULT_PUBLISH_TIMEOUT.as_millis() as u64,
                "a number of milliseconds, e.g. 2000",
            )?),
            stream: StreamSettings {
                replicas: parse(
                    &get,
                    "GATEWAY_STREAM_REPLICAS",
                    DEFAULT_STREAM_REPLICAS,
                    "1, 3 or 5",
                )?,
                duplicate_window,
                max_age: Duration::from_secs(
                    86_400
                        * parse(
                            &get,
                            "GATEWAY_STREAM_MAX_AGE_DAYS",
                            0u64,
                            "a number of days; 0 keeps events forever",
                        )?,
                ),
                partitions: parse(
                    &get,
                    "GATEWAY_PARTITIONS",
                    0u32,
                    "a number of partitions, e.g. 16; 0 for none",
                )?,
            },
            shutdown_grace: Duration::from_secs(parse(
                &get,
                "GATEWAY_SHUTDOWN_GRACE_SECS",
                DEFAULT_SHUTDOWN_GRACE.as_secs(),
                "a number of seconds, e.g. 25",
            )?),
            spool_dir: match get("GATEWAY_SPOOL_DIR").as_deref().map(str::trim) {
                Some("off") => None,
                Some(dir) => Some(dir.into()),
                None => Some(DEFAULT_SPOOL_DIR.into()),
            },
            spool_max_bytes: parse(
                &get,
                "GATEWAY_SPOOL_MAX_BYTES",
                DEFAULT_SPOOL_MAX_BYTES,
                "a number of bytes, e.g. 1073741824",
            )?,
            limits: crate::limits::LimitSettings {
                rate: parse(
                    &get,
                    "GATEWAY_TENANT_RATE",
                    DEFAULT_TENANT_RATE,
                    "requests per second, e.g. 1000",
                )?,
                burst: parse(
                    &get,
                    "GATEWAY_TENANT_BURST",
                    DEFAULT_TENANT_BURST,
                    "a number of requests, e.g. 20000",
                )?,
                max_wait: Duration::from_millis(parse(
                    &get,
                    "GATEWAY_TENANT_WAIT_MS",
                    DEFAULT_TENANT_WAIT.as_millis() as u64,
                    "a number of milliseconds, e.g. 2000; 0 refuses at once",
                )?),
                concurrency: parse(
                    &get,
                    "GATEWAY_TENANT_CONCURRENCY",
                    DEFAULT_TENANT_CONCURRENCY,
                    "a number of requests, e.g. 256",
                )?,
            },
            body_timeout: Duration::from_secs(parse(
                &get,
                "GATEWAY_BODY_TIMEOUT_SECS",
                DEFAULT_BODY_TIMEOUT.as_secs(),
                "a number of seconds, e.g. 10",
            )?),
            header_timeout: Duration::from_secs(parse(
                &get,
                "GATEWAY_HEADER_TIMEOUT_SECS",
                DEFAULT_HEADER_TIMEOUT.as_secs(),
                "a number of seconds, e.g. 10",
            )?),
            allowed_sources: match get("GATEWAY_ALLOWED_SOURCES") {
                None => Vec::new(),
                Some(list) => c2d_telemetry::env::list(&list)
                    .into_iter()
                    .map(str::parse)
                    .collect::<Result<_, String>>()
                    .map_err(ConfigError::Sources)?,
            },
            trusted_proxy_hops: match get("GATEWAY_TRUST_FORWARDED_FOR") {
                None => 0,
                Some(value) => match value.trim() {
                    "false" | "0" => 0,
                    "true" => 1,
                    hops => hops.parse().map_err(|_| ConfigError::Invalid {
                        name: "GATEWAY_TRUST_FORWARDED_FOR",
                        value,
                        expected: "false, true (one proxy, an ingress) or the number of proxies in front that append to X-Forwarded-For",
                    })?,
                },
            },
            hints_url: match get("GATEWAY_HINTS_URL").as_deref().map(str::trim) {
                Some("off") => None,
                Some(url) => Some(url.to_owned()),
                None => Some(DEFAULT_HINTS_URL.to_owned()),
            },
            hints_deadline: Duration::from_millis(parse(
                &get,
                "GATEWAY_HINTS_DEADLINE_MS",
                DEFAULT_HINTS_DEADLINE.as_millis() as u64,
                "a number of milliseconds, e.g. 2000",
            )?),
        })
    }
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    expected: &'static str,
) -> Result<T, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(value) => value.trim().parse().map_err(|_| ConfigError::Invalid {
            name,
            value,
            expected,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_need_only_tokens() {
        let config = config(&[("GATEWAY_TOKENS", "acme=s3cret-acme")]).unwrap();
        assert_eq!(config.nats_url, DEFAULT_NATS_URL);
        assert_eq!(config.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(config.max_body_bytes, 1024 * 1024);
        assert_eq!(config.stream, StreamSettings::default());
        assert!(config.stream.duplicate_window >= MIN_DUPLICATE_WINDOW);
    }

    #[test]
    fn missing_tokens_say_how_to_set_them() {
        let error = config(&[]).unwrap_err().to_string();
        assert!(error.contains("GATEWAY_TOKENS=acme="), "{error}");
    }

    #[test]
    fn bad_values_name_the_variable_and_the_expected_form() {
        let error = config(&[
            ("GATEWAY_TOKENS", "a=b-secret-1"),
            ("GATEWAY_MAX_BODY_BYTES", "1MB"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("GATEWAY_MAX_BODY_BYTES=\"1MB\"") && error.contains("number of bytes"),
            "{error}"
        );
    }

    #[test]
    fn a_duplicate_window_shorter_than_chat2desks_retries_is_refused() {
        let error = config(&[
            ("GATEWAY_TOKENS", "a=b-secret-1"),
            ("GATEWAY_DUPLICATE_WINDOW_SECS", "600"),
        ])
        .unwrap_err();
        assert!(matches!(error, ConfigError::DuplicateWindowTooShort));
    }
}
