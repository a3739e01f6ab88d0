//! c2d-analytics: live contact-center metrics from the Chat2Desk event log.
//!
//! A contact-center lead asks, per tenant and for any time range: how many messages came in
//! and went out, by channel, transport and operator; how long clients wait for a first answer;
//! how long requests take to close; how often dialogs are transferred; how many messages were
//! not delivered, and why; which tags are used; how many new clients arrived. This service
//! answers over gRPC (`chat2desk.analytics.v1.AnalyticsService`) from a projection of the
//! event log.
//!
//! - [`projection`]: events folded into aggregates, each applied once (by stream sequence).
//! - [`aggregates`]: minute, hour and day buckets of counts and duration sketches.
//! - [`requests`]: first-response and resolution times, robust to late events.
//! - [`sketch`]: the mergeable quantile sketch (1% relative error).
//! - [`snapshot`]: the projection on disk, so restarts replay little.
//! - [`shared_snapshots`]: a partition's snapshot in NATS, so its next owner replays little.
//! - [`query`], [`service`], [`error`]: the gRPC surface and its validation.
//! - [`partitioned`]: the tenants of the partitions a replica owns, when several share them.
//! - [`runner`]: the running service; [`cfg`]: its configuration; [`metrics`]: what it
//!   counts, for Prometheus; [`allocator`]: the one allocator setting a projection needs.

pub mod aggregates;
pub mod allocator;
pub mod cfg;
pub mod error;
pub mod metrics;
pub mod partitioned;
pub mod projection;
pub mod query;
pub mod requests;
pub mod runner;
pub mod service;
pub mod shared_snapshots;
pub mod sketch;
pub mod snapshot;

pub use cfg::Config;
pub use runner::{Analytics, AnalyticsError, Rebuild};
