//! A workspace binary run as its own process, as users run it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::bail;

/// A child process that is killed when dropped. Its stderr goes to the test's output, so a
/// failing test shows the service's logs.
pub struct ServiceProcess {
    child: Child,
    name: String,
}

impl ServiceProcess {
    /// Starts `binary` with `env` added to the test's environment.
    pub fn spawn(binary: &str, env: &[(&str, String)]) -> anyhow::Result<ServiceProcess> {
        let mut command = Command::new(binary);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        command.env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        );
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn()?;
        Ok(ServiceProcess {
            child,
            name: binary.rsplit('/').next().unwrap_or(binary).to_owned(),
        })
    }

    /// Waits until `GET {url}` answers 200, or fails after `timeout`.
    pub async fn wait_for_ok(&mut self, url: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if crate::http::get(url)
                .await
                .is_ok_and(|response| response.status == 200)
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited with {status} before {url} answered 200",
                    self.name
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer 200 at {url} within {timeout:?}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: the process dies at once, mid-request.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the process to exit on its own; returns whether it exited 0.
    pub fn terminate(&mut self) -> anyhow::Result<bool> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        Ok(self.child.wait()?.success())
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
