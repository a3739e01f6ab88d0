//! A workspace binary run as its own process, as users run it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::bail;

/// The path of the workspace binary `name` (e.g. `c2d-gateway`), built from the current
/// sources. A test of one package (`cargo test -p x`) does not build the other packages'
/// binaries, and one built earlier may be stale; so, once per test process, the workspace's
/// test build is brought up to date. It is the same build (same features, same artifacts) as
/// `cargo test --workspace` or `cargo nextest run --workspace`, so after one it does nothing.
pub fn workspace_binary(name: &str) -> anyhow::Result<std::path::PathBuf> {
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let exe = std::env::current_exe()?;
    // target/{profile}/deps/{test} -> target/{profile}/{name}
    let dir = exe.parent().and_then(|deps| deps.parent()).ok_or_else(|| {
        anyhow::anyhow!("cannot find the target directory from {}", exe.display())
    })?;
    let release = dir.file_name().is_some_and(|profile| profile == "release");
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .args(["test", "--no-run", "--workspace", "--quiet"])
            .current_dir(crate::workspace_root());
        // Cargo sets these for the test being run (CARGO_MANIFEST_DIR = its crate); build
        // scripts that watch them (ring's does) would see a change and rebuild half the
        // workspace, once per test crate. The workspace's own build ran without them.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let set_for_the_test = [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .contains(&name.as_ref())
                || name.starts_with("CARGO_PKG_")
                || name.starts_with("CARGO_BIN_EXE_");
            if set_for_the_test {
                command.env_remove(name.as_ref());
            }
        }
        if release {
            command.arg("--release");
        }
        let started = Instant::now();
        let status = command.status();
        // A test that ran minutes because it rebuilt the workspace first says so.
        if started.elapsed() > Duration::from_secs(5) {
            println!(
                "brought the workspace's test build up to date first (cargo test --no-run --workspace): {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
        match status {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!(
                "cargo test --no-run --workspace exited with {status}"
            )),
            Err(error) => Err(format!("cannot run cargo: {error}")),
        }
    });
    if let Err(error) = built {
        bail!("cannot build the workspace's binaries for this test: {error}");
    }
    let path = dir.join(name);
    if !path.exists() {
        bail!("{} is not a binary of this workspace", path.display());
    }
    Ok(path)
}

/// A child process that is killed when dropped. Its stderr goes to the test's output, so a
/// failing test shows the service's logs.
pub struct ServiceProcess {
    child: Child,
    name: String,
}

impl ServiceProcess {
    /// Starts `binary` with `env` added to the test's environment.
    pub fn spawn(binary: &str, env: &[(&str, String)]) -> anyhow::Result<ServiceProcess> {
        ServiceProcess::spawn_with_args(binary, &[], env)
    }

    /// Starts `binary` with `args`, and `env` added to the test's environment.
    pub fn spawn_with_args(
        binary: &str,
        args: &[&str],
        env: &[(&str, String)],
    ) -> anyhow::Result<ServiceProcess> {
        let mut command = Command::new(binary);
        command
            .args(args)
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
        self.sigterm()?;
        Ok(self.child.wait()?.success())
    }

    /// SIGTERM, as Kubernetes sends it, without waiting: the test watches the stop.
    pub fn sigterm(&self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status()?;
        anyhow::ensure!(sent.success(), "kill -TERM {pid} failed: {sent}");
        Ok(())
    }

    /// Waits for the process to exit; returns whether it exited 0.
    pub fn wait(&mut self) -> anyhow::Result<bool> {
        Ok(self.child.wait()?.success())
    }

    /// How the process ended, or None while it runs.
    pub fn exited(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
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
