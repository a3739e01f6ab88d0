//! How every gRPC service of the pipeline is served: its own service plus gRPC health and
//! reflection, on a listener the caller bound, until a shutdown future completes.
//!
//! One function, so that `grpcurl -plaintext host:port list` and Kubernetes' gRPC probes work
//! the same against crm-sync, analytics and the services to come.
//!
//! Health tells two things apart. The server itself (the empty service name, which liveness
//! and startup probes ask) is SERVING as soon as it listens. The service (its full name,
//! which the readiness probe asks) is NOT_SERVING until [`Serving::ready`] completes: a
//! projection still replaying the log would answer from the past, so the pod takes no
//! traffic until it has caught up, and is not restarted meanwhile.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use c2d_telemetry::metrics::GrpcMetrics;

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

/// What a service adds to how it is served.
#[derive(Default)]
pub struct Serving {
    ready: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    metrics: Option<GrpcMetrics>,
}

impl Serving {
    /// The service reports SERVING in health only once `ready` completes (a consumer caught
    /// up with the log); without it, at once.
    pub fn ready(mut self, ready: impl Future<Output = ()> + Send + 'static) -> Serving {
        self.ready = Some(Box::pin(ready));
        self
    }

    /// Every call of the service is counted and timed per method in `metrics`.
    pub fn metrics(mut self, metrics: GrpcMetrics) -> Serving {
        self.metrics = Some(metrics);
        self
    }
}

/// Serves `service` with reflection that lists exactly it and health (a client built from
/// reflection alone sees what this binary answers, not every service of the pipeline), on
/// `listener` until `shutdown` completes; health and metrics as `serving` says.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    serving: Serving,
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
    health.set_not_serving::<S>().await;
    let ready = serving.ready;
    tokio::spawn(async move {
        if let Some(ready) = ready {
            ready.await;
        }
        tracing::info!(service = S::NAME, "ready: health says SERVING");
        health.set_serving::<S>().await;
    });
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
        .add_service(Measured {
            inner: service,
            metrics: serving.metrics.map(Arc::new),
        })
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await?;
    Ok(())
}

/// A service whose calls are counted and timed (when it has metrics).
#[derive(Clone)]
struct Measured<S> {
    inner: S,
    metrics: Option<Arc<GrpcMetrics>>,
}

impl<S: NamedService> NamedService for Measured<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower_service::Service<http::Request<Body>> for Measured<S>
where
    S: tower_service::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = Infallible,
        >,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let Some(metrics) = self.metrics.clone() else {
            return Box::pin(self.inner.call(request));
        };
        // `/c2d.analytics.v1.AnalyticsService/Summary`: the method is the last segment.
        let method = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            // A failed call carries its status in these headers (trailers-only); one that
            // succeeds sends it in the trailers, after the message.
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<i32>().ok())
                .map_or(tonic::Code::Ok, tonic::Code::from_i32);
            metrics.observe(&method, code, started.elapsed());
            Ok(response)
        })
    }
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
