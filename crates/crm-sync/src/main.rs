//! `c2d-crm-sync`: configuration, telemetry, serve, shutdown.

use anyhow::Context as _;
use c2d_crm_sync::{Config, CrmSync};

const USAGE: &str = "usage: c2d-crm-sync\n\nConfiguration comes from the environment (NATS_URL, CRM_GRPC_ADDR, CRM_STORE_URL,\nCRM_CONNECTORS_FILE); see the README.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(argument) = std::env::args().nth(1) {
        if argument == "-h" || argument == "--help" {
            println!("{USAGE}");
            return Ok(());
        }
        anyhow::bail!("unknown argument {argument:?}\n\n{USAGE}");
    }
    let telemetry = c2d_telemetry::init("c2d-crm-sync")?;
    let config = Config::from_env()?;
    let listener = tokio::net::TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on CRM_GRPC_ADDR={}; is another process using it?",
                config.grpc_addr
            )
        })?;
    let crm_sync = CrmSync::open(config).await?;
    crm_sync
        .run(listener, c2d_telemetry::shutdown_signal())
        .await?;
    tracing::info!("c2d-crm-sync stopped");
    telemetry.shutdown();
    Ok(())
}
