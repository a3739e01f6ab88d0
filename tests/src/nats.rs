//! A real nats-server with JetStream, private to one test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{free_port, workspace_root};

/// A nats-server process on a free loopback port, with its JetStream store in a temporary
/// directory. It is killed when dropped; [`NatsServer::stop`] and [`NatsServer::restart`]
/// simulate an outage while keeping the stored streams.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// The largest message the server accepts, as its configuration writes it.
    max_payload: String,
    /// Set for a node of a [`NatsCluster`].
    cluster: Option<ClusterNode>,
    /// The users and permissions of `deploy/base/config/nats-users.conf`, as production runs;
    /// otherwise anyone may do anything.
    users: bool,
}

/// The users of `deploy/base/config/nats-users.conf`, each with the password the test server
/// gives it (`test-{user}`).
pub const USERS: [&str; 9] = [
    "gateway",
    "keeper",
    "crm-sync",
    "analytics",
    "alerting",
    "hints",
    "reader",
    "console",
    "admin",
];

/// What production sets (`deploy/`): room for a big QR-code image twice over, in the body
/// and in the raw bytes the event keeps.
const MAX_PAYLOAD: &str = "8MB";

/// How a node joins its cluster.
#[derive(Debug, Clone)]
struct ClusterNode {
    name: String,
    port: u16,
    routes: Vec<u16>,
}

impl NatsServer {
    /// Starts a server and waits until it accepts clients.
    pub async fn start() -> anyhow::Result<NatsServer> {
        Self::start_with_max_payload(MAX_PAYLOAD).await
    }

    /// Starts a server that accepts messages of at most `max_payload` (`64KB`, say), as a
    /// server left at a lower limit than production's would.
    pub async fn start_with_max_payload(max_payload: &str) -> anyhow::Result<NatsServer> {
        Self::start_as(max_payload, false).await
    }

    /// Starts a server with production's users and permissions (the deployment's
    /// `nats-users.conf`): a process gets its user's credentials from [`NatsServer::env_for`],
    /// and [`NatsServer::client`] connects as `admin`.
    pub async fn start_with_users() -> anyhow::Result<NatsServer> {
        Self::start_as(MAX_PAYLOAD, true).await
    }

