//! The spool: where an event goes when JetStream cannot take it now, so that the gateway still
//! answers 2xx and Chat2Desk never reaches the 5 hours after which it disables the webhook.
//!
//! It is a write-ahead log in one file (`spool.log`) under `GATEWAY_SPOOL_DIR`: an event is
//! appended and fsync'd before its 2xx (appends that arrive together share one fsync), and what
//! waits in it is bounded by `GATEWAY_SPOOL_MAX_BYTES` (beyond it the webhook gets a 503, and
//! Chat2Desk retries). A forwarder sends the spooled messages to JetStream in order, with their
//! own `Nats-Msg-Id`, as soon as NATS takes them; what it has forwarded is recorded in
//! `spool.cursor`. Once everything is forwarded the log is emptied; until then the disk space
//! of what is forwarded is given back as the cursor moves (a hole punched in the file), so a
//! backlog drained under steady traffic, which never catches up exactly, does not fill the disk.
//! After a crash the gateway reopens the spool, drops a torn last record (never acknowledged:
//! its fsync did not finish), and forwards from the cursor; a message forwarded again is
//! recognised by JetStream by its id, and a later Chat2Desk retry of a spooled event too. Bytes
//! that are not records anywhere else (a damaged disk) are skipped with an error, and the
//! records after them forwarded ([`reader`]).
//!
//! One gateway owns a spool directory: a second one started on it refuses to start
//! (`spool.lock`), as two writers would overwrite each other's acknowledged events.
//!
//! While the spool holds anything, new events are spooled behind it rather than published
//! directly, so the stream keeps the order in which the gateway acknowledged them.

pub mod reader;
pub mod record;

use std::fs::{File, OpenOptions};
use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

use reader::{Item, LogReader};
use record::Record;

/// How long the forwarder waits before trying again when NATS does not take a message.
const RETRY: Duration = Duration::from_millis(500);
/// The forwarder sends at most this many bytes of records per round.
const FORWARD_BATCH_BYTES: u64 = 4 * 1024 * 1024;
/// At most this many appends share one fsync.
const GROUP_COMMIT: usize = 512;
/// The forwarded part of the log is given back to the disk in steps of at least this much.
const RECLAIM_STEP: u64 = 1024 * 1024;

/// Why an event could not be spooled (the webhook then gets a 503).
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "the spool is full ({max_bytes} bytes wait to be forwarded, GATEWAY_SPOOL_MAX_BYTES): JetStream has not taken events for a while (is NATS up? see /readyz); Chat2Desk retries this delivery"
    )]
    Full { max_bytes: u64 },
    #[error(
        "cannot use the spool in {dir}: {message}; check the disk, or set GATEWAY_SPOOL_DIR to a writable volume (or to off)"
    )]
    Io { dir: String, message: String },
    #[error(
        "another gateway process uses the spool in {dir}; give each gateway its own GATEWAY_SPOOL_DIR"
    )]
    Locked { dir: String },
    #[error("the spool's writer stopped")]
    Stopped,
}

/// What the spool holds now, for metrics and readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Depth {
    pub messages: u64,
    pub bytes: u64,
}

/// Where the writer answers an append.
type Reply = oneshot::Sender<Result<(), SpoolError>>;

enum Command {
    Append(Vec<u8>, Reply),
    /// The forwarder has sent everything before this offset (and this many messages).
    Forwarded(u64, u64, oneshot::Sender<()>),
}

/// The spool of one gateway.
pub struct Spool {
    dir: PathBuf,
    /// Held (locked) while the spool is open, so that no other process opens it.
    _lock: File,
    max_bytes: u64,
    writer: mpsc::Sender<Command>,
    /// The end of what is fsync'd: the forwarder reads up to here.
    synced: Arc<AtomicU64>,
    /// Where the forwarder is.
    cursor: Arc<AtomicU64>,
    messages: Arc<AtomicU64>,
    /// Bytes skipped because they were not records (a damaged disk), since the start.
    unreadable_bytes: AtomicU64,
    /// Raised when something was spooled.
    pub(crate) appended: Arc<Notify>,
}

/// The next records to forward, and damage in their way.
struct Batch {
    /// Records after the cursor, with the offset after each.
    records: Vec<(Record, u64)>,
    /// Bytes right at the cursor that are not records: skipped before anything is sent.
    unreadable: Option<(u64, u64)>,
}

