//! `c2d-gateway`: configuration, telemetry, serve, shutdown. The logic is in the library.

use c2d_gateway::{Config, Gateway};

// Every request allocates a handful of short-lived buffers (body, JSON tree, protobuf);
// mimalloc serves them markedly cheaper than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: c2d-gateway [--forward-spool]

Receives Chat2Desk webhooks and stores them as events in NATS JetStream.
Configuration comes from the environment (GATEWAY_TOKENS, NATS_URL, ...); see the README.

  --forward-spool  serve nothing: forward the events in GATEWAY_SPOOL_DIR to JetStream and
                   exit once it is empty (the volume of a gateway that is gone for good;
                   see docs/operations.md)";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(flags) = c2d_telemetry::startup::flags(USAGE, &["--forward-spool"])? else {
        return Ok(());
    };
    let telemetry = c2d_telemetry::init("c2d-gateway")?;
    let config = Config::from_env()?;
    if flags.has("--forward-spool") {
        let Some(dir) = config.spool_dir.clone() else {
            anyhow::bail!(
                "--forward-spool needs GATEWAY_SPOOL_DIR: the directory of the spool to forward"
            );
        };
        tracing::info!(dir = %dir.display(), nats = %config.nats_url, "forwarding the spool to JetStream");
        let gateway = Gateway::start(config).await?;
        let set_aside = gateway.forward_spool().await;
        gateway.log.flush().await;
        telemetry.shutdown();
        if set_aside > 0 {
            anyhow::bail!(
                "{set_aside} events are set aside in {}/spool.rejected: the NATS server refuses them as too large; raise its max_payload and run this again",
                dir.display()
            );
        }
        tracing::info!(dir = %dir.display(), "the spool is empty: every event it held is in JetStream");
        return Ok(());
    }
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
