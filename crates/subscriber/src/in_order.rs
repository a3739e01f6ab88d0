//! Strictly in stream order: a failed event is retried in place before the next one, a poison
//! event is dead-lettered before anything after it is acked, and acks are cumulative.
//!
//! A cumulative ack covers every event before it, so a delivery lost in transit (a NATS node
//! failing over while it was on its way) must not be covered by the ack of a later one. The
//! consumer numbers its deliveries: a jump in that number may be a lost delivery (or only a new
//! consumer leader numbering on). Then what was handled is acked, nothing after it is, and the
//! subscriber pulls again after `ack_wait`: by then JetStream redelivers what was not acked,
//! from the lost event on, before anything new.

use std::pin::Pin;
use std::sync::atomic::Ordering;

use async_nats::jetstream;
use c2d_proto::events::Event;
use futures_util::future::FusedFuture;
use prost::Message as _;

use crate::attempt::{Attempt, Meta, Opened};
use crate::quiet_ack::QuietAck;
use crate::subscriber::{Handler, MessageStream, SubscribeError, Subscriber, next_message};

/// In order, events are acked cumulatively: one ack for this many events, or fewer once the
/// first of them waited [`QUIET_ACK_DELAY`](crate::quiet_ack::QUIET_ACK_DELAY).
pub const ACK_EVERY: u64 = 64;

impl Subscriber {
    pub(crate) async fn run_in_order<H: Handler, S: FusedFuture<Output = ()>>(
        &self,
        handler: &H,
        shutdown: &mut Pin<&mut S>,
    ) -> Result<(), SubscribeError> {
        let mut messages: Option<MessageStream> = None;
        // The last handled event not acked yet, and how many are handled since the last ack.
        let mut unacked: Option<jetstream::Message> = None;
        let mut handled_since_ack = 0;
        let mut quiet_ack = QuietAck::new();
        // The consumer's number of the last delivery handled.
        let mut last_delivery: Option<u64> = None;
        loop {
            if messages.is_none() {
                messages = Some(self.pull().await?);
            }
            let next = tokio::select! {
                biased;
                () = &mut *shutdown => break,
                () = quiet_ack.due(), if unacked.is_some() && quiet_ack.is_armed() => {
                    self.ack_through(unacked.take(), &mut handled_since_ack).await;
                    continue;
                }
                next = next_message(&mut messages) => next,
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    self.pull_failed(error, &mut messages).await;
                    continue;
                }
                None => {
                    messages = None;
                    continue;
                }
            };
            let Some(meta) = Meta::of(&message) else {
                continue;
            };
            if self.acks() {
                let delivery = meta.delivery;
                if last_delivery.is_some_and(|last| delivery > last + 1) {
                    tracing::warn!(subscriber = %self.config.durable, expected = last_delivery.unwrap_or(0) + 1, got = delivery,
                        "deliveries were skipped (a NATS failover?): pulling again after ack_wait, when JetStream redelivers what was not acked");
                    self.ack_through(unacked.take(), &mut handled_since_ack)
                        .await;
                    messages = None;
                    last_delivery = None;
                    tokio::select! {
                        () = &mut *shutdown => break,
                        () = tokio::time::sleep(self.config.ack_wait) => {}
                    }
                    continue;
                }
                last_delivery = Some(delivery);
            }
            match self
                .handle_in_order(handler, &message, meta, shutdown)
                .await
            {
                Handled::Done => handled_since_ack += 1,
                Handled::DeadLettered => {}
                Handled::Interrupted => break,
            }
            if !self.acks() {
                self.stats
                    .acked
                    .fetch_add(std::mem::take(&mut handled_since_ack), Ordering::Relaxed);
                continue;
            }
            // Acked with the next cumulative ack, dead-lettered or not.
            unacked = Some(message);
            quiet_ack.arm();
            if handled_since_ack >= ACK_EVERY {
                self.ack_through(unacked.take(), &mut handled_since_ack)
                    .await;
            }
        }
        self.ack_through(unacked.take(), &mut handled_since_ack)
            .await;
        Ok(())
    }

    /// One event, retried in place until it is handled, dead-lettered, or the subscriber stops.
    pub(crate) async fn handle_in_order<H: Handler, S: FusedFuture<Output = ()>>(
        &self,
        handler: &H,
        message: &jetstream::Message,
        meta: Meta,
        shutdown: &mut Pin<&mut S>,
    ) -> Handled {
        let (meta, mut event) = match self.open_message(message, meta) {
            Opened::Event(meta, event) => (meta, event),
            Opened::Poison {
                meta,
                names,
                reason,
            } => {
                let delivered = meta.delivered;
                return self
                    .dead_letter_in_order(message, &meta, delivered, names, reason, shutdown)
                    .await;
            }
        };
        let mut delivered = meta.delivered;
        loop {
            let reason = match self
                .attempt(handler, message, &meta, event, delivered)
                .await
            {
                Attempt::Handled => {
                    self.handled_through
                        .store(meta.stream_sequence, Ordering::Relaxed);
                    return Handled::Done;
                }
                Attempt::Failed {
                    transient: true,
                    reason,
                } if delivered < self.config.max_deliveries => {
                    let delay = self.config.retry_delay(delivered);
                    tracing::warn!(stream_sequence = meta.stream_sequence, %reason, ?delay, "handler failed; retrying in place");
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    tokio::select! {
                        () = &mut *shutdown => return Handled::Interrupted,
                        () = tokio::time::sleep(delay) => {}
                    }
                    delivered += 1;
                    // The same bytes decoded the first time.
                    event = Event::decode(message.payload.clone()).unwrap_or_default();
                    continue;
                }
                Attempt::Failed { reason, .. } => reason,
            };
            // The event went to the handler; its names come from the same bytes again.
            let again = Event::decode(message.payload.clone()).unwrap_or_default();
            let names = (again.event_id, again.tenant);
            return self
                .dead_letter_in_order(message, &meta, delivered, Some(names), reason, shutdown)
                .await;
        }
    }

    /// In order, nothing after a poison event is acked before its dead letter is stored: the
    /// store is retried until it succeeds or the subscriber stops.
    pub(crate) async fn dead_letter_in_order<S: FusedFuture<Output = ()>>(
        &self,
        message: &jetstream::Message,
        meta: &Meta,
        delivered: u64,
        names: Option<(String, String)>,
        reason: String,
        shutdown: &mut Pin<&mut S>,
    ) -> Handled {
        loop {
            if self
                .store_dead_letter(message, meta, delivered, names.as_ref(), reason.clone())
                .await
            {
                self.handled_through
                    .store(meta.stream_sequence, Ordering::Relaxed);
                return Handled::DeadLettered;
            }
            tokio::select! {
                () = &mut *shutdown => return Handled::Interrupted,
                () = tokio::time::sleep(self.config.retry_delay(delivered)) => {}
            }
        }
    }

    /// Acks `last` and, the consumer acking cumulatively, every event before it.
    pub(crate) async fn ack_through(&self, last: Option<jetstream::Message>, handled: &mut u64) {
        let Some(last) = last else { return };
        match last.ack().await {
            Ok(()) => {
                self.stats.acked.fetch_add(*handled, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(%error, "ack failed; these events will be delivered again")
            }
        }
        *handled = 0;
    }
}

/// The result of handling one event in order.
#[derive(PartialEq, Eq)]
pub(crate) enum Handled {
    Done,
    /// Stored on the dead-letter subject; acked with the events after it.
    DeadLettered,
    /// The subscriber was stopped while the event waited for a retry: it is not acked.
    Interrupted,
}
