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

use axum::http::StatusCode;
use axum::response::Response;

use crate::auth::{Principal, Session};
use crate::cfg::ServiceUrls;
use crate::html::refusal;

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

    /// What a page says when `service` did not answer as asked. The operator is told which
    /// service, where it was looked for and which variable points at it; a tenant's login is
    /// not shown the deployment's addresses. A refusal of the request itself (a bad argument,
    /// something not found) is the service's own words, to everyone.
    pub fn explain(
        &self,
        service: Service,
        status: &tonic::Status,
        principal: &Principal,
    ) -> String {
        let (name, url, variable, example) = match service {
            Service::Analytics => (
                "AnalyticsService",
                &self.urls.analytics,
                "CONSOLE_ANALYTICS_URL",
                "http://analytics:50052",
            ),
            Service::Crm => (
                "CrmService",
                &self.urls.crm,
                "CONSOLE_CRM_URL",
                "http://crm-sync:50051",
            ),
            Service::Alerting => (
                "AlertingService",
                &self.urls.alerting,
                "CONSOLE_ALERTING_URL",
                "http://alerting:50053",
            ),
            Service::Hints => (
                "HintsService",
                &self.urls.hints,
                "CONSOLE_HINTS_URL",
                "http://hints:50054",
            ),
        };
        if is_about_the_request(status.code()) {
            return format!("{name} answered: {}", status.message());
        }
        tracing::warn!(service = name, %url, code = ?status.code(), message = status.message(), "a service did not answer");
        match principal {
            Principal::Admin => format!(
                "{name} at {url} did not answer ({}: {}). Check that it runs and that {variable} points at it (e.g. {example} on Kubernetes); this page works again as soon as it answers.",
                status.code(),
                status.message()
            ),
            Principal::Tenant(_) => format!(
                "{name} did not answer; try again in a moment, and tell the operator if it lasts."
            ),
        }
    }

    /// The page that says so, with the HTTP status that fits the gRPC one.
    pub fn refusal(
        &self,
        service: Service,
        status: &tonic::Status,
        title: &str,
        session: &Session,
    ) -> Response {
        let why = self.explain(service, status, &session.principal);
        refusal(http_status(status), title, Some(session), &why)
    }
}

/// Whether a gRPC code refuses the request itself rather than says the service failed.
fn is_about_the_request(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::InvalidArgument
            | tonic::Code::NotFound
            | tonic::Code::FailedPrecondition
            | tonic::Code::AlreadyExists
            | tonic::Code::OutOfRange
    )
}

/// The HTTP status of a page whose service answered `status`.
pub fn http_status(status: &tonic::Status) -> StatusCode {
    match status.code() {
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => StatusCode::BAD_REQUEST,
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists => StatusCode::CONFLICT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
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
