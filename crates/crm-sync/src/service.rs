//! CrmService over gRPC: validation, then a read of the directory or the queues.

use std::sync::Arc;

use c2d_proto::crm::CrmService;
use c2d_proto::crm::v1::{
    ClientChannel, ClientDialog, ClientRecord, ClientRequest, ConnectorStatus, DeadLetter,
    GetClientRequest, GetSyncStatusRequest, ListClientRequestsRequest, ListClientRequestsResponse,
    ListClientTagsRequest, ListClientTagsResponse, ListDeadLettersRequest, ListDeadLettersResponse,
    RequestState, ResyncClientRequest, ResyncClientResponse, RetryDeadLettersRequest,
    RetryDeadLettersResponse, SearchClientsRequest, SearchClientsResponse, SyncStatus, TagRecord,
    get_client_request,
};
use tonic::{Request, Response, Status};

use crate::clock;
use crate::directory::{self, ClientView, DialogView, Lookup, RequestView, Search, TagView};
use crate::error::CrmError;
use crate::projection::ClientKey;
use crate::runner::Shared;
use crate::{change, outbox};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 1_000;

/// The gRPC face of the directory.
#[derive(Clone)]
pub struct CrmGrpc {
    shared: Arc<Shared>,
}

impl CrmGrpc {
    pub fn new(shared: Arc<Shared>) -> Self {
        CrmGrpc { shared }
    }

    async fn client_key(&self, tenant: &str, client_id: i64) -> Result<ClientKey, CrmError> {
        let tenant = tenant_of(tenant)?;
        if client_id <= 0 {
            return Err(CrmError::InvalidArgument(
                "client_id is required: the Chat2Desk client id, a positive number".into(),
            ));
        }
        let key = ClientKey {
            tenant: tenant.to_owned(),
            client_id,
        };
        if !directory::exists(&self.shared.store, &key).await? {
            return Err(not_found(tenant, &format!("client_id {client_id}")));
        }
        Ok(key)
    }

    /// The names of the configured connectors that `name` selects ("" = all).
    fn connectors(&self, name: &str) -> Result<Vec<String>, CrmError> {
        let all: Vec<String> = self
            .shared
            .connectors
            .iter()
            .map(|c| c.name.clone())
            .collect();
        if name.is_empty() {
            return Ok(all);
        }
        if all.iter().any(|c| c == name) {
            Ok(vec![name.to_owned()])
        } else {
            Err(CrmError::InvalidArgument(format!(
                "no connector is named {name:?}; configured: {}",
                if all.is_empty() {
                    "none (set CRM_CONNECTORS_FILE)".to_owned()
                } else {
                    all.join(", ")
                }
            )))
        }
    }
}

fn tenant_of(tenant: &str) -> Result<&str, CrmError> {
    let tenant = tenant.trim();
    if tenant.is_empty() {
        return Err(CrmError::InvalidArgument(
            "tenant is required: the tenant name of the webhook URL (/hooks/chat2desk/{tenant})"
                .into(),
        ));
    }
    Ok(tenant)
}

fn not_found(tenant: &str, what: &str) -> CrmError {
    CrmError::NotFound(format!(
        "tenant {tenant:?} has no client with {what} (yet: events may still be on their way; see GetSyncStatus)"
    ))
}

fn record(view: ClientView) -> ClientRecord {
    let transports = view.transports().into_iter().map(str::to_owned).collect();
    ClientRecord {
        tenant: view.key.tenant,
        client_id: view.key.client_id,
        name: view.name,
        phone: view.phone,
        client_phone: view.client_phone,
        avatar: view.avatar,
        assigned_name: view.assigned_name,
        comment: view.comment,
        extra_comment_1: view.extra_comment_1,
        extra_comment_2: view.extra_comment_2,
        extra_comment_3: view.extra_comment_3,
        external_id: view.external_id,
        region_id: view.region_id,
        country_id: view.country_id,
        custom_fields: Some(
            view.custom_fields
                .as_object()
                .map(c2d_hooks::json::to_struct)
                .unwrap_or_default(),
        ),
        channels: view
            .channels
            .into_iter()
            .map(|(transport, channel_id)| ClientChannel {
                channel_id,
                transport,
            })
            .collect(),
        transports,
        tags: view.tags,
        open_request_ids: view.open_requests.iter().map(|r| r.request_id).collect(),
        current_operator_id: view.current_operator_id,
        first_contact_at: view.first_contact_at.map(clock::timestamp),
        last_contact_at: view.last_contact_at.map(clock::timestamp),
        profile_updated_at: view.profile_at.map(clock::timestamp),
    }
}

