//! The client directory end to end, on SQLite and on PostgreSQL: Chat2Desk's fixtures and a
//! scripted client history are POSTed through a real gateway into a real nats-server, applied
//! by c2d-crm-sync, and read back over real gRPC; the projection is exactly what the script
//! implies, whatever the order and however often events arrive. Two CRMs (HubSpot's contacts
//! API and a generic HTTP endpoint, both local servers speaking their documented shapes) are
//! down while it happens; once they are back, each receives every change, in order, once.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use c2d_crm_sync::runner::HOOK_TYPES;
use c2d_crm_sync::{Config, CrmSync};
use c2d_proto::crm::CrmServiceClient;
use c2d_proto::crm::v1::{
    GetClientRequest, GetSyncStatusRequest, ListClientRequestsRequest, ListClientTagsRequest,
    ListDeadLettersRequest, RequestState, ResyncClientRequest, RetryDeadLettersRequest,
    SearchClientsRequest, SyncStatus, get_client_request::By,
};
use c2d_testkit::{InProcess, Pipeline, TestDatabase, stored_events, webhook_fixtures};
use prost::Message as _;
use script::{at, globex_script, tag};
use serde_json::{Value as Json, json};
use tonic::Code;
use tonic::transport::Channel;

mod script;

const HUBSPOT_TOKEN: &str = "pat-test-123";
const CRM_KEY: &str = "crm-key-456";

// ---------------------------------------------------------------------------------------------
// Two CRMs on one local server.

/// What the local CRMs received and how they behave.
#[derive(Default)]
struct CrmState {
    /// Both answer 503 while true.
    down: bool,
    /// The generic endpoint refuses (400) changes of these clients.
    refused_clients: HashSet<i64>,
    /// (change key, upsert input) per accepted HubSpot input; the key is rebuilt from the
    /// input's properties, since a batch call carries many changes.
    hubspot: Vec<(String, Json)>,
    /// HubSpot's object ids, by our id property value.
    hubspot_ids: BTreeMap<String, u64>,
    /// (Idempotency-Key, body) per accepted generic call.
    generic: Vec<(String, Json)>,
}

type Shared = Arc<Mutex<CrmState>>;

fn hubspot_error(
    status: StatusCode,
    message: &str,
    category: &str,
) -> (StatusCode, axum::Json<Json>) {
    (
        status,
        axum::Json(
            json!({"status": "error", "message": message, "correlationId": "c0ffee", "category": category}),
        ),
    )
}

