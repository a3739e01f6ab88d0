//! The analytics projection: every event of the log folded into per-tenant aggregates.
//!
//! It follows the idempotency rule of the subscriber SDK: the last applied stream sequence is
//! part of the state (and of every snapshot), and an event at or below it is skipped, so a
//! redelivered event is never counted twice.

use std::collections::BTreeSet;
use std::time::SystemTime;

use rustc_hash::FxHashMap;

use c2d_proto::events::{Event, HookType, Payload};
use prost_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::aggregates::{Dims, DimsId, Granularity, Measure, Names, TenantAggregates};
use crate::requests::{RequestClock, TenantCalendar};
use c2d_calendar::Calendars;

/// Everything analytics knows.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Projection {
    /// The stream sequence of the last applied event.
    pub last_sequence: u64,
    /// When the rebuild this projection descends from began (its id, in Unix seconds), or 0 when
    /// it does not descend from one. It travels with every snapshot (in its header), so that of
    /// two snapshots of one partition the one from the later rebuild wins, and a snapshot taken
    /// before a rebuild is never taken up again by a replica that rebuilt (docs/scaling.md).
    #[serde(skip)]
    pub origin: u64,
    pub tenants: FxHashMap<String, Tenant>,
    /// Minutes whose totals changed since [`Projection::take_changed_minutes`] was last called.
    #[serde(skip)]
    changed_minutes: BTreeSet<(String, i64)>,
    /// The wall clock, refreshed every few hundred events: live enough for minute updates.
    #[serde(skip)]
    now: i64,
    /// The tenants' business-hours calendars, as the C2D_CALENDARS bucket holds them now;
    /// none: every tenant is open around the clock.
    #[serde(skip)]
    calendars: Option<Calendars>,
}

/// One tenant's aggregates and the state needed to compute them.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Tenant {
    pub aggregates: TenantAggregates,
    /// Clocks of requests, by request id.
    requests: FxHashMap<i64, RequestClock>,
    /// Outgoing messages by id: a delivery failure names only the message, and is counted
    /// under the operator and transport that sent it.
    sent: FxHashMap<i64, (DimsId, i64)>,
    /// The latest event time seen, the clock that state is pruned by.
    newest: i64,
}

impl Projection {
    /// Applies the event at `sequence`; false when it was applied before.
    pub fn apply(&mut self, sequence: u64, event: &Event) -> bool {
        if sequence <= self.last_sequence {
            return false;
        }
        self.last_sequence = sequence;
        let Some(event_time) = event.event_time.or(event.received_at) else {
            return true;
        };
        let at = seconds(&event_time);
        let tenant = match self.tenants.get_mut(&event.tenant) {
            Some(tenant) => tenant,
            None => self.tenants.entry(event.tenant.clone()).or_default(),
        };
        tenant.apply(at, event, self.calendars.as_ref());
        // Live updates are about the present: a replay of old events announces nothing.
        let minute = Granularity::Minute.floor(at.floor() as i64);
        if sequence.is_multiple_of(256) || self.now == 0 {
            self.now = now_seconds();
        }
        if minute >= self.now - LIVE_WINDOW_SECONDS {
            self.changed_minutes.insert((event.tenant.clone(), minute));
        }
        true
    }

    /// Business time is counted by `calendars` from now on. A calendar's change applies to
    /// the requests settled after it; a rebuild counts every request by the calendars of the
    /// day of the rebuild.
    pub fn use_calendars(&mut self, calendars: Calendars) {
        self.calendars = Some(calendars);
    }

    /// The minutes whose totals changed since the last call, for live updates.
    pub fn take_changed_minutes(&mut self) -> BTreeSet<(String, i64)> {
        std::mem::take(&mut self.changed_minutes)
    }

    /// Forgets what late events can no longer need: sent messages older than
    /// [`SENT_RETENTION`] (delivery failures come within minutes) and requests closed, or
    /// silent, for longer than [`REQUEST_RETENTION`]. The aggregates themselves are kept.
    pub fn prune(&mut self) {
        for tenant in self.tenants.values_mut() {
            let newest = tenant.newest;
            tenant
                .sent
                .retain(|_, (_, at)| *at >= newest - SENT_RETENTION);
            tenant.requests.retain(|_, clock| {
                let idle = newest as f64 - clock.last_activity();
                idle < (if clock.is_closed() {
                    REQUEST_RETENTION
                } else {
                    OPEN_REQUEST_RETENTION
                }) as f64
            });
        }
    }

