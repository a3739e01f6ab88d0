//! A service run in-process through its library's `run(…, shutdown)`, as the tests that drive
//! a service's internals do: started without its binary, stopped as SIGTERM stops the binary,
//! and then waited for, so that a test goes on only once the service has finished its last
//! round and checks that it stopped cleanly.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The shutdown future a service is run with: it completes at [`InProcess::stop`], or when the
/// handle is dropped.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A service running in-process, until [`InProcess::stop`].
pub struct InProcess<E> {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), E>>,
}

impl<E: Debug + Send + 'static> InProcess<E> {
    /// Spawns `run`, given the shutdown future, on the test's runtime.
    pub fn spawn<F>(run: impl FnOnce(Shutdown) -> F) -> InProcess<E>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(Box::pin(async move {
            let _ = stopped.await;
        })));
        InProcess { stop, task }
    }

    /// Shuts the service down and waits until it has stopped; panics unless it stopped cleanly.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("the service does not panic")
            .expect("the service stops cleanly");
    }
}
