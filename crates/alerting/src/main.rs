//! `c2d-alerting`: configuration, telemetry, serve, shutdown.

use c2d_alerting::Config;

const USAGE: &str = "usage: c2d-alerting\n\nConfiguration comes from the environment (NATS_URL, ALERTING_GRPC_ADDR,\nALERTING_RULES_FILE, ALERTING_CRM_URL); see the README.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if c2d_telemetry::startup::flags(USAGE, &[])?.is_none() {
        return Ok(());
    }
    let telemetry = c2d_telemetry::init("c2d-alerting")?;
    let config = Config::from_env()?;
    let listener = c2d_telemetry::startup::bind(config.grpc_addr, "ALERTING_GRPC_ADDR").await?;
    c2d_alerting::run(config, listener, c2d_telemetry::shutdown_signal()).await?;
    tracing::info!("c2d-alerting stopped");
    telemetry.shutdown();
    Ok(())
}
