//! What the machine's tests share: rules, events, a clock's worth of constants, and
//! [`run`], which checks of every transition that its effects are the whole change.

use std::time::Duration;

use c2d_proto::events::Payload;
use c2d_proto::events::v1::{DialogEvent, Event, Message, OutboxStatus, QrCode};

use super::{Clients, Effect, Machine, Notification, Record};
use crate::alert::{AlertRecord, Silence, timestamp};
use crate::rules::{Condition, Hours, Labels, Rule, Rules};

pub const T0: i64 = 1_700_000_000_000;
pub const SECOND: i64 = 1_000;
pub const MINUTE: i64 = 60 * SECOND;
pub const HOUR: i64 = 60 * MINUTE;
pub const HOUR_DURATION: Duration = Duration::from_secs(3600);

/// A rule to the receiver `ops`, for every tenant, with nothing optional.
pub fn rule(name: &str, condition: Condition) -> Rule {
    Rule {
        name: name.into(),
        condition,
        severity: "warning".into(),
        receiver: "ops".into(),
        routes: Vec::new(),
        tenants: Vec::new(),
        group_wait: None,
        repeat_interval: None,
        hours: Hours::Always,
    }
}

pub fn rules(rules: Vec<Rule>) -> Rules {
    Rules {
        rules,
        ..Rules::default()
    }
}

/// WhatsApp disconnected; resolves an hour after the last QR code.
pub fn qr_condition() -> Condition {
    qr_condition_resolving_after(HOUR_DURATION)
}

pub fn qr_condition_resolving_after(resolve_after: Duration) -> Condition {
    Condition::Event {
        hook_type: "new_qr_code".into(),
        resolve_after,
    }
}

/// Messages not delivered; resolves an hour after the last failure.
pub fn failure_condition() -> Condition {
    Condition::Event {
        hook_type: "outbox_status".into(),
        resolve_after: HOUR_DURATION,
    }
}

/// A client waits ten minutes for an answer.
pub fn wait_condition() -> Condition {
    Condition::Wait {
        after: Duration::from_secs(600),
    }
}

fn event(tenant: &str, id: &str, hook_type: &str, payload: Option<Payload>) -> Event {
    Event {
        event_id: id.into(),
        tenant: tenant.into(),
        hook_type: hook_type.into(),
        payload,
        ..Event::default()
    }
}

/// An event of `hook_type` with no payload the rules read.
pub fn bare_event(tenant: &str, id: &str, hook_type: &str) -> Event {
    event(tenant, id, hook_type, None)
}

pub fn qr(tenant: &str, id: &str, phone: &str) -> Event {
    let payload = Payload::NewQrCode(QrCode {
        phone: Some(phone.into()),
        ..QrCode::default()
    });
    event(tenant, id, "new_qr_code", Some(payload))
}

/// A message on `channel` that failed to reach `client_id`.
pub fn failure(tenant: &str, id: &str, channel: i64, client_id: Option<i64>) -> Event {
    let payload = Payload::OutboxStatus(OutboxStatus {
        channel_id: Some(channel),
        client_id,
        gateway_status: Some("failed".into()),
        error: Some("timeout error".into()),
        ..OutboxStatus::default()
    });
    event(tenant, id, "outbox_status", Some(payload))
}

pub fn delivered(tenant: &str, id: &str, channel: i64) -> Event {
    let payload = Payload::OutboxStatus(OutboxStatus {
        channel_id: Some(channel),
        gateway_status: Some("delivered".into()),
        ..OutboxStatus::default()
    });
    event(tenant, id, "outbox_status", Some(payload))
}

fn message(request_id: i64, client_id: i64) -> Message {
    Message {
        request_id: Some(request_id),
        client_id: Some(client_id),
        ..Message::default()
    }
}

/// A client's message in `request_id`, received by the gateway at `received_at`.
pub fn inbox(tenant: &str, id: &str, request_id: i64, client_id: i64, received_at: i64) -> Event {
    let payload = Payload::Inbox(message(request_id, client_id));
    Event {
        received_at: Some(timestamp(received_at)),
        ..event(tenant, id, "inbox", Some(payload))
    }
}

