//! Connectors push client changes to external CRMs: each has its own durable queue in the
//! store (`crm_outbox`), delivered by its own worker, retried with exponential backoff and
//! jitter, in order per client, with an idempotency key per change.
//!
//! They are declared in a TOML file (`CRM_CONNECTORS_FILE`, see `connectors.example.toml`):
//! - `kind = "http"`: any HTTP endpoint, with a JSON body built from a mapping ([`mapping`]),
//!   custom headers and bearer or basic auth ([`http`]);
//! - `kind = "hubspot"`: HubSpot's contacts batch upsert API ([`hubspot`]).
//!
//! `${NAME}` anywhere in a string value is replaced by the environment variable NAME, so
//! secrets stay out of the file.

pub mod http;
pub mod hubspot;
pub mod mapping;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::outbox::Change;

/// How a connector retries, with the defaults written once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts before a change goes to the dead letters.
    pub max_attempts: u32,
    /// The delay after the first failure; it doubles with each failure...
    pub initial_backoff: Duration,
    /// ...up to this.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 12,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `failures + 1`: exponential, capped, with "equal jitter" (half
    /// fixed, half random) so that clients failing together do not retry together.
    pub fn delay(&self, failures: u32, random: u64) -> Duration {
        let base = c2d_telemetry::backoff::exponential(
            self.initial_backoff,
            failures.saturating_sub(1),
            self.max_backoff,
        );
        let half = base / 2;
        let jitter = half.as_micros() as u64;
        half + Duration::from_micros(if jitter == 0 {
            0
        } else {
            random % (jitter + 1)
        })
    }
}

/// Why a change was not delivered, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    pub message: String,
    /// No retry can help (the CRM refused the change itself): dead-lettered at once.
    pub permanent: bool,
    /// The CRM asked to wait at least this long (429 or 503 with Retry-After).
    pub retry_after: Option<Duration>,
}

impl DeliveryError {
    pub fn transient(message: impl Into<String>) -> Self {
        DeliveryError {
            message: message.into(),
            permanent: false,
            retry_after: None,
        }
    }

    /// What an HTTP answer means: 2xx delivered; 408, 429 and 5xx worth retrying; any other
    /// 4xx a refusal of this change that retrying will not change.
    pub fn from_response(
        status: reqwest::StatusCode,
        retry_after: Option<Duration>,
        body: &str,
    ) -> Result<(), DeliveryError> {
        if status.is_success() {
            return Ok(());
        }
        let permanent = status.is_client_error()
            && status != reqwest::StatusCode::REQUEST_TIMEOUT
            && status != reqwest::StatusCode::TOO_MANY_REQUESTS;
        let body: String = body.chars().take(500).collect();
        Err(DeliveryError {
            message: format!("HTTP {status}: {}", body.trim()),
            permanent,
            retry_after,
        })
    }
}

/// A configured connector, ready to deliver.
#[derive(Debug)]
pub struct Connector {
    pub name: String,
    /// Tenants whose changes go to this connector; all when empty.
    pub tenants: Vec<String>,
    pub retry: RetryPolicy,
    pub target: Target,
}

/// Where a connector delivers.
#[derive(Debug)]
pub enum Target {
    Http(http::HttpTarget),
    HubSpot(hubspot::HubSpotTarget),
}

impl Connector {
    /// "http" or "hubspot".
    pub fn kind(&self) -> &'static str {
        match self.target {
            Target::Http(_) => "http",
            Target::HubSpot(_) => "hubspot",
        }
    }

    /// Whether changes of `tenant` go to this connector.
    pub fn serves(&self, tenant: &str) -> bool {
        self.tenants.is_empty() || self.tenants.iter().any(|t| t == tenant)
    }

    /// How many due changes the worker takes at once.
    pub fn fetch_limit(&self) -> usize {
        match &self.target {
            Target::Http(_) => CALLS_IN_FLIGHT,
            Target::HubSpot(target) => target.batch_size() * CALLS_IN_FLIGHT / 4,
        }
    }

    /// Sends changes, each of a different client: one result per change, in their order; `Ok`
    /// only for a change the CRM accepted. Calls run concurrently.
    pub async fn deliver_all(&self, changes: &[Change]) -> Vec<Result<(), DeliveryError>> {
        match &self.target {
            Target::Http(target) => {
                futures_util::future::join_all(
                    changes
                        .iter()
                        .map(|change| async move { target.deliver(change, &state(change)?).await }),
                )
                .await
            }
            Target::HubSpot(target) => target.deliver_all(changes).await,
        }
    }
}

