//! Scale-out as production runs it, on loopback: a 3-node NATS cluster with the streams at
//! three replicas, the gateway filing events by partition, and three processes each of
//! c2d-analytics and c2d-crm-sync sharing the partitions (crm-sync on one PostgreSQL
//! directory). 50 tenants' conversations are posted; midway one replica of each is killed
//! (SIGKILL) and another started. Afterwards every tenant's analytics answers and CRM
//! directory, asked of every live replica, equal those of one process of each that rebuilt
//! them from the whole log; every tenant's requests are counted exactly once; and every
//! crm-sync replica reports the whole log applied, as the rebuild does.

use std::time::Duration;

use c2d_proto::analytics::AnalyticsServiceClient;
use c2d_proto::crm::CrmServiceClient;
use c2d_testkit::grpc::connected;
use c2d_testkit::partitions::wait_for_owners;
use c2d_testkit::replicas::{
    analytics_answers, conversation, crm_directory, crm_sync_status, requests_closed,
};
use c2d_testkit::{
    GatewayProcess, NatsCluster, NatsServer, ServiceProcess, TestDatabase, eventually, free_port,
    http, workspace_binary,
};
use tonic::transport::Channel;

const PARTITIONS: u32 = 16;
const TENANTS: usize = 50;
const REQUESTS: i64 = 6;

/// A service process and where its gRPC answers.
struct Running {
    process: ServiceProcess,
    url: String,
}

/// c2d-analytics: a replica named `replica`, or (None) one process reading the whole log.
fn analytics(cluster: &NatsCluster, dir: &std::path::Path, replica: Option<&str>) -> Running {
    let port = free_port();
    let data = dir.join(replica.unwrap_or("analytics-whole"));
    let mut env = vec![
        ("NATS_URL", cluster.urls()),
        ("ANALYTICS_GRPC_ADDR", format!("127.0.0.1:{port}")),
        ("ANALYTICS_METRICS_ADDR", "off".to_owned()),
        ("ANALYTICS_DATA_DIR", data.display().to_string()),
    ];
    if let Some(replica) = replica {
        env.extend([
            ("ANALYTICS_PARTITIONS", PARTITIONS.to_string()),
            ("ANALYTICS_REPLICA", replica.to_owned()),
            ("ANALYTICS_ADVERTISE_ADDR", format!("127.0.0.1:{port}")),
            ("ANALYTICS_LEASE_SECS", "2".to_owned()),
        ]);
    }
    spawn("c2d-analytics", &env, port)
}

/// c2d-crm-sync on `store_url`: a replica named `replica`, or one process over the whole log.
fn crm_sync(cluster: &NatsCluster, store_url: &str, replica: Option<&str>) -> Running {
    let port = free_port();
    let mut env = vec![
        ("NATS_URL", cluster.urls()),
        ("CRM_GRPC_ADDR", format!("127.0.0.1:{port}")),
        ("CRM_METRICS_ADDR", "off".to_owned()),
        ("CRM_STORE_URL", store_url.to_owned()),
    ];
    if let Some(replica) = replica {
        env.extend([
            ("CRM_PARTITIONS", PARTITIONS.to_string()),
            ("CRM_REPLICA", replica.to_owned()),
            ("CRM_LEASE_SECS", "2".to_owned()),
        ]);
    }
    spawn("c2d-crm-sync", &env, port)
}

