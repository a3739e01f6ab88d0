//! c2d-alerting configuration: environment variables, each default written down once, here.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `NATS_URL` | `nats://127.0.0.1:4222` | NATS server(s) |
//! | `ALERTING_GRPC_ADDR` | `127.0.0.1:50053` | where AlertingService listens |
//! | `ALERTING_METRICS_ADDR` | `127.0.0.1:9153` | where `/metrics` (Prometheus) and `/healthz` are served; `off` for none |
//! | `ALERTING_RULES_FILE` | unset | the rules and receivers (TOML, see `alerting.example.toml`); unset: no rule, nothing fires |
//! | `ALERTING_CRM_URL` | unset | CrmService (e.g. `http://127.0.0.1:50051`) to name clients and route by tag; unset: alerts carry client ids |
//! | `ALERTING_ANALYTICS_URL` | unset | AnalyticsService (e.g. `http://127.0.0.1:50052`), which threshold rules ask; required when there is one |
//! | `ALERTING_TICK_MS` | `1000` | how often timers, quiet event alerts and silent tenants are checked |
//! | `ALERTING_STATE_REPLICAS` | `1` | replicas of the state bucket and the alerts stream (3 on a NATS cluster) |

use std::net::SocketAddr;
use std::time::Duration;

use c2d_telemetry::env::{Env, InvalidVariable};

use crate::rules::{self, Rules, RulesError};

pub use c2d_proto::events::DEFAULT_NATS_URL;
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50053";
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9153";
pub const DEFAULT_TICK: Duration = Duration::from_secs(1);

/// Everything c2d-alerting needs to run.
#[derive(Debug)]
pub struct Config {
    pub nats_url: String,
    pub grpc_addr: SocketAddr,
    /// None: no metrics endpoint.
    pub metrics_addr: Option<SocketAddr>,
    pub rules: Rules,
    pub crm_url: Option<String>,
    pub analytics_url: Option<String>,
    pub tick: Duration,
    pub replicas: usize,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Invalid(#[from] InvalidVariable),
    #[error(transparent)]
    Rules(#[from] RulesError),
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = Env::new(lookup);
        let grpc_addr = env.parse(
            "ALERTING_GRPC_ADDR",
            DEFAULT_GRPC_ADDR.parse().expect("valid default"),
            "host:port, e.g. 0.0.0.0:50053",
        )?;
        let metrics_addr = env.address_or_off(
            "ALERTING_METRICS_ADDR",
            DEFAULT_METRICS_ADDR.parse().expect("valid default"),
            "host:port, e.g. 0.0.0.0:9153, or off",
        )?;
        let tick = Duration::from_millis(env.positive(
            "ALERTING_TICK_MS",
            DEFAULT_TICK.as_millis() as u64,
            "a positive number of milliseconds, e.g. 1000",
        )?);
        let replicas = env.positive("ALERTING_STATE_REPLICAS", 1, "1, 3 or 5")? as usize;
        let rules = match env.get("ALERTING_RULES_FILE") {
            None => Rules::default(),
            Some(path) => rules::load(&path, &|name| env.lookup(name))?,
        };
        Ok(Config {
            nats_url: env
                .get("NATS_URL")
                .unwrap_or_else(|| DEFAULT_NATS_URL.to_owned()),
            grpc_addr,
            metrics_addr,
            rules,
            crm_url: env.get("ALERTING_CRM_URL"),
            analytics_url: env.get("ALERTING_ANALYTICS_URL"),
            tick,
            replicas,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(config.grpc_addr.to_string(), DEFAULT_GRPC_ADDR);
        assert!(config.rules.rules.is_empty());
        let error =
            Config::from_lookup(|n| (n == "ALERTING_TICK_MS").then(|| "0".into())).unwrap_err();
        assert!(error.to_string().contains("positive number"), "{error}");
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/alerting.example.toml");
        let config = Config::from_lookup(|n| match n {
            "ALERTING_RULES_FILE" => Some(example.into()),
            n if n.starts_with("ALERTING_") || n == "NATS_URL" => None,
            n => Some(format!("secret-of-{n}")),
        })
        .unwrap();
        assert!(!config.rules.rules.is_empty(), "the example file is valid");
    }
}
