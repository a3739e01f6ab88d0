//! `c2d-analytics [--rebuild[=ID]]`: configuration, telemetry, serve, shutdown.

use anyhow::Context as _;
use c2d_analytics::{Analytics, Config, Rebuild};

// A projection is millions of small allocations over its life; mimalloc serves them cheaper
// than the system allocator (the benchmark uses it too).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: c2d-analytics [--rebuild[=ID]]

  --rebuild     drop the snapshot and replay the whole event stream
  --rebuild=ID  the same, as one of the replicas (ANALYTICS_PARTITIONS) that rebuild together:
                every one is given the same ID, the Unix time in seconds when the rebuild
                began (`date +%s`), so that none takes up a snapshot from before it

Configuration comes from the environment; see the README.";

fn main() -> anyhow::Result<()> {
    // Before the runtime's threads start.
    c2d_analytics::allocator::keep_freed_memory();
    tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")?
        .block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let Some(flags) = c2d_telemetry::startup::flags(USAGE, &["--rebuild="])? else {
        return Ok(());
    };
    let rebuild = if flags.has("--rebuild") {
        Rebuild::from_flag(flags.value("--rebuild"))?
    } else {
        Rebuild::No
    };
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