impl Spool {
    /// Opens (creating) the spool in `dir` and recovers what a crash left.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Arc<Spool>, SpoolError> {
        let io = |e: std::io::Error| SpoolError::Io {
            dir: dir.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let lock = File::create(dir.join("spool.lock")).map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SpoolError::Locked {
                    dir: dir.display().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(io(error)),
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(dir.join("spool.log"))
            .map_err(io)?;
        let cursor = read_cursor(&dir.join("spool.cursor")).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let cursor = cursor.min(len);
        // Whole records from the cursor on; anything after the last one is a torn write.
        let (end, messages) = scan(&file, cursor, len).map_err(io)?;
        if end < len {
            tracing::warn!(
                torn_bytes = len - end,
                "the spool ended in a torn record (a crash while writing it, never acknowledged); dropped"
            );
            file.set_len(end).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        if messages > 0 {
            tracing::warn!(
                messages,
                "the spool holds events from before the restart; forwarding them to JetStream"
            );
        }
        let synced = Arc::new(AtomicU64::new(end));
        let cursor = Arc::new(AtomicU64::new(cursor));
        let messages = Arc::new(AtomicU64::new(messages));
        let appended = Arc::new(Notify::new());
        let (writer, commands) = mpsc::channel(4 * GROUP_COMMIT);
        let state = Writer {
            dir: dir.to_owned(),
            file,
            max_bytes,
            synced: Arc::clone(&synced),
            cursor: Arc::clone(&cursor),
            messages: Arc::clone(&messages),
            appended: Arc::clone(&appended),
            reclaimed: 0,
        };
        std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || state.run(commands))
            .map_err(io)?;
        Ok(Arc::new(Spool {
            dir: dir.to_owned(),
            _lock: lock,
            max_bytes,
            writer,
            synced,
            cursor,
            messages,
            unreadable_bytes: AtomicU64::new(0),
            appended,
        }))
    }

    /// Appends a message; returns once it is on disk.
    pub async fn append(&self, record: &Record) -> Result<(), SpoolError> {
        let (done, answer) = oneshot::channel();
        self.writer
            .send(Command::Append(record::encode(record), done))
            .await
            .map_err(|_| SpoolError::Stopped)?;
        answer.await.map_err(|_| SpoolError::Stopped)?
    }

    /// Whether messages wait to be forwarded (new ones then queue behind them).
    pub fn has_backlog(&self) -> bool {
        self.messages.load(Ordering::Acquire) > 0
    }

    /// What waits to be forwarded.
    pub fn depth(&self) -> Depth {
        Depth {
            messages: self.messages.load(Ordering::Acquire),
            // The writer resets both to 0 when the log is emptied, not at once.
            bytes: self
                .synced
                .load(Ordering::Acquire)
                .saturating_sub(self.cursor.load(Ordering::Acquire)),
        }
    }

    /// Bytes of the log that were not records and were skipped (a damaged disk).
    pub fn unreadable_bytes(&self) -> u64 {
        self.unreadable_bytes.load(Ordering::Acquire)
    }

    /// Whether the spool can take more (readiness: a gateway that can spool can take webhooks).
    /// (Room means space for a few more typical events, not only one byte.)
    pub fn has_room(&self) -> bool {
        let headroom = (self.max_bytes / 10).min(64 * 1024);
        self.depth().bytes + headroom <= self.max_bytes
    }

    /// The records after the cursor, up to about a batch's bytes (at least one record).
    fn next_batch(&self) -> std::io::Result<Batch> {
        let start = self.cursor.load(Ordering::Acquire);
        let end = self.synced.load(Ordering::Acquire);
        let mut batch = Batch {
            records: Vec::new(),
            unreadable: None,
        };
        if end <= start {
            return Ok(batch);
        }
        let mut reader = LogReader::new(File::open(self.dir.join("spool.log"))?, start, end)?;
        while let Some(item) = reader.next_item()? {
            match item {
                Item::Record(record, after) => {
                    batch.records.push((record, after));
                    if after - start >= FORWARD_BATCH_BYTES {
                        break;
                    }
                }
                Item::Unreadable { from, to } => {
                    if batch.records.is_empty() {
                        batch.unreadable = Some((from, to));
                    }
                    break;
                }
            }
        }
        Ok(batch)
    }

    /// Records that everything before `offset` (`count` messages) is in JetStream.
    async fn forwarded(&self, offset: u64, count: u64) {
        let (done, answer) = oneshot::channel();
        if self
            .writer
            .send(Command::Forwarded(offset, count, done))
            .await
            .is_ok()
        {
            let _ = answer.await;
        }
    }
}

/// Forwards the spool to JetStream through `send` until the process ends. `send` gets a batch
/// in spool order and returns how many of its first records are stored (the rest are tried
/// again later, with the same message ids, so any that did get stored are recognised).
pub async fn forward<F, Fut>(spool: Arc<Spool>, send: F)
where
    F: Fn(Vec<Record>) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    loop {
        if !spool.has_backlog() {
            tokio::select! {
                () = spool.appended.notified() => {}
                () = tokio::time::sleep(RETRY) => {}
            }
            continue;
        }
        let batch = match spool.next_batch() {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%error, dir = %spool.dir.display(), "cannot read the spool; retrying (check the disk)");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if let Some((from, to)) = batch.unreadable {
            tracing::error!(
                offset = from,
                bytes = to - from,
                dir = %spool.dir.display(),
                "part of the spool is not readable (a damaged disk?); skipped, and the events after it forwarded; \
                 events in those bytes are lost unless Chat2Desk retries them (check the disk)"
            );
            spool
                .unreadable_bytes
                .fetch_add(to - from, Ordering::AcqRel);
            spool.forwarded(to, 0).await;
            continue;
        }
        let (records, ends): (Vec<Record>, Vec<u64>) = batch.records.into_iter().unzip();
        let sent = send(records).await.min(ends.len());
        if sent > 0 {
            spool.forwarded(ends[sent - 1], sent as u64).await;
            tracing::info!(
                forwarded = sent,
                left = spool.depth().messages,
                "spooled events forwarded to JetStream"
            );
        } else {
            tokio::time::sleep(RETRY).await;
        }
    }
}

