//! `chat2desk.crm.v1`: the CrmService that reads the client directory kept by c2d-crm-sync.

/// Generated code of `proto/chat2desk/crm/v1/crm.proto`.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/chat2desk.crm.v1.rs"));
}

pub use v1::crm_service_client::CrmServiceClient;
pub use v1::crm_service_server::{CrmService, CrmServiceServer};

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "chat2desk.crm.v1.CrmService";
