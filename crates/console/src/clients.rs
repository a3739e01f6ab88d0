//! Clients as the CRM sees them (CrmService): a search by name, tag, transport or phone, a
//! client's card with their requests, dialogs and tags, and the timeline of the events about
//! them from the log. And the connectors' queues: what waits to reach each CRM, and the
//! changes a CRM refused for good (dead letters), which can be queued again once fixed.
//!
//! Connector queues serve every tenant at once, so their depths are the operator's; a
//! tenant's login sees and retries its own dead letters only.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use c2d_proto::crm::v1::{
    ClientRecord, DeadLetter, GetClientRequest, GetSyncStatusRequest, ListClientRequestsRequest,
    ListClientTagsRequest, ListDeadLettersRequest, RetryDeadLettersRequest, SearchClientsRequest,
    get_client_request::By,
};

use crate::Console;
use crate::auth::{OutOfScope, Session};
use crate::html::{csrf_field, escape, page, refusal, repeated_field, tenant_field};
use crate::search::{self, Matcher};
use crate::services::Service;
use crate::time::when;

const TITLE: &str = "Clients";
/// Events of a client shown on their card.
pub const TIMELINE: usize = 100;

/// What the clients page asks for.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Find {
    #[serde(default)]
    pub tenant: String,
    /// A prefix of the name.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub tag: String,
    /// A phone, in any writing; when given, the one client with it.
    #[serde(default)]
    pub phone: String,
}

fn unavailable(console: &Console, session: &Session, status: &tonic::Status) -> Response {
    console
        .services
        .refusal(Service::Crm, status, TITLE, session)
}

/// GET /clients.
pub async fn list(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(find): Query<Find>,
) -> Response {
    let (_, session) = match console.session(&headers) {
        Ok(session) => session,
        Err(login) => return *login,
    };
    let tenant = match session.principal.scope(&find.tenant) {
        Ok(tenant) => tenant,
        Err(out) => return refusal(out.status(), TITLE, Some(&session), &out.to_string()),
    };
    let tenant_field = tenant_field(&session, tenant.as_deref().unwrap_or(""), "tenant");
    let form = format!(
        "<form class=\"search\" method=\"get\" action=\"/clients\">{tenant_field}\
         <input name=\"name\" placeholder=\"name starts with\" value=\"{}\">\
         <input name=\"tag\" placeholder=\"tag\" value=\"{}\">\
         <input name=\"phone\" placeholder=\"phone\" value=\"{}\">\
         <button type=\"submit\">Find</button></form><p><a href=\"/connectors\">Connector queues and dead letters</a></p>",
        escape(find.name.trim()),
        escape(find.tag.trim()),
        escape(find.phone.trim()),
    );
    let Some(tenant) = tenant else {
        let body = format!("{form}<p>Choose a tenant.</p>");
        return page(TITLE, Some(&session), &body).into_response();
    };
    let mut crm = console.services.crm.clone();
    let clients = if find.phone.trim().is_empty() {
        let answer = crm
            .search_clients(SearchClientsRequest {
                tenant: tenant.clone(),
                name_prefix: Some(find.name.trim().to_owned()).filter(|n| !n.is_empty()),
                tag: Some(find.tag.trim().to_owned()).filter(|t| !t.is_empty()),
                limit: 200,
                ..Default::default()
            })
            .await;
        match answer {
            Ok(answer) => answer.into_inner().clients,
            Err(status) => return unavailable(&console, &session, &status),
        }
    } else {
        let answer = crm
            .get_client(GetClientRequest {
                tenant: tenant.clone(),
                by: Some(By::Phone(find.phone.trim().to_owned())),
            })
            .await;
        match answer {
            Ok(client) => vec![client.into_inner()],
            Err(status) if status.code() == tonic::Code::NotFound => Vec::new(),
            Err(status) => return unavailable(&console, &session, &status),
        }
    };
    let rows: String = clients.iter().map(client_row).collect();
    let body = format!(
        "{form}<p id=\"found\">{} clients</p>\
         <table id=\"clients\"><thead><tr><th>client</th><th>name</th><th>phone</th><th>messengers</th><th>tags</th><th>open requests</th><th>last contact</th></tr></thead>\
         <tbody>{rows}</tbody></table>",
        clients.len()
    );
    page(&format!("{TITLE}: {tenant}"), Some(&session), &body).into_response()
}

