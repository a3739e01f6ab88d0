//! Tenants' calendars in a JetStream KV bucket, and a live view of them for the services.
//!
//! Calendars are configuration that people change at run time: a holiday announced next week,
//! hours extended for a campaign, a tenant that opens on Saturdays from now on. They live in
//! the KV bucket [`CALENDARS_BUCKET`] rather than in each service's configuration so that every
//! replica of every service (analytics counting business seconds, alerting timing its waits)
//! sees the same calendar of a tenant, and so that a change is made once, in one place. Each
//! service watches the bucket ([`CalendarStore::watch`]), so a change applies within moments,
//! without a restart or a rollout.
//!
//! The key is the tenant's name and the value the calendar's JSON form (see the crate docs), so
//! an operator can also read and write it with `nats kv get/put C2D_CALENDARS <tenant>`. What
//! is written that way is not checked on the way in: a reader refuses a calendar that does not
//! parse ([`CalendarStore::get`] with the reason, [`Calendars`] by keeping the tenant's previous
//! calendar and logging why), so a typo never stops a timer or switches a tenant to "always
//! open" behind anyone's back.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, PoisonError, RwLock, Weak};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt as _;
use tokio::sync::oneshot;

use crate::{Calendar, CalendarError};

/// The KV bucket of every tenant's calendar: key = tenant, value = the calendar's JSON form.
pub const CALENDARS_BUCKET: &str = "C2D_CALENDARS";

/// How many past values of a tenant's calendar the bucket keeps: enough to see what a calendar
/// was before the last few edits (`nats kv history`), and to put an old one back.
const HISTORY: i64 = 5;

/// How long the watcher waits before opening the bucket again after its watch ended or failed:
/// long enough not to hammer a NATS server that is down, short enough that a replica catches
/// up soon after it comes back.
const RETRY: Duration = Duration::from_secs(1);

/// Why calendars could not be read, written or followed. Each message says where to look.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The bucket could neither be opened nor created.
    #[error(
        "cannot open or create the KV bucket {CALENDARS_BUCKET}: {0}; check NATS_URL, that the \
         server runs JetStream, and that this NATS user may use $JS.API.> and \
         $KV.{CALENDARS_BUCKET}.>"
    )]
    Bucket(String),

    /// A calendar, or the list of them, could not be read.
    #[error(
        "cannot read calendars from the KV bucket {CALENDARS_BUCKET}: {0}; check the connection \
         to NATS (NATS_URL) and that this NATS user may use $JS.API.> and \
         $KV.{CALENDARS_BUCKET}.>"
    )]
    Read(String),

    /// A calendar could not be written or deleted.
    #[error(
        "cannot write to the KV bucket {CALENDARS_BUCKET}: {0}; check the connection to NATS \
         (NATS_URL) and that this NATS user may publish to $KV.{CALENDARS_BUCKET}.>"
    )]
    Write(String),

    /// The bucket could not be watched for changes.
    #[error(
        "cannot watch the KV bucket {CALENDARS_BUCKET} for changes: {0}; check the connection to \
         NATS (NATS_URL) and that this NATS user may use $JS.API.> and $KV.{CALENDARS_BUCKET}.>"
    )]
    Watch(String),

    /// A tenant name that cannot be a key of the bucket.
    #[error(
        "bad tenant name {0:?}: a tenant name is not empty and has only ASCII letters, digits, \
         '-' and '_' (it is the key of the tenant's calendar in {CALENDARS_BUCKET})"
    )]
    BadTenant(String),

    /// The calendar stored for the tenant does not parse: it was written around this crate
    /// (`nats kv put` by hand), since [`CalendarStore::put`] only writes valid calendars.
    #[error(
        "the calendar stored in {CALENDARS_BUCKET} is invalid, so it is not used: {0}; put a \
         corrected one for this tenant"
    )]
    Calendar(#[from] CalendarError),
}

/// Reads and writes tenants' calendars in [`CALENDARS_BUCKET`]. Cheap to clone; every clone
/// uses the same connection.
///
/// Writes go through here rather than straight to the bucket so that only calendars that parse
/// are ever stored under names that are tenants'.
#[derive(Clone, Debug)]
pub struct CalendarStore {
    kv: kv::Store,
    /// The bucket's stream, asked afresh for its last revision when a watch (re)starts.
    stream: jetstream::stream::Stream<()>,
    /// To tell a client that was closed (no watch can ever resume) from one that is only
    /// disconnected for a while.
    client: async_nats::Client,
}