    /// Rebuilds lookup indexes after loading a snapshot.
    pub fn reindex(&mut self) {
        for tenant in self.tenants.values_mut() {
            tenant.aggregates.names.reindex();
            tenant.aggregates.combinations.reindex();
        }
    }
}

impl Tenant {
    /// `calendars` is looked up only for the events whose times business hours count (a
    /// request's messages and its closing), not for every event.
    fn apply(&mut self, at: f64, event: &Event, calendars: Option<&Calendars>) {
        let calendar = || -> TenantCalendar {
            calendars.and_then(|calendars| calendars.configured(&event.tenant))
        };
        let second = at.floor() as i64;
        self.newest = self.newest.max(second);
        let hook_type = HookType::parse(&event.hook_type).map_or("unknown", HookType::as_str);
        let events_dims = Dims {
            hook_type: self.aggregates.names.intern(Some(hook_type)),
            ..Dims::default()
        };
        self.aggregates.count(Measure::Events, second, events_dims);

        let names = &mut self.aggregates.names;
        match &event.payload {
            Some(Payload::Inbox(message)) => {
                let dims = served(
                    names,
                    message.transport.as_deref(),
                    message.channel_id,
                    message.operator_id,
                );
                self.aggregates.count(Measure::Inbound, second, dims);
                if let Some(request) = message.request_id {
                    let clock = self.requests.entry(request).or_default();
                    clock.client_message(
                        at,
                        Dims {
                            operator: None,
                            ..dims
                        },
                        &mut self.aggregates,
                        &calendar(),
                    );
                }
            }
            Some(Payload::Outbox(message)) => {
                let dims = served(
                    names,
                    message.transport.as_deref(),
                    message.channel_id,
                    message.operator_id,
                );
                self.aggregates.count(Measure::Outbound, second, dims);
                if let Some(id) = message.message_id {
                    let dims = self.aggregates.combinations.intern(dims);
                    self.sent.insert(id, (dims, second));
                }
                if let (Some(request), Some(_)) = (message.request_id, message.operator_id) {
                    let clock = self.requests.entry(request).or_default();
                    clock.operator_message(at, dims, &mut self.aggregates, &calendar());
                }
            }
            Some(Payload::OutboxStatus(status)) => {
                let failure = match (status.gateway_status.as_deref(), status.error.as_deref()) {
                    (Some(status), Some(error)) => format!("{status}: {error}"),
                    (Some(only), None) | (None, Some(only)) => only.to_owned(),
                    (None, None) => "unknown".to_owned(),
                };
                let sent = status
                    .id
                    .and_then(|id| self.sent.get(&id))
                    .map(|(dims, _)| self.aggregates.combinations.get(*dims))
                    .unwrap_or_default();
                let dims = Dims {
                    failure: names.intern(Some(&failure)),
                    channel: status.channel_id.or(sent.channel),
                    ..sent
                };
                self.aggregates
                    .count(Measure::DeliveryFailures, second, dims);
            }
            Some(Payload::NewClient(client)) => {
                let channel = client.channels.first();
                let dims = Dims {
                    transport: names.intern(
                        channel
                            .and_then(|c| c.transports.first())
                            .map(String::as_str),
                    ),
                    channel: channel.and_then(|c| c.id),
                    ..Dims::default()
                };
                self.aggregates.count(Measure::NewClients, second, dims);
            }
            Some(Payload::AddTagToClient(tag) | Payload::AddTagToRequest(tag)) => {
                let dims = Dims {
                    tag: names.intern(tag.name.as_deref()),
                    ..Dims::default()
                };
                self.aggregates.count(Measure::TagsAdded, second, dims);
            }
            Some(Payload::DeleteTagFromClient(tag) | Payload::DeleteTagFromRequest(tag)) => {
                let dims = Dims {
                    tag: names.intern(tag.name.as_deref()),
                    ..Dims::default()
                };
                self.aggregates.count(Measure::TagsRemoved, second, dims);
            }
            Some(Payload::DialogTransferred(dialog)) => {
                let dims = served(
                    names,
                    dialog.transport.as_deref(),
                    dialog.channel_id,
                    dialog.current_operator_id.or(dialog.operator_id),
                );
                self.aggregates.count(Measure::Transfers, second, dims);
            }
            Some(Payload::CloseDialog(dialog)) => {
                let dims = served(
                    names,
                    dialog.transport.as_deref(),
                    dialog.channel_id,
                    dialog.operator_id,
                );
                self.aggregates.count(Measure::DialogsClosed, second, dims);
            }
            Some(Payload::CloseRequest(dialog)) => {
                let dims = served(
                    names,
                    dialog.transport.as_deref(),
                    dialog.channel_id,
                    dialog.operator_id,
                );
                self.aggregates.count(Measure::RequestsClosed, second, dims);
                if let Some(request) = dialog.request_id {
                    let clock = self.requests.entry(request).or_default();
                    clock.closed(at, dims, &mut self.aggregates, &calendar());
                }
            }
            _ => {}
        }
    }
}

