//! `c2d-hints`: configuration, telemetry, serve, shutdown.

use c2d_hints::{Config, Hints};

// The index is many small vectors that grow one posting at a time; mimalloc serves them
// cheaper than the system allocator (the benchmark uses it too).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: c2d-hints\n\nSuggests answers to operators from the event log (HintsService over gRPC).\nConfiguration comes from the environment; see the README.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if c2d_telemetry::startup::flags(USAGE, &[])?.is_none() {
        return Ok(());
    }
    let telemetry = c2d_telemetry::init("c2d-hints")?;
    let config = Config::from_env()?;
    let listener = c2d_telemetry::startup::bind(config.grpc_addr, "HINTS_GRPC_ADDR").await?;
    Hints::new(config)
        .run(listener, c2d_telemetry::shutdown_signal())
        .await?;
    tracing::info!("c2d-hints stopped");
    telemetry.shutdown();
    Ok(())
}