impl CalendarStore {
    /// Opens the bucket, creating it if this is the first service to need it. `replicas` is
    /// how many NATS servers keep a copy when it is created (3 on a production cluster, so
    /// that losing a node loses no calendar); an existing bucket keeps its own.
    pub async fn open(
        client: async_nats::Client,
        replicas: usize,
    ) -> Result<CalendarStore, StoreError> {
        let jetstream = jetstream::new(client.clone());
        let kv = c2d_subscriber::bucket::open_or_create(
            &jetstream,
            kv::Config {
                bucket: CALENDARS_BUCKET.into(),
                description: "per-tenant business-hours calendars (JSON), key = tenant".into(),
                history: HISTORY,
                num_replicas: replicas.max(1),
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| StoreError::Bucket(e.to_string()))?;
        let stream = jetstream
            .get_stream_no_info(format!("KV_{CALENDARS_BUCKET}"))
            .await
            .map_err(|e| StoreError::Bucket(e.to_string()))?;
        Ok(CalendarStore { kv, stream, client })
    }

    /// The tenant's calendar; `None` when it has none (it is then always open). An invalid
    /// stored calendar is an error rather than `None`, so that whoever asks learns it must be
    /// fixed.
    pub async fn get(&self, tenant: &str) -> Result<Option<Calendar>, StoreError> {
        validate_tenant(tenant)?;
        let value = self
            .kv
            .get(tenant)
            .await
            .map_err(|e| StoreError::Read(e.to_string()))?;
        Ok(value.map(|value| decode(&value)).transpose()?)
    }

    /// Stores the tenant's calendar, replacing the one before; every watching replica applies
    /// it within moments. Returns the new revision, for logs and audit (`nats kv history`).
    pub async fn put(&self, tenant: &str, calendar: &Calendar) -> Result<u64, StoreError> {
        validate_tenant(tenant)?;
        self.kv
            .put(tenant, calendar.to_json().into())
            .await
            .map_err(|e| StoreError::Write(e.to_string()))
    }

    /// Removes the tenant's calendar, so that it is always open again. A delete, not a purge:
    /// the previous calendars stay in the bucket's history, to be looked at or put back.
    pub async fn delete(&self, tenant: &str) -> Result<(), StoreError> {
        validate_tenant(tenant)?;
        self.kv
            .delete(tenant)
            .await
            .map_err(|e| StoreError::Write(e.to_string()))
    }

    /// Every tenant's calendar, by tenant name: what an operator reviews. A stored calendar that
    /// does not parse is left out and logged, so that one broken entry does not hide the rest.
    pub async fn list(&self) -> Result<Vec<(String, Calendar)>, StoreError> {
        let (_, entries) = self.snapshot().await?;
        let mut calendars: Vec<(String, Calendar)> = entries
            .into_iter()
            .filter_map(|(tenant, _, value)| match value? {
                Ok(calendar) => Some((tenant, calendar)),
                Err(error) => {
                    tracing::warn!(%tenant, %error, "the calendar stored in {CALENDARS_BUCKET} is invalid; left out of the list (put a corrected one)");
                    None
                }
            })
            .collect();
        calendars.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(calendars)
    }

    /// A live view of every tenant's calendar, for a service to ask on each event. Every
    /// calendar is loaded before this returns; then a task follows the bucket and applies each
    /// change as it is made, until the last clone of the view is dropped or the client is
    /// closed. When the watch breaks (NATS restarted, connection lost) the task opens it again
    /// a second later and reloads everything, meanwhile answering with what it had.
    pub async fn watch(&self) -> Result<Calendars, StoreError> {
        let (stop, stopped) = oneshot::channel();
        let calendars = Calendars {
            shared: Arc::new(Shared {
                by_tenant: RwLock::default(),
                _stop: Some(stop),
            }),
        };
        let mut applied = HashMap::new();
        let following = self.resync(&calendars.shared, &mut applied).await?;
        tokio::spawn(follow(
            self.clone(),
            Arc::downgrade(&calendars.shared),
            stopped,
            following,
            applied,
        ));
        Ok(calendars)
    }

    /// The bucket's last revision, then every tenant's entry as of then or later: the revision
    /// and the calendar (or why it does not parse), or `None` for a tenant deleted meanwhile.
    /// Watching on from just after that revision misses no change.
    async fn snapshot(&self) -> Result<(u64, Vec<SnapshotEntry>), StoreError> {
        let last = self
            .stream
            .get_info()
            .await
            .map_err(|e| StoreError::Read(e.to_string()))?
            .state
            .last_sequence;
        let mut keys = self
            .kv
            .keys()
            .await
            .map_err(|e| StoreError::Read(e.to_string()))?;
        let mut tenants = Vec::new();
        while let Some(key) = keys.next().await {
            tenants.push(key.map_err(|e| StoreError::Read(e.to_string()))?);
        }
        let mut entries = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            if !is_tenant_key(&tenant) {
                continue;
            }
            let entry = self
                .kv
                .entry(tenant.as_str())
                .await
                .map_err(|e| StoreError::Read(e.to_string()))?;
            if let Some(entry) = entry {
                let value = (entry.operation == kv::Operation::Put).then(|| decode(&entry.value));
                entries.push((tenant, entry.revision, value));
            }
        }
        Ok((last, entries))
    }

