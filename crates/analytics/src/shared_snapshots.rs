//! Partition snapshots shared through NATS, so that a partition that moves to another replica
//! goes on from where its last owner was, not from the first event the log still holds.
//!
//! A replica's own snapshots ([`crate::snapshot`]) live on its volume, which no other replica
//! sees. When a partition moves (a rolling update, a deleted pod, a replica added or removed),
//! its new owner would read it from the start of `CHAT2DESK_PARTITIONED`, and with a `max_age`
//! on the log every event older than that would be gone from its tenants' figures for good. So
//! an owner also puts each of its partitions' snapshots into the object store bucket
//! `C2D_ANALYTICS`, every `ANALYTICS_SHARED_SNAPSHOT_SECS` and when it lets the partition go,
//! and a replica that takes a partition starts from whichever is further along, its own
//! snapshot or the shared one.
//!
//! Two snapshots of one partition are the same projection at two points of one log, so the one
//! with the higher stream sequence holds everything the other does. A rebuild is the exception:
//! after it, every snapshot from before it is stale, whatever its sequence. So a projection
//! carries its origin (when the rebuild it descends from began), and snapshots are ranked by
//! origin first and sequence second ([`Standing`]). The same rank keeps a lagging or stale
//! writer from replacing a better snapshot in the bucket.
//!
//! An object is stored as chunks and then the record that names them; an upload cut short (a
//! pod killed while it shares) leaves chunks that no record names, as big as a snapshot.
//! [`SharedSnapshots::sweep`] clears them: the owner of partition 0 sweeps every hour, and
//! clears the chunks no record named at the sweep before either and none of which was
//! written in the last hour, so that an upload still under way is never taken for a dead one.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_nats::jetstream::object_store::{self, ObjectMetadata, ObjectStore};
use async_nats::jetstream::stream::{StorageType, Stream};
use futures_util::TryStreamExt as _;
use tokio::io::AsyncReadExt as _;

use crate::projection::{Projection, now_seconds};
use crate::snapshot::{FORMAT, SnapshotStore};

/// The object store bucket of the replicas' partition snapshots (`OBJ_C2D_ANALYTICS`).
pub const BUCKET: &str = "C2D_ANALYTICS";
const SEQUENCE: &str = "sequence";
const ORIGIN: &str = "origin";
/// The snapshot format that wrote an object ([`FORMAT`]): one newer than this version's is
/// neither read as none nor written over, so a rollout half done cannot set a partition back.
const WRITTEN_AS: &str = "format";

/// How far along a snapshot is: the later rebuild first, then the later event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Standing {
    /// When the rebuild the snapshot descends from began (Unix seconds); 0: none.
    pub origin: u64,
    /// The stream sequence of the last event it holds.
    pub sequence: u64,
}

impl Standing {
    /// How far along a snapshot of `projection` is.
    pub fn of(projection: &Projection) -> Standing {
        Standing {
            origin: projection.origin,
            sequence: projection.last_sequence,
        }
    }

    fn from_metadata(metadata: &HashMap<String, String>) -> Option<Standing> {
        Some(Standing {
            origin: metadata.get(ORIGIN)?.parse().ok()?,
            sequence: metadata.get(SEQUENCE)?.parse().ok()?,
        })
    }
}

/// Why the shared snapshots could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SharedSnapshotError {
    #[error(
        "cannot open the object store bucket {BUCKET}: {0}; check that NATS runs JetStream and that the analytics user may publish to $O.{BUCKET}.>"
    )]
    Open(String),
    #[error("cannot read partition {partition}'s shared snapshot: {reason}; trying again")]
    Read { partition: u32, reason: String },
    #[error(
        "cannot share partition {partition}'s snapshot: {reason}; if its next owner is another replica, it replays more of the log"
    )]
    Write { partition: u32, reason: String },
    #[error("cannot clear unfinished uploads from the bucket {BUCKET}: {0}; trying again later")]
    Sweep(String),
}

