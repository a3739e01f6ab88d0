//! `c2dctl events tail` follows the event log live; `c2dctl events replay` reads a stretch of
//! it back (and can POST it again to a gateway, to feed a second installation). Both filter by
//! tenant and hook type through the subject (`chat2desk.events.{tenant}.{hook_type}`), so the
//! server sends only what is asked for.

use std::time::{Duration, SystemTime};

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use c2d_proto::events::v1::Event;
use c2d_proto::events::{HookType, Payload, STREAM, UNKNOWN_HOOK_TYPE};
use futures_util::StreamExt as _;
use prost::Message as _;
use serde_json::{Value as Json, json};

use c2dctl::output::{Rows, time};

/// The columns of an event row.
pub const COLUMNS: [&str; 6] = [
    "seq",
    "event_time",
    "tenant",
    "hook_type",
    "event_id",
    "what",
];

/// The subject that holds the events of `tenant` and `hook_type` (None: any). The hook type is
/// read as the gateway reads it (the alias `delete_tag_to_client`, any case), so that it names
/// the subject the gateway stores it on; `unknown` names the types this version does not know.
/// (The tenant is checked as the command line reads it.)
pub fn subject(tenant: Option<&str>, hook_type: Option<&str>) -> Result<String, String> {
    let hook_type = match hook_type {
        None => "*",
        Some(name) if name.trim().eq_ignore_ascii_case(UNKNOWN_HOOK_TYPE) => UNKNOWN_HOOK_TYPE,
        Some(name) => HookType::parse(name).map(HookType::as_str).ok_or_else(|| {
            format!(
                "--type {name:?} is not a hook type; known: {}, and {UNKNOWN_HOOK_TYPE} for types this version does not know",
                HookType::ALL.map(HookType::as_str).join(", ")
            )
        })?,
    };
    Ok(format!(
        "chat2desk.events.{}.{hook_type}",
        tenant.unwrap_or("*")
    ))
}

/// One event as a row: where it is, when, whose, what.
pub fn row(sequence: u64, event: &Event) -> Vec<Json> {
    vec![
        json!(sequence),
        time(event.event_time.as_ref()),
        json!(event.tenant),
        json!(event.hook_type),
        json!(event.event_id),
        json!(describe(event)),
    ]
}

/// One event as JSON for scripts: the row's fields and the body as Chat2Desk sent it.
pub fn json_line(sequence: u64, event: &Event) -> Json {
    let mut rows = Rows::new(&COLUMNS);
    rows.push(row(sequence, event));
    let mut object = rows.to_json()[0].clone();
    object["body"] = serde_json::from_slice(&event.raw).unwrap_or(Json::Null);
    object
}

/// What an event says, in a few words.
pub fn describe(event: &Event) -> String {
    let text = |t: &Option<String>| {
        let t = t.as_deref().unwrap_or_default();
        if t.chars().count() > 60 {
            format!("{}…", t.chars().take(60).collect::<String>())
        } else {
            t.to_owned()
        }
    };
    match &event.payload {
        Some(Payload::Inbox(m)) => format!(
            "client {} in request {}: {}",
            opt(m.client_id),
            opt(m.request_id),
            text(&m.text)
        ),
        Some(Payload::Outbox(m)) => format!(
            "operator {} to client {}: {}",
            opt(m.operator_id),
            opt(m.client_id),
            text(&m.text)
        ),
        Some(Payload::OutboxStatus(s)) => format!(
            "message {} on channel {}: {} {}",
            opt(s.id),
            opt(s.channel_id),
            s.gateway_status.as_deref().unwrap_or_default(),
            s.error.as_deref().unwrap_or_default()
        ),
        Some(Payload::NewClient(c) | Payload::ClientUpdated(c)) => format!(
            "client {} {}",
            opt(c.id),
            c.name.as_deref().unwrap_or_default()
        ),
        Some(
            Payload::AddTagToClient(t)
            | Payload::AddTagToRequest(t)
            | Payload::DeleteTagFromClient(t)
            | Payload::DeleteTagFromRequest(t),
        ) => format!(
            "tag {} on client {}",
            t.name.as_deref().unwrap_or_default(),
            opt(t.client_id)
        ),
        Some(
            Payload::CloseDialog(d) | Payload::CloseRequest(d) | Payload::DialogTransferred(d),
        ) => {
            format!(
                "request {} of client {}, operator {}",
                opt(d.request_id),
                opt(d.client_id),
                opt(d.operator_id)
            )
        }
        Some(Payload::NewQrCode(q)) => format!(
            "WhatsApp {} needs a new QR code",
            q.phone.as_deref().unwrap_or_default()
        ),
        Some(Payload::AiHintsRequested(h)) => {
            format!("hints asked for message {}", opt(h.message_id))
        }
        Some(Payload::AiHintChosen(h)) => format!(
            "hint {} chosen for message {}",
            opt(h.hint_id),
            opt(h.message_id)
        ),
        Some(Payload::Unknown(_)) | None => String::new(),
    }
}

