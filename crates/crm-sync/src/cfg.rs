//! c2d-crm-sync configuration: environment variables, each default written down once, here.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `NATS_URL` | `nats://127.0.0.1:4222` | NATS server(s) |
//! | `CRM_GRPC_ADDR` | `127.0.0.1:50051` | where CrmService listens (`0.0.0.0:50051` in a container) |
//! | `CRM_STORE_URL` | `sqlite://data/crm-sync/crm.db` | the projection store: `sqlite://path` (embedded, created if missing) or `postgres://user:password@host:5432/db` |
//! | `CRM_METRICS_ADDR` | `127.0.0.1:9151` | where `/metrics` (Prometheus) and `/healthz` are served; `off` for none |
//! | `CRM_CONNECTORS_FILE` | none | a TOML file of connectors to push changes to (see `connectors.example.toml`); none: the directory is kept, nothing is pushed |

use std::net::SocketAddr;

use crate::connector::{self, Connector, ConnectorConfigError};

pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50051";
pub const DEFAULT_STORE_URL: &str = "sqlite://data/crm-sync/crm.db";
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9151";

/// Everything c2d-crm-sync needs to run.
#[derive(Debug)]
pub struct Config {
    pub nats_url: String,
    pub grpc_addr: SocketAddr,
    /// None: no metrics endpoint.
    pub metrics_addr: Option<SocketAddr>,
    pub store_url: String,
    pub connectors: Vec<Connector>,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}={value:?} is not valid: {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(transparent)]
    Connectors(#[from] ConnectorConfigError),
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// The configuration `lookup` describes (tests pass their own variables).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let grpc_addr = match get("CRM_GRPC_ADDR") {
            None => DEFAULT_GRPC_ADDR.parse().expect("valid default"),
            Some(value) => value.trim().parse().map_err(|_| ConfigError::Invalid {
                name: "CRM_GRPC_ADDR",
                value,
                expected: "host:port, e.g. 0.0.0.0:50051",
            })?,
        };
        let metrics_addr = match get("CRM_METRICS_ADDR") {
            None => Some(DEFAULT_METRICS_ADDR.parse().expect("valid default")),
            Some(value) if value.trim() == "off" => None,
            Some(value) => Some(value.trim().parse().map_err(|_| ConfigError::Invalid {
                name: "CRM_METRICS_ADDR",
                value,
                expected: "host:port, e.g. 0.0.0.0:9151, or off",
            })?),
        };
        let connectors = match get("CRM_CONNECTORS_FILE") {
            None => Vec::new(),
            Some(path) => connector::load(path.trim(), &|name| lookup(name))?,
        };
        Ok(Config {
            nats_url: get("NATS_URL").unwrap_or_else(|| DEFAULT_NATS_URL.to_owned()),
            grpc_addr,
            metrics_addr,
            store_url: get("CRM_STORE_URL").unwrap_or_else(|| DEFAULT_STORE_URL.to_owned()),
            connectors,
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
        assert_eq!(config.store_url, DEFAULT_STORE_URL);
        assert!(config.connectors.is_empty());
        let error =
            Config::from_lookup(|n| (n == "CRM_GRPC_ADDR").then(|| "nope".into())).unwrap_err();
        assert!(error.to_string().contains("0.0.0.0:50051"));
        let error = Config::from_lookup(|n| {
            (n == "CRM_CONNECTORS_FILE").then(|| "/nonexistent/connectors.toml".into())
        })
        .unwrap_err();
        assert!(error.to_string().contains("/nonexistent/connectors.toml"));
    }
}