    /// Loads every calendar into `shared` afresh and opens a watch of the changes after them.
    /// A tenant whose stored calendar does not parse keeps the one it had in `shared`.
    async fn resync(
        &self,
        shared: &Shared,
        applied: &mut HashMap<String, u64>,
    ) -> Result<Following, StoreError> {
        // Counted first: a reconnection during the reload makes the next one.
        let connects = self.connects();
        let (last, entries) = self.snapshot().await?;
        let previous = shared.read().clone();
        let mut by_tenant = HashMap::with_capacity(entries.len());
        applied.clear();
        for (tenant, revision, value) in entries {
            applied.insert(tenant.clone(), revision);
            match value {
                Some(Ok(calendar)) => {
                    let calendar = match previous.get(&tenant) {
                        Some(known) if **known == calendar => Arc::clone(known),
                        _ => Arc::new(calendar),
                    };
                    by_tenant.insert(tenant, calendar);
                }
                Some(Err(error)) => {
                    keep_previous(&tenant, revision, &error);
                    if let Some(known) = previous.get(&tenant) {
                        by_tenant.insert(tenant, Arc::clone(known));
                    }
                }
                None => {}
            }
        }
        *shared.write() = by_tenant;
        let watch = self
            .kv
            .watch_all_from_revision(last + 1)
            .await
            .map_err(|e| StoreError::Watch(e.to_string()))?;
        Ok(Following { watch, connects })
    }

    /// How many times the client has connected, the first time included.
    fn connects(&self) -> u64 {
        self.client
            .statistics()
            .connects
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the client was closed (drained, or gave up reconnecting): then no watch will
    /// ever work again. A client that is only disconnected is not closed; it is not waited for
    /// longer than [`RETRY`].
    async fn client_closed(&self) -> bool {
        matches!(
            tokio::time::timeout(RETRY, self.client.flush()).await,
            Ok(Err(error)) if error.kind() == async_nats::client::FlushErrorKind::SendError
        )
    }
}

/// One tenant's entry in a [`CalendarStore::snapshot`].
type SnapshotEntry = (String, u64, Option<Result<Calendar, CalendarError>>);

/// Every tenant's calendar as this replica knows it, kept up to date with the bucket: what a
/// service asks on each event. Cheap to clone (clones share one view); asking takes a read lock
/// and never waits on the network.
#[derive(Clone)]
pub struct Calendars {
    shared: Arc<Shared>,
}

struct Shared {
    by_tenant: RwLock<HashMap<String, Arc<Calendar>>>,
    /// Dropped with the last [`Calendars`]: tells the watching task to stop.
    _stop: Option<oneshot::Sender<()>>,
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Calendar>>> {
        // A panic elsewhere while the map was held cannot leave it half-written (every write
        // is a single insert, remove or replacement), so the map stays usable.
        self.by_tenant
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Calendar>>> {
        self.by_tenant
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies one change from the watch.
    fn apply(&self, entry: kv::Entry) {
        let tenant = entry.key;
        match entry.operation {
            kv::Operation::Put => match decode(&entry.value) {
                Ok(calendar) => {
                    tracing::info!(%tenant, revision = entry.revision, time_zone = calendar.time_zone(), "calendar updated");
                    self.write().insert(tenant, Arc::new(calendar));
                }
                Err(error) => keep_previous(&tenant, entry.revision, &error),
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                if self.write().remove(&tenant).is_some() {
                    tracing::info!(%tenant, revision = entry.revision, "calendar removed; the tenant is always open");
                }
            }
        }
    }
}

/// The calendar of a tenant without one: business time is wall-clock time.
static ALWAYS_OPEN: LazyLock<Arc<Calendar>> = LazyLock::new(|| Arc::new(Calendar::always_open()));

impl Calendars {
    /// A view that never changes, without NATS: for tests of code that takes [`Calendars`],
    /// and for running without a bucket.
    pub fn fixed(calendars: HashMap<String, Calendar>) -> Calendars {
        Calendars {
            shared: Arc::new(Shared {
                by_tenant: RwLock::new(
                    calendars
                        .into_iter()
                        .map(|(tenant, calendar)| (tenant, Arc::new(calendar)))
                        .collect(),
                ),
                _stop: None,
            }),
        }
    }

    /// The tenant's calendar now. A tenant without one is always open, so that its times are
    /// counted in wall-clock time rather than not at all. The calendar is shared, not copied:
    /// hold it for one computation and ask again for the next, to see changes.
    pub fn for_tenant(&self, tenant: &str) -> Arc<Calendar> {
        self.shared
            .read()
            .get(tenant)
            .map_or_else(|| Arc::clone(&ALWAYS_OPEN), Arc::clone)
    }

    /// The tenant's own calendar, `None` when it has none: for callers that count a tenant
    /// without one in wall-clock time directly, without the calendar's arithmetic.
    pub fn configured(&self, tenant: &str) -> Option<Arc<Calendar>> {
        self.shared.read().get(tenant).map(Arc::clone)
    }
}

/// No calendars: every tenant always open. What configuration types that hold a view start
/// with before the bucket is watched.
impl Default for Calendars {
    fn default() -> Self {
        Calendars::fixed(HashMap::new())
    }
}

/// Two views are equal when they hold the same calendars now: what tests of configuration
/// types that hold a view compare.
impl PartialEq for Calendars {
    fn eq(&self, other: &Calendars) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared) || *self.shared.read() == *other.shared.read()
    }
}

impl std::fmt::Debug for Calendars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut tenants: Vec<String> = self.shared.read().keys().cloned().collect();
        tenants.sort();
        f.debug_struct("Calendars")
            .field("tenants", &tenants)
            .finish()
    }
}

