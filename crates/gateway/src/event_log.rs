//! The event log: the JetStream streams the gateway writes, and the one way it writes them.
//!
//! A webhook is answered 2xx only after [`EventLog::append`] returned, that is after JetStream
//! acknowledged the message as stored. Each message carries `Nats-Msg-Id` = event id, so a
//! delivery Chat2Desk retries within the duplicate window is acknowledged as a duplicate and
//! stored once. When NATS is unreachable the append fails fast with [`AppendError::Unavailable`]
//! (the client reconnects by itself), and the gateway answers 503 so that Chat2Desk retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{
    Config as StreamConfig, Source, StorageType, SubjectTransform,
};
use async_nats::jetstream::{self, Context};
use bytes::Bytes;
use c2d_proto::events::{DLQ_STREAM, DLQ_STREAM_SUBJECTS, STREAM, STREAM_SUBJECTS};
use c2d_proto::partitions::{PARTITIONED_STREAM, partition_transform};
use c2d_subscriber::connect::NatsCredentials;
use c2d_telemetry::TRACEPARENT;

use crate::cfg::StreamSettings;

/// How often the keeper re-checks the streams while they are not known to be there.
const KEEPER_INTERVAL: Duration = Duration::from_secs(1);
/// How long a stopping gateway waits for its NATS connection to flush.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// The gateway's handle on NATS JetStream.
pub struct EventLog {
    client: async_nats::Client,
    jetstream: Context,
    settings: StreamSettings,
    /// How long an append waits for JetStream's acknowledgement.
    publish_timeout: Duration,
    /// The largest message the gateway may publish (an event carries its raw body, so about
    /// twice the body limit); the server's max_payload is checked against it.
    largest_message: usize,
    /// Both streams exist with our configuration, as far as we know.
    streams_ready: AtomicBool,
}

/// Where an appended message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub sequence: u64,
    /// JetStream already held a message with this id: a retried delivery, stored once.
    pub duplicate: bool,
    /// JetStream could not take it now: it is in the spool, on disk, and forwarded later.
    pub spooled: bool,
}

/// `step`, or [`AppendError::TimedOut`] (with the time since `started`) after `limit`.
async fn within<T>(
    limit: Duration,
    started: Instant,
    step: impl std::future::Future<Output = Result<T, AppendError>>,
) -> Result<T, AppendError> {
    tokio::time::timeout(limit, step)
        .await
        .unwrap_or_else(|_| Err(AppendError::TimedOut(started.elapsed())))
}

/// A message JetStream has been handed, whose acknowledgement is still to come.
pub struct Sent {
    ack: async_nats::jetstream::context::PublishAckFuture,
    started: Instant,
    size: usize,
}

/// Why a message was not stored. Every variant is worth a retry later: the gateway answers
/// 503 and Chat2Desk retries.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("NATS is not reachable ({0}); the gateway reconnects by itself")]
    Unavailable(String),
    #[error("JetStream did not acknowledge within {0:?}")]
    TimedOut(Duration),
    #[error("the stream for this subject does not exist yet; the gateway is creating it")]
    NoStream,
    #[error(
        "the message ({size} bytes) exceeds the NATS server's max_payload; raise max_payload (e.g. 8MB) in the nats-server configuration"
    )]
    TooLarge { size: usize },
    #[error("JetStream refused the message: {0}")]
    Refused(String),
    #[error("JetStream could not take it and {0}")]
    NotSpooled(#[from] crate::spool::SpoolError),
}

impl AppendError {
    /// Whether JetStream may take the message later as it is (NATS down or slow, the stream
    /// being created), so that spooling it is worth it; a message too large or refused would
    /// be refused again.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AppendError::Unavailable(_) | AppendError::TimedOut(_) | AppendError::NoStream
        )
    }
}

/// The streams could not be created or checked.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Connect(#[from] c2d_subscriber::ConnectError),
    #[error(
        "cannot create or update stream {stream}: {source}; if it exists with another storage type or subjects, fix or delete it (nats stream info {stream})"
    )]
    Create {
        stream: &'static str,
        source: async_nats::jetstream::context::CreateStreamError,
    },
}

