//! c2d-crm-sync configuration: environment variables, each default written down once, here.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `NATS_URL` | `nats://127.0.0.1:4222` | NATS server(s) |
//! | `CRM_GRPC_ADDR` | `127.0.0.1:50051` | where CrmService listens (`0.0.0.0:50051` in a container) |
//! | `CRM_STORE_URL` | `sqlite://data/crm-sync/crm.db` | the projection store: `sqlite://path` (embedded, created if missing) or `postgres://user:password@host:5432/db` |
//! | `CRM_METRICS_ADDR` | `127.0.0.1:9151` | where `/metrics` (Prometheus) and `/healthz` are served; `off` for none |
//! | `CRM_PARTITIONS` | `0` | `0`: one replica reads the whole log. Otherwise the gateway's `GATEWAY_PARTITIONS`: replicas share the partitions of `CHAT2DESK_PARTITIONED`, each applying its own into the one PostgreSQL directory, and the owner of partition 0 delivers the connectors' queues (docs/scaling.md) |
//! | `CRM_REPLICA` | `HOSTNAME`, else `crm-sync` | this replica's name among the others (the pod's name) |
//! | `CRM_LEASE_SECS` | `15` | how long a partition stays with a replica that stopped renewing it |
//! | `CRM_CONNECTORS_FILE` | none | a TOML file of connectors to push changes to (see `connectors.example.toml`); none: the directory is kept, nothing is pushed |

use std::net::SocketAddr;

use c2d_telemetry::env::{Env, InvalidVariable};

use crate::connector::{self, Connector, ConnectorConfigError};

pub use c2d_proto::events::DEFAULT_NATS_URL;
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
    /// 0: the whole log in this replica.
    pub partitions: u32,
    pub replica: String,
    pub lease: std::time::Duration,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Invalid(#[from] InvalidVariable),
    #[error(transparent)]
    Connectors(#[from] ConnectorConfigError),
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// The configuration `lookup` describes (tests pass their own variables).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = Env::new(lookup);
        let grpc_addr = env.parse(
            "CRM_GRPC_ADDR",
            DEFAULT_GRPC_ADDR.parse().expect("valid default"),
            "host:port, e.g. 0.0.0.0:50051",
        )?;
        let metrics_addr = match env.get("CRM_METRICS_ADDR").as_deref() {
            Some("off") => None,
            _ => Some(env.parse(
                "CRM_METRICS_ADDR",
                DEFAULT_METRICS_ADDR.parse().expect("valid default"),
                "host:port, e.g. 0.0.0.0:9151, or off",
            )?),
        };
        let connectors = match env.get("CRM_CONNECTORS_FILE") {
            None => Vec::new(),
            Some(path) => connector::load(&path, &|name| env.lookup(name))?,
        };
        let partitions = env.parse(
            "CRM_PARTITIONS",
            0,
            "the gateway's GATEWAY_PARTITIONS, e.g. 16, or 0 for the whole log",
        )?;
        let store_url = env
            .get("CRM_STORE_URL")
            .unwrap_or_else(|| DEFAULT_STORE_URL.to_owned());
        if partitions > 0 && !store_url.starts_with("postgres") {
            return Err(InvalidVariable {
                name: "CRM_STORE_URL",
                value: crate::store::redact(&store_url),
                expected: "a postgres:// URL: replicas (CRM_PARTITIONS) share one directory",
            }
            .into());
        }
        Ok(Config {
            nats_url: env
                .get("NATS_URL")
                .unwrap_or_else(|| DEFAULT_NATS_URL.to_owned()),
            grpc_addr,
            metrics_addr,
            store_url,
            connectors,
            partitions,
            replica: env
                .get("CRM_REPLICA")
                .or_else(|| env.get("HOSTNAME"))
                .unwrap_or_else(|| "crm-sync".to_owned()),
            lease: std::time::Duration::from_secs(env.positive(
                "CRM_LEASE_SECS",
                c2d_subscriber::ownership::DEFAULT_LEASE.as_secs(),
                "a positive number of seconds, e.g. 15",
            )?),
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

    #[test]
    fn replicas_share_one_postgresql_directory() {
        let error = Config::from_lookup(|n| (n == "CRM_PARTITIONS").then(|| "16".into()))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("CRM_STORE_URL") && error.contains("postgres://"),
            "{error}"
        );
        let config = Config::from_lookup(|n| match n {
            "CRM_PARTITIONS" => Some("16".into()),
            "CRM_STORE_URL" => Some("postgres://crm:secret@db:5432/crm".into()),
            "CRM_REPLICA" => Some("crm-sync-2".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            (config.partitions, config.replica.as_str()),
            (16, "crm-sync-2")
        );
    }
}
