//! The protobuf contract of the Chat2Desk event pipeline, generated from the workspace's
//! `proto/` tree, with the few hand-written rules that go with it: which stream and subject an
//! event lives on, and which hook types exist.
//!
//! Every service and every user's consumer depends on this crate rather than on its own copy
//! of the schema, so the wire format has exactly one definition.

pub mod alerting;
pub mod analytics;
pub mod crm;
pub mod events;
pub mod hints;
pub mod partitions;

/// The encoded `FileDescriptorSet` of every package, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

#[cfg(feature = "server")]
pub mod server;
