//! `c2d-analytics [--rebuild]`: configuration, telemetry, serve, shutdown.

use anyhow::Context as _;
use c2d_analytics::{Analytics, Config};

// A projection is millions of small allocations over its life; mimalloc serves them cheaper
// than the system allocator (the benchmark uses it too).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: c2d-analytics [--rebuild]\n\n  --rebuild  drop the snapshot and replay the whole event stream\n\nConfiguration comes from the environment; see the README.";

fn main() -> anyhow::Result<()> {
    // Before the runtime's threads start.
    c2d_analytics::allocator::keep_freed_memory();
    tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")?
        .block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let Some(flags) = c2d_telemetry::startup::flags(USAGE, &["--rebuild"])? else {
        return Ok(());
    };
    let rebuild = flags.contains(&"--rebuild");
    let telemetry = c2d_telemetry::init("c2d-analytics")?;
    let config = Config::from_env()?;
    let listener = c2d_telemetry::startup::bind(config.grpc_addr, "ANALYTICS_GRPC_ADDR").await?;
    let analytics = Analytics::open(config, rebuild)?;
    analytics
        .run(listener, c2d_telemetry::shutdown_signal())
        .await?;
    tracing::info!("c2d-analytics stopped");
    telemetry.shutdown();
    Ok(())
}
