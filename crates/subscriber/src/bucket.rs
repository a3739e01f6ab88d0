//! The JetStream key-value buckets services keep shared state in (partition leases, business
//! calendars, the keeper's checks).
//!
//! Whichever service starts first creates a bucket; the others open it. Replicas of a
//! deployment start together, so two of them often find the bucket missing at the same
//! moment and both create it. JetStream accepts the second create only when its
//! configuration is identical, and services of different versions, or with a different
//! replica count configured, ask for different ones: the loser then opens the bucket the
//! winner made instead of failing its start.

use async_nats::jetstream::{self, kv};

/// A bucket that could be neither opened nor created. It says what NATS answered; each
/// caller's own error adds what to check for its bucket.
#[derive(Debug, thiserror::Error)]
#[error("NATS refused to create the bucket {bucket}: {reason}")]
pub struct BucketError {
    /// The bucket's name.
    pub bucket: String,
    /// What NATS answered to the create.
    pub reason: String,
}

/// Opens the bucket `config.bucket`, creating it with `config` when it does not exist yet. An
/// existing bucket keeps its own configuration.
pub async fn open_or_create(
    jetstream: &jetstream::Context,
    config: kv::Config,
) -> Result<kv::Store, BucketError> {
    if let Ok(store) = jetstream.get_key_value(&config.bucket).await {
        return Ok(store);
    }
    let bucket = config.bucket.clone();
    match jetstream.create_key_value(config).await {
        Ok(store) => Ok(store),
        // Another replica (of this service or another) created it meanwhile.
        Err(create) => jetstream
            .get_key_value(&bucket)
            .await
            .map_err(|_| BucketError {
                bucket,
                reason: create.to_string(),
            }),
    }
}
