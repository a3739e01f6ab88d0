//! Several events at a time.
//!
//! On a consumer with `AckPolicy::All`, which is how this SDK creates every consumer, a failed
//! event is retried in its own slot, after the backoff delay, while the other slots go on, and
//! acks are cumulative up to the [`AckFloor`]: one ack per [`ACK_EVERY`] events, as in order.
//! A consumer made with `AckPolicy::Explicit` (by earlier versions of this SDK) keeps working
//! the old way: each event acked alone, a failed one nak'ed and redelivered later by JetStream.
//!
//! Either way a consumer is read by one process at a time: an ack covers the events before it,
//! in whichever process they are in hand.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_nats::jetstream::{self, AckKind};
use futures_util::future::FusedFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt as _, StreamExt as _};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::ack_floor::AckFloor;
use crate::attempt::{Attempt, Opened};
use crate::in_order::{ACK_EVERY, Handled, QUIET_ACK_DELAY};
use crate::subscriber::{Handler, MessageStream, SubscribeError, Subscriber, next_message};

impl Subscriber {
    pub(crate) async fn run_concurrently<H: Handler, S: FusedFuture<Output = ()>>(
        &self,
        handler: Arc<H>,
        shutdown: &mut Pin<&mut S>,
    ) -> Result<(), SubscribeError> {
        let cumulative = self.acks_cumulatively();
        // Tells the slots waiting for a retry that the subscriber stops.
        let (stop_slots, slot_stop) = watch::channel(false);
        let mut floor = AckFloor::default();
        // The consumer's number of the last delivery taken, to see a lost one.
        let mut last_delivery: Option<u64> = None;
        // After a lost delivery: no reading until the slots are empty and this time is past.
        let mut paused_until: Option<Instant> = None;
        let mut messages: Option<MessageStream> = None;
        let mut in_flight = FuturesUnordered::new();
        loop {
            let stopping = shutdown.is_terminated();
            if stopping && in_flight.is_empty() {
                break;
            }
            if messages.is_none() && !stopping && paused_until.is_none() {
                messages = Some(self.pull().await?);
            }
            let room = in_flight.len() < self.config.concurrency && paused_until.is_none();
            let resume_at = paused_until.unwrap_or_else(Instant::now);
            tokio::select! {
                biased;
                () = &mut *shutdown, if !stopping => {
                    tracing::info!(subscriber = %self.config.durable, in_flight = in_flight.len(), "stopping: finishing the events in hand");
                    messages = None;
                    let _ = stop_slots.send(true);
                }
                Some(finished) = in_flight.next(), if !in_flight.is_empty() => {
                    if let Some((sequence, message)) = finished {
                        floor.handled(sequence, message);
                    }
                    if floor.unacked() as u64 >= ACK_EVERY {
                        self.ack_floor(&mut floor).await;
                    }
                }
                () = tokio::time::sleep(QUIET_ACK_DELAY), if floor.unacked() > 0 => {
                    self.ack_floor(&mut floor).await;
                }
                () = tokio::time::sleep_until(resume_at), if paused_until.is_some() && in_flight.is_empty() => {
                    paused_until = None;
                    last_delivery = None;
                }
                next = next_message(&mut messages), if room && !stopping => match next {
                    Some(Ok(message)) if cumulative => {
                        let Ok(info) = message.info() else {
                            tracing::warn!(subject = %message.subject, "a message without JetStream metadata; ignored");
                            continue;
                        };
                        let delivery = info.consumer_sequence;
                        if last_delivery.is_some_and(|last| delivery > last + 1) {
                            // As in order (see there): ack nothing after the lost delivery,
                            // and let JetStream deliver again what was not acked.
                            tracing::warn!(subscriber = %self.config.durable, expected = last_delivery.unwrap_or(0) + 1, got = delivery,
                                "deliveries were skipped (a NATS failover?): pulling again after ack_wait, when JetStream redelivers what was not acked");
                            messages = None;
                            paused_until = Some(Instant::now() + self.config.ack_wait);
                            continue;
                        }
                        last_delivery = Some(delivery);
                        let sequence = info.stream_sequence;
                        if floor.take(sequence) {
                            in_flight.push(self.handle_in_slot(Arc::clone(&handler), message, sequence, slot_stop.clone()).left_future());
                        } else {
                            tracing::debug!(stream_sequence = sequence, "delivered again while in hand; this copy is dropped");
                        }
                    }
                    Some(Ok(message)) => in_flight.push(self.handle_alone(Arc::clone(&handler), message).map(|()| None).right_future()),
                    Some(Err(error)) => self.pull_failed(error, &mut messages).await,
                    None => messages = None,
                },
            }
        }
        self.ack_floor(&mut floor).await;
        Ok(())
    }

    /// One event of a cumulatively acking subscriber, retried in its slot until it is handled
    /// or dead-lettered (then it is returned, to be acked with the floor), or the subscriber
    /// stops (then it is not acked).
    async fn handle_in_slot<H: Handler>(
        &self,
        handler: Arc<H>,
        message: jetstream::Message,
        sequence: u64,
        mut stop: watch::Receiver<bool>,
    ) -> Option<(u64, jetstream::Message)> {
        let stop = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        let mut stop = std::pin::pin!(stop.fuse());
        match self.handle_in_order(&*handler, &message, &mut stop).await {
            Handled::Interrupted => None,
            Handled::Done | Handled::DeadLettered | Handled::Skipped => Some((sequence, message)),
        }
    }

    /// Acks every handled event below the oldest one in hand.
    async fn ack_floor(&self, floor: &mut AckFloor<jetstream::Message>) {
        if let Some((message, mut covered)) = floor.ackable() {
            self.ack_through(Some(message), &mut covered).await;
        }
    }

    /// One event of a subscriber acking each event alone: acked, nak'ed for redelivery, or
    /// dead-lettered.
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
