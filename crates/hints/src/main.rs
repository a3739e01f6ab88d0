//! `c2d-hints`: configuration, telemetry, serve, shutdown.

use anyhow::Context as _;
use c2d_hints::{Config, Hints};

// The index is many small vectors that grow one posting at a time; mimalloc serves them
// cheaper than the system allocator (the benchmark uses it too).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: c2d-hints\n\nSuggests answers to operators from the event log (HintsService over gRPC).\nConfiguration comes from the environment; see the README.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(argument) = std::env::args().nth(1) {
        if argument == "-h" || argument == "--help" {
            println!("{USAGE}");
            return Ok(());
        }
        anyhow::bail!("unknown argument {argument:?}\n\n{USAGE}");
    }
    let telemetry = c2d_telemetry::init("c2d-hints")?;
    let config = Config::from_env()?;
    let listener = tokio::net::TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on HINTS_GRPC_ADDR={}; is another process using it?",
                config.grpc_addr
            )
        })?;
    Hints::new(config)
        .run(listener, c2d_telemetry::shutdown_signal())
        .await?;
    tracing::info!("c2d-hints stopped");
    telemetry.shutdown();
    Ok(())
}
