//! The projection on disk, so that a restart replays only what came after the snapshot.
//!
//! A snapshot is the whole projection, its last applied stream sequence included, encoded with
//! postcard behind a magic header, a format version and the projection's origin (the rebuild
//! it descends from). It is written to a temporary file, flushed to disk and renamed over the
//! previous one: a crash mid-write leaves the previous snapshot whole. The same bytes are what
//! a replica shares in NATS ([`crate::shared_snapshots`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::projection::Projection;

// 02: cells and request clocks name their dimensions by combination id.
// 03: request clocks keep their business-time samples too.
// 04: the projection's origin (8 bytes, little-endian) between the header and the body; a 03
//     snapshot reads as one of origin 0, so an upgrade keeps its snapshots.
pub const FORMAT: &str = "C2DANL04";
const MAGIC: &[u8] = FORMAT.as_bytes();
const MAGIC_WITHOUT_ORIGIN: &[u8; 8] = b"C2DANL03";
const FILE_NAME: &str = "analytics.snapshot";
/// A partition's snapshot directory is this and the partition's number.
const PARTITION_DIR: &str = "partition-";

/// Why a snapshot could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot {action} {path}: {source}; check ANALYTICS_DATA_DIR and its permissions")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not an analytics snapshot of this version; delete it or start with --rebuild"
    )]
    Format { path: PathBuf },
    #[error("cannot encode the snapshot: {0}")]
    Encode(#[from] postcard::Error),
}

/// Where snapshots of one analytics instance live.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
}

