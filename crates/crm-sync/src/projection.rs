//! Events folded into the client directory, one transaction per event.
//!
//! Every write is an idempotent merge, so that the order events arrive in and how often they
//! arrive do not matter:
//! - a client's card (new_client, client_updated) replaces the profile only when it is newer
//!   by event time, ties broken by stream sequence: a late card loses to a newer one;
//! - messages move first contact down and last contact up (min and max), open requests and
//!   fill profile fields no card has given;
//! - a tag's presence is last-writer-wins by event time, its removal kept as a tombstone;
//! - a request is closed once any closing is seen, its operator is the newest assignment, its
//!   channel, transport and dialog those of its earliest event;
//! - channels and transports only accumulate.
//!
//! On top of that the stream sequence applied is kept in the same transaction, and events at
//! or below it are skipped: a redelivery changes nothing, not even a timestamp.
//!
//! The column rules of the upserts are named in [`merge`].

mod merge;

use std::collections::HashMap;
use std::sync::LazyLock;

use c2d_proto::events::Payload;
use c2d_proto::events::v1::{Client, DialogEvent, Event, Message, Tag};
use sqlx::Transaction;
use sqlx::any::Any;

use self::merge::Rule;
use crate::clock;
use crate::store::{Store, StoreError};

/// The name of this projection's row in `consumer_position`.
pub const CONSUMER: &str = "crm-sync";

/// A client whose directory entry an event touched.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    pub tenant: String,
    pub client_id: i64,
}

/// The outcome of applying one event.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// At or below the position: seen before, nothing done.
    AlreadyApplied,
    /// Applied (or of no interest to the directory), position moved.
    Applied(Option<ClientKey>),
}

/// One event's facts, with the event time and sequence that order them.
struct Fact<'a> {
    tenant: &'a str,
    at: i64,
    seq: i64,
}

/// The last stream sequence applied, 0 for an empty store.
pub async fn position(store: &Store) -> Result<u64, StoreError> {
    position_of(store, CONSUMER).await
}

/// The last sequence `consumer` applied: [`CONSUMER`] for the whole log, or one partition's
/// reader ([`partition_consumer`]).
pub async fn position_of(store: &Store, consumer: &str) -> Result<u64, StoreError> {
    let sequence: Option<i64> =
        sqlx::query_scalar("SELECT stream_sequence FROM consumer_position WHERE consumer = $1")
            .bind(consumer)
            .fetch_optional(store.pool())
            .await?;
    Ok(sequence.map_or(0, |sequence| sequence.max(0) as u64))
}

/// The position's name of the reader of one partition of `CHAT2DESK_PARTITIONED`, whose
/// sequences are that stream's: every replica keeps it in the one directory.
pub fn partition_consumer(partition: u32) -> String {
    format!("{CONSUMER}/partition-{partition}")
}

/// Every partition's position, by partition: what the replicas sharing this directory have
/// applied of `CHAT2DESK_PARTITIONED` (0 for a partition not read yet).
pub async fn partition_positions(store: &Store, partitions: u32) -> Result<Vec<u64>, StoreError> {
    let partition_of: HashMap<String, usize> = (0..partitions)
        .map(|partition| (partition_consumer(partition), partition as usize))
        .collect();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT consumer, stream_sequence FROM consumer_position WHERE consumer LIKE $1",
    )
    .bind(format!("{CONSUMER}/partition-%"))
    .fetch_all(store.pool())
    .await?;
    let mut positions = vec![0; partitions as usize];
    for (consumer, sequence) in rows {
        if let Some(&partition) = partition_of.get(&consumer) {
            positions[partition] = sequence.max(0) as u64;
        }
    }
    Ok(positions)
}

/// Applies `event`, stored at `sequence`, inside `transaction`, and moves the position.
pub async fn apply(
    transaction: &mut Transaction<'static, Any>,
    sequence: u64,
    event: &Event,
) -> Result<Applied, StoreError> {
    apply_as(transaction, CONSUMER, sequence, event).await
}