fn client_row(client: &ClientRecord) -> String {
    format!(
        "<tr><td><a href=\"/clients/{tenant}/{id}\">{id}</a></td><td>{name}</td><td>{phone}</td><td>{transports}</td><td>{tags}</td><td>{open}</td><td>{last}</td></tr>",
        tenant = escape(&client.tenant),
        id = client.client_id,
        name = escape(client.name.as_deref().unwrap_or("")),
        phone = escape(
            client
                .phone
                .as_deref()
                .or(client.client_phone.as_deref())
                .unwrap_or("")
        ),
        transports = escape(&client.transports.join(", ")),
        tags = escape(&client.tags.join(", ")),
        open = client.open_request_ids.len(),
        last = escape(&when(client.last_contact_at.as_ref())),
    )
}

/// GET /clients/{tenant}/{client_id}: the card, the requests, the tags and the timeline.
pub async fn card(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path((tenant, client_id)): Path<(String, i64)>,
) -> Response {
    let (_, session) = match console.session(&headers) {
        Ok(session) => session,
        Err(login) => return *login,
    };
    // Another tenant's client is not found (its existence is not told); a path that is not a
    // tenant name is refused before it reaches a subject or a link.
    let tenant = match session.principal.scope(&tenant) {
        Ok(Some(tenant)) => tenant,
        Ok(None) | Err(OutOfScope::OtherTenant(_)) => {
            return refusal(
                StatusCode::NOT_FOUND,
                TITLE,
                Some(&session),
                "No such client that this login may see.",
            );
        }
        Err(out) => return refusal(out.status(), TITLE, Some(&session), &out.to_string()),
    };
    let mut crm = console.services.crm.clone();
    let (mut crm2, mut crm3) = (crm.clone(), crm.clone());
    let answers = tokio::try_join!(
        crm.get_client(GetClientRequest {
            tenant: tenant.clone(),
            by: Some(By::ClientId(client_id)),
        }),
        crm2.list_client_requests(ListClientRequestsRequest {
            tenant: tenant.clone(),
            client_id,
        }),
        crm3.list_client_tags(ListClientTagsRequest {
            tenant: tenant.clone(),
            client_id,
        }),
    );
    let (client, requests, tags) = match answers {
        Ok((client, requests, tags)) => (
            client.into_inner(),
            requests.into_inner(),
            tags.into_inner(),
        ),
        Err(status) => return unavailable(&console, &session, &status),
    };
    let field = |name: &str, value: Option<&str>| match value {
        Some(value) if !value.is_empty() => {
            format!("<tr><th>{name}</th><td>{}</td></tr>", escape(value))
        }
        _ => String::new(),
    };
    let card = [
        field("name", client.name.as_deref()),
        field("phone", client.phone.as_deref()),
        field("client phone", client.client_phone.as_deref()),
        field("operator", client.assigned_name.as_deref()),
        field("comment", client.comment.as_deref()),
        field("external id", client.external_id.as_deref()),
        field("messengers", Some(&client.transports.join(", "))),
        field("tags", Some(&client.tags.join(", "))),
        field(
            "first contact",
            Some(&when(client.first_contact_at.as_ref())),
        ),
        field("last contact", Some(&when(client.last_contact_at.as_ref()))),
    ]
    .concat();
    let request_rows: String = requests
        .requests
        .iter()
        .map(|r| {
            format!(
                "<tr><td><a href=\"/events?{query}\">{id}</a></td><td>{state}</td><td>{transport}</td><td>{operator}</td><td>{opened}</td><td>{closed}</td><td>{tags}</td></tr>",
                query = escape(&events_query(&tenant, "request", r.request_id, None)),
                id = r.request_id,
                state = escape(r.state().as_str_name().trim_start_matches("REQUEST_STATE_")),
                transport = escape(r.transport.as_deref().unwrap_or("")),
                operator = r.operator_id.map(|o| o.to_string()).unwrap_or_default(),
                opened = escape(&when(r.opened_at.as_ref())),
                closed = escape(&when(r.closed_at.as_ref())),
                tags = escape(&r.tags.join(", ")),
            )
        })
        .collect();
    let tag_rows: String = tags
        .client_tags
        .iter()
        .chain(&tags.request_tags)
        .map(|t| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(t.name.as_deref().unwrap_or(&t.tag_id.to_string())),
                escape(t.group_name.as_deref().unwrap_or("")),
                t.request_id
                    .map(|r| format!("request {r}"))
                    .unwrap_or_else(|| "client".to_owned()),
                escape(&when(t.tagged_at.as_ref())),
            )
        })
        .collect();
    let timeline = timeline(&console, &session, &tenant, client_id).await;
    let body = format!(
        "<table id=\"card\">{card}</table>\
         <h2>Requests</h2><table><thead><tr><th>request</th><th>state</th><th>messenger</th><th>operator</th><th>opened</th><th>closed</th><th>tags</th></tr></thead><tbody>{request_rows}</tbody></table>\
         <h2>Tags</h2><table><thead><tr><th>tag</th><th>group</th><th>on</th><th>since</th></tr></thead><tbody>{tag_rows}</tbody></table>\
         <h2>Timeline</h2>{timeline}"
    );
    let title = format!(
        "Client {client_id}{}",
        client.name.map(|n| format!(": {n}")).unwrap_or_default()
    );
    page(&title, Some(&session), &body).into_response()
}

