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
//! An event JetStream refuses stays first, tried again, until the cause is fixed, except one
//! larger than the server accepts (spooled before the gateway knew the server's limit): no
//! retry stores it, so it is moved to `spool.rejected` and tried again at the next start.
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
/// How often a stopping gateway looks whether its spool has emptied.
const DRAIN_POLL: Duration = Duration::from_millis(20);
/// Where events JetStream can never take as they are wait, in the log's format, for the next
/// start (after, say, the NATS server's max_payload was raised).
const REJECTED: &str = "spool.rejected";
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
    /// The record from the first offset to the second can never be stored as it is: it is
    /// moved to `spool.rejected`, and the cursor past it.
    SetAside(u64, u64, oneshot::Sender<std::io::Result<()>>),
}

/// What the forwarder's `send` made of a batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sent {
    /// How many of the first records JetStream stored.
    pub stored: usize,
    /// Set when the record after those can never be stored as it is (larger than the NATS
    /// server accepts), with the reason: it is set aside instead of holding up the others.
    pub never: Option<String>,
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
    /// Whether forwarded bytes are given back to the disk; while not, the limit counts the
    /// whole log, which then only shrinks once it is emptied.
    reclaiming: Arc<AtomicBool>,
    /// Bytes skipped because they were not records (a damaged disk), since the start.
    unreadable_bytes: AtomicU64,
    /// Events moved to `spool.rejected` since the start.
    set_aside: AtomicU64,
    /// Events found in the spool at open: left by a gateway that stopped before forwarding them.
    inherited: u64,
    /// Raised when something was spooled.
    pub(crate) appended: Arc<Notify>,
}

