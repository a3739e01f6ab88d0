//! How every service is served ([`c2d_proto::server::serve`]), against a real gRPC client:
//! health says NOT_SERVING for the service until it is ready while the server is SERVING,
//! and every call is counted and timed per method with its status code.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use c2d_proto::server::{Serving, serve};
use c2d_telemetry::metrics::GrpcMetrics;
use c2d_testkit::{eventually, grpc};
use tonic::body::Body;
use tonic::server::NamedService as _;
use tonic_health::pb::health_check_response::ServingStatus;

/// A service that answers every call UNIMPLEMENTED.
#[derive(Clone)]
struct Probe;

impl tonic::server::NamedService for Probe {
    const NAME: &'static str = "c2d.test.v1.Probe";
}

impl tower_service::Service<http::Request<Body>> for Probe {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<Body>) -> Self::Future {
        Box::pin(async { Ok(tonic::Status::unimplemented("a probe").into_http()) })
    }
}

#[tokio::test]
async fn the_service_is_not_serving_until_ready_and_its_calls_are_measured() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let mut registry = prometheus_client::registry::Registry::with_prefix("c2d_probe");
    let metrics = GrpcMetrics::register(&mut registry);
    let (ready, caught_up) = tokio::sync::oneshot::channel::<()>();
    let serving = Serving::default()
        .ready(async move {
            let _ = caught_up.await;
        })
        .metrics(metrics);
    tokio::spawn(serve(listener, Probe, serving, std::future::pending()));

    // Alive at once, for liveness and startup probes, but not ready for traffic.
    let status = eventually(
        "the server to answer health",
        Duration::from_secs(10),
        || {
            let endpoint = endpoint.clone();
            async move {
                grpc::health(&endpoint, "")
                    .await
                    .map_err(|error| format!("{error:#}"))
            }
        },
    )
    .await;
    assert_eq!(status, ServingStatus::Serving);
    assert_eq!(
        grpc::health(&endpoint, Probe::NAME).await.unwrap(),
        ServingStatus::NotServing
    );
    grpc::assert_lists_only(&endpoint, Probe::NAME).await;

    ready.send(()).unwrap();
    eventually("the service to be ready", Duration::from_secs(10), || {
        let endpoint = endpoint.clone();
        async move {
            match grpc::health(&endpoint, Probe::NAME).await {
                Ok(ServingStatus::Serving) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;

    let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let answer = client
        .unary(
            tonic::Request::new(()),
            http::uri::PathAndQuery::from_static("/c2d.test.v1.Probe/Ping"),
            tonic_prost::ProstCodec::<(), ()>::default(),
        )
        .await;
    assert_eq!(answer.unwrap_err().code(), tonic::Code::Unimplemented);
    let text = c2d_telemetry::metrics::render(&registry);
    assert!(
        text.contains(r#"c2d_probe_grpc_requests_total{method="Ping",code="Unimplemented"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"c2d_probe_grpc_request_duration_seconds_count{method="Ping"} 1"#),
        "{text}"
    );
    // Health and reflection are the server's, not the service's: not counted.
    assert!(!text.contains("Check"), "{text}");
}