fn opt(value: Option<i64>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}

/// Follows the log from now (or from `since` ago), printing each event as it comes, until
/// `limit` events or Ctrl-C.
pub async fn tail(
    client: async_nats::Client,
    filter: String,
    since: Option<Duration>,
    limit: Option<u64>,
    as_json: bool,
) -> anyhow::Result<()> {
    let stream = async_nats::jetstream::new(client)
        .get_stream(STREAM)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "stream {STREAM} not found ({e}): is the gateway running against this NATS_URL?"
            )
        })?;
    let deliver_policy = match since {
        Some(ago) => DeliverPolicy::ByStartTime {
            start_time: time::OffsetDateTime::from(SystemTime::now() - ago),
        },
        None => DeliverPolicy::New,
    };
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy,
            filter_subject: filter,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    if !as_json {
        println!("{}", COLUMNS.map(str::to_uppercase).join("  "));
    }
    let mut seen = 0u64;
    loop {
        let message = tokio::select! {
            message = messages.next() => message,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(message) = message else { break };
        let message = message?;
        let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
        let Ok(event) = Event::decode(message.payload.clone()) else {
            eprintln!("seq {sequence}: not a chat2desk.events.v1.Event; skipped");
            continue;
        };
        print_event(sequence, &event, as_json);
        seen += 1;
        if limit.is_some_and(|limit| seen >= limit) {
            break;
        }
    }
    Ok(())
}

fn print_event(sequence: u64, event: &Event, as_json: bool) {
    if as_json {
        println!("{}", json_line(sequence, event));
    } else {
        let mut rows = Rows::new(&COLUMNS);
        rows.push(row(sequence, event));
        // One line, without the header the tail printed once.
        print!(
            "{}",
            rows.to_table().split_once('\n').map_or("", |(_, r)| r)
        );
    }
}

/// Reads the events from `since` ago up to now; with `post_to` (a URL with `{tenant}`), POSTs
/// each raw body again, as Chat2Desk would, and counts the answers.
pub async fn replay(
    client: async_nats::Client,
    filter: String,
    since: Duration,
    limit: usize,
    post_to: Option<String>,
    as_json: bool,
) -> anyhow::Result<()> {
    let start = SystemTime::now()
        .checked_sub(since)
        .ok_or_else(|| anyhow::anyhow!("--since reaches before 1970"))?;
    let history = c2d_subscriber::history::read(
        client,
        c2d_subscriber::StartAt::Time(start),
        Some(filter),
        limit,
    )
    .await?;
    match post_to {
        None => {
            if as_json {
                for stored in &history.events {
                    println!("{}", json_line(stored.stream_sequence, &stored.event));
                }
            } else {
                let mut rows = Rows::new(&COLUMNS);
                for stored in &history.events {
                    rows.push(row(stored.stream_sequence, &stored.event));
                }
                print!("{}", rows.to_table());
            }
        }
        Some(template) => {
            let http = reqwest::Client::new();
            let (mut accepted, mut refused) = (0u64, 0u64);
            for stored in &history.events {
                let url = template.replace("{tenant}", &stored.event.tenant);
                let answer = http
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body(stored.event.raw.clone())
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status().is_success() => accepted += 1,
                    Ok(r) => {
                        refused += 1;
                        eprintln!(
                            "seq {}: {url} answered {}",
                            stored.stream_sequence,
                            r.status()
                        );
                    }
                    Err(e) => {
                        refused += 1;
                        eprintln!("seq {}: {}", stored.stream_sequence, e.without_url());
                    }
                }
            }
            println!(
                "replayed {} events: {accepted} accepted, {refused} refused",
                history.events.len()
            );
        }
    }
    if history.truncated {
        eprintln!("stopped at --limit {limit}; more events follow");
    }
    if history.undecodable > 0 {
        eprintln!(
            "{} messages were not events and were skipped",
            history.undecodable
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_names_the_subject_the_gateway_stores_on() {
        assert_eq!(subject(None, None).unwrap(), "chat2desk.events.*.*");
        assert_eq!(
            subject(Some("acme"), Some("delete_tag_to_client")).unwrap(),
            "chat2desk.events.acme.delete_tag_from_client"
        );
        assert_eq!(
            subject(None, Some(" Inbox ")).unwrap(),
            "chat2desk.events.*.inbox"
        );
        assert_eq!(
            subject(None, Some("unknown")).unwrap(),
            "chat2desk.events.*.unknown"
        );
        let typo = subject(None, Some("inboxx")).unwrap_err();
        assert!(typo.contains("known: inbox, outbox"), "{typo}");
    }
}
