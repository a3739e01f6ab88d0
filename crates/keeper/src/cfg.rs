//! c2d-keeper configuration: environment variables, each default written down once, here.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `NATS_URL` | `nats://127.0.0.1:4222` | NATS server(s) |
//! | `KEEPER_ADDR` | `127.0.0.1:9160` | where `/metrics` (Prometheus) and `/healthz` are served |
//! | `KEEPER_API_TOKENS` | unset | `tenant=api_token,...`: the Chat2Desk API token of each tenant the keeper keeps (a Secret); unset: the keeper keeps nothing and says so |
//! | `GATEWAY_TOKENS` | required for each kept tenant | `tenant=secret,...`, the gateway's own: the token a re-registered webhook URL carries |
//! | `KEEPER_GATEWAY_URL` | unset | the gateway's public address as Chat2Desk reaches it; unset: a changed or disabled webhook keeps the gateway it points at, and a missing one is reported, not created |
//! | `C2D_API_URL` | `https://api.chat2desk.com/v1` | Chat2Desk's API |
//! | `KEEPER_CHECK_INTERVAL` | `1m` | how often each tenant's webhook is checked and pending gaps backfilled |
//! | `KEEPER_SILENCE` | `15m` | no webhook delivery of a tenant for longer than this is a gap to backfill |
//! | `KEEPER_REDELIVERY_HORIZON` | `135m` | Chat2Desk's whole retry schedule (10 s + 5 min + 2 h) and a margin: a message older than this that is not in the log never will be |
//! | `KEEPER_BACKFILL_MARGIN` | `1m` | how far each gap's window is widened on both sides |
//! | `KEEPER_LOOKBACK` | `168h` | how far back the message index reads the log at start (older gaps are not backfilled) |
//! | `KEEPER_STATE_REPLICAS` | `1` | replicas of the `C2D_KEEPER` state bucket (3 on a NATS cluster) |

use std::net::SocketAddr;
use std::time::Duration;

use c2d_telemetry::env::{Env, InvalidVariable};

pub use c2d_proto::events::DEFAULT_NATS_URL;
pub const DEFAULT_ADDR: &str = "127.0.0.1:9160";
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(60);
pub const DEFAULT_SILENCE: Duration = Duration::from_secs(15 * 60);
/// 10 s + 5 min + 2 h of retries, and 10 minutes more for slow answers and clocks.
pub const DEFAULT_REDELIVERY_HORIZON: Duration = Duration::from_secs(2 * 3600 + 15 * 60);
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(60);
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(7 * 24 * 3600);

/// One tenant the keeper keeps.
#[derive(Clone, PartialEq)]
pub struct Tenant {
    /// The tenant, as in the webhook URL (`/hooks/chat2desk/{tenant}`).
    pub name: String,
    /// Chat2Desk's API token of the account.
    pub api_token: String,
    /// The gateway's secrets of the tenant, in `GATEWAY_TOKENS`' order: a webhook URL with any
    /// of them is right (a rotation lists the old and the new one), and a repair writes the
    /// last, the newest.
    pub gateway_tokens: Vec<String>,
}

impl Tenant {
    /// The secret a repaired webhook's URL carries: the tenant's last in `GATEWAY_TOKENS`.
    pub fn gateway_token(&self) -> &str {
        self.gateway_tokens.last().map_or("", String::as_str)
    }
}

/// Tokens stay out of logs.
impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tenant({})", self.name)
    }
}

/// Everything c2d-keeper needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `NATS_URL`.
    pub nats_url: String,
    /// `KEEPER_ADDR`: `/metrics` and `/healthz`.
    pub addr: SocketAddr,
    /// `KEEPER_API_TOKENS` with each tenant's `GATEWAY_TOKENS`.
    pub tenants: Vec<Tenant>,
    /// `KEEPER_GATEWAY_URL`.
    pub gateway_url: Option<String>,
    /// `C2D_API_URL`.
    pub api_url: String,
    /// `KEEPER_CHECK_INTERVAL`.
    pub check_interval: Duration,
    /// `KEEPER_SILENCE`.
    pub silence: Duration,
    /// `KEEPER_REDELIVERY_HORIZON`.
    pub redelivery_horizon: Duration,
    /// `KEEPER_BACKFILL_MARGIN`.
    pub margin: Duration,
    /// `KEEPER_LOOKBACK`.
    pub lookback: Duration,
    /// `KEEPER_STATE_REPLICAS`.
    pub replicas: usize,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Invalid(#[from] InvalidVariable),
    #[error(
        "tenant {0:?} has an API token in KEEPER_API_TOKENS but no secret in GATEWAY_TOKENS: give the gateway's GATEWAY_TOKENS to the keeper too"
    )]
    NoGatewayToken(String),
    #[error("{name}: {entry:?} is not tenant=value (a tenant is letters, digits, - and _)")]
    Pair { name: &'static str, entry: String },
}

