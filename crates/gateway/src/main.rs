//! `c2d-gateway`: configuration, telemetry, serve, shutdown. The logic is in the library.

use c2d_gateway::{Config, Gateway};

// Every request allocates a handful of short-lived buffers (body, JSON tree, protobuf);
// mimalloc serves them markedly cheaper than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: c2d-gateway\n\nReceives Chat2Desk webhooks and stores them as events in NATS JetStream.\nConfiguration comes from the environment (GATEWAY_TOKENS, NATS_URL, ...); see the README.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if c2d_telemetry::startup::flags(USAGE, &[])?.is_none() {
        return Ok(());
    }
    let telemetry = c2d_telemetry::init("c2d-gateway")?;
    let config = Config::from_env()?;
    let listener = c2d_telemetry::startup::bind(config.addr, "GATEWAY_ADDR").await?;
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        nats = %config.nats_url,
        tenants = ?config.tenants,
        max_body_bytes = config.max_body_bytes,
        "c2d-gateway listening; webhook URL: http://{addr}/hooks/chat2desk/{{tenant}}?token=SECRET"
    );
    let gateway = Gateway::start(config).await?;
    gateway
        .serve(listener, c2d_telemetry::shutdown_signal())
        .await?;
    tracing::info!("c2d-gateway stopped");
    telemetry.shutdown();
    Ok(())
}
