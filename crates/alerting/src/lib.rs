//! c2d-alerting: know before the customers do.
//!
//! When a WhatsApp number disconnects (Chat2Desk sends `new_qr_code`), when messages stop
//! being delivered, when a client waits too long for an answer, or when a tenant goes silent
//! (Chat2Desk disables a webhook after 5 hours of failures, and from then on nothing arrives),
//! someone is told at once, once, and told again when it is over.
//!
//! - [`rules`]: the rules file, validated at start; [`cfg`]: the environment.
//! - [`machine`]: the decisions, a state machine with no I/O: state, input and time in, new
//!   state and effects out; [`engine`]: its shell, which reads the clock, feeds it events
//!   and carries out its effects, with the state in a JetStream bucket.
//! - [`alert`]: an alert's identity and lifecycle; [`enrich`]: who it is about (CrmService);
//!   [`measure`]: what threshold rules ask AnalyticsService.
//! - [`signal`]: what an event means to the rules; [`mute`]: silences and inhibition.
//! - [`notify`]: webhook, Slack and Telegram receivers, with grouping and retries.
//! - [`service`]: AlertingService; [`trial`]: a rule tried on recent events;
//!   [`runner`]: the running service; [`metrics`]: what it counts, for Prometheus.

pub mod alert;
pub mod cfg;
pub mod engine;
pub mod enrich;
pub mod machine;
pub mod measure;
pub mod metrics;
pub mod mute;
pub mod notify;
pub mod rules;
pub mod runner;
pub mod service;
pub mod signal;
pub mod trial;

pub use cfg::Config;
pub use runner::{AlertingError, run};