/// The dimensions of who served a client where: messenger, channel and operator.
fn served(
    names: &mut Names,
    transport: Option<&str>,
    channel: Option<i64>,
    operator: Option<i64>,
) -> Dims {
    Dims {
        transport: names.intern(transport),
        channel,
        operator,
        ..Dims::default()
    }
}

/// How long an outgoing message is remembered for a late delivery failure: two days.
pub const SENT_RETENTION: i64 = 2 * 86_400;
/// How long a closed request's clock is kept for late events: seven days.
pub const REQUEST_RETENTION: i64 = 7 * 86_400;
/// How long a request that never closes is kept after its last event: thirty days.
pub const OPEN_REQUEST_RETENTION: i64 = 30 * 86_400;

/// How far back an event still counts as live, for minute updates.
const LIVE_WINDOW_SECONDS: i64 = 2 * 3_600;

/// The wall clock in Unix seconds.
pub(crate) fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A protobuf time as fractional unix seconds.
pub fn seconds(time: &Timestamp) -> f64 {
    time.seconds as f64 + f64::from(time.nanos) / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2d_proto::events::Message;

    fn inbox(seq_time: i64, request: i64) -> Event {
        Event {
            tenant: "acme".into(),
            hook_type: "inbox".into(),
            event_time: Some(Timestamp {
                seconds: seq_time,
                nanos: 0,
            }),
            payload: Some(Payload::Inbox(Message {
                request_id: Some(request),
                transport: Some("whatsapp".into()),
                ..Message::default()
            })),
            ..Event::default()
        }
    }

    #[test]
    fn a_redelivered_event_is_not_counted_twice() {
        let mut projection = Projection::default();
        assert!(projection.apply(1, &inbox(1_709_251_200, 1)));
        assert!(!projection.apply(1, &inbox(1_709_251_200, 1)));
        assert!(projection.apply(2, &inbox(1_709_251_260, 1)));
        let tenant = &projection.tenants["acme"];
        let minutes = tenant.aggregates.series(
            Measure::Inbound,
            Granularity::Hour,
            (1_709_251_200, 1_709_254_800),
            None,
            &[],
        );
        assert_eq!(minutes.values().map(|t| t.count).sum::<u64>(), 2);
        assert!(
            projection.take_changed_minutes().is_empty(),
            "old minutes are not live"
        );
        let now = now_seconds();
        projection.apply(3, &inbox(now, 2));
        projection.apply(4, &inbox(now, 2));
        assert_eq!(projection.take_changed_minutes().len(), 1);
        assert!(projection.take_changed_minutes().is_empty());
        projection.prune();
        let tenant = &projection.tenants["acme"];
        assert!(
            !tenant.requests.contains_key(&1),
            "request 1 fell silent 30+ days before the newest event"
        );
        assert!(tenant.requests.contains_key(&2));
    }
}
