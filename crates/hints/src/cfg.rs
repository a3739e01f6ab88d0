//! c2d-hints configuration: environment variables, each default written down once, here.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `NATS_URL` | `nats://127.0.0.1:4222` | NATS server(s), comma-separated |
//! | `HINTS_GRPC_ADDR` | `127.0.0.1:50054` | where HintsService listens (`0.0.0.0:50054` in a container) |
//! | `HINTS_METRICS_ADDR` | `127.0.0.1:9154` | where `/metrics` (Prometheus) and `/healthz` are served; `off` for none |
//! | `HINTS_MAX_HINTS` | `5` | hints per answer when the request does not say |
//! | `HINTS_MESSAGE_WAIT_MS` | `500` | how long a request for a message not seen yet waits for its inbox event (it travels through NATS while the request comes straight from the gateway) |
//! | `HINTS_PROVIDER_URL` | unset | an OpenAI-compatible chat-completions endpoint (e.g. `https://api.openai.com/v1/chat/completions`) that reranks the local hints and may write one; unset: local ranking only |
//! | `HINTS_PROVIDER_KEY` | unset | its API key (sent as `Authorization: Bearer`) |
//! | `HINTS_PROVIDER_MODEL` | `gpt-4o-mini` | the model asked |
//! | `HINTS_PROVIDER_DEADLINE_MS` | `800` | the provider's hard deadline; after it the local ranking is answered |

use std::net::SocketAddr;
use std::time::Duration;

use c2d_telemetry::env::Env;

pub use c2d_proto::events::DEFAULT_NATS_URL;
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50054";
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9154";
pub const DEFAULT_MAX_HINTS: usize = 5;
pub const DEFAULT_MESSAGE_WAIT: Duration = Duration::from_millis(500);
pub const DEFAULT_PROVIDER_MODEL: &str = "gpt-4o-mini";
pub const DEFAULT_PROVIDER_DEADLINE: Duration = Duration::from_millis(800);

/// Everything c2d-hints needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub nats_url: String,
    pub grpc_addr: SocketAddr,
    /// None: no metrics endpoint.
    pub metrics_addr: Option<SocketAddr>,
    pub max_hints: usize,
    pub message_wait: Duration,
    pub provider: Option<ProviderConfig>,
}

/// The optional external provider.
#[derive(Clone)]
pub struct ProviderConfig {
    pub url: String,
    pub key: Option<String>,
    pub model: String,
    pub deadline: Duration,
}

impl std::fmt::Debug for ProviderConfig {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("url", &self.url)
            .field("key", &self.key.as_ref().map(|_| "***"))
            .field("model", &self.model)
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// A configuration value that cannot be used.
pub use c2d_telemetry::env::InvalidVariable as ConfigError;

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = Env::new(lookup);
        let provider = match env.get("HINTS_PROVIDER_URL") {
            None => None,
            Some(url) => Some(ProviderConfig {
                url,
                key: env.get("HINTS_PROVIDER_KEY"),
                model: env
                    .get("HINTS_PROVIDER_MODEL")
                    .unwrap_or_else(|| DEFAULT_PROVIDER_MODEL.to_owned()),
                deadline: Duration::from_millis(env.positive(
                    "HINTS_PROVIDER_DEADLINE_MS",
                    DEFAULT_PROVIDER_DEADLINE.as_millis() as u64,
                    "a positive number of milliseconds, e.g. 800",
                )?),
            }),
        };
        Ok(Config {
            nats_url: env
                .get("NATS_URL")
                .unwrap_or_else(|| DEFAULT_NATS_URL.to_owned()),
            grpc_addr: env.parse(
                "HINTS_GRPC_ADDR",
                DEFAULT_GRPC_ADDR.parse().expect("valid default"),
                "host:port, e.g. 0.0.0.0:50054",
            )?,
            metrics_addr: env.address_or_off(
                "HINTS_METRICS_ADDR",
                DEFAULT_METRICS_ADDR.parse().expect("valid default"),
                "host:port, e.g. 0.0.0.0:9154, or off",
            )?,
            max_hints: env.positive(
                "HINTS_MAX_HINTS",
                DEFAULT_MAX_HINTS as u64,
                "a positive number of hints, e.g. 5",
            )? as usize,
            message_wait: Duration::from_millis(env.parse(
                "HINTS_MESSAGE_WAIT_MS",
                DEFAULT_MESSAGE_WAIT.as_millis() as u64,
                "a number of milliseconds, e.g. 500",
            )?),
            provider,
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
        assert_eq!(config.max_hints, DEFAULT_MAX_HINTS);
        assert!(config.provider.is_none());
        let error =
            Config::from_lookup(|n| (n == "HINTS_MAX_HINTS").then(|| "0".into())).unwrap_err();
        assert!(error.to_string().contains("positive number of hints"));
        let config = Config::from_lookup(|n| match n {
            "HINTS_PROVIDER_URL" => Some("http://127.0.0.1:1/v1/chat/completions".into()),
            "HINTS_PROVIDER_KEY" => Some("sk-secret".into()),
            _ => None,
        })
        .unwrap();
        let provider = config.provider.unwrap();
        assert_eq!(provider.model, DEFAULT_PROVIDER_MODEL);
        assert!(!format!("{provider:?}").contains("sk-secret"));
    }
}
