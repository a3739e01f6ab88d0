//! `chat2desk.hints.v1`: the HintsService that suggests answers to operators.

/// Generated code of `proto/chat2desk/hints/v1/hints.proto`.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/chat2desk.hints.v1.rs"));
}

pub use v1::hints_service_client::HintsServiceClient;
pub use v1::hints_service_server::{HintsService, HintsServiceServer};

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "chat2desk.hints.v1.HintsService";
