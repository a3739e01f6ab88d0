//! c2d-console's configuration: environment variables, each default written down once, here.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `NATS_URL` | `nats://127.0.0.1:4222` | NATS server(s); `NATS_USER`/`NATS_PASSWORD` as for every service (the console only reads: its own `console` user on the cluster) |
//! | `CONSOLE_ADDR` | `127.0.0.1:8088` | where the console listens (`0.0.0.0:8088` in a container) |
//! | `CONSOLE_ADMIN_TOKEN` | unset | a token that sees every tenant (an operator's) |
//! | `CONSOLE_TENANT_TOKENS` | unset | `tenant=token,tenant2=token2`: a token that sees only its tenant; a tenant listed twice accepts both (rotation). At least one token, admin or tenant, is required |
//! | `CONSOLE_SECURE_COOKIES` | `true` | the session cookie is `Secure`: sent over HTTPS only (browsers also send it to `http://localhost`); `false` only behind plain HTTP you trust |
//! | `CONSOLE_SESSION_HOURS` | `12` | how long a login lasts |
//! | `CONSOLE_SEARCH_LIMIT` | `10000` | events one page of a search reads at most (walking back from the newest); its "Older events" link goes on from there |
//! | `CONSOLE_ANALYTICS_URL` | `http://127.0.0.1:50052` | AnalyticsService, for the contact-center pages |
//! | `CONSOLE_CRM_URL` | `http://127.0.0.1:50051` | CrmService, for clients and connector queues |
//! | `CONSOLE_ALERTING_URL` | `http://127.0.0.1:50053` | AlertingService, for alerts and silences |
//! | `CONSOLE_HINTS_URL` | `http://127.0.0.1:50054` | HintsService, for its statistics |
//! | `CONSOLE_GATEWAY_URL` | `http://127.0.0.1:8080` | the gateway that replayed events are posted to |
//! | `CONSOLE_GATEWAY_TOKENS` | unset | `tenant=secret,...` as the gateway's `GATEWAY_TOKENS` (the same Secret): a replay posts each body with its tenant's secret; unset, replay is off |
//!
//! A service that cannot be reached makes its pages say so; the others keep working.

use std::net::SocketAddr;
use std::time::Duration;

use c2d_telemetry::env::{Env, InvalidVariable};

use crate::auth::{Tokens, TokensError};

pub use c2d_proto::events::DEFAULT_NATS_URL;
pub const DEFAULT_ADDR: &str = "127.0.0.1:8088";
pub const DEFAULT_SESSION: Duration = Duration::from_secs(12 * 3_600);
pub const DEFAULT_SEARCH_LIMIT: usize = 10_000;
pub const DEFAULT_ANALYTICS_URL: &str = "http://127.0.0.1:50052";
pub const DEFAULT_CRM_URL: &str = "http://127.0.0.1:50051";
pub const DEFAULT_ALERTING_URL: &str = "http://127.0.0.1:50053";
pub const DEFAULT_HINTS_URL: &str = "http://127.0.0.1:50054";
pub const DEFAULT_GATEWAY_URL: &str = "http://127.0.0.1:8080";

/// Where the services the console reads through are.
#[derive(Debug, Clone)]
pub struct ServiceUrls {
    pub analytics: String,
    pub crm: String,
    pub alerting: String,
    pub hints: String,
}

/// Everything c2d-console needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub nats_url: String,
    /// NATS_USER/NATS_PASSWORD, NATS_CREDS, NATS_TLS_*, as every service reads them.
    pub nats_credentials: c2d_subscriber::connect::NatsCredentials,
    pub addr: SocketAddr,
    pub tokens: Tokens,
    pub secure_cookies: bool,
    pub session: Duration,
    pub search_limit: usize,
    pub services: ServiceUrls,
    pub gateway_url: String,
    /// Each tenant's gateway secret, for replays; empty: replay is off.
    pub gateway_tokens: GatewayTokens,
}