/// The only one that writes the spool's files.
struct Writer {
    dir: PathBuf,
    file: File,
    max_bytes: u64,
    synced: Arc<AtomicU64>,
    cursor: Arc<AtomicU64>,
    messages: Arc<AtomicU64>,
    appended: Arc<Notify>,
    /// The disk space before this offset has been given back.
    reclaimed: u64,
}

impl Writer {
    fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        while let Some(first) = commands.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < GROUP_COMMIT {
                match commands.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            let mut appends = Vec::new();
            for command in batch {
                match command {
                    Command::Append(bytes, done) => appends.push((bytes, done)),
                    Command::Forwarded(offset, count, done) => {
                        self.forwarded(offset, count);
                        let _ = done.send(());
                    }
                }
            }
            if !appends.is_empty() {
                self.append(appends);
            }
        }
    }

    fn io(&self, error: std::io::Error) -> SpoolError {
        SpoolError::Io {
            dir: self.dir.display().to_string(),
            message: error.to_string(),
        }
    }

    /// Writes the records that fit, one fsync for all, then answers each.
    fn append(&mut self, appends: Vec<(Vec<u8>, Reply)>) {
        let start = self.synced.load(Ordering::Acquire);
        let mut end = start;
        let mut bytes = Vec::new();
        let mut accepted = Vec::new();
        let cursor = self.cursor.load(Ordering::Acquire);
        for (record, done) in appends {
            if end - cursor.min(end) + record.len() as u64 > self.max_bytes {
                let _ = done.send(Err(SpoolError::Full {
                    max_bytes: self.max_bytes,
                }));
                continue;
            }
            end += record.len() as u64;
            bytes.extend_from_slice(&record);
            accepted.push(done);
        }
        if accepted.is_empty() {
            return;
        }
        let written = self
            .file
            .seek(SeekFrom::Start(start))
            .and_then(|_| self.file.write_all(&bytes))
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.synced.store(end, Ordering::Release);
                self.messages
                    .fetch_add(accepted.len() as u64, Ordering::AcqRel);
                for done in accepted {
                    let _ = done.send(Ok(()));
                }
                self.appended.notify_one();
            }
            Err(error) => {
                // Nothing of this batch counts: cut the file back to what was synced.
                let _ = self.file.set_len(start);
                tracing::error!(%error, "cannot write the spool; those webhooks get 503");
                for done in accepted {
                    let _ = done.send(Err(
                        self.io(std::io::Error::new(error.kind(), error.to_string()))
                    ));
                }
            }
        }
    }

    /// Moves the cursor; once everything is forwarded, empties the log, and until then gives
    /// the forwarded part's disk space back.
    fn forwarded(&mut self, offset: u64, count: u64) {
        self.cursor.store(offset, Ordering::Release);
        self.messages.fetch_sub(count, Ordering::AcqRel);
        let mut cursor = offset;
        if offset >= self.synced.load(Ordering::Acquire) {
            match self.file.set_len(0).and_then(|()| self.file.sync_all()) {
                Ok(()) => {
                    self.synced.store(0, Ordering::Release);
                    self.cursor.store(0, Ordering::Release);
                    self.reclaimed = 0;
                    cursor = 0;
                }
                Err(error) => tracing::warn!(%error, "cannot empty the forwarded spool; it stays"),
            }
        } else {
            self.reclaim(offset);
        }
        if let Err(error) = write_cursor(&self.dir.join("spool.cursor"), cursor) {
            // A cursor behind only means messages forwarded twice, which JetStream recognises.
            tracing::warn!(%error, "cannot record the spool's cursor");
        }
    }

    /// Gives back the disk space of the log before `cursor`, in whole pages, by punching a hole
    /// in the file: offsets stay as they are, so the forwarder and the cursor file need not
    /// know. Where the filesystem cannot, the space comes back when the log is emptied.
    fn reclaim(&mut self, cursor: u64) {
        const PAGE: u64 = 4096;
        let to = cursor / PAGE * PAGE;
        if to < self.reclaimed + RECLAIM_STEP {
            return;
        }
        match punch_hole(&self.file, self.reclaimed, to) {
            Ok(()) => self.reclaimed = to,
            Err(error) => {
                tracing::warn!(%error, "cannot give the forwarded part of the spool back to the disk; it is freed once the spool is empty");
                // Not again for this log.
                self.reclaimed = u64::MAX / 2;
            }
        }
    }
}

