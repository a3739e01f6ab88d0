//! `c2dctl crm`: CrmService's client directory and sync status.

use c2d_proto::crm::CrmServiceClient;
use c2d_proto::crm::v1::{
    ClientRecord, GetClientRequest, GetSyncStatusRequest, SearchClientsRequest,
    get_client_request::By,
};
use serde_json::json;
use tonic::transport::Channel;

use c2dctl::output::{Rows, time};

async fn connect(url: &str) -> anyhow::Result<CrmServiceClient<Channel>> {
    CrmServiceClient::connect(url.to_owned())
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot reach CrmService at {url}: {e}; is c2d-crm-sync running? (--crm-url)"
            )
        })
}

const CLIENT_COLUMNS: [&str; 8] = [
    "client_id",
    "name",
    "phone",
    "transports",
    "tags",
    "open_requests",
    "operator",
    "last_contact",
];

fn client_row(c: &ClientRecord) -> Vec<serde_json::Value> {
    vec![
        json!(c.client_id),
        json!(c.name),
        json!(c.phone),
        json!(c.transports),
        json!(c.tags),
        json!(c.open_request_ids),
        json!(c.current_operator_id),
        time(c.last_contact_at.as_ref()),
    ]
}

/// One client by id.
pub async fn client(url: String, tenant: String, client_id: i64) -> anyhow::Result<Rows> {
    let record = connect(&url)
        .await?
        .get_client(GetClientRequest {
            tenant,
            by: Some(By::ClientId(client_id)),
        })
        .await?
        .into_inner();
    let mut rows = Rows::new(&CLIENT_COLUMNS);
    rows.push(client_row(&record));
    Ok(rows)
}

/// Clients of a tenant, by tag or name prefix, up to `limit`.
pub async fn search(
    url: String,
    tenant: String,
    tag: Option<String>,
    name_prefix: Option<String>,
    limit: u32,
) -> anyhow::Result<Rows> {
    let answer = connect(&url)
        .await?
        .search_clients(SearchClientsRequest {
            tenant,
            name_prefix,
            tag,
            transport: None,
            has_open_request: None,
            limit,
            after_client_id: 0,
        })
        .await?
        .into_inner();
    let mut rows = Rows::new(&CLIENT_COLUMNS);
    for client in &answer.clients {
        rows.push(client_row(client));
    }
    Ok(rows)
}

/// How far crm-sync has read the log, and its connectors' queues.
pub async fn status(url: String) -> anyhow::Result<Rows> {
    let status = connect(&url)
        .await?
        .get_sync_status(GetSyncStatusRequest {})
        .await?
        .into_inner();
    let mut rows = Rows::new(&[
        "what",
        "applied",
        "lag",
        "queue",
        "dead_letters",
        "delivered",
        "last_error",
    ]);
    rows.push(vec![
        json!("projection"),
        json!(status.applied_sequence),
        json!(status.lag),
        json!(null),
        json!(null),
        json!(null),
        json!(null),
    ]);
    for c in &status.connectors {
        rows.push(vec![
            json!(format!("connector {} ({})", c.name, c.kind)),
            json!(null),
            json!(null),
            json!(c.queue_depth),
            json!(c.dead_letters),
            json!(c.delivered),
            json!(c.last_error),
        ]);
    }
    Ok(rows)
}
