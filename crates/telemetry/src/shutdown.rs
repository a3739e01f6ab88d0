//! How a service stops: the process's stop signal, and one flag every task of the service
//! watches, so that the gRPC server, the event consumer and the background tasks all finish
//! their work in hand when it is raised.

use std::future::Future;

use tokio::sync::watch;

/// Completes when the process is asked to stop: SIGTERM (Kubernetes, systemd) or Ctrl-C.
/// Every service's `main` hands it to its server as the shutdown future.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received; finishing in-flight work"),
        () = terminate => tracing::info!("SIGTERM received; finishing in-flight work"),
    }
}

/// A flag raised when `signal` completes (a service's shutdown future), to hand to each task
/// that must finish then: [`stopped`] of a clone completes when it is raised.
pub fn stop_flag(signal: impl Future<Output = ()> + Send + 'static) -> watch::Receiver<bool> {
    let (raise, flag) = watch::channel(false);
    tokio::spawn(async move {
        signal.await;
        let _ = raise.send(true);
    });
    flag
}

/// Completes when the stop flag is raised.
pub async fn stopped(mut flag: watch::Receiver<bool>) {
    let _ = flag.wait_for(|stopped| *stopped).await;
}