/// The gateway's secrets by tenant (the first one listed for a tenant). Never printed.
#[derive(Clone, Default)]
pub struct GatewayTokens(Vec<(String, String)>);

impl std::fmt::Debug for GatewayTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(tenant, _)| tenant))
            .finish()
    }
}

impl GatewayTokens {
    /// `tenant=secret,...`; a tenant listed twice keeps its first secret.
    pub fn parse(text: &str) -> Result<GatewayTokens, InvalidVariable> {
        let mut tokens: Vec<(String, String)> = Vec::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let invalid = || InvalidVariable {
                name: "CONSOLE_GATEWAY_TOKENS",
                // Never the value: it holds secrets.
                value: "(not shown)".into(),
                expected: "tenant=secret,tenant2=secret2, as the gateway's GATEWAY_TOKENS",
            };
            let (tenant, secret) = pair.split_once('=').ok_or_else(invalid)?;
            let (tenant, secret) = (tenant.trim(), secret.trim());
            if !c2d_proto::events::is_valid_tenant(tenant) || secret.is_empty() {
                return Err(invalid());
            }
            if !tokens.iter().any(|(known, _)| known == tenant) {
                tokens.push((tenant.to_owned(), secret.to_owned()));
            }
        }
        Ok(GatewayTokens(tokens))
    }

    /// `tenant`'s secret, if the console may replay its events.
    pub fn secret(&self, tenant: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(known, _)| known == tenant)
            .map(|(_, secret)| secret.as_str())
    }

    /// Whether replay is on at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Invalid(#[from] InvalidVariable),
    #[error(transparent)]
    Tokens(#[from] TokensError),
    #[error(transparent)]
    NatsCredentials(#[from] c2d_subscriber::connect::CredentialsError),
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration from any source of variables (tests pass their own).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = Env::new(&lookup);
        let tokens = Tokens::new(
            env.get("CONSOLE_ADMIN_TOKEN"),
            env.get("CONSOLE_TENANT_TOKENS").as_deref(),
        )?;
        Ok(Config {
            nats_credentials: c2d_subscriber::connect::NatsCredentials::from_lookup(&lookup)?,
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
                "a positive number of events, e.g. 10000",
            )? as usize,
            services: ServiceUrls {
                analytics: url(&env, "CONSOLE_ANALYTICS_URL", DEFAULT_ANALYTICS_URL),
                crm: url(&env, "CONSOLE_CRM_URL", DEFAULT_CRM_URL),
                alerting: url(&env, "CONSOLE_ALERTING_URL", DEFAULT_ALERTING_URL),
                hints: url(&env, "CONSOLE_HINTS_URL", DEFAULT_HINTS_URL),
            },
            gateway_url: url(&env, "CONSOLE_GATEWAY_URL", DEFAULT_GATEWAY_URL),
            gateway_tokens: GatewayTokens::parse(
                &env.get("CONSOLE_GATEWAY_TOKENS").unwrap_or_default(),
            )?,
        })
    }
}

/// A URL variable, without a trailing slash.
fn url<F: Fn(&str) -> Option<String>>(env: &Env<F>, name: &str, default: &str) -> String {
    env.get(name)
        .unwrap_or_else(|| default.to_owned())
        .trim_end_matches('/')
        .to_owned()
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
        assert!(config.gateway_tokens.is_empty());
    }

    #[test]
    fn gateway_secrets_are_read_by_tenant_and_never_shown() {
        let tokens = GatewayTokens::parse("acme=first-secret, globex=g, acme=second").unwrap();
        assert_eq!(tokens.secret("acme"), Some("first-secret"));
        assert_eq!(tokens.secret("initech"), None);
        assert!(!format!("{tokens:?}").contains("secret"));
        let error = GatewayTokens::parse("acme").unwrap_err().to_string();
        assert!(
            error.contains("CONSOLE_GATEWAY_TOKENS") && !error.contains("acme"),
            "{error}"
        );
    }
}