impl SharedSnapshotError {
    pub(crate) fn write(partition: u32, error: &dyn std::fmt::Display) -> SharedSnapshotError {
        SharedSnapshotError::Write {
            partition,
            reason: error.to_string(),
        }
    }
}

/// The bucket of shared partition snapshots.
#[derive(Clone)]
pub struct SharedSnapshots {
    bucket: ObjectStore,
    /// The bucket's stream, where chunks no object names are found and purged.
    stream: Stream,
}

impl SharedSnapshots {
    /// The bucket, made with `replicas` (the log's) when this is the first replica to need it.
    pub async fn open(
        client: &async_nats::Client,
        replicas: usize,
    ) -> Result<SharedSnapshots, SharedSnapshotError> {
        let jetstream = async_nats::jetstream::new(client.clone());
        let bucket = match jetstream.get_object_store(BUCKET).await {
            Ok(bucket) => bucket,
            Err(_) => jetstream
                .create_object_store(object_store::Config {
                    bucket: BUCKET.into(),
                    description: Some(
                        "c2d-analytics: each partition's latest snapshot, for its next owner"
                            .into(),
                    ),
                    num_replicas: replicas.max(1),
                    storage: StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|error| SharedSnapshotError::Open(error.to_string()))?,
        };
        let stream = jetstream
            .get_stream(format!("OBJ_{BUCKET}"))
            .await
            .map_err(|error| SharedSnapshotError::Open(error.to_string()))?;
        Ok(SharedSnapshots { bucket, stream })
    }

    /// How far along `partition`'s shared snapshot is, without reading it; `None` when there
    /// is none.
    pub async fn standing(&self, partition: u32) -> Result<Option<Standing>, SharedSnapshotError> {
        self.held(partition)
            .await
            .map(|held| held.map(|(standing, _)| standing))
            .map_err(|reason| SharedSnapshotError::Read { partition, reason })
    }

    /// How far along the shared snapshot is, and whether a newer version wrote it.
    async fn held(&self, partition: u32) -> Result<Option<(Standing, bool)>, String> {
        match self.bucket.info(object_name(partition)).await {
            Ok(info) if info.deleted => Ok(None),
            Ok(info) => Ok(Standing::from_metadata(&info.metadata).map(|standing| {
                let written_as = info.metadata.get(WRITTEN_AS).map_or("", String::as_str);
                (standing, written_as > FORMAT)
            })),
            Err(error) if error.kind() == object_store::InfoErrorKind::NotFound => Ok(None),
            Err(error) => Err(error.to_string()),
        }
    }

    /// `partition`'s shared snapshot; `None` when there is none, or when an older version wrote
    /// it in a format this one does not read (then the log is replayed, as for a snapshot on
    /// disk). One a newer version wrote is an error, retried until a replica of that version
    /// takes the partition: replaying the log instead would lose what only that snapshot holds.
    pub async fn load(&self, partition: u32) -> Result<Option<Projection>, SharedSnapshotError> {
        let read = |error: &dyn std::fmt::Display| SharedSnapshotError::Read {
            partition,
            reason: error.to_string(),
        };
        let mut object = match self.bucket.get(object_name(partition)).await {
            Ok(object) => object,
            Err(error) if error.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(read(&error)),
        };
        let mut bytes = Vec::with_capacity(object.info().size);
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|error| read(&error))?;
        let projection = SnapshotStore::decode(&bytes);
        let written_as = object.info().metadata.get(WRITTEN_AS).cloned();
        if projection.is_none() {
            if written_as.as_deref().is_some_and(|format| format > FORMAT) {
                return Err(read(&format_args!(
                    "a newer c2d-analytics wrote it as {}; finish rolling it out to every replica",
                    written_as.unwrap_or_default()
                )));
            }
            tracing::warn!(
                partition,
                "the shared snapshot is from an older version; the partition is replayed from the log"
            );
        }
        Ok(projection)
    }