/// CRM calls one connector makes at once.
pub const CALLS_IN_FLIGHT: usize = 16;

/// The client state a change carries.
fn state(change: &Change) -> Result<serde_json::Value, DeliveryError> {
    serde_json::from_str(&change.payload).map_err(|e| DeliveryError {
        message: format!("the queued change is not JSON ({e}); resync the client"),
        permanent: true,
        retry_after: None,
    })
}

/// A connectors file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorConfigError {
    /// Unreadable, or not TOML of the connectors' shape: the file, line and column.
    #[error(transparent)]
    File(#[from] c2d_telemetry::config_file::ConfigFileError),
    #[error("connector {name:?} in {path}: {message}")]
    Invalid {
        path: String,
        name: String,
        message: String,
    },
}

/// One `[[connector]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectorSpec {
    name: String,
    kind: String,
    #[serde(default)]
    tenants: Vec<String>,
    max_attempts: Option<u32>,
    initial_backoff_ms: Option<u64>,
    max_backoff_ms: Option<u64>,
    timeout_ms: Option<u64>,
    // kind = "http"
    url: Option<String>,
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    bearer_token: Option<String>,
    basic_username: Option<String>,
    basic_password: Option<String>,
    body: Option<toml::Value>,
    // kind = "hubspot"
    base_url: Option<String>,
    token: Option<String>,
    id_property: Option<String>,
    batch_size: Option<usize>,
    properties: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectorsFile {
    #[serde(default)]
    connector: Vec<ConnectorSpec>,
}

