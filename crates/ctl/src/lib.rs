//! c2dctl: the command line of the Chat2Desk event pipeline.
//!
//! The library holds what is more than glue, so that tests drive it directly:
//! - [`chat2desk`]: the client of Chat2Desk's API (crate `c2d-chat2desk`, which c2d-keeper
//!   shares), re-exported under its old path.
//! - [`simulator`]: a Chat2Desk stand-in that serves that API, generates realistic traffic for
//!   several accounts and delivers it with Chat2Desk's retry schedule.
//! - [`output`]: rows printed as a table for people or as JSON for scripts.
//!
//! The binary (`src/main.rs`, `src/cli.rs`, `src/commands/`) parses the command line and calls
//! these, or the services' gRPC APIs.

pub use c2d_chat2desk as chat2desk;
pub mod output;
pub mod simulator;