/// An operator's answer in `request_id`.
pub fn outbox(tenant: &str, id: &str, request_id: i64, client_id: i64, received_at: i64) -> Event {
    let payload = Payload::Outbox(message(request_id, client_id));
    Event {
        received_at: Some(timestamp(received_at)),
        ..event(tenant, id, "outbox", Some(payload))
    }
}

pub fn close_request(tenant: &str, id: &str, request_id: i64) -> Event {
    let payload = Payload::CloseRequest(DialogEvent {
        request_id: Some(request_id),
        ..DialogEvent::default()
    });
    event(tenant, id, "close_request", Some(payload))
}

/// Runs one transition, and checks that its effects are the whole change: applied to a copy
/// of the machine as it was, they give the machine as it is.
pub fn run(
    machine: &mut Machine,
    transition: impl FnOnce(&mut Machine) -> Vec<Effect>,
) -> Vec<Effect> {
    let before = machine.clone();
    let effects = transition(machine);
    assert_replays(before, machine, &effects);
    effects
}

/// `event` heard at `now` (through [`run`]), with no client to look up.
pub fn hear(machine: &mut Machine, rules: &Rules, event: &Event, now: i64) -> Vec<Effect> {
    run(machine, |m| m.on_event(rules, event, &Clients::new(), now))
}

/// A tick at `now` (through [`run`]), with no client to look up.
pub fn tick(machine: &mut Machine, rules: &Rules, now: i64) -> Vec<Effect> {
    run(machine, |m| m.tick(rules, &Clients::new(), now))
}

/// [`run`] for transitions that also answer something (the answer is handed back).
pub fn run_with<T>(
    machine: &mut Machine,
    transition: impl FnOnce(&mut Machine) -> (T, Vec<Effect>),
) -> T {
    let before = machine.clone();
    let (answer, effects) = transition(machine);
    assert_replays(before, machine, &effects);
    answer
}

fn assert_replays(mut before: Machine, after: &Machine, effects: &[Effect]) {
    for effect in effects.iter().cloned() {
        before.apply(effect);
    }
    assert_eq!(
        before, *after,
        "the effects are the whole change: {effects:?}"
    );
}

/// A silence of everything about `tenant` from `from` to `until`.
pub fn silence_everything(machine: &mut Machine, tenant: &str, from: i64, until: i64) -> Silence {
    run_with(machine, |m| {
        m.create_silence(
            tenant.into(),
            String::new(),
            Labels::new(),
            Duration::from_millis((until - from) as u64),
            "maintenance".into(),
            from,
        )
    })
}

/// Every batch due at `now` is delivered.
pub fn deliver_everything(machine: &mut Machine, now: i64) {
    for batch in machine.due_batches(now) {
        run(machine, |m| m.batch_done(&batch));
    }
}

/// The alerts the effects keep, in order.
pub fn put_alerts(effects: &[Effect]) -> Vec<AlertRecord> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Put(Record::Alert(alert)) => Some(alert.clone()),
            _ => None,
        })
        .collect()
}

/// The notifications the effects queue (or put back for a retry), with their keys, in order.
pub fn notifications(effects: &[Effect]) -> Vec<(String, Notification)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Put(Record::Notification { key, notification }) => {
                Some((key.clone(), notification.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The alert states the effects publish, in order.
pub fn published(effects: &[Effect]) -> Vec<AlertRecord> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Publish(alert) => Some(alert.clone()),
            _ => None,
        })
        .collect()
}

/// What kind of effect, in a word or two, for tests of their order.
pub fn kind(effect: &Effect) -> &'static str {
    match effect {
        Effect::Put(Record::Alert(_)) => "put alert",
        Effect::Put(Record::Timer(_)) => "put timer",
        Effect::Put(Record::Seen { .. }) => "put seen",
        Effect::Put(Record::Notification { .. }) => "put notify",
        Effect::Put(Record::Silence(_)) => "put silence",
        Effect::Delete(_) => "delete",
        Effect::Heard { .. } => "heard",
        Effect::Evaluated { .. } => "evaluated",
        Effect::Publish(_) => "publish",
    }
}
