//! The one harness every integration test of the workspace uses.
//!
//! Tests talk to real servers, never to mocks: [`NatsServer`] starts a real `nats-server` with
//! JetStream on a free loopback port in a temporary directory, and stops it when dropped;
//! [`ServiceProcess`] runs one of the workspace's binaries the way a user would, and
//! [`InProcess`] one of their libraries' `run` in the test's runtime; [`http`]
//! sends plain HTTP/1.1 requests; [`TestDatabase`] is a fresh PostgreSQL database (on a server
//! the test starts when none runs); [`Pipeline`] puts an in-process gateway in front of a
//! server for consumers' tests; [`language_model`] stands in for the model c2d-hints may ask;
//! [`fixture`] reads the project's copy of Chat2Desk's examples;
//! [`eventually`] is how a test waits for anything.
//!
//! The `nats-server` binary is found, in order, at `$NATS_SERVER_BIN`, at the workspace's
//! `tools/bin/nats-server` (installed by `make tools`), or on `PATH`.

pub mod browser;
pub mod gateway;
pub mod grpc;
pub mod http;
mod in_process;
pub mod language_model;
pub mod load;
mod nats;
pub mod partitions;
mod pipeline;
pub mod postgres;
mod process;
pub mod replicas;
pub mod services;
mod wait;

use std::net::TcpListener;
use std::path::PathBuf;

use bytes::Bytes;

pub use gateway::GatewayProcess;
pub use in_process::{InProcess, Killable, Shutdown};
pub use nats::{
    NatsCluster, NatsServer, ordered_read_rate, publish_deliveries, stored_events, stream_messages,
};
pub use pipeline::{Pipeline, inbox};
pub use postgres::TestDatabase;
pub use process::{ServiceProcess, workspace_binary};
pub use services::Services;
pub use wait::eventually;

/// The workspace's top directory.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives inside the workspace")
        .to_path_buf()
}

/// The body of `fixtures/chat2desk/{name}.json`.
pub fn fixture(name: &str) -> Bytes {
    let path = workspace_root()
        .join("fixtures/chat2desk")
        .join(format!("{name}.json"));
    std::fs::read(&path)
        .unwrap_or_else(|error| panic!("cannot read fixture {}: {error}", path.display()))
        .into()
}

/// Every fixture that is a webhook body (not the hints answer), by name.
pub fn webhook_fixtures() -> Vec<(String, Bytes)> {
    let dir = workspace_root().join("fixtures/chat2desk");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()))
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".json")?;
            (!stem.ends_with(".response")).then(|| stem.to_owned())
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let body = fixture(&name);
            (name, body)
        })
        .collect()
}

/// Realistic webhook bodies for benchmarks: the fixtures, weighted towards messages as real
/// traffic is, each made unique by its `event_time` (seconds from 2019-07-28, one per body),
/// so that every body is a new event and, as in real traffic, has no field the parser does
/// not read.
pub fn unique_fixture_bodies() -> std::sync::Arc<dyn Fn(u64) -> Bytes + Send + Sync> {
    const EVENT_TIME: &str = "\"event_time\": ";
    let mut templates = Vec::new();
    for (name, body) in webhook_fixtures() {
        let text = String::from_utf8(body.to_vec()).expect("fixtures are UTF-8");
        let at = text
            .find(EVENT_TIME)
            .expect("webhook fixtures have an event_time")
            + EVENT_TIME.len();
        let value_end = at
            + text[at..]
                .find([',', '\n', '}'])
                .expect("event_time's value ends");
        let (before, after) = (text[..at].to_owned(), text[value_end..].to_owned());
        let weight = if name == "inbox" || name == "outbox" {
            6
        } else {
            1
        };
        for _ in 0..weight {
            templates.push((before.clone(), after.clone()));
        }
    }
    std::sync::Arc::new(move |n: u64| {
        let (before, after) = &templates[n as usize % templates.len()];
        Bytes::from(format!("{before}{}{after}", 1_564_354_900 + n))
    })
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("the loopback interface has free ports")
}
