//! What the keeper knows of each tenant, kept in the JetStream KV bucket `C2D_KEEPER` (key
//! `tenant.{tenant}`, JSON): the webhook's state and last check, the gaps found and how far
//! their backfill got, and totals. It survives restarts and failovers (the keeper is one
//! replica with no volume), and `c2dctl keeper status` reads it from the bucket directly.

use async_nats::jetstream;
use serde::{Deserialize, Serialize};

use crate::gaps::Gap;
use crate::repairs::Repair;

/// The bucket.
pub const BUCKET: &str = "C2D_KEEPER";

/// The key of a tenant's status.
pub fn key(tenant: &str) -> String {
    format!("tenant.{tenant}")
}

/// One tenant's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantStatus {
    /// The tenant.
    pub tenant: String,
    /// `ok`, `repaired: disabled` (or missing, changed), or what stands in the way.
    pub webhook: String,
    /// The last check, unix milliseconds.
    #[serde(default)]
    pub last_check: Option<i64>,
    /// The last error of a check or a backfill, for people; None once one succeeded.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Webhooks re-registered or re-enabled.
    #[serde(default)]
    pub repairs: u64,
    /// Gaps found in all.
    #[serde(default)]
    pub gaps_found: u64,
    /// Messages stored by backfills in all.
    #[serde(default)]
    pub backfilled: u64,
    /// Client cards stored by backfills (clients the log did not know).
    #[serde(default)]
    pub backfilled_clients: u64,
    /// Messages a backfill listed that were in the log already.
    #[serde(default)]
    pub already_stored: u64,
    /// The recent gaps, oldest first.
    #[serde(default)]
    pub gaps: Vec<Gap>,
    /// Repairs begun or done whose `webhook_repaired` event is not in the log yet, oldest
    /// first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unannounced: Vec<Repair>,
}

impl TenantStatus {
    /// Gaps whose backfill is not complete.
    pub fn pending(&self) -> usize {
        self.gaps.iter().filter(|g| !g.complete).count()
    }
}

/// The state bucket could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "cannot open the state bucket {BUCKET}: {0}; check that JetStream is enabled and has room, and KEEPER_STATE_REPLICAS against the cluster's size"
    )]
    Bucket(String),
    #[error("cannot read {key} of the bucket {BUCKET}: {message}")]
    Read { key: String, message: String },
    #[error("cannot write {key} to the bucket {BUCKET}: {message}")]
    Write { key: String, message: String },
}

/// The keeper's handle on its bucket.
#[derive(Clone)]
pub struct State {
    kv: jetstream::kv::Store,
}

impl State {
    /// Opens the bucket, creating it on the first start.
    pub async fn open(
        jetstream: &jetstream::Context,
        replicas: usize,
    ) -> Result<State, StateError> {
        let kv = c2d_subscriber::bucket::open_or_create(
            jetstream,
            jetstream::kv::Config {
                bucket: BUCKET.into(),
                description: "c2d-keeper: webhook checks and backfilled gaps per tenant".into(),
                history: 1,
                num_replicas: replicas,
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| StateError::Bucket(e.to_string()))?;
        Ok(State { kv })
    }

    /// Opens the bucket if it exists (for readers such as `c2dctl keeper status`).
    pub async fn existing(jetstream: &jetstream::Context) -> Result<State, StateError> {
        let kv = jetstream
            .get_key_value(BUCKET)
            .await
            .map_err(|e| StateError::Bucket(format!("{e}; is c2d-keeper running?")))?;
        Ok(State { kv })
    }

    /// A tenant's status; a fresh one when none is stored.
    pub async fn load(&self, tenant: &str) -> Result<TenantStatus, StateError> {
        let key = key(tenant);
        let read = |message: String| StateError::Read {
            key: key.clone(),
            message,
        };
        match self.kv.get(&key).await.map_err(|e| read(e.to_string()))? {
            None => Ok(TenantStatus {
                tenant: tenant.to_owned(),
                webhook: "not checked yet".into(),
                ..TenantStatus::default()
            }),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| read(e.to_string())),
        }
    }

    /// Every tenant's status, by tenant.
    pub async fn all(&self) -> Result<Vec<TenantStatus>, StateError> {
        use futures_util::TryStreamExt as _;
        let keys: Vec<String> = self
            .kv
            .keys()
            .await
            .map_err(|e| StateError::Bucket(e.to_string()))?
            .try_collect()
            .await
            .map_err(|e| StateError::Bucket(e.to_string()))?;
        let mut all = Vec::new();
        for key in keys {
            if let Some(tenant) = key.strip_prefix("tenant.") {
                all.push(self.load(tenant).await?);
            }
        }
        all.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        Ok(all)
    }

    /// Stores a tenant's status.
    pub async fn save(&self, status: &TenantStatus) -> Result<(), StateError> {
        let key = key(&status.tenant);
        let write = |message: String| StateError::Write {
            key: key.clone(),
            message,
        };
        let bytes = serde_json::to_vec(status).map_err(|e| write(e.to_string()))?;
        self.kv
            .put(&key, bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| write(e.to_string()))
    }
}
