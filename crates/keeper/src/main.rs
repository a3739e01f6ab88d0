//! `c2d-keeper`: configuration, telemetry, serve, shutdown.

use c2d_keeper::Config;

const USAGE: &str = "usage: c2d-keeper\n\nConfiguration comes from the environment (NATS_URL, KEEPER_API_TOKENS, GATEWAY_TOKENS,\nKEEPER_GATEWAY_URL, C2D_API_URL, KEEPER_ADDR, ...); see the README.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if c2d_telemetry::startup::flags(USAGE, &[])?.is_none() {
        return Ok(());
    }
    let telemetry = c2d_telemetry::init("c2d-keeper")?;
    let config = Config::from_env()?;
    let listener = c2d_telemetry::startup::bind(config.addr, "KEEPER_ADDR").await?;
    c2d_keeper::run(config, listener, c2d_telemetry::shutdown_signal()).await?;
    tracing::info!("c2d-keeper stopped");
    telemetry.shutdown();
    Ok(())
}