/// The query of the events page that searches `tenant`'s events about one client or request
/// (`by` = `client` or `request`) over the longest range, before the sequence `before`.
fn events_query(tenant: &str, by: &str, id: i64, before: Option<u64>) -> String {
    let mut fields = vec![
        ("tenant", tenant.to_owned()),
        (by, id.to_string()),
        ("since", "399d".to_owned()),
    ];
    if let Some(before) = before {
        fields.push(("before", before.to_string()));
    }
    serde_urlencoded::to_string(fields).unwrap_or_default()
}

/// The newest events about the client, from the log.
async fn timeline(console: &Console, session: &Session, tenant: &str, client_id: i64) -> String {
    let matcher = Matcher {
        client: Some(client_id),
        ..Default::default()
    };
    let since = SystemTime::now()
        .checked_sub(Duration::from_secs(399 * 86_400))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let subject = format!("chat2desk.events.{tenant}.*");
    let asked = search::Page {
        subject: &subject,
        since,
        before: None,
        matcher: &matcher,
        wanted: TIMELINE,
        limit: console.config.search_limit,
    };
    let found = search::newest(&console.nats, &console.jetstream, &session.principal, asked).await;
    match found {
        Ok(found) => {
            let rows: String = found
                .events
                .iter()
                .map(|stored| {
                    let event = &stored.event;
                    let text = serde_json::from_slice::<serde_json::Value>(&event.raw)
                        .ok()
                        .and_then(|body| body["text"].as_str().map(str::to_owned))
                        .unwrap_or_default();
                    format!(
                        "<tr><td><a href=\"/events/{seq}\">{seq}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        escape(&when(event.event_time.as_ref())),
                        escape(&event.hook_type),
                        escape(&text),
                        seq = stored.stream_sequence,
                    )
                })
                .collect();
            let more = match found.older_from {
                Some(before) => format!(
                    "<p><a href=\"/events?{}\">Older events of this client</a></p>",
                    escape(&events_query(tenant, "client", client_id, Some(before)))
                ),
                None => String::new(),
            };
            format!(
                "<table id=\"timeline\"><thead><tr><th>sequence</th><th>event time</th><th>hook type</th><th>text</th></tr></thead><tbody>{rows}</tbody></table>{more}"
            )
        }
        Err(error) => format!(
            "<p class=\"error\">The event log cannot be read now ({}); the timeline is missing.</p>",
            escape(&error.to_string())
        ),
    }
}

/// The CRM's dead letters of every connector that the login may see (CrmService filters a
/// tenant's), the oldest 1,000.
async fn dead_letters(
    console: &Console,
    session: &Session,
) -> Result<Vec<DeadLetter>, tonic::Status> {
    let mut crm = console.services.crm.clone();
    let answer = crm
        .list_dead_letters(ListDeadLettersRequest {
            connector: String::new(),
            limit: 1_000,
            tenant: session.principal.tenant().unwrap_or_default().to_owned(),
        })
        .await?;
    Ok(answer.into_inner().dead_letters)
}

