//! Reading the client directory: one client's full view, lookups by phone and external id,
//! search, requests and tags. CrmService answers from here, and connectors' changes are
//! built from the same [`ClientView`], so a CRM and a gRPC caller see the same client.

use serde_json::Value as Json;
use sqlx::AnyConnection;

use crate::projection::{ClientKey, digits, name_key};
use crate::store::{Store, StoreError};

/// Everything the directory knows about one client. Times are store micros.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientView {
    pub key: ClientKey,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub client_phone: Option<String>,
    pub avatar: Option<String>,
    pub assigned_name: Option<String>,
    pub comment: Option<String>,
    pub extra_comment_1: Option<String>,
    pub extra_comment_2: Option<String>,
    pub extra_comment_3: Option<String>,
    pub external_id: Option<String>,
    pub region_id: Option<i64>,
    pub country_id: Option<i64>,
    /// A JSON object (empty when Chat2Desk sent none).
    pub custom_fields: Json,
    pub profile_at: Option<i64>,
    pub first_contact_at: Option<i64>,
    pub last_contact_at: Option<i64>,
    /// (transport, channel id), sorted.
    pub channels: Vec<(String, Option<i64>)>,
    /// Names of the tags on the client, sorted.
    pub tags: Vec<String>,
    /// Open requests, newest first.
    pub open_requests: Vec<RequestView>,
    pub current_operator_id: Option<i64>,
}

impl ClientView {
    /// The distinct transports of the client's channels, sorted.
    pub fn transports(&self) -> Vec<&str> {
        let mut transports: Vec<&str> = self.channels.iter().map(|(t, _)| t.as_str()).collect();
        transports.dedup();
        transports
    }
}

/// One request of a client; read from `requests` by column name.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RequestView {
    pub request_id: i64,
    pub dialog_id: Option<i64>,
    pub channel_id: Option<i64>,
    pub transport: Option<String>,
    pub operator_id: Option<i64>,
    pub opened_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub last_message_at: Option<i64>,
    /// Not a column: added from the client's tags.
    #[sqlx(skip)]
    pub tags: Vec<String>,
}

/// One dialog of a client; read from `dialogs` by column name.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DialogView {
    pub dialog_id: i64,
    pub channel_id: Option<i64>,
    pub transport: Option<String>,
    pub operator_id: Option<i64>,
    pub last_activity_at: Option<i64>,
    pub closed_at: Option<i64>,
}

impl DialogView {
    /// A message or transfer after the last closing reopens a dialog.
    pub fn is_closed(&self) -> bool {
        match (self.closed_at, self.last_activity_at) {
            (Some(closed), Some(active)) => closed >= active,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// One tag on a client (request_id None) or on one of its requests; read from `client_tags`
/// and `request_tags` by column name.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TagView {
    pub tag_id: i64,
    pub name: Option<String>,
    pub description: Option<String>,
    pub group_id: Option<i64>,
    pub group_name: Option<String>,
    pub request_id: Option<i64>,
    #[sqlx(rename = "changed_at")]
    pub tagged_at: i64,
}

impl TagView {
    /// The tag's name, or its id when Chat2Desk sent no name.
    pub fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("tag {}", self.tag_id))
    }
}

/// The `clients` columns of a [`ClientView`], as stored: the rest of the view is read from
/// other tables, and `custom_fields` is JSON text until [`read`] parses it.
#[derive(sqlx::FromRow)]
struct ClientRow {
    name: Option<String>,
    phone: Option<String>,
    client_phone: Option<String>,
    avatar: Option<String>,
    assigned_name: Option<String>,
    comment: Option<String>,
    extra_comment_1: Option<String>,
    extra_comment_2: Option<String>,
    extra_comment_3: Option<String>,
    external_id: Option<String>,
    region_id: Option<i64>,
    country_id: Option<i64>,
    custom_fields: Option<String>,
    profile_at: Option<i64>,
    first_contact_at: Option<i64>,
    last_contact_at: Option<i64>,
}

/// How GetClient names a client.
#[derive(Debug, Clone)]
pub enum Lookup {
    Id(i64),
    Phone(String),
    ExternalId(String),
}

/// What SearchClients asks for; empty criteria match everyone.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub name_prefix: Option<String>,
    pub tag: Option<String>,
    pub transport: Option<String>,
    pub has_open_request: Option<bool>,
    pub after_client_id: i64,
    pub limit: i64,
}

