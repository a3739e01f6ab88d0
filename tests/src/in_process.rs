//! A service run in-process through its library's `run(…, shutdown)`, as the tests that drive
//! a service's internals do: started without its binary, stopped as SIGTERM stops the binary,
//! and then waited for, so that a test goes on only once the service has finished its last
//! round and checks that it stopped cleanly. [`Killable`] runs one on a runtime of its own,
//! so that a test can also stop it as a deleted pod stops: at once, with no last round.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use tokio::runtime::Runtime;
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

/// A service in-process on a runtime of its own, until [`Killable::stop`] or [`Killable::kill`].
pub struct Killable<E> {
    runtime: Option<Runtime>,
    service: Option<InProcess<E>>,
}

impl<E: Debug + Send + 'static> Killable<E> {
    /// Spawns `run`, given the shutdown future, on a new runtime of two workers; `run` is
    /// called in that runtime's context, so what it opens (a listener, say) belongs to it.
    pub fn spawn<F>(run: impl FnOnce(Shutdown) -> F) -> Killable<E>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the service");
        let service = {
            let _context = runtime.enter();
            InProcess::spawn(run)
        };
        Killable {
            runtime: Some(runtime),
            service: Some(service),
        }
    }

    /// As [`InProcess::stop`]: shut down, waited for, checked to have stopped cleanly.
    pub async fn stop(mut self) {
        if let Some(service) = self.service.take() {
            service.stop().await;
        }
    }

    /// Stops the service as a deleted pod stops: every task it runs dropped at once, its
    /// connections closed, nothing finished, saved or released.
    pub fn kill(mut self) {
        // The runtime first: dropping the service's handle would tell it to shut down.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        self.service.take();
    }
}

impl<E> Drop for Killable<E> {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async test may not; this does not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
