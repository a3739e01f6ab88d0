//! c2d-console's configuration: environment variables, each default written down once, here.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `NATS_URL` | `nats://127.0.0.1:4222` | NATS server(s); `NATS_USER`/`NATS_PASSWORD` as for every service (the console only reads: the `reader` user) |
//! | `CONSOLE_ADDR` | `127.0.0.1:8088` | where the console listens (`0.0.0.0:8088` in a container) |
//! | `CONSOLE_ADMIN_TOKEN` | unset | a token that sees every tenant (an operator's) |
//! | `CONSOLE_TENANT_TOKENS` | unset | `tenant=token,tenant2=token2`: a token that sees only its tenant; a tenant listed twice accepts both (rotation). At least one token, admin or tenant, is required |
//! | `CONSOLE_SECURE_COOKIES` | `true` | the session cookie is `Secure`: sent over HTTPS only (browsers also send it to `http://localhost`); `false` only behind plain HTTP you trust |
//! | `CONSOLE_SESSION_HOURS` | `12` | how long a login lasts |
//! | `CONSOLE_SEARCH_LIMIT` | `20000` | events read back at most for one search (the newest of them are shown) |

use std::net::SocketAddr;
use std::time::Duration;

use c2d_telemetry::env::{Env, InvalidVariable};

use crate::auth::{Tokens, TokensError};

pub use c2d_proto::events::DEFAULT_NATS_URL;
pub const DEFAULT_ADDR: &str = "127.0.0.1:8088";
pub const DEFAULT_SESSION: Duration = Duration::from_secs(12 * 3_600);
pub const DEFAULT_SEARCH_LIMIT: usize = 20_000;

/// Everything c2d-console needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub nats_url: String,
    pub addr: SocketAddr,
    pub tokens: Tokens,
    pub secure_cookies: bool,
    pub session: Duration,
    pub search_limit: usize,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Invalid(#[from] InvalidVariable),
    #[error(transparent)]
    Tokens(#[from] TokensError),
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration from any source of variables (tests pass their own).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = Env::new(lookup);
        let tokens = Tokens::new(
            env.get("CONSOLE_ADMIN_TOKEN"),
            env.get("CONSOLE_TENANT_TOKENS").as_deref(),
        )?;
        Ok(Config {
            nats_url: env
                .get("NATS_URL")
                .unwrap_or_else(|| DEFAULT_NATS_URL.to_owned()),
            addr: env.parse(
                "CONSOLE_ADDR",
                DEFAULT_ADDR.parse().expect("valid default"),
                "host:port, e.g. 0.0.0.0:8088",
            )?,
            tokens,
            secure_cookies: env.parse("CONSOLE_SECURE_COOKIES", true, "true or false")?,
            session: Duration::from_secs(
                3_600
                    * env.positive(
                        "CONSOLE_SESSION_HOURS",
                        DEFAULT_SESSION.as_secs() / 3_600,
                        "a positive number of hours, e.g. 12",
                    )?,
            ),
            search_limit: env.positive(
                "CONSOLE_SEARCH_LIMIT",
                DEFAULT_SEARCH_LIMIT as u64,
                "a positive number of events, e.g. 20000",
            )? as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_without_any_token_says_how_to_give_one() {
        let error = Config::from_lookup(|_| None).unwrap_err().to_string();
        assert!(error.contains("CONSOLE_ADMIN_TOKEN"), "{error}");
        let config = Config::from_lookup(|name| {
            (name == "CONSOLE_TENANT_TOKENS").then(|| "acme=a-long-token-0123456789".to_owned())
        })
        .unwrap();
        assert_eq!(config.addr.to_string(), DEFAULT_ADDR);
        assert!(config.secure_cookies);
    }
}
