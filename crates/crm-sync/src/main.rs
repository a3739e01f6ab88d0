//! `c2d-crm-sync`: configuration, telemetry, serve, shutdown.

use c2d_crm_sync::{Config, CrmSync};

const USAGE: &str = "usage: c2d-crm-sync\n\nConfiguration comes from the environment (NATS_URL, CRM_GRPC_ADDR, CRM_STORE_URL,\nCRM_CONNECTORS_FILE); see the README.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if c2d_telemetry::startup::flags(USAGE, &[])?.is_none() {
        return Ok(());
    }
    let telemetry = c2d_telemetry::init("c2d-crm-sync")?;
    let config = Config::from_env()?;
    let listener = c2d_telemetry::startup::bind(config.grpc_addr, "CRM_GRPC_ADDR").await?;
    let crm_sync = CrmSync::open(config).await?;
    crm_sync
        .run(listener, c2d_telemetry::shutdown_signal())
        .await?;
    tracing::info!("c2d-crm-sync stopped");
    telemetry.shutdown();
    Ok(())
}
