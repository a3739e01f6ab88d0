//! c2d-crm-sync: the Chat2Desk client directory as a projection, pushed to real CRMs.
//!
//! A company's CRM should know every Chat2Desk client, their phones and messengers, their tags,
//! their open and closed requests and who serves them, within seconds, without duplicates, and
//! without losing an update while the CRM is down. This service folds the client events of the
//! log into a store (SQLite embedded by default, PostgreSQL in production, the same SQL), queues
//! each client change for every configured CRM connector in the same transaction, and delivers
//! the queues with retries. CrmService (`chat2desk.crm.v1`) reads the directory and the queues.
//!
//! - [`projection`]: events folded into the directory, order- and redelivery-proof.
//! - [`schema`], [`store`]: the tables, their migrations, the pool over either backend.
//! - [`directory`]: reading a client, searching, requests and tags.
//! - [`change`]: a client change, queued only when what a CRM shows changed.
//! - [`outbox`], [`worker`], [`connector`]: the queues, their delivery and the CRMs' APIs.
//! - [`service`], [`error`]: the gRPC surface; [`metrics`]: Prometheus; [`runner`]: the running service; [`cfg`]: its
//!   configuration.

pub mod cfg;
pub mod change;
pub mod clock;
pub mod connector;
pub mod directory;
pub mod error;
pub mod metrics;
pub mod outbox;
pub mod projection;
pub mod runner;
pub mod schema;
pub mod service;
pub mod store;
pub mod worker;

pub use cfg::Config;
pub use runner::{CrmSync, CrmSyncError};