/// The watching task: applies each change to the view, and on a broken watch reloads
/// everything and watches again, once a [`RETRY`], until the view is dropped (`stopped`) or the
/// client is closed. `applied` holds each tenant's last revision applied, so that a change
/// replayed after a reload that already showed a newer one is not applied over it.
///
/// A reconnection counts as a broken watch: the server may have restarted and lost the watch's
/// consumer, which the client would otherwise notice only after two missed heartbeats (ten
/// seconds), changes made meanwhile unseen until then.
async fn follow(
    store: CalendarStore,
    shared: Weak<Shared>,
    mut stopped: oneshot::Receiver<()>,
    mut following: Following,
    mut applied: HashMap<String, u64>,
) {
    let mut check = tokio::time::interval(RETRY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let reason = loop {
            let next = tokio::select! {
                _ = &mut stopped => return,
                next = following.watch.next() => next,
                _ = check.tick() => {
                    if store.connects() != following.connects {
                        break "the connection to NATS was re-established".to_owned();
                    }
                    continue;
                }
            };
            match next {
                Some(Ok(entry)) => {
                    let Some(shared) = shared.upgrade() else {
                        return;
                    };
                    if !is_tenant_key(&entry.key) {
                        continue;
                    }
                    if applied
                        .get(&entry.key)
                        .is_some_and(|&seen| seen >= entry.revision)
                    {
                        continue;
                    }
                    applied.insert(entry.key.clone(), entry.revision);
                    shared.apply(entry);
                }
                Some(Err(error)) => break error.to_string(),
                None => break "the watch ended".to_owned(),
            }
        };
        drop(following);
        tracing::warn!(%reason, "stopped following {CALENDARS_BUCKET}; reloading every calendar in a second (the ones known stay in force meanwhile)");
        let mut last_error = String::new();
        following = loop {
            tokio::select! {
                _ = &mut stopped => return,
                () = tokio::time::sleep(RETRY) => {}
            }
            if store.client_closed().await {
                tracing::info!(
                    "the NATS client was closed; no longer following {CALENDARS_BUCKET}"
                );
                return;
            }
            let Some(shared) = shared.upgrade() else {
                return;
            };
            match store.resync(&shared, &mut applied).await {
                Ok(following) => {
                    tracing::info!("following {CALENDARS_BUCKET} again; every calendar reloaded");
                    break following;
                }
                Err(error) => {
                    // Once per distinct failure: an outage would otherwise log every second.
                    let error = error.to_string();
                    if error != last_error {
                        tracing::warn!(%error, "cannot reload the calendars yet; retrying every second");
                        last_error = error;
                    }
                }
            }
        };
    }
}