fn request_record(request: RequestView) -> ClientRequest {
    let state = if request.closed_at.is_some() {
        RequestState::Closed
    } else {
        RequestState::Open
    };
    ClientRequest {
        request_id: request.request_id,
        dialog_id: request.dialog_id,
        channel_id: request.channel_id,
        transport: request.transport,
        state: state as i32,
        operator_id: request.operator_id,
        opened_at: request.opened_at.map(clock::timestamp),
        closed_at: request.closed_at.map(clock::timestamp),
        last_message_at: request.last_message_at.map(clock::timestamp),
        tags: request.tags,
    }
}

fn dialog_record(dialog: DialogView) -> ClientDialog {
    let state = if dialog.is_closed() {
        RequestState::Closed
    } else {
        RequestState::Open
    };
    ClientDialog {
        dialog_id: dialog.dialog_id,
        channel_id: dialog.channel_id,
        transport: dialog.transport,
        state: state as i32,
        operator_id: dialog.operator_id,
        last_activity_at: dialog.last_activity_at.map(clock::timestamp),
        closed_at: dialog.closed_at.map(clock::timestamp),
    }
}

fn tag_record(tag: TagView) -> TagRecord {
    TagRecord {
        tag_id: tag.tag_id,
        name: tag.name,
        description: tag.description,
        group_id: tag.group_id,
        group_name: tag.group_name,
        request_id: tag.request_id,
        tagged_at: Some(clock::timestamp(tag.tagged_at)),
    }
}

fn page(limit: u32, default: u32) -> Result<i64, CrmError> {
    match limit {
        0 => Ok(i64::from(default)),
        n if n <= MAX_PAGE => Ok(i64::from(n)),
        n => Err(CrmError::InvalidArgument(format!(
            "limit {n} is too large: at most {MAX_PAGE}; page with after_client_id"
        ))),
    }
}

#[tonic::async_trait]
impl CrmService for CrmGrpc {
    async fn get_client(
        &self,
        request: Request<GetClientRequest>,
    ) -> Result<Response<ClientRecord>, Status> {
        let request = request.into_inner();
        let tenant = tenant_of(&request.tenant)?;
        let (lookup, what) = match request.by {
            Some(get_client_request::By::ClientId(id)) if id > 0 => {
                (Lookup::Id(id), format!("client_id {id}"))
            }
            Some(get_client_request::By::Phone(phone)) if !phone.trim().is_empty() => {
                let what = format!("phone {phone:?}");
                (Lookup::Phone(phone), what)
            }
            Some(get_client_request::By::ExternalId(id)) if !id.trim().is_empty() => {
                let what = format!("external_id {id:?}");
                (Lookup::ExternalId(id), what)
            }
            _ => {
                return Err(CrmError::InvalidArgument(
                    "name the client by client_id (positive), phone or external_id (not empty)"
                        .into(),
                )
                .into());
            }
        };
        match directory::find(&self.shared.store, tenant, &lookup)
            .await
            .map_err(CrmError::from)?
        {
            Some(view) => Ok(Response::new(record(view))),
            None => Err(not_found(tenant, &what).into()),
        }
    }

    async fn search_clients(
        &self,
        request: Request<SearchClientsRequest>,
    ) -> Result<Response<SearchClientsResponse>, Status> {
        let request = request.into_inner();
        let tenant = tenant_of(&request.tenant)?;
        let search = Search {
            name_prefix: request.name_prefix.filter(|p| !p.trim().is_empty()),
            tag: request.tag,
            transport: request.transport,
            has_open_request: request.has_open_request,
            after_client_id: request.after_client_id,
            limit: page(request.limit, DEFAULT_PAGE)?,
        };
        let (views, more) = directory::search(&self.shared.store, tenant, &search)
            .await
            .map_err(CrmError::from)?;
        let next_after = if more {
            views.last().map(|v| v.key.client_id)
        } else {
            None
        };
        Ok(Response::new(SearchClientsResponse {
            clients: views.into_iter().map(record).collect(),
            next_after,
        }))
    }

    async fn list_client_requests(
        &self,
        request: Request<ListClientRequestsRequest>,
    ) -> Result<Response<ListClientRequestsResponse>, Status> {
        let request = request.into_inner();
        let key = self.client_key(&request.tenant, request.client_id).await?;
        let mut connection = self
            .shared
            .store
            .pool()
            .acquire()
            .await
            .map_err(|e| CrmError::Store(e.into()))?;
        let requests = directory::requests(&mut connection, &key)
            .await
            .map_err(CrmError::from)?;
        let dialogs = directory::dialogs(&mut connection, &key)
            .await
            .map_err(CrmError::from)?;
        Ok(Response::new(ListClientRequestsResponse {
            requests: requests.into_iter().map(request_record).collect(),
            dialogs: dialogs.into_iter().map(dialog_record).collect(),
        }))
    }