    async fn start_as(max_payload: &str, users: bool) -> anyhow::Result<NatsServer> {
        let dir = tempfile::Builder::new().prefix("c2d-nats-").tempdir()?;
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            dir,
            max_payload: max_payload.to_owned(),
            cluster: None,
            users,
        };
        server.spawn().await?;
        Ok(server)
    }

    /// `nats://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The environment a service's process needs to reach this server as `user` (one of
    /// [`USERS`]): `NATS_URL`, and on a server with users `NATS_USER` and `NATS_PASSWORD`.
    pub fn env_for(&self, user: &str) -> Vec<(&'static str, String)> {
        let mut env = vec![("NATS_URL", self.url())];
        if self.users {
            env.push(("NATS_USER", user.to_owned()));
            env.push(("NATS_PASSWORD", password(user)));
        }
        env
    }

    /// The variable `name` of [`NatsServer::env_for`]`(user)`: for a service started
    /// in-process, whose configuration is read through a lookup.
    pub fn variable_for(&self, user: &str, name: &str) -> Option<String> {
        self.env_for(user)
            .into_iter()
            .find(|(variable, _)| *variable == name)
            .map(|(_, value)| value)
    }

    /// A client connected to this server (as `admin` on a server with users).
    pub async fn client(&self) -> async_nats::Client {
        self.client_as("admin")
            .await
            .expect("the test server accepts clients")
    }

    /// A client connected as `user` (anonymous on a server without users).
    pub async fn client_as(
        &self,
        user: &str,
    ) -> Result<async_nats::Client, async_nats::ConnectError> {
        let mut options = async_nats::ConnectOptions::new();
        if self.users {
            options = options.user_and_password(user.to_owned(), password(user));
        }
        options.connect(self.url()).await
    }

    /// A JetStream context on this server.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client().await)
    }

    /// Kills the server (SIGKILL: the harshest outage); its store stays for [`Self::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sets the largest message the server accepts from its next (re)start on.
    pub fn set_max_payload(&mut self, max_payload: &str) {
        max_payload.clone_into(&mut self.max_payload);
    }

    /// Starts the server again on the same port with the same store.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn().await
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        self.launch()?;
        self.wait_until_ready().await
    }

    /// Starts the process without waiting for it (a cluster node cannot be ready alone).
    fn launch(&mut self) -> anyhow::Result<()> {
        let config = self.dir.path().join("nats.conf");
        let store = self.dir.path().join("jetstream");
        let mut text = format!(
            "listen: 127.0.0.1:{port}\nmax_payload: {max_payload}\njetstream {{\n  store_dir: {store:?}\n}}\n",
            port = self.port,
            max_payload = self.max_payload,
            store = store.display().to_string(),
        );
        if let Some(node) = &self.cluster {
            let routes: Vec<String> = node
                .routes
                .iter()
                .map(|port| format!("nats://127.0.0.1:{port}"))
                .collect();
            text.push_str(&format!(
                "server_name: {name}\ncluster {{\n  name: c2d-test\n  listen: 127.0.0.1:{port}\n  routes: [{routes}]\n}}\n",
                name = node.name,
                port = node.port,
                routes = routes.join(", "),
            ));
        }
        if self.users {
            std::fs::copy(
                workspace_root().join("deploy/base/config/nats-users.conf"),
                self.dir.path().join("nats-users.conf"),
            )
            .context("the deployment's nats-users.conf")?;
            text.push_str("include ./nats-users.conf\n");
        }
        std::fs::write(&config, text)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("nats.log"))?;
        let binary = nats_server_binary()?;
        let mut command = Command::new(&binary);
        if self.users {
            for user in USERS {
                command.env(password_variable(user), password(user));
            }
        }
        let child = command
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(client) = self.client_as("admin").await {
                let jetstream = async_nats::jetstream::new(client);
                if jetstream.query_account().await.is_ok() {
                    return Ok(());
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("nats-server exited with {status}; its log: {}", self.log());
            }
            if Instant::now() > deadline {
                bail!(
                    "nats-server did not become ready in 20 s; its log: {}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Three (or `n`) nats-servers on loopback forming one JetStream cluster, for tests that lose a
/// node under load. Each node keeps its own store, so a stream at three replicas survives one.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `n` nodes and waits until JetStream answers on each (a meta leader is elected).
    pub async fn start(n: usize) -> anyhow::Result<NatsCluster> {
        let cluster_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for (i, port) in cluster_ports.iter().enumerate() {
            let dir = tempfile::Builder::new()
                .prefix("c2d-nats-cluster-")
                .tempdir()?;
            nodes.push(NatsServer {
                child: None,
                port: free_port(),
                dir,
                max_payload: MAX_PAYLOAD.to_owned(),
                users: false,
                cluster: Some(ClusterNode {
                    name: format!("n{}", i + 1),
                    port: *port,
                    routes: cluster_ports
                        .iter()
                        .copied()
                        .filter(|p| p != port)
                        .collect(),
                }),
            });
        }
        for node in &mut nodes {
            node.launch()?;
        }
        for node in &mut nodes {
            node.wait_until_ready().await?;
        }
        Ok(NatsCluster { nodes })
    }

    /// Every node's URL, comma-separated, as NATS_URL takes them.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node named `name` (n1, n2, ...).
    pub fn node(&mut self, name: &str) -> Option<&mut NatsServer> {
        self.nodes
            .iter_mut()
            .find(|n| n.cluster.as_ref().is_some_and(|c| c.name == name))
    }
}

/// The password a test server gives `user`.
fn password(user: &str) -> String {
    format!("test-{user}")
}

/// The variable `nats-users.conf` reads `user`'s password from: `NATS_PASSWORD_CRM_SYNC`.
fn password_variable(user: &str) -> String {
    format!("NATS_PASSWORD_{}", user.to_uppercase().replace('-', "_"))
}

/// The nats-server to run: `$NATS_SERVER_BIN`, the workspace's `tools/bin/nats-server`, or the
/// one on `PATH`.
pub fn nats_server_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return Ok(PathBuf::from(path));
    }
    let tools = workspace_root().join("tools/bin/nats-server");
    if tools.exists() {
        return Ok(tools);
    }
    if Command::new("nats-server")
        .arg("--version")
        .output()
        .is_ok()
    {
        return Ok(PathBuf::from("nats-server"));
    }
    bail!(
        "no nats-server found: run `make tools` (installs one into tools/bin) or set NATS_SERVER_BIN"
    )
}

