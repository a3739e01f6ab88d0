//! c2d-crm-sync as replicas sharing the log's partitions and one PostgreSQL directory, against
//! a real nats-server and gateway: the directory they build equals the one a single process
//! builds from the whole log, and every replica reports the whole log applied as that process
//! does; and again after a replica is stopped and another added.

use std::collections::BTreeMap;
use std::time::Duration;

use c2d_crm_sync::{Config, CrmSync};
use c2d_proto::crm::CrmServiceClient;
use c2d_testkit::partitions::wait_for_owners;
use c2d_testkit::replicas::{crm_directory, crm_sync_status, post_conversations};
use c2d_testkit::{InProcess, Pipeline, TestDatabase, eventually};
use tonic::transport::Channel;

const PARTITIONS: u32 = 8;
const TENANTS: usize = 12;

/// c2d-crm-sync in-process on a free port: a replica when `replica` is named.
struct Running {
    service: InProcess<c2d_crm_sync::CrmSyncError>,
    client: CrmServiceClient<Channel>,
}

async fn start(pipeline: &Pipeline, store_url: &str, replica: Option<&str>) -> Running {
    let (nats_url, store_url) = (pipeline.nats.url(), store_url.to_owned());
    let replica = replica.map(str::to_owned);
    let config = Config::from_lookup(|name| match name {
        "NATS_URL" => Some(nats_url.clone()),
        "CRM_STORE_URL" => Some(store_url.clone()),
        "CRM_METRICS_ADDR" => Some("off".into()),
        "CRM_PARTITIONS" => replica.as_ref().map(|_| PARTITIONS.to_string()),
        "CRM_REPLICA" => replica.clone(),
        "CRM_LEASE_SECS" => Some("2".into()),
        _ => None,
    })
    .expect("test configuration is valid");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let crm_sync = CrmSync::open(config)
        .await
        .expect("crm-sync opens its store");
    let service = InProcess::spawn(|shutdown| crm_sync.run(listener, shutdown));
    let client = c2d_testkit::grpc::connected(
        "CrmService",
        &endpoint,
        Duration::from_secs(10),
        CrmServiceClient::connect,
    )
    .await;
    Running { service, client }
}

impl Running {
    async fn stop(self) {
        self.service.stop().await;
    }
}

fn tenants() -> Vec<String> {
    (0..TENANTS).map(|n| format!("tenant-{n}")).collect()
}

async fn directory(running: &Running) -> Result<BTreeMap<String, Vec<String>>, String> {
    crm_directory(&mut running.client.clone(), &tenants()).await
}

/// Waits until the replicas' directory equals the whole-log process's, once both hold `clients`
/// clients per tenant.
async fn agrees(replica: &Running, whole: &Running, clients: usize, what: &str) {
    eventually(what, Duration::from_secs(60), || async move {
        let expected = directory(whole).await?;
        if expected.values().any(|records| records.len() != clients) {
            return Err("the whole-log process is still applying".to_owned());
        }
        let got = directory(replica).await?;
        if got != expected {
            let differ: Vec<&String> = expected
                .keys()
                .filter(|tenant| got.get(*tenant) != expected.get(*tenant))
                .collect();
            return Err(format!("tenants that differ: {differ:?}"));
        }
        Ok(())
    })
    .await;
}

