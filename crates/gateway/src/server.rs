//! Serving HTTP/1 connections with limits a public endpoint needs: a client must send its
//! request headers within `GATEWAY_HEADER_TIMEOUT_SECS` (a slowloris sending a byte now and then
//! holds no connection for long), the body within `GATEWAY_BODY_TIMEOUT_SECS` (in the webhook
//! handler), and each request knows the peer's address (for the source allow-list).
//!
//! Stopping is a phase of its own, not an instant. Once `shutdown` completes, the listener
//! stays open: a load balancer that has not yet taken the pod out of rotation, and a readiness
//! probe, get a prompt answer from the app (which by then refuses deliveries with 503, so
//! Chat2Desk retries them elsewhere) instead of a refused connection, on connections that are
//! closed after each answer. Meanwhile the requests that were in flight finish, then `drain`
//! runs (the gateway forwards its spool), all within one grace period. Only then does the
//! listener close.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower_service::Service as _;

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// The requests in flight at the signal all finished within the grace period.
    pub in_flight_finished: bool,
    /// `drain` completed within the grace period.
    pub drained: bool,
}

/// Serves `app` on `listener` until `shutdown`; then, still answering new connections, waits
/// for the requests in flight and then for `drain`, both within `grace` of the signal.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
    drain: impl Future<Output = ()> + Send,
) -> Stopped {
    let connections = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener) => accepted,
        };
        let connection = builder.serve_connection(TokioIo::new(stream), service(&app, peer));
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    let deadline = Instant::now() + grace;

    // While stopping: one request per connection, so none is held open past the stop.
    builder.keep_alive(false);
    let late = tokio::spawn(async move {
        loop {
            let (stream, peer) = accept(&listener).await;
            let connection = builder.serve_connection(TokioIo::new(stream), service(&app, peer));
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
            });
        }
    });

    let in_flight_finished = tokio::time::timeout_at(deadline, connections.shutdown())
        .await
        .is_ok();
    let drained = tokio::time::timeout_at(deadline, drain).await.is_ok();
    late.abort();
    Stopped {
        in_flight_finished,
        drained,
    }
}

/// The next connection, with Nagle off (answers are small and awaited).
async fn accept(listener: &TcpListener) -> (tokio::net::TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                return (stream, peer);
            }
            Err(error) => {
                // Out of file descriptors, say: wait a little rather than spin.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The app as a hyper service for one connection: each request is told the peer's address.
#[derive(Clone)]
struct WithPeer {
    app: Router,
    peer: SocketAddr,
}

fn service(app: &Router, peer: SocketAddr) -> WithPeer {
    WithPeer {
        app: app.clone(),
        peer,
    }
}

impl hyper::service::Service<hyper::Request<Incoming>> for WithPeer {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn call(&self, mut request: hyper::Request<Incoming>) -> Self::Future {
        request
            .extensions_mut()
            .insert(ConnectInfo::<SocketAddr>(self.peer));
        // A Router is always ready: no poll_ready needed before call.
        self.app.clone().call(request.map(axum::body::Body::new))
    }
}
