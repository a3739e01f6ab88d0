//! What an event means to the rules, read once and shared by the engine and by rule trials:
//! the condition an event rule's event reports, and whether a message starts or ends a wait.

use c2d_proto::events::Payload;
use c2d_proto::events::v1::Event;

use crate::rules::Labels;

/// A message that starts a client's wait for an answer, or an answer (or closing) that ends it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WaitSignal {
    pub request_id: i64,
    pub client_id: Option<i64>,
    /// An operator answered, or the request or dialog was closed.
    pub answered: bool,
}

/// Whether `event` starts or ends a wait; None when it says nothing about one (or has no
/// request to wait in).
pub fn wait_signal(event: &Event) -> Option<WaitSignal> {
    let (request_id, client_id, answered) = match &event.payload {
        Some(Payload::Inbox(m)) => (
            m.request_id,
            m.client.as_ref().and_then(|c| c.id).or(m.client_id),
            false,
        ),
        Some(Payload::Outbox(m)) => (
            m.request_id,
            m.client.as_ref().and_then(|c| c.id).or(m.client_id),
            true,
        ),
        Some(Payload::CloseRequest(d) | Payload::CloseDialog(d)) => {
            (d.request_id, d.client_id, true)
        }
        _ => return None,
    };
    Some(WaitSignal {
        request_id: request_id?,
        client_id,
        answered,
    })
}

/// The messenger of a message or of a request's closing (`whatsapp`, `telegram`, ...): whose
/// hours a business-time wait counts by, when the tenant's calendar has hours per channel.
pub fn transport(event: &Event) -> Option<&str> {
    match &event.payload {
        Some(Payload::Inbox(m) | Payload::Outbox(m)) => m.transport.as_deref(),
        Some(Payload::CloseRequest(d) | Payload::CloseDialog(d)) => d.transport.as_deref(),
        _ => None,
    }
}

/// What a wait alert says: the client by name when the CRM knows it, else by id.
pub fn wait_summary(
    name: Option<String>,
    client_id: Option<i64>,
    after: std::time::Duration,
    request_id: i64,
) -> String {
    let who = name
        .or(client_id.map(|id| format!("client {id}")))
        .unwrap_or_else(|| "a client".into());
    format!(
        "{who} has waited {} for an operator's answer (request {request_id})",
        crate::rules::human(after)
    )
}

/// What a silence alert says.
pub fn silence_summary(tenant: &str, after: std::time::Duration) -> String {
    format!(
        "No event from tenant {tenant} for {}: is its Chat2Desk webhook disabled?",
        crate::rules::human(after)
    )
}

/// When the gateway received `event`, in Unix milliseconds (`or` when it does not say).
pub fn received_ms(event: &Event, or: i64) -> i64 {
    event
        .received_at
        .as_ref()
        .map_or(or, |t| t.seconds * 1_000 + i64::from(t.nanos) / 1_000_000)
}

/// A wait alert is about a request (the client is in the alert's `client`).
pub fn request_labels(request_id: i64) -> Labels {
    Labels::from([("request_id".to_owned(), request_id.to_string())])
}

/// What an event rule's event says: the labels of its condition, a summary, and the client
/// it is about; None when the event is not an alert (a delivered message's status).
pub fn event_condition(event: &Event) -> Option<(Labels, String, Option<i64>)> {
    match &event.payload {
        Some(Payload::NewQrCode(qr)) => {
            let phone = qr.phone.clone().unwrap_or_else(|| "(unknown)".into());
            Some((
                Labels::from([("phone".to_owned(), phone.clone())]),
                format!("WhatsApp connection of phone {phone} lost, scan the new QR code"),
                None,
            ))
        }
        Some(Payload::OutboxStatus(status)) => {
            let gateway_status = status.gateway_status.as_deref().unwrap_or_default();
            let error = status.error.as_deref().unwrap_or_default();
            let delivered =
                matches!(gateway_status, "" | "sent" | "delivered" | "read") && error.is_empty();
            if delivered {
                return None;
            }
            let channel = status
                .channel_id
                .map_or_else(|| "(unknown)".into(), |c| c.to_string());
            Some((
                Labels::from([("channel_id".to_owned(), channel.clone())]),
                format!(
                    "Messages on channel {channel} are not delivered: {} {}",
                    if gateway_status.is_empty() {
                        "failed"
                    } else {
                        gateway_status
                    },
                    error
                )
                .trim_end()
                .to_owned(),
                status.client_id,
            ))
        }
        // c2d-keeper's report: the tenant's webhook was disabled (or missing, or changed) and
        // is registered again; the messages it lost are being backfilled.
        Some(Payload::Unknown(unknown)) if event.hook_type == "webhook_repaired" => {
            let field = |name: &str| {
                unknown
                    .fields
                    .as_ref()
                    .and_then(|f| f.fields.get(name))
                    .map(|v| match &v.kind {
                        Some(prost_types::value::Kind::StringValue(s)) => s.clone(),
                        Some(prost_types::value::Kind::NumberValue(n)) => n.to_string(),
                        _ => String::new(),
                    })
                    .unwrap_or_default()
            };
            let problem = field("problem");
            Some((
                Labels::from([("webhook_id".to_owned(), field("webhook_id"))]),
                format!(
                    "Chat2Desk webhook of tenant {} was {problem}: c2d-keeper registered it again and backfills what it lost",
                    event.tenant
                ),
                None,
            ))
        }
        _ => Some((
            Labels::from([("hook_type".to_owned(), event.hook_type.clone())]),
            format!("{} event from tenant {}", event.hook_type, event.tenant),
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2d_proto::events::Unknown;
    use prost_types::{Struct, Value, value::Kind};

    #[test]
    fn the_keepers_report_names_the_webhook_and_what_was_wrong() {
        let fields = [
            ("problem", Kind::StringValue("disabled".into())),
            ("webhook_id", Kind::NumberValue(3.0)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value { kind: Some(v) }))
        .collect();
        let event = Event {
            tenant: "acme".into(),
            hook_type: "webhook_repaired".into(),
            payload: Some(Payload::Unknown(Unknown {
                fields: Some(Struct { fields }),
            })),
            ..Event::default()
        };
        let (labels, summary, client) = event_condition(&event).unwrap();
        assert_eq!(labels.get("webhook_id").map(String::as_str), Some("3"));
        assert!(summary.contains("tenant acme was disabled"), "{summary}");
        assert_eq!(client, None);
    }
}
