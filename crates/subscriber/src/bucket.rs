//! The JetStream key-value buckets services keep shared state in (partition leases, business
//! calendars, the keeper's checks).
//!
//! Whichever service starts first creates a bucket; the others open it. Replicas of a
//! deployment start together, so two of them often find the bucket missing at the same
//! moment and both create it. JetStream accepts the second create only when its
//! configuration is identical, and services of different versions, or with a different
//! replica count configured, ask for different ones: the loser then opens the bucket the
//! winner made instead of failing its start.
//!
//! On a NATS cluster a bucket just created is not usable at once: until the replicas of its
//! stream have elected a leader, asking for the stream's state answers "stream not found". A
//! service that reads the bucket right after creating it (the calendars are read whole at
//! start) then stopped, so creating waits until the stream answers. Opening a bucket asks for
//! its stream's state already, so a bucket that opens answers.

use std::time::Duration;

use async_nats::jetstream::{self, kv};

/// How long a bucket's stream may take to answer after it was created: a leader
/// election of a new stream on a loaded cluster takes a few seconds.
const STREAM_READY_WAIT: Duration = Duration::from_secs(15);

/// A bucket that could be neither opened nor created. It says what NATS answered; each
/// caller's own error adds what to check for its bucket.
#[derive(Debug, thiserror::Error)]
#[error("NATS refused to create or open the bucket {bucket}: {reason}")]
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
    // Opening asks for the bucket's stream state: a bucket opened here answers already.
    if let Ok(store) = jetstream.get_key_value(&config.bucket).await {
        return Ok(store);
    }
    let bucket = config.bucket.clone();
    match jetstream.create_key_value(config).await {
        Ok(store) => {
            stream_answers(jetstream, &bucket).await?;
            Ok(store)
        }
        // Another replica (of this service or another) created it meanwhile; opening it
        // asks for its state, so it answers too.
        Err(create) => jetstream
            .get_key_value(&bucket)
            .await
            .map_err(|_| BucketError {
                bucket,
                reason: create.to_string(),
            }),
    }
}

/// Waits until the stream behind `bucket` answers for its state (see the module's docs).
async fn stream_answers(jetstream: &jetstream::Context, bucket: &str) -> Result<(), BucketError> {
    let deadline = tokio::time::Instant::now() + STREAM_READY_WAIT;
    let mut pause = Duration::from_millis(50);
    loop {
        match jetstream.get_stream(format!("KV_{bucket}")).await {
            Ok(_) => return Ok(()),
            Err(error) if tokio::time::Instant::now() >= deadline => {
                return Err(BucketError {
                    bucket: bucket.to_owned(),
                    reason: format!(
                        "its stream still answers \"{error}\" {} s after it was created",
                        STREAM_READY_WAIT.as_secs()
                    ),
                });
            }
            Err(error) => {
                tracing::debug!(bucket, %error, "the bucket's stream does not answer yet");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}