/// The client `lookup` names in `tenant`, if any.
pub async fn find(
    store: &Store,
    tenant: &str,
    lookup: &Lookup,
) -> Result<Option<ClientView>, StoreError> {
    let mut connection = store.pool().acquire().await?;
    let client_id: Option<i64> = match lookup {
        Lookup::Id(id) => Some(*id),
        Lookup::Phone(phone) => sqlx::query_scalar(
            "SELECT client_id FROM clients WHERE tenant = $1
                 AND (phone = $2 OR client_phone = $2 OR phone_digits = $3 OR client_phone_digits = $3)
             ORDER BY client_id LIMIT 1",
        )
        .bind(tenant)
        .bind(phone.trim())
        .bind(digits(phone).unwrap_or_default())
        .fetch_optional(&mut *connection)
        .await?,
        Lookup::ExternalId(external_id) => sqlx::query_scalar(
            "SELECT client_id FROM clients WHERE tenant = $1 AND external_id = $2
             ORDER BY client_id LIMIT 1",
        )
        .bind(tenant)
        .bind(external_id.trim())
        .fetch_optional(&mut *connection)
        .await?,
    };
    match client_id {
        Some(client_id) => {
            let key = ClientKey {
                tenant: tenant.to_owned(),
                client_id,
            };
            read(&mut connection, &key).await
        }
        None => Ok(None),
    }
}

/// Whether the directory has the client, without reading their view.
pub async fn exists(store: &Store, key: &ClientKey) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT client_id FROM clients WHERE tenant = $1 AND client_id = $2")
            .bind(&key.tenant)
            .bind(key.client_id)
            .fetch_optional(store.pool())
            .await?
            .is_some(),
    )
}

/// One client's view, read on `connection` (inside a transaction when building a change).
pub async fn read(
    connection: &mut AnyConnection,
    key: &ClientKey,
) -> Result<Option<ClientView>, StoreError> {
    let Some(row) = sqlx::query_as::<_, ClientRow>(
        "SELECT name, phone, client_phone, avatar, assigned_name, comment, extra_comment_1,
             extra_comment_2, extra_comment_3, external_id, region_id, country_id, custom_fields,
             profile_at, first_contact_at, last_contact_at
         FROM clients WHERE tenant = $1 AND client_id = $2",
    )
    .bind(&key.tenant)
    .bind(key.client_id)
    .fetch_optional(&mut *connection)
    .await?
    else {
        return Ok(None);
    };
    let channels = sqlx::query_as::<_, (String, i64)>(
        "SELECT transport, channel_id FROM client_channels WHERE tenant = $1 AND client_id = $2
         ORDER BY transport, channel_id",
    )
    .bind(&key.tenant)
    .bind(key.client_id)
    .fetch_all(&mut *connection)
    .await?
    .into_iter()
    .map(|(transport, channel)| (transport, (channel != 0).then_some(channel)))
    .collect();
    // One read of the tags serves the client's and its requests'.
    let all_tags = tags(connection, key).await?;
    let requests = tagged_requests(connection, key, &all_tags).await?;
    let tags = all_tags
        .iter()
        .filter(|tag| tag.request_id.is_none())
        .map(TagView::label)
        .collect();
    let open_requests: Vec<RequestView> = requests
        .iter()
        .filter(|r| r.closed_at.is_none())
        .cloned()
        .collect();
    // The operator of the newest open request, else of the newest request.
    let current_operator_id = open_requests
        .first()
        .or(requests.first())
        .and_then(|r| r.operator_id);

    Ok(Some(ClientView {
        key: key.clone(),
        name: row.name,
        phone: row.phone,
        client_phone: row.client_phone,
        avatar: row.avatar,
        assigned_name: row.assigned_name,
        comment: row.comment,
        extra_comment_1: row.extra_comment_1,
        extra_comment_2: row.extra_comment_2,
        extra_comment_3: row.extra_comment_3,
        external_id: row.external_id,
        region_id: row.region_id,
        country_id: row.country_id,
        custom_fields: row
            .custom_fields
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_else(|| Json::Object(Default::default())),
        profile_at: row.profile_at,
        first_contact_at: row.first_contact_at,
        last_contact_at: row.last_contact_at,
        channels,
        tags,
        open_requests,
        current_operator_id,
    }))
}

/// A client's requests, newest first, each with its tags.
pub async fn requests(
    connection: &mut AnyConnection,
    key: &ClientKey,
) -> Result<Vec<RequestView>, StoreError> {
    let tags = tags(connection, key).await?;
    tagged_requests(connection, key, &tags).await
}

