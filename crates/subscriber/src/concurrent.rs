//! Several events at a time: each acked alone, a failed one redelivered later by JetStream
//! while the others go on.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt as _;
use futures_util::future::FusedFuture;
use futures_util::stream::FuturesUnordered;

use crate::attempt::{Attempt, Opened};
use crate::subscriber::{Handler, MessageStream, SubscribeError, Subscriber, next_message};

impl Subscriber {
    pub(crate) async fn run_concurrently<H: Handler, S: FusedFuture<Output = ()>>(
        &self,
        handler: Arc<H>,
        shutdown: &mut Pin<&mut S>,
    ) -> Result<(), SubscribeError> {
        let mut messages: Option<MessageStream> = None;
        let mut in_flight = FuturesUnordered::new();
        loop {
            let stopping = shutdown.is_terminated();
            if stopping && in_flight.is_empty() {
                break;
            }
            if messages.is_none() && !stopping {
                messages = Some(self.pull().await?);
            }
            let room = in_flight.len() < self.config.concurrency;
            tokio::select! {
                biased;
                () = &mut *shutdown, if !stopping => {
                    tracing::info!(subscriber = %self.config.durable, in_flight = in_flight.len(), "stopping: finishing the events in hand");
                    messages = None;
                }
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                next = next_message(&mut messages), if room && !stopping => match next {
                    Some(Ok(message)) => in_flight.push(self.handle_alone(Arc::clone(&handler), message)),
                    Some(Err(error)) => self.pull_failed(error, &mut messages).await,
                    None => messages = None,
                },
            }
        }
        Ok(())
    }

    /// One event of a concurrent subscriber: acked, nak'ed for redelivery, or dead-lettered.
    pub(crate) async fn handle_alone<H: Handler>(
        &self,
        handler: Arc<H>,
        message: jetstream::Message,
    ) {
        let (meta, names, reason) = match self.open_message(&message) {
            Opened::Event(meta, event) => {
                let names = (event.event_id.clone(), event.tenant.clone());
                match self
                    .attempt(&*handler, &message, &meta, event, meta.delivered)
                    .await
                {
                    Attempt::Handled => {
                        self.ack(&message).await;
                        return;
                    }
                    Attempt::Failed {
                        transient: true,
                        reason,
                    } if meta.delivered < self.config.max_deliveries => {
                        let delay = self.config.retry_delay(meta.delivered);
                        tracing::warn!(stream_sequence = meta.stream_sequence, %reason, ?delay, "handler failed; the event will be delivered again");
                        self.stats.retried.fetch_add(1, Ordering::Relaxed);
                        if let Err(error) = message.ack_with(AckKind::Nak(Some(delay))).await {
                            tracing::warn!(%error, "nak failed; the event comes back after ack_wait");
                        }
                        return;
                    }
                    Attempt::Failed { reason, .. } => (meta, Some(names), reason),
                }
            }
            Opened::Poison {
                meta,
                names,
                reason,
            } => (meta, names, reason),
            Opened::Ignored => return,
        };
        if self
            .store_dead_letter(&message, &meta, meta.delivered, names.as_ref(), reason)
            .await
        {
            if let Err(error) = message.ack_with(AckKind::Term).await {
                tracing::warn!(%error, "could not terminate a dead-lettered event; it may be dead-lettered twice (stored once)");
            }
        } else {
            let _ = message
                .ack_with(AckKind::Nak(Some(self.config.retry_delay(meta.delivered))))
                .await;
        }
    }

    pub(crate) async fn ack(&self, message: &jetstream::Message) {
        match message.ack().await {
            Ok(()) => {
                self.stats.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => tracing::warn!(%error, "ack failed; the event will be delivered again"),
        }
    }
}