/// GET /connectors: each connector's queue (the operator's), and the dead letters.
pub async fn connectors(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let (_, session) = match console.session(&headers) {
        Ok(session) => session,
        Err(login) => return *login,
    };
    let mut crm = console.services.crm.clone();
    let letters = match dead_letters(&console, &session).await {
        Ok(letters) => letters,
        Err(status) => return unavailable(&console, &session, &status),
    };
    let queues = if session.principal.tenant().is_none() {
        match crm.get_sync_status(GetSyncStatusRequest {}).await {
            Ok(status) => {
                let status = status.into_inner();
                let rows: String = status
                    .connectors
                    .iter()
                    .map(|c| {
                        format!(
                            "<tr data-connector=\"{name}\"><td>{name}</td><td>{kind}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            c.queue_depth,
                            c.dead_letters,
                            c.delivered,
                            escape(&when(c.oldest_pending_since.as_ref())),
                            escape(c.last_error.as_deref().unwrap_or("")),
                            name = escape(&c.name),
                            kind = escape(&c.kind),
                        )
                    })
                    .collect();
                format!(
                    "<p>The CRM projection is {} events behind the log.</p>\
                     <table id=\"queues\"><thead><tr><th>connector</th><th>kind</th><th>waiting</th><th>dead letters</th><th>delivered</th><th>oldest waiting since</th><th>last error</th></tr></thead><tbody>{rows}</tbody></table>",
                    status.lag
                )
            }
            Err(status) => format!(
                "<p class=\"error\">{}</p>",
                escape(
                    &console
                        .services
                        .explain(Service::Crm, &status, &session.principal)
                )
            ),
        }
    } else {
        "<p>Connector queues serve every tenant: the operator's login shows them.</p>".to_owned()
    };
    let csrf = csrf_field(&session);
    let rows: String = letters
        .iter()
        .filter(|letter| session.principal.may_see(&letter.tenant))
        .map(|letter| {
            format!(
                "<tr><td><input type=\"checkbox\" name=\"id\" value=\"{id}\" aria-label=\"select {id}\"></td><td>{connector}</td><td>{tenant}</td><td><a href=\"/clients/{tenant}/{client}\">{client}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                letter.attempts,
                escape(&letter.last_error),
                escape(&when(letter.queued_at.as_ref())),
                id = letter.id,
                connector = escape(&letter.connector),
                tenant = escape(&letter.tenant),
                client = letter.client_id,
            )
        })
        .collect();
    let body = format!(
        "<h2>Queues</h2>{queues}<h2>Dead letters</h2>\
         <form method=\"post\" action=\"/connectors/retry\">{csrf}\
         <table id=\"crm-dead-letters\"><thead><tr><th></th><th>connector</th><th>tenant</th><th>client</th><th>attempts</th><th>last error</th><th>queued</th></tr></thead><tbody>{rows}</tbody></table>\
         <button type=\"submit\">Queue the selected again</button></form>"
    );
    page("Connectors", Some(&session), &body).into_response()
}

/// POST /connectors/retry: the selected dead letters are queued again. Each must be the
/// login's tenant's.
pub async fn retry(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    form: Bytes,
) -> Response {
    let (_, session) = match console.action_session(&headers, &form) {
        Ok(session) => session,
        Err(refused) => return *refused,
    };
    let ids: Result<Vec<i64>, _> = repeated_field(&form, "id").and_then(|ids| {
        ids.iter()
            .map(|id| match id.parse::<i64>() {
                Ok(id) if id > 0 => Ok(id),
                _ => Err(format!("{id:?} is not a dead letter's id")),
            })
            .collect()
    });
    let ids = match ids {
        Ok(ids) => ids,
        Err(why) => return refusal(StatusCode::BAD_REQUEST, TITLE, Some(&session), &why),
    };
    if ids.is_empty() {
        return refusal(
            StatusCode::BAD_REQUEST,
            TITLE,
            Some(&session),
            "Select the dead letters to queue again first.",
        );
    }
    let mut crm = console.services.crm.clone();
    let letters = match dead_letters(&console, &session).await {
        Ok(letters) => letters,
        Err(status) => return unavailable(&console, &session, &status),
    };
    let allowed = ids.iter().all(|id| {
        letters
            .iter()
            .any(|letter| letter.id == *id && session.principal.may_see(&letter.tenant))
    });
    if !allowed {
        return refusal(
            StatusCode::NOT_FOUND,
            TITLE,
            Some(&session),
            "A selected dead letter is not one this login may see; nothing was queued.",
        );
    }
    match crm
        .retry_dead_letters(RetryDeadLettersRequest {
            connector: String::new(),
            ids,
            // CrmService itself leaves another tenant's alone.
            tenant: session.principal.tenant().unwrap_or_default().to_owned(),
        })
        .await
    {
        Ok(answer) => {
            let body = format!(
                "<p id=\"requeued\">{} changes queued again.</p><p><a href=\"/connectors\">Back to the connectors</a></p>",
                answer.into_inner().requeued
            );
            page("Connectors", Some(&session), &body).into_response()
        }
        Err(status) => unavailable(&console, &session, &status),
    }
}
