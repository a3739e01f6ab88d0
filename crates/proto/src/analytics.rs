//! `chat2desk.analytics.v1`: the AnalyticsService that answers contact-center questions.

/// Generated code of `proto/chat2desk/analytics/v1/analytics.proto`.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/chat2desk.analytics.v1.rs"));
}

pub use v1::analytics_service_client::AnalyticsServiceClient;
pub use v1::analytics_service_server::{AnalyticsService, AnalyticsServiceServer};

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "chat2desk.analytics.v1.AnalyticsService";
