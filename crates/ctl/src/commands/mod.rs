//! One module per command group; each builds [`c2dctl::output::Rows`] and leaves printing to
//! the caller.

pub mod alerts;
pub mod analytics;
pub mod crm;
pub mod events;
pub mod hints;
pub mod keeper;
pub mod webhooks;
