//! c2d-analytics: live contact-center metrics from the Chat2Desk event log.

pub mod aggregates;
pub mod projection;
pub mod requests;
pub mod sketch;
pub mod snapshot;
