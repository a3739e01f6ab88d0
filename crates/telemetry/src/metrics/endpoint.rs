//! `GET /metrics` and `GET /healthz` on a port of their own, the same for every service that
//! has no HTTP server of its own to put them on: Prometheus scrapes a service the same way
//! whatever it serves (gRPC, nothing), and a scrape never competes with the service's calls.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::registry::Registry;

use axum::http::header;
use axum::routing::get;
use tokio::net::TcpListener;

/// Serves `scrape`'s text at `/metrics` (and `ok` at `/healthz`) on `listener` until
/// `shutdown`. `scrape` runs on each request, so gauges read at scrape time (a consumer's
/// lag) are current.
pub async fn serve<F>(
    listener: TcpListener,
    scrape: F,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    F: Fn() -> String + Send + Sync + 'static,
{
    let scrape = Arc::new(scrape);
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let scrape = Arc::clone(&scrape);
                async move { ([(header::CONTENT_TYPE, super::CONTENT_TYPE)], scrape()) }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    tracing::info!(addr = %listener.local_addr()?, "metrics at /metrics");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds `addr` (from the variable `variable`; `None` when set to `off`) and serves
/// `registry` there in the background until `shutdown`: the whole metrics endpoint of a
/// service in one call.
pub async fn spawn(
    addr: Option<SocketAddr>,
    variable: &'static str,
    registry: Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), crate::startup::StartupError> {
    let Some(addr) = addr else {
        return Ok(());
    };
    let listener = crate::startup::bind(addr, variable).await?;
    tokio::spawn(async move {
        if let Err(error) = serve(listener, move || super::render(&registry), shutdown).await {
            tracing::error!(%error, "the metrics endpoint stopped");
        }
    });
    Ok(())
}
