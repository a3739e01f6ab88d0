//! The `c2d-gateway` binary, started against a test's NATS server.

use std::time::Duration;

use crate::{NatsServer, ServiceProcess, free_port};

/// The tenants every gateway test knows, with their secrets.
pub const TENANTS: &str = "acme=acme-secret-1,globex=globex-secret-1";
pub const ACME_TOKEN: &str = "acme-secret-1";

/// A gateway process on a free port.
pub struct GatewayProcess {
    pub process: ServiceProcess,
    pub port: u16,
}

impl GatewayProcess {
    /// Starts `binary` (the test's `env!("CARGO_BIN_EXE_c2d-gateway")`) against `nats`, with
    /// [`TENANTS`], plus `env`, and waits until it is ready to store events.
    pub async fn start(
        binary: &str,
        nats: &NatsServer,
        env: &[(&str, String)],
    ) -> anyhow::Result<GatewayProcess> {
        GatewayProcess::start_on(binary, free_port(), nats, env).await
    }

    /// As [`GatewayProcess::start`], on a given port (to restart a gateway where it was).
    pub async fn start_on(
        binary: &str,
        port: u16,
        nats: &NatsServer,
        env: &[(&str, String)],
    ) -> anyhow::Result<GatewayProcess> {
        let mut vars = GatewayProcess::env(port, nats);
        vars.extend(env.iter().cloned());
        let process = ServiceProcess::spawn(binary, &vars)?;
        GatewayProcess::ready(process, port).await
    }

    /// The environment every test gateway gets.
    fn env(port: u16, nats: &NatsServer) -> Vec<(&'static str, String)> {
        let mut env = nats.env_for("gateway");
        env.extend([
            ("GATEWAY_ADDR", format!("127.0.0.1:{port}")),
            ("GATEWAY_TOKENS", TENANTS.to_owned()),
            // Without a spool a failed append is a 503; spool tests give a directory.
            ("GATEWAY_SPOOL_DIR", "off".to_owned()),
            // A hints service on this machine's default port is not the test's; hints tests
            // give their own.
            ("GATEWAY_HINTS_URL", "off".to_owned()),
            // Load tests push one tenant far beyond a real account; limit tests set their own.
            ("GATEWAY_TENANT_RATE", "1000000".to_owned()),
            ("GATEWAY_TENANT_BURST", "1000000".to_owned()),
            ("GATEWAY_TENANT_CONCURRENCY", "100000".to_owned()),
        ]);
        env
    }

    async fn ready(mut process: ServiceProcess, port: u16) -> anyhow::Result<GatewayProcess> {
        process
            .wait_for_ok(
                &format!("http://127.0.0.1:{port}/readyz"),
                Duration::from_secs(30),
            )
            .await?;
        Ok(GatewayProcess { process, port })
    }

    /// As [`GatewayProcess::start`], with the spool in `spool_dir` on a filesystem of its own
    /// of `disk_bytes` (a tmpfs in a private mount namespace, through `unshare -rm`), so that
    /// the spool meets the kernel's real "no space left on device". Fails on a machine that
    /// cannot make one: see [`small_disks_available`].
    pub async fn start_with_spool_disk(
        binary: &str,
        nats: &NatsServer,
        spool_dir: &std::path::Path,
        disk_bytes: u64,
        env: &[(&str, String)],
    ) -> anyhow::Result<GatewayProcess> {
        let port = free_port();
        let mut vars = GatewayProcess::env(port, nats);
        vars.push(("GATEWAY_SPOOL_DIR", spool_dir.display().to_string()));
        vars.push(("SPOOL_DISK_BYTES", disk_bytes.to_string()));
        vars.extend(env.iter().cloned());
        // `unshare` and `sh` both exec: the child is the gateway itself.
        let mount =
            r#"mount -t tmpfs -o "size=$SPOOL_DISK_BYTES" tmpfs "$GATEWAY_SPOOL_DIR" && exec "$0""#;
        let process =
            ServiceProcess::spawn_with_args("unshare", &["-rm", "sh", "-c", mount, binary], &vars)?;
        GatewayProcess::ready(process, port).await
    }

    /// Waits until the gateway writes to JetStream directly (its `/readyz` is also 200 while
    /// it spools, before NATS is connected): what a benchmark of the healthy path waits for.
    pub async fn wait_for_jetstream(&self, timeout: Duration) -> anyhow::Result<()> {
        let url = format!("{}/readyz", self.base_url());
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let answer = crate::http::get(&url).await?;
            if answer.status == 200 && !answer.text().contains("spooling") {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!(
                    "the gateway did not reach JetStream within {timeout:?}: {}",
                    answer.text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:{port}`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The webhook URL of `tenant` with `token`.
    pub fn hook_url(&self, tenant: &str, token: &str) -> String {
        format!("{}/hooks/chat2desk/{tenant}?token={token}", self.base_url())
    }

    /// The webhook URL of tenant `acme` with its valid token.
    pub fn acme_url(&self) -> String {
        self.hook_url("acme", ACME_TOKEN)
    }
}

/// Whether this machine lets a test mount a small filesystem of its own (`unshare -rm`: root,
/// or unprivileged user namespaces), for tests of a really full disk.
pub fn small_disks_available() -> bool {
    std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /tmp"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
