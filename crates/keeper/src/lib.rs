//! c2d-keeper: when Chat2Desk gives up on the webhook, nothing is lost anyway.
//!
//! Chat2Desk retries a failed delivery three times (10 s, 5 min, 2 h) and disables the webhook
//! after 5 hours without success; what it could not deliver is gone, and nothing comes until
//! someone re-enables the webhook. The keeper, per tenant with an API token:
//! - checks the account's `c2d-gateway` webhook on a schedule and registers it again when it is
//!   missing, changed or disabled ([`webhook`]), with an event alerting fires on and a metric,
//!   the event owed until the log takes it, through NATS failovers and keeper restarts
//!   ([`repairs`]);
//! - knows from the event log which messages are stored and when deliveries stopped
//!   ([`index`], fed by [`follow`]), and from that and the repairs the gaps ([`gaps`]);
//! - backfills each gap from Chat2Desk's messages API as the same typed events, marked
//!   `ORIGIN_BACKFILL`, exactly once by message id ([`backfill`], through [`log`]): a message
//!   in the log is skipped, the id is derived from the message so a repeat is a JetStream
//!   duplicate, and only messages Chat2Desk will never deliver again are backfilled.
//!
//! Its state (webhook state, gaps and how far their backfill got, totals) is in the JetStream
//! KV bucket `C2D_KEEPER` ([`status`]); `c2dctl keeper status` shows it. API errors are
//! retried as they ask ([`calls`]) and reported, never fatal. Configuration: [`cfg`].

pub mod backfill;
pub mod calls;
pub mod cfg;
pub mod follow;
pub mod gaps;
pub mod index;
pub mod log;
pub mod metrics;
pub mod repairs;
pub mod runner;
pub mod status;
pub mod webhook;

pub use cfg::Config;
pub use runner::{KeeperError, run};
pub use status::{BUCKET, State, TenantStatus};
