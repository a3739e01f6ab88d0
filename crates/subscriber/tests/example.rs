//! The example service of the README builds and does what it says.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use c2d_testkit::Pipeline;
use c2d_testkit::fixture;

/// `target/{profile}/examples/delivery_failures`, built by `cargo test` with the tests.
fn example_binary() -> std::path::PathBuf {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    deps.parent().unwrap().join("examples/delivery_failures")
}

#[tokio::test]
async fn the_delivery_failures_example_logs_each_failed_delivery() {
    let pipeline = Pipeline::start().await;
    pipeline.post(fixture("outbox_status")).await;
    pipeline.post(fixture("inbox")).await; // not its subject: never shown

    let binary = example_binary();
    assert!(
        binary.exists(),
        "{} is built by cargo test",
        binary.display()
    );
    let mut child = Command::new(&binary)
        .env("NATS_URL", pipeline.nats.url())
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let line = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("the example logs the failure");
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("message not delivered"), "{line}");
    assert!(line.contains("tenant=acme"), "{line}");
    assert!(line.contains("timeout error"), "{line}");
    assert!(line.contains("message_id=Some(106773577)"), "{line}");
    assert!(
        lines.try_recv().is_err(),
        "only the outbox_status event is logged"
    );
}