    /// Shares `bytes`, a snapshot of `partition` at `standing`, unless the bucket holds one at
    /// least as far along; true when it was written.
    pub async fn put(
        &self,
        partition: u32,
        standing: Standing,
        bytes: &[u8],
    ) -> Result<bool, SharedSnapshotError> {
        let write = |error: &dyn std::fmt::Display| SharedSnapshotError::write(partition, error);
        let held = self.held(partition).await.map_err(|error| write(&error))?;
        if held.is_some_and(|(held, newer)| newer || held >= standing) {
            return Ok(false);
        }
        let metadata = ObjectMetadata {
            name: object_name(partition),
            metadata: HashMap::from([
                (ORIGIN.to_owned(), standing.origin.to_string()),
                (SEQUENCE.to_owned(), standing.sequence.to_string()),
                (WRITTEN_AS.to_owned(), FORMAT.to_owned()),
            ]),
            ..Default::default()
        };
        self.bucket
            .put(metadata, &mut &bytes[..])
            .await
            .map_err(|error| write(&error))?;
        Ok(true)
    }
}

impl SharedSnapshots {
    /// Purges the chunks that no object names now, that no object named at the sweep before
    /// (whose `suspects` these are), and whose newest is older than `quiet_for`; returns this
    /// sweep's suspects, for the next.
    pub async fn sweep(
        &self,
        suspects: &HashSet<String>,
        quiet_for: Duration,
    ) -> Result<HashSet<String>, SharedSnapshotError> {
        let sweep = |error: &dyn std::fmt::Display| SharedSnapshotError::Sweep(error.to_string());
        let named: HashSet<String> = self
            .bucket
            .list()
            .await
            .map_err(|error| sweep(&error))?
            .map_ok(|info| info.nuid)
            .try_collect()
            .await
            .map_err(|error| sweep(&error))?;
        let chunks = format!("$O.{BUCKET}.C.");
        let unnamed: HashSet<String> = self
            .stream
            .info_with_subjects(format!("{chunks}>"))
            .await
            .map_err(|error| sweep(&error))?
            .map_ok(|(subject, _)| subject)
            .try_filter(|subject| {
                let nuid = subject.strip_prefix(&chunks).unwrap_or_default();
                std::future::ready(!named.contains(nuid))
            })
            .try_collect()
            .await
            .map_err(|error| sweep(&error))?;
        let quiet_since = now_seconds() - quiet_for.as_secs() as i64;
        let mut left = HashSet::new();
        for subject in unnamed {
            let newest = self
                .stream
                .get_last_raw_message_by_subject(&subject)
                .await
                .map_err(|error| sweep(&error))?;
            if !suspects.contains(&subject) || newest.time.unix_timestamp() > quiet_since {
                left.insert(subject);
                continue;
            }
            let purged = self
                .stream
                .purge()
                .filter(&subject)
                .await
                .map_err(|error| sweep(&error))?;
            tracing::info!(%subject, chunks = purged.purged, "chunks of a snapshot upload that never finished cleared");
        }
        Ok(left)
    }
}

fn object_name(partition: u32) -> String {
    format!("partition-{partition}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_rebuild_outranks_any_sequence_before_it() {
        let standing = |origin, sequence| Standing { origin, sequence };
        assert!(standing(0, 10) > standing(0, 9));
        assert!(standing(5, 1) > standing(0, 1_000_000));
        assert!(standing(5, 0) > standing(4, 9));
        let metadata = HashMap::from([
            (ORIGIN.to_owned(), "5".to_owned()),
            (SEQUENCE.to_owned(), "77".to_owned()),
        ]);
        assert_eq!(Standing::from_metadata(&metadata), Some(standing(5, 77)));
        assert_eq!(Standing::from_metadata(&HashMap::new()), None);
    }
}
