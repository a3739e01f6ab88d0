//! The projection store: one connection pool over SQLite or PostgreSQL, chosen by URL, with
//! the schema migrated on open.
//!
//! Both backends run the same SQL through sqlx's `Any` driver, so every query in this crate is
//! tested on both. Writes go through [`Store::write`], one at a time: the event applier and the
//! connector workers are the only writers, each write is a short transaction, and SQLite
//! would otherwise answer concurrent writers with "database is locked".

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor as _};
use tokio::sync::{Mutex, MutexGuard};

use crate::schema::MIGRATIONS;

/// The store's database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Why the store could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "CRM_STORE_URL={url:?} is not a store URL: use sqlite://path/to/crm.db or postgres://user:password@host:5432/database"
    )]
    Url { url: String },
    #[error("cannot create the directory {dir} for the SQLite store: {source}")]
    Directory { dir: String, source: std::io::Error },
    #[error(
        "cannot open the store at {url}: {source}; is the database running and the URL right (CRM_STORE_URL)?"
    )]
    Connect { url: String, source: sqlx::Error },
    #[error(
        "migration {version} ({name}) failed on {url}: {source}; the store is unchanged, fix the cause and restart"
    )]
    Migrate {
        url: String,
        version: i64,
        name: &'static str,
        source: sqlx::Error,
    },
    #[error(
        "the store has migration {found}, newer than this c2d-crm-sync knows ({known}); run the newer version"
    )]
    TooNew { found: i64, known: i64 },
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// The projection store, cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    writer: Arc<Mutex<()>>,
}

/// The PostgreSQL advisory lock held while migrating ("c2dcrm" in ASCII).
const MIGRATION_LOCK: i64 = 0x6332_6463_726d;

impl Store {
    /// Opens (creating if need be) the store at `url` and applies pending migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = normalize(url)?;
        let shown = redact(&url);
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|_| StoreError::Url { url: shown.clone() })?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets gRPC readers run beside the writer; NORMAL is durable in WAL
                        // mode up to the last checkpointed commit and much faster than FULL.
                        connection.execute("PRAGMA journal_mode = WAL").await?;
                        connection.execute("PRAGMA synchronous = NORMAL").await?;
                        connection.execute("PRAGMA busy_timeout = 10000").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                url: shown.clone(),
                source,
            })?;
        let store = Store {
            pool,
            backend,
            writer: Arc::new(Mutex::new(())),
        };
        store.migrate(&shown).await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for reads.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The right to write: held for the length of one write transaction.
    pub async fn write(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().await
    }

    /// Closes every connection (SQLite checkpoints its WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Applies the pending migrations. On PostgreSQL, replicas starting together (crm-sync
    /// with CRM_PARTITIONS) share the database: an advisory lock lets one migrate while the
    /// others wait, then find nothing left to do.
    async fn migrate(&self, shown: &str) -> Result<(), StoreError> {
        let _writing = self.write().await;
        let mut lock = self.pool.acquire().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *lock)
                .await?;
        }
        let migrated = self.migrate_locked(shown).await;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *lock)
                .await?;
        }
        migrated
    }

    async fn migrate_locked(&self, shown: &str) -> Result<(), StoreError> {
        self.pool
            .execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version BIGINT PRIMARY KEY,
                    name TEXT NOT NULL,
                    applied_at BIGINT NOT NULL
                )",
            )
            .await?;
        let applied: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations",
        )
        .fetch_one(&self.pool)
        .await?;
        let known = MIGRATIONS.last().map_or(0, |m| m.version);
        if applied > known {
            return Err(StoreError::TooNew {
                found: applied,
                known,
            });
        }
        let id_type = match self.backend {
            Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Backend::Postgres => "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        };
        for migration in MIGRATIONS.iter().filter(|m| m.version > applied) {
            let failed = |source| StoreError::Migrate {
                url: shown.to_owned(),
                version: migration.version,
                name: migration.name,
                source,
            };
            let mut transaction = self.pool.begin().await.map_err(failed)?;
            for statement in migration.statements {
                transaction
                    .execute(statement.replace("{id}", id_type).as_str())
                    .await
                    .map_err(failed)?;
            }
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(migration.version)
            .bind(migration.name)
            .bind(crate::clock::now_micros())
            .execute(&mut *transaction)
            .await
            .map_err(failed)?;
            transaction.commit().await.map_err(failed)?;
            tracing::info!(
                version = migration.version,
                name = migration.name,
                "store migrated"
            );
        }
        Ok(())
    }
}

/// The backend of `url`, and the URL as sqlx wants it: a SQLite file is created if missing,
/// with its directory.
fn normalize(url: &str) -> Result<(Backend, String), StoreError> {
    let url = url.trim();
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let file = path.split('?').next().unwrap_or(path);
        if file.is_empty() {
            return Err(StoreError::Url { url: url.into() });
        }
        if let Some(dir) = std::path::Path::new(file)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
                dir: dir.display().to_string(),
                source,
            })?;
        }
        let url = if path.contains("mode=") {
            format!("sqlite://{path}")
        } else if path.contains('?') {
            format!("sqlite://{path}&mode=rwc")
        } else {
            format!("sqlite://{path}?mode=rwc")
        };
        return Ok((Backend::Sqlite, url));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_owned()));
    }
    Err(StoreError::Url { url: redact(url) })
}

/// `url` without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_passwords_hidden() {
        assert_eq!(
            redact("postgres://crm:s3cret@db:5432/crm"),
            "postgres://crm:***@db:5432/crm"
        );
        assert_eq!(redact("sqlite://data/crm.db"), "sqlite://data/crm.db");
        let error = normalize("mysql://x").unwrap_err().to_string();
        assert!(error.contains("postgres://"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nested/crm.db");
        let (backend, url) = normalize(&format!("sqlite://{}", file.display())).unwrap();
        assert_eq!(backend, Backend::Sqlite);
        assert!(url.ends_with("crm.db?mode=rwc"), "{url}");
        assert!(file.parent().unwrap().is_dir());
    }
}
