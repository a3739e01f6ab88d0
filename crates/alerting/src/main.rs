//! `c2d-alerting`: configuration, telemetry, serve, shutdown.

use anyhow::Context as _;
use c2d_alerting::Config;

const USAGE: &str = "usage: c2d-alerting\n\nConfiguration comes from the environment (NATS_URL, ALERTING_GRPC_ADDR,\nALERTING_RULES_FILE, ALERTING_CRM_URL); see the README.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(argument) = std::env::args().nth(1) {
        if argument == "-h" || argument == "--help" {
            println!("{USAGE}");
            return Ok(());
        }
        anyhow::bail!("unknown argument {argument:?}\n\n{USAGE}");
    }
    let telemetry = c2d_telemetry::init("c2d-alerting")?;
    let config = Config::from_env()?;
    let listener = tokio::net::TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on ALERTING_GRPC_ADDR={}; is another process using it?",
                config.grpc_addr
            )
        })?;
    c2d_alerting::run(config, listener, c2d_telemetry::shutdown_signal()).await?;
    tracing::info!("c2d-alerting stopped");
    telemetry.shutdown();
    Ok(())
}
