//! What tests of replicas compare: a tenant's analytics answers and CRM directory (and how far
//! in the log it is applied), read over gRPC from any replica and from a process that read the
//! whole log; and the traffic they are built from.

use std::collections::BTreeMap;

use c2d_proto::analytics::AnalyticsServiceClient;
use c2d_proto::analytics::v1::{
    Dimension, Granularity, Metric, SummaryRequest, TimeRange, TimeSeriesRequest,
};
use c2d_proto::crm::CrmServiceClient;
use c2d_proto::crm::v1::{
    GetClientRequest, GetSyncStatusRequest, ListClientRequestsRequest, ListClientTagsRequest,
    SearchClientsRequest, SyncStatus, get_client_request::By,
};
use prost_types::Timestamp;
use serde_json::json;
use tonic::transport::Channel;

/// 2024-03-10T00:00:00Z: the day every conversation happens on.
pub const DAY: i64 = 1_710_028_800;

/// The webhook bodies of conversation `request` of the `n`-th tenant, as Chat2Desk sends
/// them: a client card, a message in, an answer, a tag, the request closed. Its client is one
/// of four, whose card each conversation changes.
pub fn conversation(request: i64, n: usize) -> Vec<serde_json::Value> {
    let opened = DAY + request * 600 + n as i64;
    let client = 1_000 + request % 4;
    vec![
        json!({"id": client, "name": format!("Cliente {request}"), "phone": format!("+55 11 9{client:04}-0000"),
               "channels": [{"id": 3, "transports": ["whatsapp"]}], "hook_type": "new_client", "event_time": opened}),
        json!({"message_id": request * 10 + 1, "type": "from_client", "text": "Olá", "transport": "whatsapp",
               "client_id": client, "channel_id": 3, "request_id": request, "hook_type": "inbox", "event_time": opened + 1}),
        json!({"message_id": request * 10 + 2, "type": "to_client", "text": "Bom dia", "transport": "whatsapp",
               "client_id": client, "operator_id": 7 + request % 3, "channel_id": 3, "request_id": request,
               "hook_type": "outbox", "event_time": opened + 30 + request}),
        json!({"id": 5 + request % 2, "name": format!("tag {}", request % 2), "client_id": client,
               "hook_type": "add_tag_to_client", "event_time": opened + 40}),
        json!({"dialog_id": 1, "request_id": request, "created": opened, "updated": opened + 900,
               "client_id": client, "channel_id": 3, "operator_id": 7, "transport": "whatsapp",
               "hook_type": "close_request", "event_time": opened + 900}),
    ]
}

/// Conversations `requests` of the tenants `tenant-0` .. `tenant-{tenants - 1}`, posted
/// through `pipeline`'s gateway (as [`crate::Pipeline::start_partitioned`] names them).
pub async fn post_conversations(
    pipeline: &crate::Pipeline,
    requests: std::ops::Range<i64>,
    tenants: usize,
) {
    for request in requests {
        for n in 0..tenants {
            for body in conversation(request, n) {
                pipeline
                    .post_as(&format!("tenant-{n}"), body.to_string())
                    .await;
            }
        }
    }
}

fn day() -> Option<TimeRange> {
    let at = |seconds| Some(Timestamp { seconds, nanos: 0 });
    Some(TimeRange {
        start: at(DAY),
        end: at(DAY + 86_400),
    })
}

/// A tenant's operator and channel summaries and hourly inbound series for [`DAY`], as one
/// comparable text; `Err` with the status when the service cannot answer yet.
pub async fn analytics_answers(
    client: &mut AnalyticsServiceClient<Channel>,
    tenant: &str,
) -> Result<String, String> {
    let text = |status: tonic::Status| format!("{tenant}: {status}");
    let summary = SummaryRequest {
        sla_business_minutes: 0,
        tenant: tenant.into(),
        range: day(),
    };
    let series = TimeSeriesRequest {
        tenant: tenant.into(),
        metric: Metric::InboundMessages as i32,
        range: day(),
        granularity: Granularity::Hour as i32,
        group_by: Dimension::Unspecified as i32,
        filters: vec![],
        quantile: 0.0,
    };
    let operators = client
        .operator_summary(summary.clone())
        .await
        .map_err(text)?;
    let channels = client.channel_summary(summary).await.map_err(text)?;
    let inbound = client.query_time_series(series).await.map_err(text)?;
    Ok(format!(
        "{:?} {:?} {:?}",
        operators.into_inner(),
        channels.into_inner(),
        inbound.into_inner()
    ))
}

/// A tenant's requests closed on [`DAY`], as AnalyticsService counts them.
pub async fn requests_closed(
    client: &mut AnalyticsServiceClient<Channel>,
    tenant: &str,
) -> Result<u64, String> {
    requests_closed_or_status(client, tenant)
        .await
        .map_err(|status| format!("{tenant}: {status}"))
}

/// As [`requests_closed`], with the status of a call that failed, for tests that tell
/// "ask again" (UNAVAILABLE) from other failures.
pub async fn requests_closed_or_status(
    client: &mut AnalyticsServiceClient<Channel>,
    tenant: &str,
) -> Result<u64, tonic::Status> {
    let summary = SummaryRequest {
        sla_business_minutes: 0,
        tenant: tenant.into(),
        range: day(),
    };
    let answer = client.operator_summary(summary).await?;
    Ok(answer
        .into_inner()
        .total
        .map_or(0, |total| total.requests_closed))
}

/// Every client of each of `tenants` with its requests and tags, as CrmService answers them.
pub async fn crm_directory(
    client: &mut CrmServiceClient<Channel>,
    tenants: &[String],
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let text = |status: tonic::Status| status.to_string();
    let mut directory = BTreeMap::new();
    for tenant in tenants {
        let search = SearchClientsRequest {
            tenant: tenant.clone(),
            limit: 1000,
            ..Default::default()
        };
        let found = client.search_clients(search).await.map_err(text)?;
        let mut records = Vec::new();
        for summary in found.into_inner().clients {
            let (tenant, client_id) = (tenant.clone(), summary.client_id);
            let record = client
                .get_client(GetClientRequest {
                    tenant: tenant.clone(),
                    by: Some(By::ClientId(client_id)),
                })
                .await
                .map_err(text)?;
            let requests = client
                .list_client_requests(ListClientRequestsRequest {
                    tenant: tenant.clone(),
                    client_id,
                })
                .await
                .map_err(text)?;
            let tags = client
                .list_client_tags(ListClientTagsRequest { tenant, client_id })
                .await
                .map_err(text)?;
            records.push(format!(
                "{:?} {:?} {:?}",
                record.into_inner(),
                requests.into_inner(),
                tags.into_inner()
            ));
        }
        directory.insert(tenant.clone(), records);
    }
    Ok(directory)
}

/// CrmService's sync status: the log sequence applied is what replicas must agree on.
pub async fn crm_sync_status(mut client: CrmServiceClient<Channel>) -> Result<SyncStatus, String> {
    let answer = client.get_sync_status(GetSyncStatusRequest {}).await;
    Ok(answer.map_err(|status| status.to_string())?.into_inner())
}