/// [`apply`] for `consumer`'s position.
pub async fn apply_as(
    transaction: &mut Transaction<'static, Any>,
    consumer: &str,
    sequence: u64,
    event: &Event,
) -> Result<Applied, StoreError> {
    let seq = sequence as i64;
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT stream_sequence FROM consumer_position WHERE consumer = $1")
            .bind(consumer)
            .fetch_optional(&mut **transaction)
            .await?;
    if applied.is_some_and(|applied| applied >= seq) {
        return Ok(Applied::AlreadyApplied);
    }
    sqlx::query(
        "INSERT INTO consumer_position (consumer, stream_sequence) VALUES ($1, $2)
         ON CONFLICT (consumer) DO UPDATE SET stream_sequence = excluded.stream_sequence",
    )
    .bind(consumer)
    .bind(seq)
    .execute(&mut **transaction)
    .await?;

    // Chat2Desk's own time of the event; the gateway's receipt time when it gave none.
    let at = event
        .event_time
        .as_ref()
        .or(event.received_at.as_ref())
        .map_or(0, clock::micros);
    let fact = Fact {
        tenant: &event.tenant,
        at,
        seq,
    };
    let client = match &event.payload {
        Some(Payload::Inbox(message)) => message_seen(transaction, &fact, message, false).await?,
        Some(Payload::Outbox(message)) => message_seen(transaction, &fact, message, true).await?,
        Some(Payload::NewClient(card) | Payload::ClientUpdated(card)) => {
            card_seen(transaction, &fact, card).await?
        }
        Some(Payload::AddTagToClient(tag)) => client_tag(transaction, &fact, tag, true).await?,
        Some(Payload::DeleteTagFromClient(tag)) => {
            client_tag(transaction, &fact, tag, false).await?
        }
        Some(Payload::AddTagToRequest(tag)) => request_tag(transaction, &fact, tag, true).await?,
        Some(Payload::DeleteTagFromRequest(tag)) => {
            request_tag(transaction, &fact, tag, false).await?
        }
        Some(Payload::CloseDialog(dialog)) => {
            closed(transaction, &fact, dialog, Closing::Dialog).await?
        }
        Some(Payload::CloseRequest(dialog)) => {
            closed(transaction, &fact, dialog, Closing::Request).await?
        }
        Some(Payload::DialogTransferred(dialog)) => transferred(transaction, &fact, dialog).await?,
        _ => None,
    };
    Ok(Applied::Applied(client.map(|client_id| ClientKey {
        tenant: event.tenant.clone(),
        client_id,
    })))
}