impl Config {
    /// The configuration of the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// The configuration `lookup` describes (tests pass their own variables).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = Env::new(lookup);
        let duration = |name: &'static str, default: Duration| match env.get(name) {
            None => Ok(default),
            Some(text) => c2d_telemetry::env::duration(&text)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or(InvalidVariable {
                    name,
                    value: text,
                    expected: "a duration such as 500ms, 30s, 10m, 2h",
                }),
        };
        let api_tokens = pairs("KEEPER_API_TOKENS", env.get("KEEPER_API_TOKENS"))?;
        let gateway_tokens = pairs("GATEWAY_TOKENS", env.get("GATEWAY_TOKENS"))?;
        let tenants = api_tokens
            .into_iter()
            .map(|(name, api_token)| {
                let secrets: Vec<String> = gateway_tokens
                    .iter()
                    .filter(|(t, _)| *t == name)
                    .map(|(_, s)| s.clone())
                    .collect();
                if secrets.is_empty() {
                    return Err(ConfigError::NoGatewayToken(name));
                }
                Ok(Tenant {
                    name,
                    api_token,
                    gateway_tokens: secrets,
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(Config {
            nats_url: env
                .get("NATS_URL")
                .unwrap_or_else(|| DEFAULT_NATS_URL.to_owned()),
            addr: env.parse(
                "KEEPER_ADDR",
                DEFAULT_ADDR.parse().expect("valid default"),
                "host:port, e.g. 0.0.0.0:9160",
            )?,
            tenants,
            gateway_url: env.get("KEEPER_GATEWAY_URL"),
            api_url: env
                .get("C2D_API_URL")
                .unwrap_or_else(|| c2d_chat2desk::DEFAULT_API_URL.to_owned()),
            check_interval: duration("KEEPER_CHECK_INTERVAL", DEFAULT_CHECK_INTERVAL)?,
            silence: duration("KEEPER_SILENCE", DEFAULT_SILENCE)?,
            redelivery_horizon: duration("KEEPER_REDELIVERY_HORIZON", DEFAULT_REDELIVERY_HORIZON)?,
            margin: duration("KEEPER_BACKFILL_MARGIN", DEFAULT_MARGIN)?,
            lookback: duration("KEEPER_LOOKBACK", DEFAULT_LOOKBACK)?,
            replicas: env.positive("KEEPER_STATE_REPLICAS", 1, "1, 3 or 5")? as usize,
        })
    }
}

/// `a=x,b=y` as pairs, each tenant checked.
fn pairs(name: &'static str, value: Option<String>) -> Result<Vec<(String, String)>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .split_once('=')
                .map(|(t, v)| (t.trim().to_owned(), v.trim().to_owned()))
                .filter(|(t, v)| c2d_proto::events::is_valid_tenant(t) && !v.is_empty())
                .ok_or_else(|| ConfigError::Pair {
                    name,
                    entry: entry.split('=').next().unwrap_or_default().to_owned() + "=***",
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pairs_and_errors() {
        let vars = |extra: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                [
                    ("KEEPER_API_TOKENS", "acme=api-1, globex=api-2"),
                    ("GATEWAY_TOKENS", "acme=s1,globex=s2,acme=s1-new"),
                ]
                .iter()
                .chain(extra)
                .rev()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
            }
        };
        let config = Config::from_lookup(vars(&[])).unwrap();
        assert_eq!(config.tenants.len(), 2);
        assert_eq!(config.tenants[1].gateway_token(), "s2");
        assert_eq!(config.tenants[0].gateway_tokens, ["s1", "s1-new"]);
        assert_eq!(
            config.tenants[0].gateway_token(),
            "s1-new",
            "the newest repairs"
        );
        assert_eq!(config.redelivery_horizon, DEFAULT_REDELIVERY_HORIZON);
        assert_eq!(config.api_url, c2d_chat2desk::DEFAULT_API_URL);
        assert!(
            !format!("{config:?}").contains("api-1"),
            "tokens stay out of logs"
        );

        let fast = Config::from_lookup(vars(&[("KEEPER_CHECK_INTERVAL", "250ms")])).unwrap();
        assert_eq!(fast.check_interval, Duration::from_millis(250));
        let error = Config::from_lookup(vars(&[("KEEPER_SILENCE", "soon")])).unwrap_err();
        assert!(error.to_string().contains("KEEPER_SILENCE"), "{error}");
        let error = Config::from_lookup(vars(&[("GATEWAY_TOKENS", "acme=s1")])).unwrap_err();
        assert!(error.to_string().contains("\"globex\""), "{error}");
        let none = Config::from_lookup(vars(&[("KEEPER_API_TOKENS", "")])).unwrap();
        assert!(none.tenants.is_empty());
        let error = Config::from_lookup(vars(&[("KEEPER_API_TOKENS", "a b=secret")])).unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
    }
}
