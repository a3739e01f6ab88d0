//! Generates Rust from the workspace's `proto/` tree without a system `protoc`: protox parses
//! the files in pure Rust, prost/tonic write the code. A fresh machine builds with cargo alone.

use std::path::PathBuf;

use prost::Message;

/// Every .proto file of the public contract, relative to `proto/`.
const PROTOS: &[&str] = &[
    "chat2desk/events/v1/events.proto",
    "chat2desk/analytics/v1/analytics.proto",
    "chat2desk/crm/v1/crm.proto",
    "chat2desk/alerting/v1/alerting.proto",
    "chat2desk/hints/v1/hints.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());

    let files: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    let descriptors = protox::compile(&files, [&root])?;

    // Kept for gRPC reflection, so `grpcurl` works without the .proto files.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("descriptors.bin"), descriptors.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Raw bodies are shared with the HTTP layer, not copied.
        .bytes(".")
        .compile_fds(descriptors)?;
    Ok(())
}