fn spawn(binary: &str, env: &[(&str, String)], port: u16) -> Running {
    let binary = workspace_binary(binary).expect("the workspace's binaries build");
    let process = ServiceProcess::spawn(binary.to_str().unwrap(), env).expect("the service starts");
    Running {
        process,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn analytics_client(running: &Running) -> AnalyticsServiceClient<Channel> {
    connected(
        "AnalyticsService",
        &running.url,
        Duration::from_secs(30),
        AnalyticsServiceClient::connect,
    )
    .await
}

async fn crm_client(running: &Running) -> CrmServiceClient<Channel> {
    connected(
        "CrmService",
        &running.url,
        Duration::from_secs(30),
        CrmServiceClient::connect,
    )
    .await
}

fn tenants() -> Vec<String> {
    (0..TENANTS).map(|n| format!("tenant-{n}")).collect()
}

/// Conversations `requests` of every tenant, through the gateway's webhook URL.
async fn post(gateway: &GatewayProcess, requests: std::ops::Range<i64>) {
    for request in requests {
        for (n, tenant) in tenants().iter().enumerate() {
            let url = gateway.hook_url(tenant, &format!("{tenant}-secret"));
            for body in conversation(request, n) {
                let answer = http::post_json(&url, body.to_string()).await.unwrap();
                assert_eq!(answer.status, 200, "{}", answer.text());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_a_nats_cluster_lose_one_gain_one_and_answer_as_a_rebuild_does() {
    let cluster = NatsCluster::start(3).await.expect("a 3-node NATS cluster");
    let tokens: Vec<String> = tenants()
        .iter()
        .map(|t| format!("{t}={t}-secret"))
        .collect();
    let gateway = GatewayProcess::start(
        workspace_binary("c2d-gateway").unwrap().to_str().unwrap(),
        &cluster.nodes[0],
        &[
            ("NATS_URL", cluster.urls()),
            ("GATEWAY_TOKENS", tokens.join(",")),
            ("GATEWAY_STREAM_REPLICAS", "3".into()),
            ("GATEWAY_PARTITIONS", PARTITIONS.to_string()),
        ],
    )
    .await
    .expect("the gateway starts against the cluster");
    gateway
        .wait_for_jetstream(Duration::from_secs(60))
        .await
        .expect("the gateway reaches JetStream");
    let dir = tempfile::tempdir().unwrap();
    let (shared_db, whole_db) = (
        TestDatabase::create().await.expect("a PostgreSQL database"),
        TestDatabase::create().await.expect("a PostgreSQL database"),
    );
    let first_node: &NatsServer = &cluster.nodes[0];

    let mut analytics_replicas: Vec<Running> = ["analytics-0", "analytics-1", "analytics-2"]
        .iter()
        .map(|name| analytics(&cluster, dir.path(), Some(name)))
        .collect();
    let mut crm_replicas: Vec<Running> = ["crm-sync-0", "crm-sync-1", "crm-sync-2"]
        .iter()
        .map(|name| crm_sync(&cluster, &shared_db.url, Some(name)))
        .collect();
    wait_for_owners(
        first_node,
        "analytics",
        PARTITIONS,
        &["analytics-0", "analytics-1", "analytics-2"],
    )
    .await;
    wait_for_owners(
        first_node,
        "crm-sync",
        PARTITIONS,
        &["crm-sync-0", "crm-sync-1", "crm-sync-2"],
    )
    .await;

    post(&gateway, 0..REQUESTS / 2).await;
    // Mid-run: one replica of each killed, with no chance to release anything.
    analytics_replicas.remove(1).process.kill();
    crm_replicas.remove(1).process.kill();
    analytics_replicas.push(analytics(&cluster, dir.path(), Some("analytics-3")));
    crm_replicas.push(crm_sync(&cluster, &shared_db.url, Some("crm-sync-3")));
    post(&gateway, REQUESTS / 2..REQUESTS).await;
    wait_for_owners(
        first_node,
        "analytics",
        PARTITIONS,
        &["analytics-0", "analytics-2", "analytics-3"],
    )
    .await;
    wait_for_owners(
        first_node,
        "crm-sync",
        PARTITIONS,
        &["crm-sync-0", "crm-sync-2", "crm-sync-3"],
    )
    .await;

    // One process of each rebuilds everything from the whole log.
    let whole_analytics = analytics(&cluster, dir.path(), None);
    let whole_crm = crm_sync(&cluster, &whole_db.url, None);
    let tenants = tenants();

    // Counted: every tenant's requests closed exactly once, in the replicas and in the rebuild.
    for running in analytics_replicas.iter().chain([&whole_analytics]) {
        let client = analytics_client(running).await;
        eventually(
            "every tenant's requests counted once",
            Duration::from_secs(120),
            || {
                let (mut client, tenants) = (client.clone(), tenants.clone());
                async move {
                    for tenant in &tenants {
                        let closed = requests_closed(&mut client, tenant).await?;
                        if closed != REQUESTS as u64 {
                            return Err(format!("{tenant}: {closed} requests closed"));
                        }
                    }
                    Ok(())
                }
            },
        )
        .await;
    }
    let mut whole = analytics_client(&whole_analytics).await;
    for running in &analytics_replicas {
        let mut replica = analytics_client(running).await;
        for tenant in &tenants {
            assert_eq!(
                analytics_answers(&mut replica, tenant).await.unwrap(),
                analytics_answers(&mut whole, tenant).await.unwrap(),
                "{tenant}'s analytics from {}",
                running.url
            );
        }
    }

    let whole = crm_client(&whole_crm).await;
    let expected = eventually(
        "the rebuilt directory is complete",
        Duration::from_secs(120),
        || {
            let (mut whole, tenants) = (whole.clone(), tenants.clone());
            async move {
                let directory = crm_directory(&mut whole, &tenants).await?;
                let complete = directory.values().all(|records| {
                    records.len() == 4
                        && records
                            .iter()
                            .any(|r| r.contains(&format!("Cliente {}", REQUESTS - 1)))
                });
                complete
                    .then_some(directory)
                    .ok_or("still applying".to_owned())
            }
        },
    )
    .await;
    for running in &crm_replicas {
        let replica = crm_client(running).await;
        let expected = &expected;
        eventually(
            "the replicas' directory equals the rebuild",
            Duration::from_secs(60),
            || {
                let (mut replica, tenants) = (replica.clone(), tenants.clone());
                async move {
                    let got = crm_directory(&mut replica, &tenants).await?;
                    (got == *expected).then_some(()).ok_or("differs".to_owned())
                }
            },
        )
        .await;
    }

    // Every replica reports, in the log's sequences, the whole log applied, as the rebuild does.
    let applied = eventually(
        "the rebuild reports the whole log applied",
        Duration::from_secs(60),
        || {
            let whole = whole.clone();
            async move {
                let status = crm_sync_status(whole).await?;
                (status.applied_sequence == status.stream_last_sequence)
                    .then_some(status.applied_sequence)
                    .ok_or(format!("{status:?}"))
            }
        },
    )
    .await;
    for running in &crm_replicas {
        let replica = crm_client(running).await;
        eventually(
            "the replica reports what the rebuild reports",
            Duration::from_secs(60),
            || {
                let replica = replica.clone();
                async move {
                    let status = crm_sync_status(replica).await?;
                    (status.applied_sequence == applied)
                        .then_some(())
                        .ok_or(format!("applied {} of {applied}", status.applied_sequence))
                }
            },
        )
        .await;
    }
}