/// A watch of the bucket's changes after a reload.
struct Following {
    watch: kv::Watch,
    /// The client's connection count before the reload: when it grows, the watch may have
    /// lost its consumer.
    connects: u64,
}

/// Logs a stored calendar that does not parse, which [`Calendars`] then ignores.
fn keep_previous(tenant: &str, revision: u64, error: &CalendarError) {
    tracing::warn!(%tenant, revision, %error, "the calendar stored in {CALENDARS_BUCKET} is invalid; the previous calendar stays in force (put a corrected one)");
}

/// A stored value as a calendar.
fn decode(value: &[u8]) -> Result<Calendar, CalendarError> {
    match std::str::from_utf8(value) {
        Ok(text) => Calendar::parse_json(text),
        // Not UTF-8, so not JSON either; serde_json says where it goes wrong.
        Err(_) => serde_json::from_slice::<Calendar>(value).map_err(CalendarError::from),
    }
}

/// Whether a key read from the bucket is a tenant's; one that is not (put there by hand) is
/// ignored, with a warning.
fn is_tenant_key(key: &str) -> bool {
    let tenant = validate_tenant(key).is_ok();
    if !tenant {
        tracing::warn!(%key, "a key of {CALENDARS_BUCKET} is not a tenant name (letters, digits, '-', '_'); ignored");
    }
    tenant
}

/// Tenant names become KV keys, where `.` separates tokens and `*` and `>` are wildcards; the
/// names Chat2Desk's tenants are given here never need more than these characters.
fn validate_tenant(tenant: &str) -> Result<(), StoreError> {
    let valid = !tenant.is_empty()
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(StoreError::BadTenant(tenant.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_are_letters_digits_dash_and_underscore() {
        for good in ["acme", "Acme-42", "tenant_1", "a", "0-_"] {
            assert!(validate_tenant(good).is_ok(), "{good}");
        }
        for bad in [
            "", "a.b", "a b", "a*", "a>", ">", "tenant/1", "ключ", "a\n", "$KV",
        ] {
            match validate_tenant(bad) {
                Err(StoreError::BadTenant(name)) => assert_eq!(name, bad),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
        assert_eq!(
            validate_tenant("a.b").unwrap_err().to_string(),
            "bad tenant name \"a.b\": a tenant name is not empty and has only ASCII letters, \
             digits, '-' and '_' (it is the key of the tenant's calendar in C2D_CALENDARS)"
        );
    }

    #[test]
    fn stored_values_decode_only_when_valid() {
        let calendar = Calendar::parse_json(
            r#"{"time_zone":"Europe/Berlin","weekly":{"mon":["09:00-18:00"]}}"#,
        )
        .unwrap();
        assert_eq!(decode(calendar.to_json().as_bytes()).unwrap(), calendar);
        assert!(matches!(
            decode(br#"{"time_zone":"MSK","weekly":{}}"#),
            Err(CalendarError::UnknownTimeZone { name }) if name == "MSK"
        ));
        assert!(matches!(
            decode(b"{\"time_zone\":\"\xff\"}"),
            Err(CalendarError::Json(_))
        ));
        let error = StoreError::from(decode(b"not json").unwrap_err()).to_string();
        assert!(
            error.starts_with(
                "the calendar stored in C2D_CALENDARS is invalid, so it is not used: calendar JSON is malformed"
            ),
            "{error}"
        );
    }

    #[test]
    fn a_fixed_view_answers_always_open_for_unknown_tenants() {
        let berlin = Calendar::parse_json(
            r#"{"time_zone":"Europe/Berlin","weekly":{"mon":["09:00-18:00"]}}"#,
        )
        .unwrap();
        let calendars = Calendars::fixed(HashMap::from([("acme".to_owned(), berlin.clone())]));
        assert_eq!(*calendars.for_tenant("acme"), berlin);
        assert_eq!(*calendars.for_tenant("other"), Calendar::always_open());
        assert!(Arc::ptr_eq(
            &calendars.for_tenant("other"),
            &calendars.clone().for_tenant("nobody")
        ));
        assert_eq!(
            format!("{calendars:?}"),
            "Calendars { tenants: [\"acme\"] }"
        );
    }
}
