//! c2d-analytics configuration: environment variables, each default written down once, here.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `NATS_URL` | `nats://127.0.0.1:4222` | NATS server(s) |
//! | `ANALYTICS_GRPC_ADDR` | `127.0.0.1:50052` | where AnalyticsService listens (`0.0.0.0:50052` in a container) |
//! | `ANALYTICS_METRICS_ADDR` | `127.0.0.1:9152` | where `/metrics` (Prometheus) and `/healthz` are served; `off` for none |
//! | `ANALYTICS_DATA_DIR` | `data/analytics` | where snapshots are kept |
//! | `ANALYTICS_SNAPSHOT_SECS` | `30` | how often the projection is saved (and at shutdown) |
//! | `ANALYTICS_SHARED_SNAPSHOT_SECS` | `300` | with partitions: how often a partition's snapshot is shared in the `C2D_ANALYTICS` bucket for its next owner (and when it is let go) |
//! | `ANALYTICS_PARTITIONS` | `0` | `0`: this replica reads the whole log and holds every tenant. Otherwise the gateway's `GATEWAY_PARTITIONS`: replicas share the partitions of `CHAT2DESK_PARTITIONED` and answer for any tenant, forwarding to its owner (docs/scaling.md) |
//! | `ANALYTICS_REPLICA` | `HOSTNAME`, else `analytics` | this replica's name among the others (the pod's name; stable, so its partitions come back to it) |
//! | `ANALYTICS_ADVERTISE_ADDR` | `ANALYTICS_GRPC_ADDR` | where the other replicas reach this one's AnalyticsService (the pod's address and port) |
//! | `ANALYTICS_LEASE_SECS` | `15` | how long a partition stays with a replica that stopped renewing it |

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use c2d_telemetry::env::Env;

pub use c2d_proto::events::DEFAULT_NATS_URL;
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50052";
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9152";
pub const DEFAULT_DATA_DIR: &str = "data/analytics";
pub const DEFAULT_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(30);
/// Longer than the saves to disk: a shared snapshot crosses the network and is stored by every
/// NATS replica, and it is needed only when a partition's owner dies; a partition let go is
/// shared as it goes, whatever this says.
pub const DEFAULT_SHARED_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(300);

/// Everything c2d-analytics needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub nats_url: String,
    pub grpc_addr: SocketAddr,
    /// None: no metrics endpoint.
    pub metrics_addr: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub snapshot_interval: Duration,
    pub shared_snapshot_interval: Duration,
    /// 0: the whole log in this replica.
    pub partitions: u32,
    pub replica: String,
    pub advertise_addr: String,
    pub lease: Duration,
}

/// A configuration value that cannot be used.
pub use c2d_telemetry::env::InvalidVariable as ConfigError;

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = Env::new(lookup);
        let grpc_addr = env.parse(
            "ANALYTICS_GRPC_ADDR",
            DEFAULT_GRPC_ADDR.parse().expect("valid default"),
            "host:port, e.g. 0.0.0.0:50052",
        )?;
        let metrics_addr = env.address_or_off(
            "ANALYTICS_METRICS_ADDR",
            DEFAULT_METRICS_ADDR.parse().expect("valid default"),
            "host:port, e.g. 0.0.0.0:9152, or off",
        )?;
        let snapshot_interval = Duration::from_secs(env.positive(
            "ANALYTICS_SNAPSHOT_SECS",
            DEFAULT_SNAPSHOT_INTERVAL.as_secs(),
            "a positive number of seconds, e.g. 30",
        )?);
        let shared_snapshot_interval = Duration::from_secs(env.positive(
            "ANALYTICS_SHARED_SNAPSHOT_SECS",
            DEFAULT_SHARED_SNAPSHOT_INTERVAL.as_secs(),
            "a positive number of seconds, e.g. 300",
        )?);
        Ok(Config {
            nats_url: env
                .get("NATS_URL")
                .unwrap_or_else(|| DEFAULT_NATS_URL.to_owned()),
            grpc_addr,
            metrics_addr,
            data_dir: env
                .get("ANALYTICS_DATA_DIR")
                .unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned())
                .into(),
            snapshot_interval,
            shared_snapshot_interval,
            partitions: env.parse(
                "ANALYTICS_PARTITIONS",
                0,
                "the gateway's GATEWAY_PARTITIONS, e.g. 16, or 0 for the whole log",
            )?,
            replica: env
                .get("ANALYTICS_REPLICA")
                .or_else(|| env.get("HOSTNAME"))
                .unwrap_or_else(|| "analytics".to_owned()),
            advertise_addr: env
                .get("ANALYTICS_ADVERTISE_ADDR")
                .unwrap_or_else(|| grpc_addr.to_string()),
            lease: Duration::from_secs(env.positive(
                "ANALYTICS_LEASE_SECS",
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
        assert_eq!(config.snapshot_interval, DEFAULT_SNAPSHOT_INTERVAL);
        assert_eq!(
            config.shared_snapshot_interval,
            DEFAULT_SHARED_SNAPSHOT_INTERVAL
        );
        let error = Config::from_lookup(|n| (n == "ANALYTICS_SNAPSHOT_SECS").then(|| "0".into()))
            .unwrap_err();
        assert!(error.to_string().contains("positive number of seconds"));
    }
}