    async fn list_client_tags(
        &self,
        request: Request<ListClientTagsRequest>,
    ) -> Result<Response<ListClientTagsResponse>, Status> {
        let request = request.into_inner();
        let key = self.client_key(&request.tenant, request.client_id).await?;
        let mut connection = self
            .shared
            .store
            .pool()
            .acquire()
            .await
            .map_err(|e| CrmError::Store(e.into()))?;
        let (client_tags, request_tags): (Vec<TagView>, Vec<TagView>) =
            directory::tags(&mut connection, &key)
                .await
                .map_err(CrmError::from)?
                .into_iter()
                .partition(|tag| tag.request_id.is_none());
        Ok(Response::new(ListClientTagsResponse {
            client_tags: client_tags.into_iter().map(tag_record).collect(),
            request_tags: request_tags.into_iter().map(tag_record).collect(),
        }))
    }

    async fn get_sync_status(
        &self,
        _request: Request<GetSyncStatusRequest>,
    ) -> Result<Response<SyncStatus>, Status> {
        let shared = &self.shared;
        let applied_sequence = shared.applied_sequence().await?;
        let stream_last_sequence = shared.stream_last_sequence().await?;
        let mut connectors = Vec::new();
        for connector in &shared.connectors {
            let queue = outbox::status(&shared.store, &connector.name)
                .await
                .map_err(CrmError::from)?;
            connectors.push(ConnectorStatus {
                name: connector.name.clone(),
                kind: connector.kind().to_owned(),
                queue_depth: queue.pending,
                dead_letters: queue.dead,
                delivered: shared.delivered(&connector.name),
                oldest_pending_since: queue.oldest_pending_queued_at.map(clock::timestamp),
                last_error: queue.last_error,
            });
        }
        Ok(Response::new(SyncStatus {
            applied_sequence,
            stream_last_sequence,
            lag: shared.directory_lag(applied_sequence, stream_last_sequence),
            connectors,
        }))
    }

    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        let request = request.into_inner();
        self.connectors(&request.connector)?;
        let limit = match request.limit {
            0 => 100,
            n if n <= MAX_PAGE => i64::from(n),
            n => {
                return Err(CrmError::InvalidArgument(format!(
                    "limit {n} is too large: at most {MAX_PAGE}"
                ))
                .into());
            }
        };
        let connector = (!request.connector.is_empty()).then_some(request.connector.as_str());
        let tenant = (!request.tenant.is_empty()).then_some(request.tenant.as_str());
        let letters = outbox::dead_letters(&self.shared.store, connector, tenant, limit)
            .await
            .map_err(CrmError::from)?;
        Ok(Response::new(ListDeadLettersResponse {
            dead_letters: letters
                .into_iter()
                .map(|change| DeadLetter {
                    id: change.id,
                    connector: change.connector,
                    tenant: change.tenant,
                    client_id: change.client_id,
                    idempotency_key: change.idempotency_key,
                    attempts: change.attempts.max(0) as u32,
                    last_error: change.last_error.unwrap_or_default(),
                    queued_at: Some(clock::timestamp(change.queued_at)),
                    change_json: change.payload,
                })
                .collect(),
        }))
    }

    async fn retry_dead_letters(
        &self,
        request: Request<RetryDeadLettersRequest>,
    ) -> Result<Response<RetryDeadLettersResponse>, Status> {
        let request = request.into_inner();
        self.connectors(&request.connector)?;
        let connector = (!request.connector.is_empty()).then_some(request.connector.as_str());
        let tenant = (!request.tenant.is_empty()).then_some(request.tenant.as_str());
        let requeued = outbox::retry(&self.shared.store, connector, tenant, &request.ids)
            .await
            .map_err(CrmError::from)?;
        tracing::info!(requeued, connector = ?connector, "dead letters put back in the queue");
        self.shared.wake_connectors();
        Ok(Response::new(RetryDeadLettersResponse { requeued }))
    }

    async fn resync_client(
        &self,
        request: Request<ResyncClientRequest>,
    ) -> Result<Response<ResyncClientResponse>, Status> {
        let request = request.into_inner();
        let key = self.client_key(&request.tenant, request.client_id).await?;
        let serving = self.shared.connectors_for(&key.tenant);
        let connectors: Vec<String> = self
            .connectors(&request.connector)?
            .into_iter()
            .filter(|name| serving.contains(name))
            .collect();
        let store = &self.shared.store;
        let queued = {
            let _writing = store.write().await;
            let mut transaction = store
                .pool()
                .begin()
                .await
                .map_err(|e| CrmError::Store(e.into()))?;
            let queued = change::queue_if_changed(&mut transaction, &key, &connectors, true)
                .await
                .map_err(CrmError::from)?;
            transaction
                .commit()
                .await
                .map_err(|e| CrmError::Store(e.into()))?;
            queued
        };
        self.shared.wake_connectors();
        Ok(Response::new(ResyncClientResponse { queued }))
    }
}