/// Waits until `replica` reports, in `CHAT2DESK` sequences, the whole log applied: the
/// whole-log process's answer once it has applied everything.
async fn reports_everything_applied(replica: &Running, whole: &Running, what: &str) {
    eventually(what, Duration::from_secs(60), || async move {
        let expected = crm_sync_status(whole.client.clone()).await?;
        let got = crm_sync_status(replica.client.clone()).await?;
        if expected.applied_sequence != expected.stream_last_sequence {
            return Err("the whole-log process is still applying".to_owned());
        }
        if got.applied_sequence != expected.applied_sequence || got.lag != 0 {
            return Err(format!(
                "applied {} of {}, {} behind",
                got.applied_sequence, expected.applied_sequence, got.lag
            ));
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_build_the_directory_one_process_builds_from_the_whole_log() {
    let pipeline = Pipeline::start_partitioned(PARTITIONS, TENANTS).await;
    let (whole_db, shared_db) = (
        TestDatabase::create().await.expect("a PostgreSQL database"),
        TestDatabase::create().await.expect("a PostgreSQL database"),
    );
    post_conversations(&pipeline, 0..6, TENANTS).await;
    let whole = start(&pipeline, &whole_db.url, None).await;
    let first = start(&pipeline, &shared_db.url, Some("crm-sync-0")).await;
    let second = start(&pipeline, &shared_db.url, Some("crm-sync-1")).await;
    wait_for_owners(
        &pipeline.nats,
        "crm-sync",
        PARTITIONS,
        &["crm-sync-0", "crm-sync-1"],
    )
    .await;
    agrees(&first, &whole, 4, "two replicas' directory").await;
    reports_everything_applied(&first, &whole, "the first replica's status").await;
    reports_everything_applied(&second, &whole, "the second replica's status").await;

    first.stop().await;
    let third = start(&pipeline, &shared_db.url, Some("crm-sync-2")).await;
    post_conversations(&pipeline, 6..10, TENANTS).await;
    // Requests 6..10 change every client's name, requests and tags.
    eventually(
        "the whole-log process has the new events",
        Duration::from_secs(60),
        || {
            let whole = &whole;
            async move {
                let directory = directory(whole).await?;
                let last = directory["tenant-0"]
                    .iter()
                    .any(|record| record.contains("Cliente 9"));
                last.then_some(()).ok_or("not yet".to_owned())
            }
        },
    )
    .await;
    wait_for_owners(
        &pipeline.nats,
        "crm-sync",
        PARTITIONS,
        &["crm-sync-1", "crm-sync-2"],
    )
    .await;
    agrees(
        &second,
        &whole,
        4,
        "the directory after a replica left and one joined",
    )
    .await;
    agrees(&third, &whole, 4, "the same, asked of the new replica").await;
    reports_everything_applied(&third, &whole, "the new replica's status").await;
    second.stop().await;
    third.stop().await;
    whole.stop().await;
}

/// Replicas write the one directory at once: the owner of a client's partition applies its
/// events while another replica answers ResyncClient about the same client. After each event,
/// the newest change queued for the connector is the client as that event left it: the CRM is
/// never left a change behind. (Without a lock on the client, a resync that read the client
/// just before an event's commit took the same version as the event's change, and the event's
/// change was dropped as a repeat.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_on_one_replica_never_hides_an_event_applied_on_another() {
    use c2d_crm_sync::change::queue_if_changed;
    use c2d_crm_sync::projection::{self, Applied, ClientKey};
    use c2d_crm_sync::store::Store;
    use serde_json::{Value as Json, json};

    const TAGS: i64 = 60;
    let database = TestDatabase::create().await.expect("a PostgreSQL database");
    let (owner, other) = (
        Store::open(&database.url).await.unwrap(),
        Store::open(&database.url).await.unwrap(),
    );
    let connectors = vec!["crm".to_owned()];
    let client = ClientKey {
        tenant: "acme".into(),
        client_id: 18_360_561,
    };
    let event = |n: i64, body: Json| {
        let received = prost_types::Timestamp {
            seconds: 1_700_000_000 + n,
            nanos: 0,
        };
        c2d_hooks::parse_delivery("acme", body.to_string().into(), received).unwrap()
    };
    let apply = |n: i64, body: Json| {
        let (owner, connectors, event) = (&owner, &connectors, event(n, body));
        async move {
            let mut transaction = owner.pool().begin().await.unwrap();
            let applied = projection::apply(&mut transaction, n as u64 + 1, &event)
                .await
                .unwrap();
            let Applied::Applied(Some(changed)) = applied else {
                panic!("event {n} was not applied: {applied:?}");
            };
            queue_if_changed(&mut transaction, &changed, connectors, false)
                .await
                .unwrap();
            transaction.commit().await.unwrap();
        }
    };
    let resync = || async {
        let mut transaction = other.pool().begin().await.unwrap();
        queue_if_changed(&mut transaction, &client, &connectors, true)
            .await
            .unwrap();
        transaction.commit().await.unwrap();
    };
    let newest_queued = || async {
        let queued: Vec<String> = sqlx::query_scalar(
            "SELECT payload FROM crm_outbox WHERE connector = 'crm' AND tenant = $1 AND client_id = $2",
        )
        .bind(&client.tenant)
        .bind(client.client_id)
        .fetch_all(owner.pool())
        .await
        .unwrap();
        queued
            .iter()
            .map(|payload| serde_json::from_str::<Json>(payload).unwrap())
            .max_by_key(|state| state["version"].as_i64())
            .unwrap()
    };

    let created = json!({"id": client.client_id, "phone": "[tg] 1938691", "name": "Peter",
        "hook_type": "client_updated", "event_time": 1_700_000_000});
    apply(0, created).await;
    for n in 1..=TAGS {
        let tagged = json!({"id": 4_000 + n, "name": format!("Tag {n}"), "client_id": client.client_id,
            "hook_type": "add_tag_to_client", "event_time": 1_700_000_000 + n});
        tokio::join!(apply(n, tagged), resync());
        let newest = newest_queued().await;
        assert!(
            newest["tags"].to_string().contains(&format!("\"Tag {n}\"")),
            "after tag {n}, the newest change queued (version {}) lacks it: {}",
            newest["version"],
            newest["tags"]
        );
    }
}
