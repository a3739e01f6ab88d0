//! How every gRPC service of the pipeline is served: its own service plus gRPC health and
//! reflection, on a listener the caller bound, until a shutdown future completes.
//!
//! One function, so that `grpcurl -plaintext host:port list` and Kubernetes' gRPC probes work
//! the same against crm-sync, analytics and the services to come.

use std::convert::Infallible;
use std::future::Future;

use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::server::NamedService;

/// Why a gRPC server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("gRPC reflection could not load the descriptors: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// The gRPC health service's name, which every server lists beside its own.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// Serves `service`, marked SERVING in gRPC health, with reflection that lists exactly it and
/// health (a client built from reflection alone sees what this binary answers, not every
/// service of the pipeline), on `listener` until `shutdown` completes.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError>
where
    S: tower_service::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = Infallible,
        > + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<S>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(S::NAME)
        .with_service_name(HEALTH_SERVICE)
        .build_v1()?;
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(%addr, service = S::NAME, "gRPC listening");
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(service)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await?;
    Ok(())
}

/// How long in-flight calls may run on after the stop signal.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits for the task serving gRPC (spawned with [`serve`]) once the service is stopping:
/// calls in flight get [`GRACE`] to finish; idle client connections do not hold the stop.
pub async fn drain(
    served: tokio::task::JoinHandle<Result<(), ServeError>>,
) -> Result<(), ServeError> {
    match tokio::time::timeout(GRACE, served).await {
        Ok(served) => served.unwrap_or(Ok(())),
        Err(_) => Ok(()),
    }
}