/// A client's requests, each with its tags out of the client's `tags`.
async fn tagged_requests(
    connection: &mut AnyConnection,
    key: &ClientKey,
    tags: &[TagView],
) -> Result<Vec<RequestView>, StoreError> {
    let mut requests: Vec<RequestView> = sqlx::query_as(
        "SELECT request_id, dialog_id, channel_id, transport, operator_id, opened_at, closed_at,
             last_message_at
         FROM requests WHERE tenant = $1 AND client_id = $2
         ORDER BY opened_at DESC, request_id DESC",
    )
    .bind(&key.tenant)
    .bind(key.client_id)
    .fetch_all(&mut *connection)
    .await?;
    for tag in tags {
        if let Some(request) = requests
            .iter_mut()
            .find(|r| Some(r.request_id) == tag.request_id)
        {
            request.tags.push(tag.label());
        }
    }
    Ok(requests)
}

/// A client's dialogs, newest activity first.
pub async fn dialogs(
    connection: &mut AnyConnection,
    key: &ClientKey,
) -> Result<Vec<DialogView>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT dialog_id, channel_id, transport, operator_id, last_activity_at, closed_at
         FROM dialogs WHERE tenant = $1 AND client_id = $2
         ORDER BY last_activity_at DESC, dialog_id DESC",
    )
    .bind(&key.tenant)
    .bind(key.client_id)
    .fetch_all(&mut *connection)
    .await?)
}

/// The tags on a client and on its requests, by name.
pub async fn tags(
    connection: &mut AnyConnection,
    key: &ClientKey,
) -> Result<Vec<TagView>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT tag_id, name, description, group_id, group_name, NULL AS request_id, changed_at
             FROM client_tags WHERE tenant = $1 AND client_id = $2 AND present = 1
         UNION ALL
         SELECT tag_id, name, description, group_id, group_name, request_id, changed_at
             FROM request_tags WHERE tenant = $1 AND client_id = $2 AND present = 1
         ORDER BY name, tag_id",
    )
    .bind(&key.tenant)
    .bind(key.client_id)
    .fetch_all(&mut *connection)
    .await?)
}

/// Clients matching `search`, by id, and whether there may be more.
pub async fn search(
    store: &Store,
    tenant: &str,
    search: &Search,
) -> Result<(Vec<ClientView>, bool), StoreError> {
    let mut connection = store.pool().acquire().await?;
    let open = match search.has_open_request {
        None => -1,
        Some(false) => 0,
        Some(true) => 1,
    };
    let prefix = search
        .name_prefix
        .as_deref()
        .map(name_key)
        .unwrap_or_default();
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT client_id FROM clients c WHERE tenant = $1 AND client_id > $2
           AND ($3 = '' OR substr(name_key, 1, length($3)) = $3)
           AND ($4 = '' OR EXISTS (SELECT 1 FROM client_tags t WHERE t.tenant = c.tenant
                 AND t.client_id = c.client_id AND t.present = 1 AND t.name = $4))
           AND ($5 = '' OR EXISTS (SELECT 1 FROM client_channels h WHERE h.tenant = c.tenant
                 AND h.client_id = c.client_id AND h.transport = $5))
           AND ($6 = -1
                OR ($6 = 1 AND EXISTS (SELECT 1 FROM requests r WHERE r.tenant = c.tenant
                     AND r.client_id = c.client_id AND r.closed_at IS NULL))
                OR ($6 = 0 AND NOT EXISTS (SELECT 1 FROM requests r WHERE r.tenant = c.tenant
                     AND r.client_id = c.client_id AND r.closed_at IS NULL)))
         ORDER BY client_id LIMIT $7",
    )
    .bind(tenant)
    .bind(search.after_client_id)
    .bind(prefix)
    .bind(search.tag.as_deref().unwrap_or("").trim().to_owned())
    .bind(
        search
            .transport
            .as_deref()
            .unwrap_or("")
            .trim()
            .to_lowercase(),
    )
    .bind(open as i64)
    .bind(search.limit + 1)
    .fetch_all(&mut *connection)
    .await?;
    let more = ids.len() as i64 > search.limit;
    let mut clients = Vec::with_capacity(ids.len());
    for client_id in ids.into_iter().take(search.limit as usize) {
        let key = ClientKey {
            tenant: tenant.to_owned(),
            client_id,
        };
        if let Some(view) = read(&mut connection, &key).await? {
            clients.push(view);
        }
    }
    Ok((clients, more))
}