/// How long a CRM call may take, unless a connector says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the connectors file at `path`, with `${NAME}` taken from `env`.
pub fn load(
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Connector>, ConnectorConfigError> {
    check(
        path,
        c2d_telemetry::config_file::read("connectors", path)?,
        env,
    )
}

/// Parses a connectors file; `path` only names it in errors.
pub fn parse(
    path: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Connector>, ConnectorConfigError> {
    check(
        path,
        c2d_telemetry::config_file::parse("connectors", path, text)?,
        env,
    )
}

/// The connectors a parsed file declares, once each is complete and its `${NAME}`s are set.
fn check(
    path: &str,
    file: ConnectorsFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Connector>, ConnectorConfigError> {
    let mut connectors: Vec<Connector> = Vec::new();
    for spec in file.connector {
        let name = spec.name.clone();
        let invalid = |message: String| ConnectorConfigError::Invalid {
            path: path.into(),
            name: name.clone(),
            message,
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "a name is letters, digits, '-' and '_' (it keys the connector's queue)".into(),
            ));
        }
        if connectors.iter().any(|c| c.name == name) {
            return Err(invalid("two connectors have this name".into()));
        }
        let defaults = RetryPolicy::default();
        let retry = RetryPolicy {
            max_attempts: spec.max_attempts.unwrap_or(defaults.max_attempts).max(1),
            initial_backoff: spec
                .initial_backoff_ms
                .map_or(defaults.initial_backoff, Duration::from_millis),
            max_backoff: spec
                .max_backoff_ms
                .map_or(defaults.max_backoff, Duration::from_millis),
        };
        let timeout = spec
            .timeout_ms
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let expand = |field: &str, value: &str| {
            c2d_telemetry::env::expand(value, env).map_err(|variable| {
                format!("{field} refers to ${{{variable}}}, which is not set in the environment")
            })
        };
        let tenants = spec.tenants.clone();
        let target = match spec.kind.as_str() {
            "http" => {
                Target::Http(http::HttpTarget::from_spec(&spec, timeout, &expand).map_err(invalid)?)
            }
            "hubspot" => Target::HubSpot(
                hubspot::HubSpotTarget::from_spec(&spec, timeout, &expand).map_err(invalid)?,
            ),
            other => {
                return Err(invalid(format!(
                    "kind {other:?} is not known: use \"http\" or \"hubspot\""
                )));
            }
        };
        connectors.push(Connector {
            name,
            tenants,
            retry,
            target,
        });
    }
    Ok(connectors)
}

/// An HTTP client for one connector: rustls with the system's roots, a timeout per call.
fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("c2d-crm-sync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// The wait a `Retry-After: <seconds>` header asks for.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A failed call (no answer at all) is always worth another try.
fn unreachable(url: &str, error: &reqwest::Error) -> DeliveryError {
    let reason = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        // The source chain says why (connection refused, DNS, TLS).
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            reason = format!("{reason}: {cause}");
            source = cause.source();
        }
        reason
    };
    DeliveryError::transient(format!("cannot reach {url}: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "HUBSPOT_TOKEN").then(|| "pat-123".to_owned())
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let policy = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(10),
        };
        assert_eq!(policy.delay(1, 0), Duration::from_secs(1));
        assert_eq!(
            policy.delay(1, u64::MAX - 1).max(Duration::from_secs(1)),
            policy.delay(1, u64::MAX - 1)
        );
        assert!(policy.delay(1, 999_999) <= Duration::from_secs(2));
        assert_eq!(policy.delay(2, 0), Duration::from_secs(2));
        assert_eq!(policy.delay(3, 0), Duration::from_secs(4));
        assert_eq!(
            policy.delay(30, 0),
            Duration::from_secs(5),
            "capped at max, halved by jitter"
        );
    }

    #[test]
    fn answers_are_classified() {
        use reqwest::StatusCode;
        assert!(DeliveryError::from_response(StatusCode::OK, None, "").is_ok());
        let refused =
            DeliveryError::from_response(StatusCode::BAD_REQUEST, None, "bad").unwrap_err();
        assert!(refused.permanent);
        for status in [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::REQUEST_TIMEOUT,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            assert!(
                !DeliveryError::from_response(status, None, "")
                    .unwrap_err()
                    .permanent
            );
        }
    }

    #[test]
    fn the_example_file_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/connectors.example.toml");
        let connectors = load(path, &|name| Some(format!("secret-of-{name}"))).unwrap();
        let kinds: Vec<(&str, &str)> = connectors
            .iter()
            .map(|c| (c.name.as_str(), c.kind()))
            .collect();
        assert_eq!(kinds, [("hubspot", "hubspot"), ("my-crm", "http")]);
    }

    #[test]
    fn a_connectors_file_is_read_and_checked() {
        let text = r#"
            [[connector]]
            name = "hubspot"
            kind = "hubspot"
            token = "${HUBSPOT_TOKEN}"
            tenants = ["acme"]
            max_attempts = 3

            [[connector]]
            name = "crm"
            kind = "http"
            url = "http://127.0.0.1:9/contacts"
            headers = { "X-Source" = "chat2desk" }
            body = { id = "$.client_id", source = "chat2desk" }
        "#;
        let connectors = parse("c.toml", text, &env).unwrap();
        assert_eq!(connectors.len(), 2);
        assert_eq!(connectors[0].kind(), "hubspot");
        assert!(connectors[0].serves("acme") && !connectors[0].serves("globex"));
        assert_eq!(connectors[0].retry.max_attempts, 3);
        assert!(connectors[1].serves("globex"));

        let missing = parse("c.toml", &text.replace("HUBSPOT_TOKEN", "NOPE"), &env)
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("${NOPE}") && missing.contains("not set"),
            "{missing}"
        );
        let unknown = parse(
            "c.toml",
            "[[connector]]\nname = \"x\"\nkind = \"salesforce\"\n",
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(unknown.contains("\"http\" or \"hubspot\""), "{unknown}");
        let typo = parse(
            "c.toml",
            "[[connector]]\nname = \"x\"\nkind = \"http\"\nurll = \"x\"\n",
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            typo.starts_with("the connectors file c.toml is not valid at line 4, column 1: ")
                && typo.contains("urll"),
            "{typo}"
        );
        let bad_path = parse(
            "c.toml",
            "[[connector]]\nname = \"x\"\nkind = \"http\"\nurl = \"http://h/\"\nbody = { a = \"$.b[\" }\n",
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(bad_path.contains("$.field"), "{bad_path}");
    }
}