/// Makes sure the client has a row, so tags and requests always have someone to belong to.
async fn client_exists(
    transaction: &mut Transaction<'static, Any>,
    tenant: &str,
    client_id: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO clients (tenant, client_id) VALUES ($1, $2)
         ON CONFLICT (tenant, client_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(client_id)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

async fn channel_seen(
    transaction: &mut Transaction<'static, Any>,
    tenant: &str,
    client_id: i64,
    transport: &str,
    channel_id: Option<i64>,
) -> Result<(), StoreError> {
    let transport = transport.trim();
    if transport.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO client_channels (tenant, client_id, transport, channel_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant, client_id, transport, channel_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(client_id)
    .bind(transport.to_lowercase())
    .bind(channel_id.unwrap_or(0))
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

/// A message's upsert of its client: contact times always, profile fields until a card.
static MESSAGE_SEEN: LazyLock<String> = LazyLock::new(|| {
    let until_card = |given_by| Rule::UntilCard { given_by };
    let external_id = Rule::Newest {
        at: "external_id_at",
        seq: None,
    };
    format!(
        "INSERT INTO clients (tenant, client_id, name, name_key, phone, phone_digits, client_phone,
             client_phone_digits, assigned_name, external_id, external_id_at, first_contact_at, last_contact_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
         ON CONFLICT (tenant, client_id) DO UPDATE SET {}",
        merge::set(
            "clients",
            &[
                ("name", until_card("name")),
                ("name_key", until_card("name")),
                ("phone", until_card("phone")),
                ("phone_digits", until_card("phone")),
                ("client_phone", until_card("client_phone")),
                ("client_phone_digits", until_card("client_phone")),
                ("assigned_name", until_card("assigned_name")),
                ("external_id", external_id),
                ("external_id_at", external_id),
                ("first_contact_at", Rule::Earliest),
                ("last_contact_at", Rule::Latest),
            ],
        )
    )
});

/// A message in or out: contact times, the request and dialog it belongs to, the client's
/// messenger, and profile fields the client card has not given.
async fn message_seen(
    transaction: &mut Transaction<'static, Any>,
    fact: &Fact<'_>,
    message: &Message,
    outgoing: bool,
) -> Result<Option<i64>, StoreError> {
    let card = message.client.as_ref();
    // The embedded client card names the client; `client_id` is the fallback.
    let Some(client_id) = card.and_then(|c| c.id).or(message.client_id) else {
        return Ok(None);
    };
    let field = |get: fn(&c2d_proto::events::v1::MessageClient) -> Option<&String>| {
        card.and_then(get)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let name = field(|c| c.name.as_ref());
    let phone = field(|c| c.phone.as_ref());
    let client_phone = field(|c| c.client_phone.as_ref());
    let external_id = field(|c| c.external_id.as_ref());
    sqlx::query(&MESSAGE_SEEN)
        .bind(fact.tenant)
        .bind(client_id)
        .bind(name)
        .bind(name.map(name_key))
        .bind(phone)
        .bind(phone.and_then(digits))
        .bind(client_phone)
        .bind(client_phone.and_then(digits))
        .bind(field(|c| c.assigned_name.as_ref()))
        .bind(external_id)
        .bind(external_id.map(|_| fact.at))
        .bind(fact.at)
        .execute(&mut **transaction)
        .await?;
    if let Some(transport) = &message.transport {
        channel_seen(
            transaction,
            fact.tenant,
            client_id,
            transport,
            message.channel_id,
        )
        .await?;
    }
    let operator = if outgoing { message.operator_id } else { None };
    if let Some(request_id) = message.request_id {
        upsert_request(
            transaction,
            fact,
            RequestFacts {
                request_id,
                client_id: Some(client_id),
                dialog_id: message.dialog_id,
                channel_id: message.channel_id,
                transport: message.transport.as_deref(),
                opened_at: Some(fact.at),
                last_message_at: Some(fact.at),
                closed_at: None,
                operator_id: operator,
            },
        )
        .await?;
    }
    if let Some(dialog_id) = message.dialog_id {
        upsert_dialog(
            transaction,
            fact,
            DialogFacts {
                dialog_id,
                client_id: Some(client_id),
                channel_id: message.channel_id,
                transport: message.transport.as_deref(),
                operator_id: operator,
                last_activity_at: Some(fact.at),
                closed_at: None,
                origin_at: None,
            },
        )
        .await?;
    }
    Ok(Some(client_id))
}

/// A client card: the whole profile, if it is the newest card seen.
async fn card_seen(
    transaction: &mut Transaction<'static, Any>,
    fact: &Fact<'_>,
    card: &Client,
) -> Result<Option<i64>, StoreError> {
    let Some(client_id) = card.id else {
        return Ok(None);
    };
    let text = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let name = text(&card.name);
    let phone = text(&card.phone);
    let client_phone = text(&card.client_phone);
    let custom_fields = card
        .custom_fields
        .as_ref()
        .filter(|fields| !fields.fields.is_empty())
        .map(|fields| c2d_hooks::json::from_struct(fields).to_string());
    sqlx::query(
        "INSERT INTO clients (tenant, client_id, name, name_key, phone, phone_digits, client_phone,
             client_phone_digits, avatar, assigned_name, comment, extra_comment_1, extra_comment_2,
             extra_comment_3, region_id, country_id, custom_fields, profile_at, profile_seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
         ON CONFLICT (tenant, client_id) DO UPDATE SET
             name = excluded.name, name_key = excluded.name_key, phone = excluded.phone,
             phone_digits = excluded.phone_digits, client_phone = excluded.client_phone,
             client_phone_digits = excluded.client_phone_digits, avatar = excluded.avatar,
             assigned_name = excluded.assigned_name, comment = excluded.comment,
             extra_comment_1 = excluded.extra_comment_1, extra_comment_2 = excluded.extra_comment_2,
             extra_comment_3 = excluded.extra_comment_3, region_id = excluded.region_id,
             country_id = excluded.country_id, custom_fields = excluded.custom_fields,
             profile_at = excluded.profile_at, profile_seq = excluded.profile_seq
         WHERE clients.profile_at IS NULL OR excluded.profile_at > clients.profile_at
             OR (excluded.profile_at = clients.profile_at AND excluded.profile_seq > clients.profile_seq)",
    )
    .bind(fact.tenant)
    .bind(client_id)
    .bind(name.as_deref())
    .bind(name.as_deref().map(name_key))
    .bind(phone.as_deref())
    .bind(phone.as_deref().and_then(digits))
    .bind(client_phone.as_deref())
    .bind(client_phone.as_deref().and_then(digits))
    .bind(text(&card.avatar))
    .bind(text(&card.assigned_name))
    .bind(text(&card.comment))
    .bind(text(&card.extra_comment_1))
    .bind(text(&card.extra_comment_2))
    .bind(text(&card.extra_comment_3))
    .bind(card.region_id)
    .bind(card.country_id)
    .bind(custom_fields)
    .bind(fact.at)
    .bind(fact.seq)
    .execute(&mut **transaction)
    .await?;
    for channel in &card.channels {
        for transport in &channel.transports {
            channel_seen(transaction, fact.tenant, client_id, transport, channel.id).await?;
        }
    }
    Ok(Some(client_id))
}

/// A tag put on or taken off a client.
async fn client_tag(
    transaction: &mut Transaction<'static, Any>,
    fact: &Fact<'_>,
    tag: &Tag,
    present: bool,
) -> Result<Option<i64>, StoreError> {
    let (Some(client_id), Some(tag_id)) = (tag.client_id, tag.id) else {
        return Ok(None);
    };
    client_exists(transaction, fact.tenant, client_id).await?;
    tag_changed(transaction, fact, tag, tag_id, client_id, None, present).await?;
    Ok(Some(client_id))
}

/// A tag put on or taken off a request. Chat2Desk names only the client: the tag goes to the
/// client's newest open request, else its newest request (request 0 when none is known).
async fn request_tag(
    transaction: &mut Transaction<'static, Any>,
    fact: &Fact<'_>,
    tag: &Tag,
    present: bool,
) -> Result<Option<i64>, StoreError> {
    let (Some(client_id), Some(tag_id)) = (tag.client_id, tag.id) else {
        return Ok(None);
    };
    client_exists(transaction, fact.tenant, client_id).await?;
    let request_id: i64 = sqlx::query_scalar(
        "SELECT request_id FROM requests WHERE tenant = $1 AND client_id = $2
         ORDER BY CASE WHEN closed_at IS NULL THEN 0 ELSE 1 END, opened_at DESC, request_id DESC
         LIMIT 1",
    )
    .bind(fact.tenant)
    .bind(client_id)
    .fetch_optional(&mut **transaction)
    .await?
    .unwrap_or(0);
    tag_changed(
        transaction,
        fact,
        tag,
        tag_id,
        client_id,
        Some(request_id),
        present,
    )
    .await?;
    Ok(Some(client_id))
}

/// A tag on (`present`) or off a client, or one of its requests: last writer wins by event
/// time, then stream sequence; removals stay as tombstones so that an older add loses.
async fn tag_changed(
    transaction: &mut Transaction<'static, Any>,
    fact: &Fact<'_>,
    tag: &Tag,
    tag_id: i64,
    client_id: i64,
    request_id: Option<i64>,
    present: bool,
) -> Result<(), StoreError> {
    const ON_CLIENT: &str = "INSERT INTO client_tags (tenant, client_id, tag_id, name, description,
             group_id, group_name, present, changed_at, changed_seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (tenant, client_id, tag_id) DO UPDATE SET
             name = excluded.name, description = excluded.description, group_id = excluded.group_id,
             group_name = excluded.group_name, present = excluded.present,
             changed_at = excluded.changed_at, changed_seq = excluded.changed_seq
         WHERE excluded.changed_at > client_tags.changed_at
             OR (excluded.changed_at = client_tags.changed_at AND excluded.changed_seq > client_tags.changed_seq)";
    const ON_REQUEST: &str = "INSERT INTO request_tags (tenant, client_id, tag_id, name, description,
             group_id, group_name, present, changed_at, changed_seq, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (tenant, request_id, tag_id, client_id) DO UPDATE SET
             name = excluded.name, description = excluded.description, group_id = excluded.group_id,
             group_name = excluded.group_name, present = excluded.present,
             changed_at = excluded.changed_at, changed_seq = excluded.changed_seq
         WHERE excluded.changed_at > request_tags.changed_at
             OR (excluded.changed_at = request_tags.changed_at AND excluded.changed_seq > request_tags.changed_seq)";
    let mut query = sqlx::query(if request_id.is_some() {
        ON_REQUEST
    } else {
        ON_CLIENT
    })
    .bind(fact.tenant)
    .bind(client_id)
    .bind(tag_id)
    .bind(tag.name.as_deref())
    .bind(tag.description.as_deref())
    .bind(tag.group_id)
    .bind(tag.group_name.as_deref())
    .bind(i64::from(present))
    .bind(fact.at)
    .bind(fact.seq);
    if let Some(request_id) = request_id {
        query = query.bind(request_id);
    }
    query.execute(&mut **transaction).await?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Closing {
    Dialog,
    Request,
}

/// close_dialog and close_request: the request (and for close_dialog the dialog) is closed.
async fn closed(
    transaction: &mut Transaction<'static, Any>,
    fact: &Fact<'_>,
    event: &DialogEvent,
    closing: Closing,
) -> Result<Option<i64>, StoreError> {
    if let Some(client_id) = event.client_id {
        client_exists(transaction, fact.tenant, client_id).await?;
    }
    if let Some(request_id) = event.request_id {
        upsert_request(
            transaction,
            fact,
            RequestFacts {
                request_id,
                client_id: event.client_id,
                dialog_id: event.dialog_id,
                channel_id: event.channel_id,
                transport: event.transport.as_deref(),
                opened_at: event.created.as_ref().map(clock::micros),
                last_message_at: None,
                closed_at: Some(fact.at),
                operator_id: event.operator_id,
            },
        )
        .await?;
    }
    if let Some(dialog_id) = event.dialog_id {
        upsert_dialog(
            transaction,
            fact,
            DialogFacts {
                dialog_id,
                client_id: event.client_id,
                channel_id: event.channel_id,
                transport: event.transport.as_deref(),
                operator_id: event.operator_id,
                last_activity_at: None,
                closed_at: matches!(closing, Closing::Dialog).then_some(fact.at),
                origin_at: event.created.as_ref().map(clock::micros),
            },
        )
        .await?;
    }
    Ok(event.client_id)
}

/// dialog_transferred: the request and dialog have a new current operator.
async fn transferred(
    transaction: &mut Transaction<'static, Any>,
    fact: &Fact<'_>,
    event: &DialogEvent,
) -> Result<Option<i64>, StoreError> {
    if let Some(client_id) = event.client_id {
        client_exists(transaction, fact.tenant, client_id).await?;
    }
    let operator_id = event.current_operator_id.or(event.operator_id);
    if let Some(request_id) = event.request_id {
        upsert_request(
            transaction,
            fact,
            RequestFacts {
                request_id,
                client_id: event.client_id,
                dialog_id: event.dialog_id,
                channel_id: event.channel_id,
                transport: event.transport.as_deref(),
                opened_at: event.created.as_ref().map(clock::micros),
                last_message_at: None,
                closed_at: None,
                operator_id,
            },
        )
        .await?;
    }
    if let Some(dialog_id) = event.dialog_id {
        upsert_dialog(
            transaction,
            fact,
            DialogFacts {
                dialog_id,
                client_id: event.client_id,
                channel_id: event.channel_id,
                transport: event.transport.as_deref(),
                operator_id,
                last_activity_at: Some(fact.at),
                closed_at: None,
                origin_at: event.created.as_ref().map(clock::micros),
            },
        )
        .await?;
    }
    Ok(event.client_id)
}

/// What one event says about a request.
struct RequestFacts<'a> {
    request_id: i64,
    client_id: Option<i64>,
    dialog_id: Option<i64>,
    channel_id: Option<i64>,
    transport: Option<&'a str>,
    opened_at: Option<i64>,
    last_message_at: Option<i64>,
    closed_at: Option<i64>,
    operator_id: Option<i64>,
}

/// The operator of a request or dialog: the newest assignment, by event time and sequence.
const ASSIGNMENT: Rule = Rule::Newest {
    at: "operator_at",
    seq: Some("operator_seq"),
};

static UPSERT_REQUEST: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO requests (tenant, request_id, client_id, dialog_id, channel_id, transport,
             opened_at, closed_at, last_message_at, operator_id, operator_at, operator_seq, origin_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (tenant, request_id) DO UPDATE SET {}",
        merge::set(
            "requests",
            &[
                ("client_id", Rule::OfEarliestOrigin),
                ("dialog_id", Rule::OfEarliestOrigin),
                ("channel_id", Rule::OfEarliestOrigin),
                ("transport", Rule::OfEarliestOrigin),
                ("origin_at", Rule::Earliest),
                ("opened_at", Rule::Earliest),
                // Closed once any closing is seen, at the first.
                ("closed_at", Rule::Earliest),
                ("last_message_at", Rule::Latest),
                ("operator_id", ASSIGNMENT),
                ("operator_seq", ASSIGNMENT),
                ("operator_at", ASSIGNMENT),
            ],
        )
    )
});

async fn upsert_request(
    transaction: &mut Transaction<'static, Any>,
    fact: &Fact<'_>,
    request: RequestFacts<'_>,
) -> Result<(), StoreError> {
    let operator_at = request.operator_id.map(|_| fact.at);
    sqlx::query(&UPSERT_REQUEST)
        .bind(fact.tenant)
        .bind(request.request_id)
        .bind(request.client_id)
        .bind(request.dialog_id)
        .bind(request.channel_id)
        .bind(request.transport.map(str::to_lowercase))
        .bind(request.opened_at)
        .bind(request.closed_at)
        .bind(request.last_message_at)
        .bind(request.operator_id)
        .bind(operator_at)
        .bind(operator_at.map(|_| fact.seq))
        .bind(request.opened_at.unwrap_or(fact.at))
        .execute(&mut **transaction)
        .await?;
    Ok(())
}

/// What one event says about a dialog.
struct DialogFacts<'a> {
    dialog_id: i64,
    client_id: Option<i64>,
    channel_id: Option<i64>,
    transport: Option<&'a str>,
    operator_id: Option<i64>,
    last_activity_at: Option<i64>,
    closed_at: Option<i64>,
    /// When the dialog existed by this event's account (`created`), else the event's time.
    origin_at: Option<i64>,
}

static UPSERT_DIALOG: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO dialogs (tenant, dialog_id, client_id, channel_id, transport, operator_id,
             operator_at, operator_seq, last_activity_at, closed_at, origin_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (tenant, dialog_id) DO UPDATE SET {}",
        merge::set(
            "dialogs",
            &[
                ("client_id", Rule::OfEarliestOrigin),
                ("channel_id", Rule::OfEarliestOrigin),
                ("transport", Rule::OfEarliestOrigin),
                ("origin_at", Rule::Earliest),
                ("last_activity_at", Rule::Latest),
                // A dialog is closed again after new activity: its last closing counts.
                ("closed_at", Rule::Latest),
                ("operator_id", ASSIGNMENT),
                ("operator_seq", ASSIGNMENT),
                ("operator_at", ASSIGNMENT),
            ],
        )
    )
});