impl EventLog {
    /// Connects to NATS in the background: the gateway starts (and `/healthz` answers) even
    /// while NATS is down, and `/readyz` tells when it is usable.
    pub async fn connect(
        url: &str,
        credentials: &NatsCredentials,
        settings: StreamSettings,
        publish_timeout: Duration,
        largest_message: usize,
    ) -> Result<Arc<EventLog>, StreamError> {
        let options = credentials
            .apply(async_nats::ConnectOptions::new().name("c2d-gateway"))
            .await
            .map_err(c2d_subscriber::ConnectError::from)?
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(publish_timeout)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts as u64 * 250).min(2_000))
            })
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("connected to NATS"),
                    async_nats::Event::Disconnected => {
                        tracing::warn!("disconnected from NATS; webhooks get 503 until it is back")
                    }
                    other => tracing::info!(event = %other, "NATS connection event"),
                }
            });
        let client = c2d_subscriber::connect::connect_with(options, url).await?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(publish_timeout)
            .max_ack_inflight(10_000)
            .backpressure_on_inflight(true)
            .build(client.clone());
        Ok(Arc::new(EventLog {
            client,
            jetstream,
            settings,
            publish_timeout,
            largest_message,
            streams_ready: AtomicBool::new(false),
        }))
    }

    /// Creates the streams, or updates them to the configured settings.
    pub async fn ensure_streams(&self) -> Result<(), StreamError> {
        for (name, subjects, description) in [
            (
                STREAM,
                STREAM_SUBJECTS,
                "Chat2Desk webhook events, one protobuf chat2desk.events.v1.Event each",
            ),
            (
                DLQ_STREAM,
                DLQ_STREAM_SUBJECTS,
                "Chat2Desk deliveries the gateway could not decode",
            ),
        ] {
            self.ensure_stream(
                name,
                description.to_owned(),
                StreamConfig {
                    subjects: vec![subjects.to_owned()],
                    duplicate_window: self.settings.duplicate_window,
                    ..Default::default()
                },
            )
            .await?;
        }
        if self.settings.partitions > 0 {
            // The partitioned copy of the log (c2d_proto::partitions): sourced from the log,
            // so the gateway publishes each event once and nats-server files it a second time.
            let (source, destination) = partition_transform(self.settings.partitions);
            let description = format!(
                "Every event of {STREAM} again, by tenant partition (of {})",
                self.settings.partitions
            );
            let source = Source {
                name: STREAM.to_owned(),
                subject_transforms: vec![SubjectTransform {
                    source,
                    destination,
                }],
                ..Default::default()
            };
            let config = StreamConfig {
                sources: Some(vec![source]),
                ..Default::default()
            };
            self.ensure_stream(PARTITIONED_STREAM, description, config)
                .await?;
        }
        self.streams_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Creates or updates stream `name` from `config`, with what every stream of the log has:
    /// on disk, the configured replicas and age, direct gets.
    async fn ensure_stream(
        &self,
        name: &'static str,
        description: String,
        config: StreamConfig,
    ) -> Result<(), StreamError> {
        let config = StreamConfig {
            name: name.to_owned(),
            description: Some(description),
            storage: StorageType::File,
            num_replicas: self.settings.replicas,
            max_age: self.settings.max_age,
            allow_direct: true,
            ..config
        };
        self.jetstream
            .create_or_update_stream(config)
            .await
            .map_err(|source| StreamError::Create {
                stream: name,
                source,
            })?;
        Ok(())
    }

    /// Keeps the streams present: at start, and again whenever an append found one missing
    /// (a NATS server that lost its data, say). Runs until the process ends.
    pub fn spawn_keeper(self: &Arc<Self>) {
        let log = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut last_error = String::new();
            while let Some(log) = log.upgrade() {
                if !log.streams_ready.load(Ordering::Acquire) && log.is_connected() {
                    match log.ensure_streams().await {
                        Ok(()) => {
                            tracing::info!(stream = STREAM, dlq = DLQ_STREAM, "streams ready");
                            last_error.clear();
                            log.check_max_payload();
                        }
                        Err(error) => {
                            let error = error.to_string();
                            if error != last_error {
                                tracing::error!(%error, "streams not ready");
                                last_error = error;
                            }
                        }
                    }
                }
                drop(log);
                tokio::time::sleep(KEEPER_INTERVAL).await;
            }
        });
    }

    /// Stores one message and waits for JetStream's acknowledgement.
    pub async fn append(
        &self,
        subject: String,
        msg_id: &str,
        traceparent: &str,
        payload: Bytes,
    ) -> Result<Appended, AppendError> {
        let started = Instant::now();
        let stored = async {
            let sent = self.publish(subject, msg_id, traceparent, payload).await?;
            self.acknowledgement(sent).await
        };
        within(self.publish_timeout, started, stored).await
    }

    /// Hands one message to JetStream without waiting for its acknowledgement: messages sent
    /// one after the other reach the stream in that order, and their acknowledgements can be
    /// awaited together ([`EventLog::acknowledged`]), which is how the spool drains quickly.
    pub async fn send(
        &self,
        subject: String,
        msg_id: &str,
        traceparent: &str,
        payload: Bytes,
    ) -> Result<Sent, AppendError> {
        let publish = self.publish(subject, msg_id, traceparent, payload);
        within(self.publish_timeout, Instant::now(), publish).await
    }

    async fn publish(
        &self,
        subject: String,
        msg_id: &str,
        traceparent: &str,
        payload: Bytes,
    ) -> Result<Sent, AppendError> {
        if !self.is_connected() {
            return Err(AppendError::Unavailable(format!(
                "{:?}",
                self.client.connection_state()
            )));
        }
        let size = payload.len();
        let publish = PublishMessage::build()
            .payload(payload)
            .message_id(msg_id)
            .header(TRACEPARENT, traceparent);
        let started = Instant::now();
        match self.jetstream.send_publish(subject, publish).await {
            Ok(ack) => Ok(Sent { ack, started, size }),
            Err(error) => Err(self.classify(&error, started, size)),
        }
    }

    async fn acknowledgement(&self, sent: Sent) -> Result<Appended, AppendError> {
        let Sent { ack, started, size } = sent;
        match ack.await {
            Ok(ack) => Ok(Appended {
                sequence: ack.sequence,
                duplicate: ack.duplicate,
                spooled: false,
            }),
            Err(error) => Err(self.classify(&error, started, size)),
        }
    }

    /// Waits for JetStream's acknowledgement of a message sent with [`EventLog::send`], at most
    /// what is left of the publish timeout.
    pub async fn acknowledged(&self, sent: Sent) -> Result<Appended, AppendError> {
        let started = sent.started;
        let remaining = self.publish_timeout.saturating_sub(started.elapsed());
        within(remaining, started, self.acknowledgement(sent)).await
    }

    fn classify(
        &self,
        error: &async_nats::jetstream::context::PublishError,
        started: Instant,
        size: usize,
    ) -> AppendError {
        match error.kind() {
            PublishErrorKind::StreamNotFound => {
                self.streams_ready.store(false, Ordering::Release);
                AppendError::NoStream
            }
            PublishErrorKind::TimedOut => AppendError::TimedOut(started.elapsed()),
            PublishErrorKind::BrokenPipe => AppendError::Unavailable(error.to_string()),
            PublishErrorKind::MaxPayloadExceeded => AppendError::TooLarge { size },
            _ => AppendError::Refused(error.to_string()),
        }
    }

    /// Whether the gateway can store events now: connected, and the streams exist.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.is_connected() {
            return Err(format!(
                "NATS connection is {:?}",
                self.client.connection_state()
            ));
        }
        if !self.streams_ready.load(Ordering::Acquire) {
            return Err(format!(
                "streams {STREAM} and {DLQ_STREAM} are not ready yet"
            ));
        }
        Ok(())
    }

    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// The largest message the connected server accepts (0 before the first connection).
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }

    /// Whether the connected server would refuse a message of `payload` bytes with these
    /// headers as larger than its max_payload; `false` before the first connection, when the
    /// limit is not known yet.
    pub fn refuses_as_too_large(&self, payload: usize, msg_id: &str, traceparent: &str) -> bool {
        // NATS counts the header block too: `NATS/1.0`, `Nats-Msg-Id: {id}` and
        // `traceparent: {value}`, each line ended by CRLF, and a last CRLF; with a little to
        // spare.
        let headers = 64 + msg_id.len() + traceparent.len();
        let max_payload = self.max_payload();
        max_payload > 0 && payload + headers > max_payload
    }

    /// Warns when the server would refuse the largest events the body limit lets in.
    fn check_max_payload(&self) {
        let max_payload = self.max_payload();
        if max_payload < self.largest_message {
            tracing::warn!(
                max_payload,
                needed = self.largest_message,
                "the NATS server's max_payload is below the largest event this gateway may publish \
                 (twice GATEWAY_MAX_BODY_BYTES plus headers); such deliveries would get 503: \
                 set max_payload: 8MB in the nats-server configuration or lower GATEWAY_MAX_BODY_BYTES"
            );
        }
    }

    /// Sends what is buffered; called once the HTTP server has stopped.
    pub async fn flush(&self) {
        // Bounded: with NATS unreachable a flush waits for a reconnection that may never come,
        // and every event answered 2xx is already stored or spooled.
        match tokio::time::timeout(FLUSH_TIMEOUT, self.client.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not flush the NATS connection at shutdown")
            }
            Err(_) => tracing::warn!(
                ?FLUSH_TIMEOUT,
                "could not flush the NATS connection at shutdown: NATS does not answer"
            ),
        }
    }
}