/// The next records to forward, and damage in their way.
struct Batch {
    /// Where the first record starts (the cursor).
    from: u64,
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
        let stored_cursor = read_cursor(&dir.join("spool.cursor")).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let cursor = stored_cursor.min(len);
        // Saved now, even unchanged: its file then has its disk block before the log can fill
        // the disk (it is overwritten in place), and a cursor past the end of the log (a crash
        // between the two) is put where it now is before anything is appended behind it.
        write_cursor(&dir.join("spool.cursor"), cursor).map_err(io)?;
        if cursor != stored_cursor {
            tracing::warn!(
                stored_cursor,
                cursor,
                "the spool's cursor was past the end of its log; moved to the end"
            );
        }
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
        let (end, messages) = match take_back_rejected(dir, &file, end).map_err(io)? {
            Some((new_end, count)) => {
                tracing::warn!(
                    count,
                    "events set aside in spool.rejected are tried again (NATS refused them as too large before)"
                );
                (new_end, messages + count)
            }
            None => (end, messages),
        };
        if messages > 0 {
            tracing::warn!(
                messages,
                "the spool holds events from before the restart; forwarding them to JetStream"
            );
        }
        let synced = Arc::new(AtomicU64::new(end));
        let cursor = Arc::new(AtomicU64::new(cursor));
        let inherited = messages;
        let messages = Arc::new(AtomicU64::new(messages));
        let reclaiming = Arc::new(AtomicBool::new(cfg!(target_os = "linux")));
        let appended = Arc::new(Notify::new());
        let (writer, commands) = mpsc::channel(4 * GROUP_COMMIT);
        let state = Writer {
            dir: dir.to_owned(),
            file,
            max_bytes,
            synced: Arc::clone(&synced),
            cursor: Arc::clone(&cursor),
            messages: Arc::clone(&messages),
            reclaiming: Arc::clone(&reclaiming),
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
            reclaiming,
            unreadable_bytes: AtomicU64::new(0),
            set_aside: AtomicU64::new(0),
            inherited,
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
        // Bytes, not the message count: damage skipped mid-log can leave records counted that
        // are never forwarded, and the count is only put right when the log is emptied.
        self.depth().bytes > 0
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

    /// Returns once nothing waits to be forwarded (the forwarder runs on its own; this only
    /// watches it). A stopping gateway awaits this within its grace period.
    pub async fn drained(&self) {
        while self.has_backlog() {
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }

    /// The spool's directory, for messages that tell an operator where events wait.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Events found in the spool when it was opened, left by a gateway that stopped or died
    /// before forwarding them (they are forwarded first).
    pub fn inherited(&self) -> u64 {
        self.inherited
    }

    /// Bytes of the log that were not records and were skipped (a damaged disk).
    pub fn unreadable_bytes(&self) -> u64 {
        self.unreadable_bytes.load(Ordering::Acquire)
    }

    /// Events JetStream could never take as they are, moved to `spool.rejected` since the
    /// start (they are tried again at the next start).
    pub fn set_aside(&self) -> u64 {
        self.set_aside.load(Ordering::Acquire)
    }

    /// Whether the spool can take more (readiness: a gateway that can spool can take webhooks).
    /// (Room means space for a few more typical events, not only one byte.)
    pub fn has_room(&self) -> bool {
        let headroom = (self.max_bytes / 10).min(64 * 1024);
        let counted = counted(
            self.synced.load(Ordering::Acquire),
            self.cursor.load(Ordering::Acquire),
            self.reclaiming.load(Ordering::Acquire),
        );
        counted + headroom <= self.max_bytes
    }

    /// The records after the cursor, up to about a batch's bytes (at least one record).
    fn next_batch(&self) -> std::io::Result<Batch> {
        let start = self.cursor.load(Ordering::Acquire);
        let end = self.synced.load(Ordering::Acquire);
        let mut batch = Batch {
            from: start,
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

    /// Moves the record from `from` to `to` out of the way, into `spool.rejected`.
    async fn set_aside_record(&self, from: u64, to: u64) -> std::io::Result<()> {
        let (done, answer) = oneshot::channel();
        self.writer
            .send(Command::SetAside(from, to, done))
            .await
            .map_err(|_| std::io::Error::other("the spool's writer stopped"))?;
        answer
            .await
            .map_err(|_| std::io::Error::other("the spool's writer stopped"))?
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
/// in spool order and says how many of its first records are stored (the rest are tried again
/// later, with the same message ids, so any that did get stored are recognised), and whether
/// the next one can never be stored as it is (it is then set aside, see [`Sent`]).
pub async fn forward<F, Fut>(spool: Arc<Spool>, send: F)
where
    F: Fn(Vec<Record>) -> Fut,
    Fut: std::future::Future<Output = Sent>,
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
        let outcome = send(records).await;
        let sent = outcome.stored.min(ends.len());
        if sent > 0 {
            spool.forwarded(ends[sent - 1], sent as u64).await;
            tracing::info!(
                forwarded = sent,
                left = spool.depth().messages,
                "spooled events forwarded to JetStream"
            );
        }
        if let Some(reason) = outcome.never.filter(|_| sent < ends.len()) {
            let from = if sent == 0 {
                batch.from
            } else {
                ends[sent - 1]
            };
            match spool.set_aside_record(from, ends[sent]).await {
                Ok(()) => {
                    spool.set_aside.fetch_add(1, Ordering::AcqRel);
                    tracing::error!(
                        %reason,
                        dir = %spool.dir.display(),
                        "a spooled event can never be stored as it is; set aside in spool.rejected so that the events after it go on. \
                         Fix the cause (raise max_payload in the NATS configuration), then restart the gateway: it tries set-aside events again at start"
                    );
                }
                Err(error) => {
                    tracing::error!(%error, %reason, "cannot set aside a spooled event JetStream refuses; it stays first in the spool (check the disk)");
                    tokio::time::sleep(RETRY).await;
                }
            }
        } else if sent == 0 {
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
    reclaiming: Arc<AtomicBool>,
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
                    Command::SetAside(from, to, done) => {
                        let _ = done.send(self.set_aside(from, to));
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
        let reclaiming = self.reclaiming.load(Ordering::Acquire);
        for (record, done) in appends {
            if counted(end, cursor, reclaiming) + record.len() as u64 > self.max_bytes {
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

    /// Copies the record from `from` to `to` to the end of `spool.rejected` (fsync'd), then
    /// moves the cursor past it.
    fn set_aside(&mut self, from: u64, to: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt as _;
        let len = usize::try_from(to - from).map_err(std::io::Error::other)?;
        let mut bytes = vec![0u8; len];
        self.file.read_exact_at(&mut bytes, from)?;
        let mut rejected = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(REJECTED))?;
        rejected.write_all(&bytes)?;
        rejected.sync_all()?;
        sync_dir(&self.dir)?;
        self.forwarded(to, 1);
        Ok(())
    }

    /// Moves the cursor; once everything is forwarded, empties the log, and until then gives
    /// the forwarded part's disk space back.
    ///
    /// The order on disk is what keeps a crash harmless: the cursor is saved before the log is
    /// emptied and before space behind it is given back, so after a crash the saved cursor is
    /// never past the log's end (which would hide the events appended next) nor inside a hole
    /// (which would read as damage); at worst it is behind, and JetStream recognises the ids of
    /// what is forwarded again.
    ///
    /// Nothing waits, by bytes ([`Spool::has_backlog`]) or by count, only once this is done:
    /// when everything is forwarded the cursor and the count move with the emptying of the log,
    /// not before it, so whoever sees the spool empty (readiness, a test, the webhook choosing
    /// to publish directly) never sees the log still being emptied.
    fn forwarded(&mut self, offset: u64, count: u64) {
        let cursor_file = self.dir.join("spool.cursor");
        if offset >= self.synced.load(Ordering::Acquire) {
            let emptied = write_cursor(&cursor_file, 0)
                .and_then(|()| self.file.set_len(0))
                .and_then(|()| self.file.sync_all());
            match emptied {
                Ok(()) => {
                    // Everything is forwarded: whatever the count said, nothing waits.
                    self.messages.store(0, Ordering::Release);
                    self.reclaimed = 0;
                    self.reclaiming
                        .store(cfg!(target_os = "linux"), Ordering::Release);
                    // Last, and the end first: a reader between the two stores sees nothing
                    // waiting, and one after them the count and the limit already reset.
                    self.synced.store(0, Ordering::Release);
                    self.cursor.store(0, Ordering::Release);
                }
                // The saved cursor may be 0 with the log whole: it is then forwarded again.
                Err(error) => {
                    self.advance(offset, count);
                    tracing::warn!(%error, "cannot empty the forwarded spool; it stays");
                }
            }
            return;
        }
        self.advance(offset, count);
        match write_cursor(&cursor_file, offset) {
            Ok(()) => self.reclaim(offset),
            // A cursor behind only means messages forwarded twice, which JetStream recognises.
            Err(error) => tracing::warn!(%error, "cannot record the spool's cursor"),
        }
    }

    /// Moves the cursor in memory past `count` more messages (the forwarder reads from here).
    fn advance(&self, offset: u64, count: u64) {
        self.cursor.store(offset, Ordering::Release);
        // Saturating: a record counted at append can be skipped as damage, with a count of 0.
        let _ = self
            .messages
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| {
                Some(m.saturating_sub(count))
            });
    }

    /// Gives back the disk space of the log before `cursor`, in whole pages, by punching a hole
    /// in the file: offsets stay as they are, so the forwarder and the cursor file need not
    /// know. Where the filesystem cannot, the space comes back when the log is emptied.
    fn reclaim(&mut self, cursor: u64) {
        const PAGE: u64 = 4096;
        let to = cursor / PAGE * PAGE;
        if !self.reclaiming.load(Ordering::Acquire) || to < self.reclaimed + RECLAIM_STEP {
            return;
        }
        match punch_hole(&self.file, self.reclaimed, to) {
            Ok(()) => self.reclaimed = to,
            Err(error) => {
                tracing::warn!(%error, "cannot give the forwarded part of the spool back to the disk; it is freed once the spool is empty, and until then GATEWAY_SPOOL_MAX_BYTES counts the whole log");
                // Not again until the log is emptied.
                self.reclaiming.store(false, Ordering::Release);
            }
        }
    }
}

/// The bytes of a log ending at `end` that count against `GATEWAY_SPOOL_MAX_BYTES`: what waits
/// after the cursor, or the whole log where forwarded space is not given back (`reclaiming`).
fn counted(end: u64, cursor: u64, reclaiming: bool) -> u64 {
    if reclaiming {
        end.saturating_sub(cursor)
    } else {
        end
    }
}

/// Makes the files just created or removed in `dir` durable: they are entries of the
/// directory, which has its own fsync.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The bytes of `path`, or `None` when there is no such file.
fn read_if_exists(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
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

/// Reads the saved cursor: 0 when there is none, or when it cannot be trusted (a write torn
/// by a crash), which only forwards the log again from its start.
fn read_cursor(path: &Path) -> std::io::Result<u64> {
    let Some(bytes) = read_if_exists(path)? else {
        return Ok(0);
    };
    let value = |raw: &[u8]| {
        let mut value = [0u8; 8];
        value.copy_from_slice(&raw[..8]);
        u64::from_le_bytes(value)
    };
    Ok(match bytes.len() {
        // The value and its CRC32C.
        12 if record::checksum(&bytes[..8]).to_le_bytes() == bytes[8..] => value(&bytes),
        // As versions before the CRC wrote it.
        8 => value(&bytes),
        _ => {
            tracing::warn!(path = %path.display(), "the spool's cursor is unreadable; forwarding the spool from its start (JetStream recognises what it already holds)");
            0
        }
    })
}

/// Saves the cursor, overwriting it in place: no new disk block is needed, so a spool that
/// filled its disk can still record that everything is forwarded, and empty itself. A write
/// torn by a crash fails its CRC and reads as 0 ([`read_cursor`]).
fn write_cursor(path: &Path, cursor: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    let created = !path.exists();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    let value = cursor.to_le_bytes();
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&value);
    bytes[8..].copy_from_slice(&record::checksum(&value).to_le_bytes());
    file.write_all_at(&bytes, 0)?;
    file.set_len(12)?;
    file.sync_all()?;
    match path.parent() {
        // A new file is durable once its directory is.
        Some(dir) if created => sync_dir(dir),
        _ => Ok(()),
    }
}

/// Moves the records of `spool.rejected` back to the end of the log (at `end`), for another
/// try: the new end and how many there were, or `None` without any. A crash after the copy
/// and before the removal only tries them twice, and JetStream recognises the second.
fn take_back_rejected(dir: &Path, log: &File, end: u64) -> std::io::Result<Option<(u64, u64)>> {
    use std::os::unix::fs::FileExt as _;
    let path = dir.join(REJECTED);
    let Some(bytes) = read_if_exists(&path)? else {
        return Ok(None);
    };
    log.write_all_at(&bytes, end)?;
    let (new_end, count) = scan(log, end, end + bytes.len() as u64)?;
    // A set-aside write a crash tore is not a record: dropped like the log's own torn tail.
    log.set_len(new_end)?;
    log.sync_all()?;
    std::fs::remove_file(&path)?;
    sync_dir(dir)?;
    Ok((count > 0).then_some((new_end, count)))
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

    /// A spool of 1 MiB in `dir` holding `event-0` to `event-{count - 1}`.
    async fn holding(dir: &Path, count: u64) -> Arc<Spool> {
        let spool = Spool::open(dir, 1 << 20).unwrap();
        for n in 0..count {
            spool.append(&record(n)).await.unwrap();
        }
        spool
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spooled_messages_survive_a_crash_in_order_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let spool = holding(dir.path(), 5).await;
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
        let spool = holding(dir.path(), 6).await;
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
        assert_eq!(
            forward_all(&spool).await,
            ["event-0", "event-1", "event-3", "event-4", "event-5"]
        );
        assert_eq!(spool.unreadable_bytes(), one as u64);
        assert_eq!(spool.depth(), Depth::default());
    }

    /// Runs the forwarder, taking every batch, until nothing waits; the ids it forwarded.
    async fn forward_all(spool: &Arc<Spool>) -> Vec<String> {
        forward_refusing(spool, |_| false).await
    }

    /// [`forward_all`], with JetStream refusing for good the records `never` names.
    async fn forward_refusing(
        spool: &Arc<Spool>,
        never: impl Fn(&Record) -> bool + Send + Sync + 'static,
    ) -> Vec<String> {
        let forwarded = Arc::new(std::sync::Mutex::new(Vec::new()));
        let forwarder = tokio::spawn(forward(Arc::clone(spool), {
            let forwarded = Arc::clone(&forwarded);
            move |records: Vec<Record>| {
                let mut sent = Sent::default();
                for record in records {
                    if never(&record) {
                        sent.never = Some(format!("{}: too large", record.msg_id));
                        break;
                    }
                    forwarded.lock().unwrap().push(record.msg_id);
                    sent.stored += 1;
                }
                async move { sent }
            }
        }));
        while spool.has_backlog() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        forwarder.abort();
        // Its copy of the spool (and the directory's lock) goes once it has ended.
        let _ = forwarder.await;
        forwarded.lock().unwrap().clone()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn damage_while_running_does_not_leave_a_backlog_that_never_drains() {
        let dir = tempfile::tempdir().unwrap();
        let spool = holding(dir.path(), 3).await;
        assert_eq!(spool.depth().messages, 3);
        // The disk spoils the second record after it was counted.
        let one = record::encode(&record(0)).len();
        let mut file = OpenOptions::new()
            .write(true)
            .open(dir.path().join("spool.log"))
            .unwrap();
        file.seek(SeekFrom::Start(2 * one as u64 - 2)).unwrap();
        file.write_all(b"??").unwrap();
        file.sync_all().unwrap();

        assert_eq!(forward_all(&spool).await, ["event-0", "event-2"]);
        assert_eq!(spool.depth(), Depth::default(), "the count is put right");
        assert!(!spool.has_backlog());
        // New events go straight on (the gateway publishes them directly again).
        spool.append(&record(3)).await.unwrap();
        assert_eq!(forward_all(&spool).await, ["event-3"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_cursor_is_saved_at_zero_before_the_log_is_emptied_and_never_left_past_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let cursor_file = dir.path().join("spool.cursor");
        let spool = holding(dir.path(), 3).await;
        forward_all(&spool).await;
        assert_eq!(read_cursor(&cursor_file).unwrap(), 0);
        assert_eq!(
            std::fs::metadata(dir.path().join("spool.log"))
                .unwrap()
                .len(),
            0
        );
        spool.append(&record(3)).await.unwrap();
        drop(spool);
        // A cursor left past the log's end (a rename that outlived a truncation).
        write_cursor(&cursor_file, 1 << 30).unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let end = std::fs::metadata(dir.path().join("spool.log"))
            .unwrap()
            .len();
        assert_eq!(
            read_cursor(&cursor_file).unwrap(),
            end,
            "saved where it now is"
        );
        drop(spool);
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(!spool.has_backlog());
        drop(spool);
        // A write torn by a crash fails its CRC: the log is forwarded again from its start.
        std::fs::write(&cursor_file, [7u8; 12]).unwrap();
        assert_eq!(read_cursor(&cursor_file).unwrap(), 0);
        // The cursor of versions before the CRC still reads.
        std::fs::write(&cursor_file, 42u64.to_le_bytes()).unwrap();
        assert_eq!(read_cursor(&cursor_file).unwrap(), 42);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn where_space_cannot_be_given_back_the_limit_counts_the_whole_log() {
        let dir = tempfile::tempdir().unwrap();
        let one = record::encode(&record(10)).len() as u64;
        let spool = Spool::open(dir.path(), 10 * one).unwrap();
        // As after a failed hole punch.
        spool.reclaiming.store(false, Ordering::Release);
        for n in 10..20 {
            spool.append(&record(n)).await.unwrap();
        }
        let batch = spool.next_batch().unwrap().records;
        spool.forwarded(batch[4].1, 5).await;
        assert!(
            matches!(
                spool.append(&record(20)).await,
                Err(SpoolError::Full { .. })
            ),
            "the forwarded half still takes disk space"
        );
        assert!(!spool.has_room());
        let batch = spool.next_batch().unwrap().records;
        spool.forwarded(batch.last().unwrap().1, 5).await;
        spool.append(&record(21)).await.unwrap();
        assert!(spool.reclaiming.load(Ordering::Acquire) == cfg!(target_os = "linux"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_jetstream_can_never_take_is_set_aside_and_tried_again_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let spool = holding(dir.path(), 4).await;
        // JetStream refuses event-1 for good (too large), and takes the others.
        assert_eq!(
            forward_refusing(&spool, |record| record.msg_id == "event-1").await,
            ["event-0", "event-2", "event-3"],
            "the events after it went on"
        );
        assert_eq!(spool.set_aside(), 1);
        assert_eq!(spool.depth(), Depth::default());
        let rejected = std::fs::read(dir.path().join(REJECTED)).unwrap();
        assert_eq!(rejected, record::encode(&record(1)));
        drop(spool);

        // At the next start (after max_payload was raised, say) it is forwarded again.
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.depth().messages, 1);
        assert!(!dir.path().join(REJECTED).exists());
        assert_eq!(forward_all(&spool).await, ["event-1"]);
    }
}