/// `POST /crm/v3/objects/contacts/batch/upsert`, as HubSpot documents it.
async fn hubspot_upsert(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, axum::Json<Json>) {
    let mut state = state.lock().unwrap();
    if state.down {
        return hubspot_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service temporarily unavailable",
            "SERVICE_UNAVAILABLE",
        );
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {HUBSPOT_TOKEN}"))
    {
        return hubspot_error(
            StatusCode::UNAUTHORIZED,
            "Authentication credentials not found.",
            "INVALID_AUTHENTICATION",
        );
    }
    let Ok(body) = serde_json::from_str::<Json>(&body) else {
        return hubspot_error(
            StatusCode::BAD_REQUEST,
            "Invalid input JSON",
            "VALIDATION_ERROR",
        );
    };
    let Some(inputs) = body["inputs"]
        .as_array()
        .filter(|i| !i.is_empty() && i.len() <= 100)
    else {
        return hubspot_error(
            StatusCode::BAD_REQUEST,
            "inputs must hold 1 to 100 objects",
            "VALIDATION_ERROR",
        );
    };
    // A batch with a contact HubSpot will not take is refused as a whole, as HubSpot does.
    if inputs.iter().any(|input| {
        input["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .is_some_and(|id| state.refused_clients.contains(&id))
    }) {
        return hubspot_error(
            StatusCode::BAD_REQUEST,
            "Property values were not valid: phone",
            "VALIDATION_ERROR",
        );
    }
    let mut results = Vec::new();
    for input in inputs {
        let (Some(id_property), Some(id), Some(properties)) = (
            input["idProperty"].as_str(),
            input["id"].as_str(),
            input["properties"].as_object(),
        ) else {
            return hubspot_error(
                StatusCode::BAD_REQUEST,
                "each input needs idProperty, id and properties",
                "VALIDATION_ERROR",
            );
        };
        if properties.values().any(|v| !v.is_string()) {
            return hubspot_error(
                StatusCode::BAD_REQUEST,
                "property values must be strings",
                "VALIDATION_ERROR",
            );
        }
        if properties.get(id_property).and_then(Json::as_str) != Some(id) {
            return hubspot_error(
                StatusCode::BAD_REQUEST,
                "the id property must hold the id",
                "VALIDATION_ERROR",
            );
        }
        let next = state.hubspot_ids.len() as u64 + 9_000_001;
        let new = !state.hubspot_ids.contains_key(id);
        let object_id = *state.hubspot_ids.entry(id.to_owned()).or_insert(next);
        let key = format!(
            "c2d:{}:{id}:{}",
            properties["chat2desk_tenant"].as_str().unwrap_or_default(),
            properties["chat2desk_version"].as_str().unwrap_or_default()
        );
        state.hubspot.push((key, input.clone()));
        results.push(json!({"id": object_id.to_string(), "properties": properties, "createdAt": "2024-05-01T10:00:00Z",
                            "updatedAt": "2024-05-01T10:00:00Z", "archived": false, "new": new}));
    }
    (
        StatusCode::OK,
        axum::Json(json!({"status": "COMPLETE", "results": results,
        "startedAt": "2024-05-01T10:00:00Z", "completedAt": "2024-05-01T10:00:00Z"})),
    )
}

/// The generic endpoint: a JSON body built by the connector's mapping.
async fn generic_contact(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let mut state = state.lock().unwrap();
    if state.down {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(CRM_KEY) {
        return StatusCode::UNAUTHORIZED;
    }
    let body: Json = serde_json::from_str(&body).unwrap();
    if state
        .refused_clients
        .contains(&body["contact"]["id"].as_i64().unwrap())
    {
        return StatusCode::UNPROCESSABLE_ENTITY;
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    state.generic.push((key.to_owned(), body));
    StatusCode::CREATED
}

async fn start_crms(state: Shared) -> SocketAddr {
    let app = axum::Router::new()
        .route(
            "/crm/v3/objects/contacts/batch/upsert",
            post(hubspot_upsert),
        )
        .route("/contacts", post(generic_contact))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn connectors_file(dir: &std::path::Path, crms: SocketAddr) -> String {
    let path = dir.join("connectors.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[[connector]]
name = "hubspot"
kind = "hubspot"
base_url = "http://{crms}"
token = "${{TEST_HUBSPOT_TOKEN}}"
initial_backoff_ms = 20
max_backoff_ms = 200
max_attempts = 10000
[connector.properties]
chat2desk_client_id = "$.client_id"
firstname = "$.name"
phone = "$.client_phone"
chat2desk_tags = "$.tags"
chat2desk_version = "$.version"
chat2desk_tenant = "$.tenant"

[[connector]]
name = "crm"
kind = "http"
url = "http://{crms}/contacts"
headers = {{ "X-Api-Key" = "${{TEST_CRM_KEY}}" }}
initial_backoff_ms = 20
max_backoff_ms = 200
max_attempts = 10000
[connector.body]
source = "chat2desk"
version = "$.version"
tenant = "$.tenant"
contact = {{ id = "$.client_id", name = "$.name", phone = "$.client_phone", tags = "$.tags", transports = "$.transports", operator = "$.current_operator_id" }}
"#
        ),
    )
    .unwrap();
    path.display().to_string()
}

// ---------------------------------------------------------------------------------------------
// c2d-crm-sync in-process, on a free port.

struct Running {
    service: InProcess<c2d_crm_sync::CrmSyncError>,
    client: CrmServiceClient<Channel>,
}

async fn start_crm_sync(nats_url: &str, store_url: &str, connectors: &str) -> Running {
    let (nats_url, store_url, connectors) = (
        nats_url.to_owned(),
        store_url.to_owned(),
        connectors.to_owned(),
    );
    let config = Config::from_lookup(|name| match name {
        "NATS_URL" => Some(nats_url.clone()),
        "CRM_STORE_URL" => Some(store_url.clone()),
        "CRM_CONNECTORS_FILE" => Some(connectors.clone()),
        "CRM_METRICS_ADDR" => Some("127.0.0.1:0".into()),
        "TEST_HUBSPOT_TOKEN" => Some(HUBSPOT_TOKEN.into()),
        "TEST_CRM_KEY" => Some(CRM_KEY.into()),
        _ => None,
    })
    .expect("test configuration is valid");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let crm_sync = CrmSync::open(config)
        .await
        .expect("crm-sync opens its store");
    let service = InProcess::spawn(|shutdown| crm_sync.run(listener, shutdown));
    for _ in 0..200 {
        if let Ok(client) = CrmServiceClient::connect(endpoint.clone()).await {
            return Running { service, client };
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("CrmService did not come up at {endpoint}");
}

impl Running {
    async fn stop(self) {
        self.service.stop().await;
    }
}

async fn status(client: &mut CrmServiceClient<Channel>) -> SyncStatus {
    client
        .get_sync_status(GetSyncStatusRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// Waits until every stored event of the kinds crm-sync reads is applied.
async fn wait_applied(pipeline: &Pipeline, client: &mut CrmServiceClient<Channel>) -> u64 {
    let last = stored_events(&pipeline.nats)
        .await
        .unwrap()
        .iter()
        .filter(|(_, event)| HOOK_TYPES.contains(&event.hook_type.as_str()))
        .map(|(message, _)| message.sequence)
        .max()
        .unwrap_or(0);
    for _ in 0..800 {
        if status(client).await.applied_sequence >= last {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "crm-sync did not apply the stream up to {last}: {:?}",
        status(client).await
    );
}

/// Waits until both connectors' queues are empty.
async fn wait_delivered(client: &mut CrmServiceClient<Channel>) -> SyncStatus {
    for _ in 0..1200 {
        let status = status(client).await;
        if status.connectors.iter().all(|c| c.queue_depth == 0) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the connectors did not drain: {:?}", status(client).await);
}

// ---------------------------------------------------------------------------------------------
// The script.

async fn get(
    client: &mut CrmServiceClient<Channel>,
    tenant: &str,
    by: By,
) -> Result<c2d_proto::crm::v1::ClientRecord, tonic::Status> {
    client
        .get_client(GetClientRequest {
            tenant: tenant.into(),
            by: Some(by),
        })
        .await
        .map(|r| r.into_inner())
}

async fn search(client: &mut CrmServiceClient<Channel>, request: SearchClientsRequest) -> Vec<i64> {
    client
        .search_clients(request)
        .await
        .unwrap()
        .into_inner()
        .clients
        .iter()
        .map(|c| c.client_id)
        .collect()
}

fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

/// The versions each client's changes arrived with, in arrival order, from (key, version).
fn versions_by_client(received: &[(String, i64)]) -> BTreeMap<String, Vec<i64>> {
    let mut by_client: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (key, version) in received {
        // c2d:{tenant}:{client}:{version}:{state} (the HubSpot stand-in's, without the state)
        let parts: Vec<&str> = key.split(':').collect();
        let (client, key_version) = (parts[..3].join(":"), parts[3]);
        assert_eq!(
            key_version,
            version.to_string(),
            "the key names the change's version"
        );
        by_client.entry(client).or_default().push(*version);
    }
    by_client
}

/// Every change of every client, in order, once: versions 1, 2, ... n with no gap or repeat.
fn assert_every_change_once_in_order(connector: &str, received: &[(String, i64)]) {
    let keys: HashSet<&String> = received.iter().map(|(key, _)| key).collect();
    assert_eq!(
        keys.len(),
        received.len(),
        "{connector}: a change arrived twice"
    );
    for (client, versions) in versions_by_client(received) {
        let expected: Vec<i64> = (1..=versions.len() as i64).collect();
        assert_eq!(
            versions, expected,
            "{connector}: {client}'s changes, in arrival order"
        );
    }
}

async fn scenario(store_url: &str) {
    let pipeline = Pipeline::start().await;
    let crm_state: Shared = Arc::new(Mutex::new(CrmState {
        down: true,
        ..Default::default()
    }));
    crm_state.lock().unwrap().refused_clients.insert(503);
    let crms = start_crms(Arc::clone(&crm_state)).await;
    let dir = tempfile::tempdir().unwrap();
    let connectors = connectors_file(dir.path(), crms);
    let running = start_crm_sync(&pipeline.nats.url(), store_url, &connectors).await;
    let mut client = running.client.clone();

    // Chat2Desk's examples for acme, the script for globex, while both CRMs are down.
    for (_, body) in webhook_fixtures() {
        pipeline.post_as("acme", body).await;
    }
    for body in globex_script() {
        pipeline.post_as("globex", body.to_string()).await;
    }
    // A redelivery after the gateway's dedup window: the same event, a new stream sequence.
    let jetstream = pipeline.nats.jetstream().await;
    let (_, ana_card) = stored_events(&pipeline.nats)
        .await
        .unwrap()
        .into_iter()
        .find(|(_, e)| e.tenant == "globex" && e.hook_type == "client_updated")
        .unwrap();
    let republished = async_nats::jetstream::message::PublishMessage::build()
        .payload(ana_card.encode_to_vec().into())
        .message_id(format!("{}-again", ana_card.event_id));
    jetstream
        .send_publish(ana_card.subject(), republished)
        .await
        .unwrap()
        .await
        .unwrap();
    wait_applied(&pipeline, &mut client).await;

    // --- The projection, read over gRPC. ---
    let ana = get(&mut client, "globex", By::ClientId(501)).await.unwrap();
    assert_eq!(
        ana.name.as_deref(),
        Some("Ana Souza"),
        "the newest card wins over the late one"
    );
    assert_eq!(ana.comment.as_deref(), Some("prefers mornings"));
    assert_eq!(ana.assigned_name.as_deref(), Some("Ana S."));
    assert_eq!(ana.client_phone.as_deref(), Some("+55 11 98888-7777"));
    assert_eq!(ana.external_id.as_deref(), Some("crm-501"));
    assert_eq!((ana.region_id, ana.country_id), (Some(7), Some(55)));
    let custom: Json = c2d_hooks::json::from_struct(ana.custom_fields.as_ref().unwrap());
    assert_eq!(custom, json!({"city": "São Paulo", "vip_level": 2}));
    assert_eq!(ana.transports, ["telegram", "whatsapp"]);
    let channels: Vec<(Option<i64>, &str)> = ana
        .channels
        .iter()
        .map(|c| (c.channel_id, c.transport.as_str()))
        .collect();
    assert_eq!(channels, [(Some(11), "telegram"), (Some(10), "whatsapp")]);
    assert_eq!(
        ana.tags,
        ["VIP"],
        "Lead was removed, and its late add is older than the removal"
    );
    assert_eq!(ana.open_request_ids, [9002]);
    assert_eq!(ana.current_operator_id, Some(79));
    assert_eq!(ana.first_contact_at, ts(at(1)));
    assert_eq!(ana.last_contact_at, ts(at(12)));
    assert_eq!(ana.profile_updated_at, ts(at(7)));

    for phone in ["+55 11 98888-7777", "5511988887777", "+55 (11) 98888-7777"] {
        let found = get(&mut client, "globex", By::Phone(phone.into()))
            .await
            .unwrap();
        assert_eq!(found.client_id, 501, "by phone {phone}");
    }
    assert_eq!(
        get(&mut client, "globex", By::ExternalId("crm-501".into()))
            .await
            .unwrap()
            .client_id,
        501
    );
    assert_eq!(
        get(&mut client, "globex", By::Phone("+351 912 345 678".into()))
            .await
            .unwrap()
            .client_id,
        503
    );
    let missing = get(&mut client, "globex", By::ClientId(999))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    assert_eq!(
        get(&mut client, "acme", By::ExternalId("crm-501".into()))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound,
        "tenants are apart"
    );
    assert_eq!(
        get(&mut client, "", By::ClientId(501))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let no_lookup = client
        .get_client(GetClientRequest {
            tenant: "globex".into(),
            by: None,
        })
        .await
        .unwrap_err();
    assert_eq!(no_lookup.code(), Code::InvalidArgument);

    let answer = client
        .list_client_requests(ListClientRequestsRequest {
            tenant: "globex".into(),
            client_id: 501,
        })
        .await
        .unwrap()
        .into_inner();
    let dialogs: Vec<(i64, RequestState, Option<i64>)> = answer
        .dialogs
        .iter()
        .map(|d| (d.dialog_id, d.state(), d.operator_id))
        .collect();
    assert_eq!(
        dialogs,
        [
            (70002, RequestState::Open, Some(79)),
            (70001, RequestState::Closed, Some(78)),
        ]
    );
    assert_eq!(answer.dialogs[1].closed_at, ts(at(10)));
    let requests = answer.requests;
    let summary: Vec<(i64, RequestState, Option<i64>, Vec<String>)> = requests
        .iter()
        .map(|r| (r.request_id, r.state(), r.operator_id, r.tags.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (9002, RequestState::Open, Some(79), vec![]),
            (
                9001,
                RequestState::Closed,
                Some(78),
                vec!["Urgent".to_owned()]
            ),
        ]
    );
    assert_eq!(
        requests[1].opened_at,
        ts(at(0)),
        "opened when its dialog was created"
    );
    assert_eq!(requests[1].closed_at, ts(at(10)));
    assert_eq!(requests[1].last_message_at, ts(at(8)));
    assert_eq!(requests[1].transport.as_deref(), Some("whatsapp"));

    let tags = client
        .list_client_tags(ListClientTagsRequest {
            tenant: "globex".into(),
            client_id: 501,
        })
        .await
        .unwrap()
        .into_inner();
    let client_tags: Vec<(i64, Option<&str>, Option<&str>)> = tags
        .client_tags
        .iter()
        .map(|t| (t.tag_id, t.name.as_deref(), t.group_name.as_deref()))
        .collect();
    assert_eq!(client_tags, [(1, Some("VIP"), Some("Sales"))]);
    let request_tags: Vec<(i64, Option<i64>)> = tags
        .request_tags
        .iter()
        .map(|t| (t.tag_id, t.request_id))
        .collect();
    assert_eq!(
        request_tags,
        [(3, Some(9001))],
        "the tag went to the request open at the time"
    );
    assert_eq!(
        client
            .list_client_tags(ListClientTagsRequest {
                tenant: "globex".into(),
                client_id: 404
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    let query = |f: fn(&mut SearchClientsRequest)| {
        let mut request = SearchClientsRequest {
            tenant: "globex".into(),
            ..Default::default()
        };
        f(&mut request);
        request
    };
    assert_eq!(search(&mut client, query(|_| {})).await, [501, 502, 503]);
    assert_eq!(
        search(&mut client, query(|r| r.name_prefix = Some("ANA s".into()))).await,
        [501]
    );
    assert_eq!(
        search(&mut client, query(|r| r.name_prefix = Some("бор".into()))).await,
        [502]
    );
    assert_eq!(
        search(&mut client, query(|r| r.tag = Some("VIP".into()))).await,
        [501]
    );
    assert_eq!(
        search(&mut client, query(|r| r.tag = Some("Lead".into()))).await,
        Vec::<i64>::new()
    );
    assert_eq!(
        search(
            &mut client,
            query(|r| r.transport = Some("telegram".into()))
        )
        .await,
        [501, 502]
    );
    assert_eq!(
        search(&mut client, query(|r| r.has_open_request = Some(true))).await,
        [501, 502]
    );
    assert_eq!(
        search(&mut client, query(|r| r.has_open_request = Some(false))).await,
        [503]
    );
    let first_page = client
        .search_clients(query(|r| r.limit = 2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first_page.next_after, Some(502));
    let next = search(
        &mut client,
        SearchClientsRequest {
            after_client_id: 502,
            ..query(|r| r.limit = 2)
        },
    )
    .await;
    assert_eq!(next, [503]);
    assert_eq!(
        client
            .search_clients(query(|r| r.limit = 5_000))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );

    // Chat2Desk's own examples, as the projection reads them.
    let acme = search(
        &mut client,
        SearchClientsRequest {
            tenant: "acme".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(acme, [1000, 17340089, 18360561, 27129636]);
    let peter = get(&mut client, "acme", By::ClientId(17340089))
        .await
        .unwrap();
    assert_eq!(
        peter.name.as_deref(),
        Some("Peter"),
        "from the message's client card"
    );
    assert_eq!(peter.phone.as_deref(), Some("[tg] 807892"));
    assert_eq!(
        peter.tags,
        Vec::<String>::new(),
        "TestTag was added, then deleted"
    );
    assert_eq!(peter.open_request_ids, [8725095]);
    assert_eq!(peter.current_operator_id, Some(41164));
    let card = get(&mut client, "acme", By::Phone("[tg] 1938691".into()))
        .await
        .unwrap();
    assert_eq!(card.client_id, 18360561);
    assert_eq!(card.transports, ["telegram"]);
    let closed = client
        .list_client_requests(ListClientRequestsRequest {
            tenant: "acme".into(),
            client_id: 27129636,
        })
        .await
        .unwrap()
        .into_inner()
        .requests;
    assert_eq!(closed.len(), 1);
    assert_eq!(
        (
            closed[0].request_id,
            closed[0].state(),
            closed[0].operator_id
        ),
        (8086095, RequestState::Closed, Some(39538))
    );

    // --- The CRMs were down: the changes wait in order. ---
    let waiting = status(&mut client).await;
    assert_eq!(waiting.lag, 0);
    for connector in &waiting.connectors {
        assert!(connector.queue_depth > 0, "{connector:?}");
        assert!(
            connector
                .last_error
                .as_deref()
                .unwrap_or_default()
                .contains("503"),
            "{connector:?}"
        );
    }
    assert!(crm_state.lock().unwrap().hubspot.is_empty());

    // --- Back up: every change arrives, in order, once; Carla's is refused and dead-lettered. ---
    crm_state.lock().unwrap().down = false;
    let drained = wait_delivered(&mut client).await;
    for connector in &drained.connectors {
        assert_eq!(connector.dead_letters, 1, "{connector:?}");
    }
    let (hubspot_received, generic_received) = {
        let state = crm_state.lock().unwrap();
        let hubspot: Vec<(String, i64)> = state
            .hubspot
            .iter()
            .map(|(key, input)| {
                (
                    key.clone(),
                    input["properties"]["chat2desk_version"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap(),
                )
            })
            .collect();
        let generic: Vec<(String, i64)> = state
            .generic
            .iter()
            .map(|(key, body)| (key.clone(), body["version"].as_i64().unwrap()))
            .collect();
        (hubspot, generic)
    };
    assert_every_change_once_in_order("hubspot", &hubspot_received);
    assert_every_change_once_in_order("crm", &generic_received);
    let ana_versions = versions_by_client(&hubspot_received)["c2d:globex:501"].len();
    assert!(
        ana_versions >= 6,
        "Ana changed at least six times as a CRM sees her: {ana_versions}"
    );
    {
        let state = crm_state.lock().unwrap();
        let (_, last) = state
            .hubspot
            .iter()
            .rev()
            .find(|(key, _)| key.starts_with("c2d:globex:501:"))
            .unwrap();
        assert_eq!(last["idProperty"], "chat2desk_client_id");
        assert_eq!(last["id"], "501");
        assert_eq!(last["properties"]["firstname"], "Ana Souza");
        assert_eq!(last["properties"]["phone"], "+55 11 98888-7777");
        assert_eq!(last["properties"]["chat2desk_tags"], "VIP");
        let (_, body) = state
            .generic
            .iter()
            .rev()
            .find(|(key, _)| key.starts_with("c2d:globex:501:"))
            .unwrap();
        assert_eq!(
            body,
            &json!({"source": "chat2desk", "version": ana_versions, "tenant": "globex",
                    "contact": {"id": 501, "name": "Ana Souza", "phone": "+55 11 98888-7777", "tags": ["VIP"],
                                "transports": ["telegram", "whatsapp"], "operator": 79}})
        );
        assert!(
            state
                .generic
                .iter()
                .all(|(_, body)| body["contact"]["id"] != 503)
        );
        assert!(state.hubspot.iter().all(|(_, input)| input["id"] != "503"));
    }

    // --- The operator reads the dead letters, fixes the CRMs, retries them. ---
    let all_letters = client
        .list_dead_letters(ListDeadLettersRequest {
            connector: String::new(),
            limit: 0,
            tenant: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    let mut by_connector: Vec<(&str, i64)> = all_letters
        .iter()
        .map(|l| (l.connector.as_str(), l.client_id))
        .collect();
    by_connector.sort();
    assert_eq!(by_connector, [("crm", 503), ("hubspot", 503)]);
    let refused = all_letters
        .iter()
        .find(|l| l.connector == "hubspot")
        .unwrap();
    assert!(
        refused.last_error.contains("VALIDATION_ERROR"),
        "HubSpot's own words reach the operator: {refused:?}"
    );
    let letters = client
        .list_dead_letters(ListDeadLettersRequest {
            connector: "crm".into(),
            limit: 0,
            tenant: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].tenant.as_str(), letters[0].client_id),
        ("globex", 503)
    );
    assert!(letters[0].last_error.contains("422"), "{:?}", letters[0]);
    // Dead at the first refusal, far below max_attempts: the 503s before it were retried.
    assert!(letters[0].attempts < 100, "{:?}", letters[0]);
    let unknown = client
        .list_dead_letters(ListDeadLettersRequest {
            connector: "nope".into(),
            limit: 0,
            tenant: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    // Another tenant's view: none of globex's letters, and its retry of one changes nothing.
    let acme_letters = client
        .list_dead_letters(ListDeadLettersRequest {
            connector: String::new(),
            limit: 0,
            tenant: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    assert!(
        acme_letters.iter().all(|l| l.tenant == "acme"),
        "{acme_letters:?}"
    );
    let not_theirs = client
        .retry_dead_letters(RetryDeadLettersRequest {
            connector: "crm".into(),
            ids: vec![letters[0].id],
            tenant: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(not_theirs.requeued, 0);
    crm_state.lock().unwrap().refused_clients.clear();
    let retried = client
        .retry_dead_letters(RetryDeadLettersRequest {
            connector: "crm".into(),
            ids: vec![letters[0].id],
            tenant: "globex".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.requeued, 1);
    let rest = client
        .retry_dead_letters(RetryDeadLettersRequest {
            connector: String::new(),
            ids: vec![],
            tenant: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.requeued, 1, "the HubSpot one");
    let drained = wait_delivered(&mut client).await;
    assert!(
        drained.connectors.iter().all(|c| c.dead_letters == 0),
        "{drained:?}"
    );
    assert!(
        crm_state
            .lock()
            .unwrap()
            .generic
            .iter()
            .any(|(key, _)| key.starts_with("c2d:globex:503:1:"))
    );
    assert!(
        crm_state
            .lock()
            .unwrap()
            .hubspot
            .iter()
            .any(|(key, _)| key == "c2d:globex:503:1")
    );

    // --- A restart applies nothing twice; new events flow on from the store's position. ---
    let delivered_before = crm_state.lock().unwrap().hubspot.len();
    let before = (delivered_before, status(&mut client).await.applied_sequence);
    running.stop().await;
    let running = start_crm_sync(&pipeline.nats.url(), store_url, &connectors).await;
    let mut client = running.client.clone();
    assert_eq!(status(&mut client).await.applied_sequence, before.1);
    pipeline
        .post_as(
            "globex",
            tag("add_tag_to_client", 4, "Returning", 502, 30).to_string(),
        )
        .await;
    wait_applied(&pipeline, &mut client).await;
    wait_delivered(&mut client).await;
    let boris = get(&mut client, "globex", By::ClientId(502)).await.unwrap();
    assert_eq!(boris.tags, ["Returning"]);
    {
        let state = crm_state.lock().unwrap();
        assert_eq!(
            state.hubspot.len(),
            before.0 + 1,
            "exactly Boris's new change, nothing replayed"
        );
        assert_eq!(
            state.hubspot.last().unwrap().1["properties"]["chat2desk_tags"],
            "Returning"
        );
    }

    // --- A resync sends the client's current state again, as a new change. ---
    let resync = client
        .resync_client(ResyncClientRequest {
            tenant: "globex".into(),
            client_id: 501,
            connector: "hubspot".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resync.queued, 1);
    wait_delivered(&mut client).await;
    {
        let state = crm_state.lock().unwrap();
        let (key, input) = state.hubspot.last().unwrap();
        assert_eq!(key, &format!("c2d:globex:501:{}", ana_versions + 1));
        assert_eq!(input["properties"]["firstname"], "Ana Souza");
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&format!("sqlite://{}", dir.path().join("crm.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_on_postgresql() {
    let database = TestDatabase::create()
        .await
        .expect("a PostgreSQL database for the test");
    scenario(&database.url).await;
}
