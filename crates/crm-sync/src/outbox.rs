//! Each connector's durable queue of client changes (`crm_outbox`), and the operations on it.
//!
//! A change is a row from the moment the event that caused it is applied (same transaction)
//! until the CRM accepts it; then it is deleted. Per client, only the oldest pending change
//! of a connector is ever handed out, so a CRM sees a client's changes in order; different
//! clients go in parallel. A change the CRM refuses, or that fails `max_attempts` times,
//! becomes a dead letter: kept with its last error for an operator to read and retry. When a
//! newer change of the same client is delivered, older dead letters are deleted: the CRM
//! holds a newer snapshot, and retrying them would only set it back.

use crate::clock;
use crate::connector::{DeliveryError, RetryPolicy};
use crate::store::{Store, StoreError};

/// One queued change; read from `crm_outbox` by column name (the `COLUMNS` below).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Change {
    pub id: i64,
    pub connector: String,
    pub tenant: String,
    pub client_id: i64,
    pub idempotency_key: String,
    /// The client's state as JSON text.
    pub payload: String,
    pub attempts: i64,
    pub queued_at: i64,
    pub last_error: Option<String>,
}

/// The columns a [`Change`] is read from.
const COLUMNS: &str =
    "id, connector, tenant, client_id, idempotency_key, payload, attempts, queued_at, last_error";

/// Up to `limit` changes of `connector` due at `now`, each the oldest pending change of its
/// client.
pub async fn due(
    store: &Store,
    connector: &str,
    now: i64,
    limit: i64,
) -> Result<Vec<Change>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM crm_outbox o
         WHERE o.connector = $1 AND o.state = 'pending' AND o.next_attempt_at <= $2
           AND NOT EXISTS (SELECT 1 FROM crm_outbox p
               WHERE p.connector = o.connector AND p.tenant = o.tenant AND p.client_id = o.client_id
                 AND p.state = 'pending' AND p.id < o.id)
         ORDER BY o.id LIMIT $3"
    ))
    .bind(connector)
    .bind(now)
    .bind(limit)
    .fetch_all(store.pool())
    .await?)
}

/// When the next pending change of `connector` is due, if any is pending.
pub async fn next_due(store: &Store, connector: &str) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT MIN(next_attempt_at) AS next FROM crm_outbox WHERE connector = $1 AND state = 'pending'",
    )
    .bind(connector)
    .fetch_one(store.pool())
    .await?)
}

/// The CRM accepted `change`: it leaves the queue, with the client's older dead letters.
/// Returns how many dead letters it superseded.
pub async fn delivered(store: &Store, change: &Change) -> Result<u64, StoreError> {
    let _writing = store.write().await;
    let mut transaction = store.pool().begin().await?;
    sqlx::query("DELETE FROM crm_outbox WHERE id = $1")
        .bind(change.id)
        .execute(&mut *transaction)
        .await?;
    let superseded = sqlx::query(
        "DELETE FROM crm_outbox WHERE connector = $1 AND tenant = $2 AND client_id = $3
             AND state = 'dead' AND id < $4",
    )
    .bind(&change.connector)
    .bind(&change.tenant)
    .bind(change.client_id)
    .bind(change.id)
    .execute(&mut *transaction)
    .await?
    .rows_affected();
    transaction.commit().await?;
    Ok(superseded)
}

/// What became of a failed change.
#[derive(Debug, PartialEq)]
pub enum Failed {
    /// Tried again at this store time.
    RetryAt(i64),
    /// Given up on: a dead letter.
    Dead,
}

/// `change` failed with `error`: scheduled for another attempt, or dead-lettered.
pub async fn failed(
    store: &Store,
    change: &Change,
    error: &DeliveryError,
    policy: &RetryPolicy,
    random: u64,
) -> Result<Failed, StoreError> {
    let attempts = change.attempts + 1;
    let outcome = if error.permanent || attempts >= i64::from(policy.max_attempts) {
        Failed::Dead
    } else {
        let delay = policy
            .delay(attempts as u32, random)
            .max(error.retry_after.unwrap_or_default());
        Failed::RetryAt(clock::now_micros() + delay.as_micros() as i64)
    };
    let (state, next) = match outcome {
        Failed::Dead => ("dead", clock::now_micros()),
        Failed::RetryAt(at) => ("pending", at),
    };
    let _writing = store.write().await;
    sqlx::query(
        "UPDATE crm_outbox SET state = $1, attempts = $2, next_attempt_at = $3, last_error = $4
         WHERE id = $5",
    )
    .bind(state)
    .bind(attempts)
    .bind(next)
    .bind(error.message.as_str())
    .bind(change.id)
    .execute(store.pool())
    .await?;
    Ok(outcome)
}