/// Every message stored in `stream`, in order, read one by one by sequence.
pub async fn stream_messages(
    jetstream: &async_nats::jetstream::Context,
    stream: &str,
) -> anyhow::Result<Vec<async_nats::jetstream::message::StreamMessage>> {
    let stream = jetstream.get_stream(stream).await?;
    let state = stream.get_info().await?.state;
    let mut messages = Vec::with_capacity(state.messages as usize);
    if state.messages == 0 {
        return Ok(messages);
    }
    for sequence in state.first_sequence..=state.last_sequence {
        match stream.get_raw_message(sequence).await {
            Ok(message) => messages.push(message),
            Err(error)
                if error.kind()
                    == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(messages)
}

/// Every event of the `CHAT2DESK` stream, decoded, with the message it came in.
pub async fn stored_events(
    nats: &NatsServer,
) -> anyhow::Result<
    Vec<(
        async_nats::jetstream::message::StreamMessage,
        c2d_proto::events::Event,
    )>,
> {
    use prost::Message as _;
    let jetstream = nats.jetstream().await;
    let mut events = Vec::new();
    for message in stream_messages(&jetstream, c2d_proto::events::STREAM).await? {
        let event =
            c2d_proto::events::Event::decode(message.payload.clone()).with_context(|| {
                format!(
                    "message {} is not a chat2desk.events.v1.Event",
                    message.sequence
                )
            })?;
        events.push((message, event));
    }
    Ok(events)
}

/// Parses each `(tenant, body)` as the gateway would and publishes the events straight to
/// JetStream, acks pipelined: how benchmarks fill a stream quickly. Returns the bytes stored.
pub async fn publish_deliveries(
    nats: &NatsServer,
    deliveries: impl IntoIterator<Item = (String, bytes::Bytes)>,
) -> anyhow::Result<u64> {
    use prost::Message as _;
    let jetstream = nats.jetstream().await;
    let mut bytes = 0;
    let mut pending = Vec::with_capacity(1000);
    for (tenant, body) in deliveries {
        let received = prost_types::Timestamp::from(std::time::SystemTime::now());
        let event = c2d_hooks::parse_delivery(&tenant, body, received)?;
        let payload = event.encode_to_vec();
        bytes += payload.len() as u64;
        let publish = async_nats::jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(&event.event_id);
        pending.push(jetstream.send_publish(event.subject(), publish).await?);
        if pending.len() == 1000 {
            for ack in pending.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in pending {
        ack.await?;
    }
    Ok(bytes)
}

/// Reads `count` messages of the `CHAT2DESK` stream with an ordered consumer, neither
/// decoding nor acking: the fastest possible read, the yardstick of consumer benchmarks.
/// Returns messages per second.
pub async fn ordered_read_rate(nats: &NatsServer, count: u64) -> anyhow::Result<f64> {
    use futures_util::StreamExt as _;
    let stream = nats
        .jetstream()
        .await
        .get_stream(c2d_proto::events::STREAM)
        .await?;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await?;
    let started = std::time::Instant::now();
    let mut messages = consumer.messages().await?;
    for _ in 0..count {
        let message = messages
            .next()
            .await
            .context("the ordered read ended early")??;
        std::hint::black_box(&message.payload);
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}