/// Frees the disk blocks of `file` from `from` to `to`, keeping its size.
#[cfg(target_os = "linux")]
fn punch_hole(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let (Ok(offset), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else {
        return Err(std::io::ErrorKind::InvalidInput.into());
    };
    // SAFETY: fallocate reads no memory of ours; the descriptor is open for as long as `file`.
    let done = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset,
            len,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn punch_hole(_file: &File, _from: u64, _to: u64) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

fn read_cursor(path: &Path) -> std::io::Result<u64> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() == 8 => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&bytes);
            Ok(u64::from_le_bytes(raw))
        }
        Ok(_) => Ok(0),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(error),
    }
}

/// Writes the cursor atomically (a new file renamed over the old one).
fn write_cursor(path: &Path, cursor: u64) -> std::io::Result<()> {
    let fresh = path.with_extension("cursor.new");
    let mut file = File::create(&fresh)?;
    file.write_all(&cursor.to_le_bytes())?;
    file.sync_all()?;
    std::fs::rename(&fresh, path)
}

/// How many records there are from `from` to `len`, and where the last one ends: what follows
/// it is a torn write (or damage with no record after it), never acknowledged. Damage with
/// records after it is left for the forwarder to skip.
fn scan(file: &File, from: u64, len: u64) -> std::io::Result<(u64, u64)> {
    let mut reader = LogReader::new(file.try_clone()?, from, len)?;
    let (mut end, mut count) = (from, 0u64);
    while let Some(item) = reader.next_item()? {
        if let Item::Record(_, after) = item {
            end = after;
            count += 1;
        }
    }
    Ok((end, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64) -> Record {
        Record {
            subject: "chat2desk.events.acme.inbox".into(),
            msg_id: format!("event-{n}"),
            traceparent: String::new(),
            payload: format!("payload {n}").into_bytes(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spooled_messages_survive_a_crash_in_order_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        for n in 0..5 {
            spool.append(&record(n)).await.unwrap();
        }
        assert_eq!(spool.depth().messages, 5);
        // The forwarder sends two, then the process dies.
        let batch = spool.next_batch().unwrap().records;
        spool.forwarded(batch[1].1, 2).await;
        drop(spool);
        // A crash in the middle of writing a sixth record.
        let log = dir.path().join("spool.log");
        let mut torn = record::encode(&record(5));
        torn.truncate(torn.len() / 2);
        let mut file = OpenOptions::new().append(true).open(&log).unwrap();
        file.write_all(&torn).unwrap();
        drop(file);

        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.depth().messages, 3);
        let ids: Vec<String> = spool
            .next_batch()
            .unwrap()
            .records
            .into_iter()
            .map(|(r, _)| r.msg_id)
            .collect();
        assert_eq!(ids, ["event-2", "event-3", "event-4"]);
        // Everything forwarded: the log is emptied.
        let batch = spool.next_batch().unwrap().records;
        spool.forwarded(batch.last().unwrap().1, 3).await;
        assert_eq!(spool.depth(), Depth::default());
        assert_eq!(std::fs::metadata(&log).unwrap().len(), 0);
        spool.append(&record(6)).await.unwrap();
        assert_eq!(spool.next_batch().unwrap().records[0].0.msg_id, "event-6");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_spool_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let one = record::encode(&record(0)).len() as u64;
        let spool = Spool::open(dir.path(), 2 * one).unwrap();
        spool.append(&record(0)).await.unwrap();
        spool.append(&record(1)).await.unwrap();
        let full = spool.append(&record(2)).await.unwrap_err();
        assert!(matches!(full, SpoolError::Full { .. }), "{full}");
        assert!(!spool.has_room());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_process_owns_a_spool_directory() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let second = Spool::open(dir.path(), 1 << 20).err().unwrap();
        assert!(matches!(second, SpoolError::Locked { .. }), "{second}");
        drop(spool);
        Spool::open(dir.path(), 1 << 20).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_limit_counts_what_waits_and_forwarded_space_goes_back_to_the_disk() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let big = |n: u64| Record {
            payload: vec![b'x'; 100 * 1024],
            ..record(n)
        };
        let size = |n| record::encode(&big(n)).len() as u64;
        // The largest of the first thirty (ids of two digits).
        let one = size(10);
        let spool = Spool::open(dir.path(), 30 * one).unwrap();
        for n in 0..30 {
            spool.append(&big(n)).await.unwrap();
        }
        assert!(matches!(
            spool.append(&big(30)).await,
            Err(SpoolError::Full { .. })
        ));
        // Twenty forwarded while traffic goes on: twenty more fit, though the file is longer
        // than the limit now.
        let batch = spool.next_batch().unwrap().records;
        spool.forwarded(batch[19].1, 20).await;
        for n in 30..50 {
            spool.append(&big(n)).await.unwrap();
        }
        assert_eq!(spool.depth().messages, 30);
        let log = std::fs::metadata(dir.path().join("spool.log")).unwrap();
        assert_eq!(log.len(), (0..50).map(size).sum::<u64>());
        let on_disk = log.blocks() * 512;
        if punch_hole(&tempfile::tempfile_in(dir.path()).unwrap(), 0, 4096).is_ok() {
            assert!(
                on_disk < 32 * one,
                "{on_disk} bytes on disk for {}",
                30 * one
            );
        } else {
            println!("this filesystem cannot punch holes: disk use not checked");
        }
        let next = spool.next_batch().unwrap().records;
        assert_eq!(
            next[0].0.msg_id, "event-20",
            "forwarding goes on at the cursor"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn damage_in_the_middle_is_skipped_counted_and_the_rest_forwarded() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        for n in 0..6 {
            spool.append(&record(n)).await.unwrap();
        }
        drop(spool);
        // A flipped byte in the third record's payload.
        let log = dir.path().join("spool.log");
        let mut bytes = std::fs::read(&log).unwrap();
        let one = record::encode(&record(0)).len();
        bytes[3 * one - 2] ^= 0xff;
        std::fs::write(&log, &bytes).unwrap();

        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            spool.depth().messages,
            5,
            "the damaged record is not counted"
        );
        let forwarded = Arc::new(std::sync::Mutex::new(Vec::new()));
        let forwarder = tokio::spawn(forward(Arc::clone(&spool), {
            let forwarded = Arc::clone(&forwarded);
            move |records: Vec<Record>| {
                let count = records.len();
                forwarded
                    .lock()
                    .unwrap()
                    .extend(records.into_iter().map(|r| r.msg_id));
                async move { count }
            }
        }));
        while spool.depth().messages > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        forwarder.abort();
        assert_eq!(
            *forwarded.lock().unwrap(),
            ["event-0", "event-1", "event-3", "event-4", "event-5"]
        );
        assert_eq!(spool.unreadable_bytes(), one as u64);
        assert_eq!(spool.depth(), Depth::default());
    }
}