/// A connector's queue at a glance.
#[derive(Debug, Default, PartialEq)]
pub struct QueueStatus {
    pub pending: u64,
    pub dead: u64,
    pub oldest_pending_queued_at: Option<i64>,
    pub last_error: Option<String>,
}

/// The counts of [`status`], as the store answers them.
#[derive(sqlx::FromRow)]
struct QueueCounts {
    pending: i64,
    dead: i64,
    oldest: Option<i64>,
}

pub async fn status(store: &Store, connector: &str) -> Result<QueueStatus, StoreError> {
    let counts = sqlx::query_as::<_, QueueCounts>(
        "SELECT
             COUNT(CASE WHEN state = 'pending' THEN 1 END) AS pending,
             COUNT(CASE WHEN state = 'dead' THEN 1 END) AS dead,
             MIN(CASE WHEN state = 'pending' THEN queued_at END) AS oldest
         FROM crm_outbox WHERE connector = $1",
    )
    .bind(connector)
    .fetch_one(store.pool())
    .await?;
    let last_error = sqlx::query_scalar::<_, Option<String>>(
        "SELECT last_error FROM crm_outbox WHERE connector = $1 AND last_error IS NOT NULL
         ORDER BY next_attempt_at DESC LIMIT 1",
    )
    .bind(connector)
    .fetch_optional(store.pool())
    .await?
    .flatten();
    Ok(QueueStatus {
        pending: counts.pending.max(0) as u64,
        dead: counts.dead.max(0) as u64,
        oldest_pending_queued_at: counts.oldest,
        last_error,
    })
}

/// Dead letters, oldest first; of every connector when `connector` is None, of every tenant
/// when `tenant` is None.
pub async fn dead_letters(
    store: &Store,
    connector: Option<&str>,
    tenant: Option<&str>,
    limit: i64,
) -> Result<Vec<Change>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM crm_outbox WHERE state = 'dead' AND ($1 = '' OR connector = $1)
         AND ($3 = '' OR tenant = $3) ORDER BY id LIMIT $2"
    ))
    .bind(connector.unwrap_or(""))
    .bind(limit)
    .bind(tenant.unwrap_or(""))
    .fetch_all(store.pool())
    .await?)
}

/// Puts dead letters back in the queue with a fresh attempt count: those in `ids`, or all of
/// them when `ids` is empty; of every connector when `connector` is None, of every tenant when
/// `tenant` is None.
pub async fn retry(
    store: &Store,
    connector: Option<&str>,
    tenant: Option<&str>,
    ids: &[i64],
) -> Result<u64, StoreError> {
    let _writing = store.write().await;
    let mut transaction = store.pool().begin().await?;
    let mut requeued = 0;
    let select = |id: Option<i64>| {
        sqlx::query(
            "UPDATE crm_outbox SET state = 'pending', attempts = 0, next_attempt_at = $1
             WHERE state = 'dead' AND ($2 = '' OR connector = $2) AND ($3 = 0 OR id = $3)
             AND ($4 = '' OR tenant = $4)",
        )
        .bind(clock::now_micros())
        .bind(connector.unwrap_or("").to_owned())
        .bind(id.unwrap_or(0))
        .bind(tenant.unwrap_or("").to_owned())
    };
    if ids.is_empty() {
        requeued += select(None)
            .execute(&mut *transaction)
            .await?
            .rows_affected();
    } else {
        for id in ids {
            requeued += select(Some(*id))
                .execute(&mut *transaction)
                .await?
                .rows_affected();
        }
    }
    transaction.commit().await?;
    Ok(requeued)
}
