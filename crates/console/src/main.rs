//! `c2d-console`: configuration, telemetry, serve, shutdown.

use c2d_console::{Config, Console};

const USAGE: &str = "usage: c2d-console\n\nThe pipeline in a browser: the event log searched and read, behind a login.\nConfiguration comes from the environment (CONSOLE_ADMIN_TOKEN, CONSOLE_TENANT_TOKENS, NATS_URL, ...); see docs/configuration.md.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(_) = c2d_telemetry::startup::flags(USAGE, &[])? else {
        return Ok(());
    };
    let telemetry = c2d_telemetry::init("c2d-console")?;
    let config = Config::from_env()?;
    let listener = c2d_telemetry::startup::bind(config.addr, "CONSOLE_ADDR").await?;
    let console = Console::start(config).await?;
    console
        .serve(listener, c2d_telemetry::shutdown_signal())
        .await?;
    tracing::info!("c2d-console stopped");
    telemetry.shutdown();
    Ok(())
}
