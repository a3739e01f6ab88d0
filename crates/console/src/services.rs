//! The gRPC services the console reads through: AnalyticsService for the contact center,
//! CrmService for clients and connector queues, AlertingService for alerts and silences,
//! HintsService for its statistics.
//!
//! Each client connects on first use and again after a failure (tonic's lazy channel), so the
//! console starts without any of them, and a page whose service is down says which one and
//! where it was looked for, while every other page keeps working.

use std::time::Duration;

use c2d_proto::alerting::AlertingServiceClient;
use c2d_proto::analytics::AnalyticsServiceClient;
use c2d_proto::crm::CrmServiceClient;
use c2d_proto::hints::HintsServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::cfg::ServiceUrls;

/// How long a page waits for a service's answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A service URL that is not one.
#[derive(Debug, thiserror::Error)]
#[error(
    "{variable}={url:?} is not a URL a gRPC client can use (e.g. http://analytics:50052): {source}"
)]
pub struct BadUrl {
    variable: &'static str,
    url: String,
    source: tonic::transport::Error,
}

/// The clients, cheap to clone per request.
#[derive(Clone)]
pub struct Services {
    pub analytics: AnalyticsServiceClient<Channel>,
    pub crm: CrmServiceClient<Channel>,
    pub alerting: AlertingServiceClient<Channel>,
    pub hints: HintsServiceClient<Channel>,
    urls: ServiceUrls,
}

impl Services {
    /// Clients of the services at `urls`; nothing is connected yet.
    pub fn new(urls: &ServiceUrls) -> Result<Services, BadUrl> {
        Ok(Services {
            analytics: AnalyticsServiceClient::new(channel(
                "CONSOLE_ANALYTICS_URL",
                &urls.analytics,
            )?),
            crm: CrmServiceClient::new(channel("CONSOLE_CRM_URL", &urls.crm)?),
            alerting: AlertingServiceClient::new(channel("CONSOLE_ALERTING_URL", &urls.alerting)?),
            hints: HintsServiceClient::new(channel("CONSOLE_HINTS_URL", &urls.hints)?),
            urls: urls.clone(),
        })
    }

    /// What a page says when `service` did not answer: which, where, and what to check.
    pub fn unavailable(&self, service: Service, status: &tonic::Status) -> String {
        let (name, url, variable) = match service {
            Service::Analytics => (
                "AnalyticsService",
                &self.urls.analytics,
                "CONSOLE_ANALYTICS_URL",
            ),
            Service::Crm => ("CrmService", &self.urls.crm, "CONSOLE_CRM_URL"),
            Service::Alerting => (
                "AlertingService",
                &self.urls.alerting,
                "CONSOLE_ALERTING_URL",
            ),
            Service::Hints => ("HintsService", &self.urls.hints, "CONSOLE_HINTS_URL"),
        };
        tracing::warn!(service = name, %url, code = ?status.code(), message = status.message(), "a service did not answer");
        match status.code() {
            tonic::Code::InvalidArgument
            | tonic::Code::NotFound
            | tonic::Code::FailedPrecondition => {
                format!("{name} answered: {}", status.message())
            }
            _ => format!(
                "{name} at {url} did not answer ({}: {}). Check that it runs and that {variable} points at it (e.g. http://analytics:50052 on Kubernetes); this page works again as soon as it answers.",
                status.code(),
                status.message()
            ),
        }
    }
}

/// The service a page reads through.
#[derive(Debug, Clone, Copy)]
pub enum Service {
    Analytics,
    Crm,
    Alerting,
    Hints,
}

fn channel(variable: &'static str, url: &str) -> Result<Channel, BadUrl> {
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|source| BadUrl {
        variable,
        url: url.to_owned(),
        source,
    })?;
    Ok(endpoint
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .connect_lazy())
}