impl SnapshotStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SnapshotStore { dir: dir.into() }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The saved projection, or `None` when there is none yet.
    pub fn load(&self) -> Result<Option<Projection>, SnapshotError> {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SnapshotError::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        Self::decode(&bytes)
            .map(Some)
            .ok_or(SnapshotError::Format { path })
    }

    /// The projection in a snapshot's bytes; `None` when they are not a snapshot this version
    /// reads.
    pub fn decode(bytes: &[u8]) -> Option<Projection> {
        let (origin, body) = match bytes.strip_prefix(MAGIC) {
            Some(rest) => {
                let (origin, body) = rest.split_first_chunk::<8>()?;
                (u64::from_le_bytes(*origin), body)
            }
            None => (0, bytes.strip_prefix(MAGIC_WITHOUT_ORIGIN.as_slice())?),
        };
        let mut projection: Projection = postcard::from_bytes(body).ok()?;
        projection.origin = origin;
        projection.reindex();
        Some(projection)
    }

    /// Writes `projection` atomically; returns the snapshot's size in bytes.
    pub fn save(&self, projection: &Projection) -> Result<usize, SnapshotError> {
        self.write(&Self::encode(projection)?)
    }

    /// The bytes of a snapshot of `projection`: quick, so it is done under the projection's
    /// lock, and the slow write to disk after.
    pub fn encode(projection: &Projection) -> Result<Vec<u8>, SnapshotError> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend(projection.origin.to_le_bytes());
        bytes.extend(postcard::to_stdvec(projection)?);
        Ok(bytes)
    }

    /// Writes encoded snapshot bytes atomically; returns their size.
    pub fn write(&self, bytes: &[u8]) -> Result<usize, SnapshotError> {
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| SnapshotError::Io {
                action,
                path,
                source,
            }
        };
        fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        let temporary = self.dir.join(format!("{FILE_NAME}.tmp"));
        let mut file = fs::File::create(&temporary).map_err(io("create", &temporary))?;
        file.write_all(bytes).map_err(io("write", &temporary))?;
        file.sync_all().map_err(io("flush", &temporary))?;
        fs::rename(&temporary, self.path()).map_err(io("replace", &self.path()))?;
        if let Ok(dir) = fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(bytes.len())
    }

    /// Where a replica keeps the snapshot of one partition it owns (docs/scaling.md): a
    /// directory of its own under the data directory, so a partition that moves back finds it.
    pub fn partition(data_dir: &Path, partition: u32) -> Self {
        SnapshotStore::new(data_dir.join(format!("{PARTITION_DIR}{partition}")))
    }

    /// The partition snapshots under `data_dir`, whatever the partition count was when they
    /// were written: what a rebuild deletes besides the whole-log snapshot.
    pub fn partitions(data_dir: &Path) -> Result<Vec<SnapshotStore>, SnapshotError> {
        let entries = match fs::read_dir(data_dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(SnapshotError::Io {
                    action: "list",
                    path: data_dir.to_owned(),
                    source,
                });
            }
        };
        Ok(entries
            .filter_map(Result::ok)
            .filter(|entry| {
                entry
                    .file_name()
                    .to_str()
                    .and_then(|name| name.strip_prefix(PARTITION_DIR))
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .map(|entry| SnapshotStore::new(entry.path()))
            .collect())
    }

    /// Removes the snapshot, for a rebuild from the beginning of the stream.
    pub fn delete(&self) -> Result<(), SnapshotError> {
        match fs::remove_file(self.path()) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(SnapshotError::Io {
                action: "delete",
                path: self.path(),
                source: error,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebuild_finds_every_partition_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        for partition in [0, 3, 15] {
            SnapshotStore::partition(dir.path(), partition)
                .save(&Projection::default())
                .unwrap();
        }
        std::fs::create_dir(dir.path().join("partition-x")).unwrap();
        let mut found: Vec<PathBuf> = SnapshotStore::partitions(dir.path())
            .unwrap()
            .iter()
            .map(SnapshotStore::path)
            .collect();
        found.sort();
        assert_eq!(
            found,
            ["partition-0", "partition-15", "partition-3"]
                .map(|d| dir.path().join(d).join(FILE_NAME))
        );
        for store in SnapshotStore::partitions(dir.path()).unwrap() {
            store.delete().unwrap();
            assert!(store.load().unwrap().is_none());
        }
        assert!(
            SnapshotStore::partitions(&dir.path().join("none"))
                .unwrap()
                .is_empty()
        );
    }
    use c2d_proto::events::{Event, Message, Payload};

    #[test]
    fn a_saved_projection_loads_back_the_same() {
        let dir =
            std::env::temp_dir().join(format!("c2d-analytics-snapshot-{}", std::process::id()));
        let store = SnapshotStore::new(&dir);
        assert!(store.load().unwrap().is_none());

        let mut projection = Projection::default();
        let event = Event {
            tenant: "acme".into(),
            hook_type: "inbox".into(),
            event_time: Some(prost_types::Timestamp {
                seconds: 1_709_251_200,
                nanos: 0,
            }),
            payload: Some(Payload::Inbox(Message {
                transport: Some("telegram".into()),
                ..Message::default()
            })),
            ..Event::default()
        };
        projection.apply(7, &event);
        projection.origin = 1_764_000_000;
        store.save(&projection).unwrap();

        let mut loaded = store.load().unwrap().expect("saved");
        assert_eq!(loaded.last_sequence, 7);
        assert_eq!(loaded.origin, projection.origin);
        let names = &loaded.tenants["acme"].aggregates.names;
        assert_eq!(
            names.find("telegram").map(|id| names.text(id)),
            Some("telegram")
        );
        assert!(
            !loaded.apply(7, &event),
            "what the snapshot holds is not applied again"
        );

        std::fs::write(store.path(), b"garbage").unwrap();
        assert!(matches!(store.load(), Err(SnapshotError::Format { .. })));
        store.delete().unwrap();
        assert!(store.load().unwrap().is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_snapshot_from_before_origins_loads_as_one_from_no_rebuild() {
        let mut projection = Projection::default();
        projection.last_sequence = 42;
        let mut bytes = MAGIC_WITHOUT_ORIGIN.to_vec();
        bytes.extend(postcard::to_stdvec(&projection).unwrap());
        let loaded = SnapshotStore::decode(&bytes).expect("a 03 snapshot is read");
        assert_eq!((loaded.last_sequence, loaded.origin), (42, 0));
        assert!(SnapshotStore::decode(MAGIC).is_none(), "too short");
        assert!(SnapshotStore::decode(b"C2DANL02whatever").is_none());
    }
}
