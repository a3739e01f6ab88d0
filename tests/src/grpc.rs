//! What every gRPC service of the pipeline must offer, checked the way grpcurl would.

use anyhow::Context as _;
use futures_util::StreamExt as _;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

/// A client of `service` at `endpoint` (e.g. `http://127.0.0.1:50052`) made by `connect`
/// (`AnalyticsServiceClient::connect`, say), once the server just started there accepts
/// connections, tried again until `timeout`.
pub async fn connected<C, E, F, Fut>(
    service: &str,
    endpoint: &str,
    timeout: std::time::Duration,
    connect: F,
) -> C
where
    E: std::fmt::Display,
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<C, E>>,
{
    crate::eventually(
        &format!("{service} reachable at {endpoint}"),
        timeout,
        || {
            let connecting = connect(endpoint.to_owned());
            async move { connecting.await.map_err(|e| e.to_string()) }
        },
    )
    .await
}

async fn channel(endpoint: &str) -> anyhow::Result<tonic::transport::Channel> {
    Ok(
        tonic::transport::Endpoint::from_shared(endpoint.to_owned())?
            .connect()
            .await?,
    )
}

/// The gRPC health status of `service` at `endpoint` (e.g. `http://127.0.0.1:50052`).
pub async fn health(endpoint: &str, service: &str) -> anyhow::Result<ServingStatus> {
    let mut client = HealthClient::new(channel(endpoint).await?);
    let answer = client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?
        .into_inner();
    Ok(ServingStatus::try_from(answer.status)?)
}

/// The services `endpoint` lists through gRPC reflection.
pub async fn reflected_services(endpoint: &str) -> anyhow::Result<Vec<String>> {
    let mut client = ServerReflectionClient::new(channel(endpoint).await?);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client
        .server_reflection_info(futures_util::stream::iter([request]))
        .await?
        .into_inner();
    let answer = answers.next().await.context("no reflection answer")??;
    match answer.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            Ok(list.service.into_iter().map(|s| s.name).collect())
        }
        other => anyhow::bail!("unexpected reflection answer {other:?}"),
    }
}

/// The services `endpoint` lists through reflection are exactly `service` and gRPC health.
pub async fn assert_lists_only(endpoint: &str, service: &str) {
    let mut listed = reflected_services(endpoint)
        .await
        .unwrap_or_else(|error| panic!("reflection at {endpoint}: {error:#}"));
    listed.sort();
    let mut expected = vec![service.to_owned(), "grpc.health.v1.Health".to_owned()];
    expected.sort();
    assert_eq!(listed, expected, "what reflection lists at {endpoint}");
}

/// Waits until `service` at `endpoint` says SERVING in gRPC health, which it does once it has
/// caught up with the log (a minute at most, failing at once if `process` exits), then checks
/// that reflection lists exactly it and health.
pub async fn wait_serving(endpoint: &str, service: &str, process: &mut crate::ServiceProcess) {
    crate::eventually(
        &format!("{service} to answer at {endpoint}"),
        std::time::Duration::from_secs(60),
        || {
            let exited = process.exited().ok().flatten();
            async move {
                if let Some(status) = exited {
                    panic!("{service} exited ({status}) before it answered");
                }
                match health(endpoint, service).await {
                    Ok(ServingStatus::Serving) => Ok(()),
                    Ok(status) => Err(format!("health says {status:?}")),
                    Err(error) => Err(format!("{error:#}")),
                }
            }
        },
    )
    .await;
    assert_lists_only(endpoint, service).await;
}