async fn upsert_dialog(
    transaction: &mut Transaction<'static, Any>,
    fact: &Fact<'_>,
    dialog: DialogFacts<'_>,
) -> Result<(), StoreError> {
    let operator_at = dialog.operator_id.map(|_| fact.at);
    sqlx::query(&UPSERT_DIALOG)
        .bind(fact.tenant)
        .bind(dialog.dialog_id)
        .bind(dialog.client_id)
        .bind(dialog.channel_id)
        .bind(dialog.transport.map(str::to_lowercase))
        .bind(dialog.operator_id)
        .bind(operator_at)
        .bind(operator_at.map(|_| fact.seq))
        .bind(dialog.last_activity_at)
        .bind(dialog.closed_at)
        .bind(dialog.origin_at.unwrap_or(fact.at))
        .execute(&mut **transaction)
        .await?;
    Ok(())
}

/// The key name prefix search compares: lower case, whitespace trimmed.
pub fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// The digits of a phone, so "+55 (11) 9999-0000" finds "5511999990000"; None without digits.
pub fn digits(phone: &str) -> Option<String> {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    (!digits.is_empty()).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_and_names_are_normalized_for_lookup() {
        assert_eq!(
            digits("+55 (11) 9999-0000").as_deref(),
            Some("551199990000")
        );
        assert_eq!(digits("[tg] 1938691").as_deref(), Some("1938691"));
        assert_eq!(digits("no digits"), None);
        assert_eq!(name_key("  Ольга Петрова "), "ольга петрова");
    }
}
