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
use crate::attempt::{Attempt, Meta, Opened};
use crate::in_order::{ACK_EVERY, Handled};
use crate::quiet_ack::QuietAck;
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
        let mut quiet_ack = QuietAck::new();
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
            tokio::select! {
                biased;
                () = &mut *shutdown, if !stopping => {
                    tracing::info!(subscriber = %self.config.durable, in_flight = in_flight.len(), "stopping: finishing the events in hand");
                    messages = None;
                    let _ = stop_slots.send(true);
                }
                Some(finished) = in_flight.next(), if !in_flight.is_empty() => {
                    self.settle(finished, &mut floor, &mut quiet_ack).await;
                }
                () = quiet_ack.due(), if floor.unacked() > 0 && quiet_ack.is_armed() => {
                    self.ack_floor(&mut floor).await;
                }
                // Made only when it is polled: a branch's future is made on every turn.
                () = async { if let Some(resume_at) = paused_until { tokio::time::sleep_until(resume_at).await } }, if paused_until.is_some() && in_flight.is_empty() => {
                    paused_until = None;
                    last_delivery = None;
                }
                next = next_message(&mut messages), if room && !stopping => match next {
                    Some(Ok(message)) if cumulative => {
                        let Some(meta) = Meta::of(&message) else {
                            continue;
                        };
                        if last_delivery.is_some_and(|last| meta.delivery > last + 1) {
                            // As in order (see there): ack nothing after the lost delivery,
                            // and let JetStream deliver again what was not acked.
                            tracing::warn!(subscriber = %self.config.durable, expected = last_delivery.unwrap_or(0) + 1, got = meta.delivery,
                                "deliveries were skipped (a NATS failover?): pulling again after ack_wait, when JetStream redelivers what was not acked");
                            messages = None;
                            paused_until = Some(Instant::now() + self.config.ack_wait);
                            continue;
                        }
                        last_delivery = Some(meta.delivery);
                        if !floor.take(meta.stream_sequence) {
                            tracing::debug!(stream_sequence = meta.stream_sequence, "delivered again while in hand; this copy is dropped");
                            continue;
                        }
                        let mut slot = Box::pin(self.handle_in_slot(Arc::clone(&handler), message, meta, slot_stop.clone()));
                        // Most handlers finish without waiting: their event is settled at
                        // once, without a turn through the slots.
                        match (&mut slot).now_or_never() {
                            Some(finished) => self.settle(finished, &mut floor, &mut quiet_ack).await,
                            None => in_flight.push(slot.left_future()),
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
        meta: Meta,
        mut stop: watch::Receiver<bool>,
    ) -> Option<(u64, jetstream::Message)> {
        let stop = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        let mut stop = std::pin::pin!(stop.fuse());
        match self
            .handle_in_order(&*handler, &message, meta, &mut stop)
            .await
        {
            Handled::Interrupted => None,
            Handled::Done | Handled::DeadLettered => Some((meta.stream_sequence, message)),
        }
    }

    /// A slot's event is done with: handled or dead-lettered (`finished` is its sequence and
    /// message, acked with the floor), or interrupted by the stop (`None`, not acked).
    async fn settle(
        &self,
        finished: Option<(u64, jetstream::Message)>,
        floor: &mut AckFloor<jetstream::Message>,
        quiet_ack: &mut QuietAck,
    ) {
        if let Some((sequence, message)) = finished {
            floor.handled(sequence, message);
            quiet_ack.arm();
        }
        if floor.unacked() as u64 >= ACK_EVERY {
            self.ack_floor(floor).await;
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
        let Some(meta) = Meta::of(&message) else {
            return;
        };
        let (meta, names, reason) = match self.open_message(&message, meta) {
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
