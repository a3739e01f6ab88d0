//! `chat2desk.alerting.v1`: the alerts c2d-alerting raises and the AlertingService to read them.

/// Generated code of `proto/chat2desk/alerting/v1/alerting.proto`.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/chat2desk.alerting.v1.rs"));
}

pub use v1::alerting_service_client::AlertingServiceClient;
pub use v1::alerting_service_server::{AlertingService, AlertingServiceServer};

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "chat2desk.alerting.v1.AlertingService";

/// The stream alert state changes are stored on.
pub const ALERTS_STREAM: &str = "CHAT2DESK_ALERTS";

/// `chat2desk.alerts.{tenant}.{state}`, state `firing` or `resolved`.
pub fn alert_subject(tenant: &str, state: &str) -> String {
    format!("chat2desk.alerts.{tenant}.{state}")
}
