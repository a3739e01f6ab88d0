//! Connecting a service to NATS: one way for every consumer, so that each one names itself to
//! the server (`nats server report connections` shows who is who), reads `NATS_URL` as a list of
//! servers, and fails with the same error that says what to check.

/// Why a service could not connect to NATS.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot connect to NATS at {url}: {source}; is nats-server running? (make run starts one; on Kubernetes check NATS_URL and the nats pods)"
)]
pub struct ConnectError {
    pub url: String,
    #[source]
    pub source: async_nats::ConnectError,
}

/// Connects `service` (its binary's name) to the NATS servers in `nats_url` (comma-separated).
pub async fn connect(service: &str, nats_url: &str) -> Result<async_nats::Client, ConnectError> {
    async_nats::ConnectOptions::new()
        .name(service)
        .connect(c2d_telemetry::env::list(nats_url))
        .await
        .map_err(|source| ConnectError {
            url: nats_url.to_owned(),
            source,
        })
}
