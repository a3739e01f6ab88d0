//! c2d-analytics as several replicas sharing the log's partitions, against a real nats-server
//! and gateway: every tenant's answers, asked of any replica, equal those of one replica that
//! read the whole log; and again after a replica is stopped and another added.

use std::time::Duration;

use c2d_analytics::{Analytics, Config};
use c2d_proto::analytics::AnalyticsServiceClient;
use c2d_proto::analytics::v1::{
    Dimension, Granularity, Metric, SummaryRequest, SummaryResponse, TimeRange, TimeSeriesRequest,
    TimeSeriesResponse,
};
use c2d_testkit::partitions::wait_for_owners;
use c2d_testkit::{Pipeline, eventually};
use prost_types::Timestamp;
use serde_json::json;
use tokio::sync::oneshot;

const PARTITIONS: u32 = 8;
const TENANTS: usize = 12;
/// 2024-03-10T00:00:00Z.
const DAY: i64 = 1_710_028_800;

/// c2d-analytics in-process on a free port: a replica when `replica` is named, else one
/// process that reads the whole log.
struct Running {
    addr: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), c2d_analytics::AnalyticsError>>,
    _data: tempfile::TempDir,
}

async fn start(pipeline: &Pipeline, replica: Option<&str>) -> Running {
    let data = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (url, dir) = (pipeline.nats.url(), data.path().display().to_string());
    let replica = replica.map(str::to_owned);
    let config = Config::from_lookup(|name| match name {
        "NATS_URL" => Some(url.clone()),
        "ANALYTICS_DATA_DIR" => Some(dir.clone()),
        "ANALYTICS_METRICS_ADDR" => Some("off".into()),
        "ANALYTICS_PARTITIONS" => replica.as_ref().map(|_| PARTITIONS.to_string()),
        "ANALYTICS_REPLICA" => replica.clone(),
        "ANALYTICS_ADVERTISE_ADDR" => Some(addr.clone()),
        "ANALYTICS_LEASE_SECS" => Some("2".into()),
        _ => None,
    })
    .unwrap();
    let analytics = Analytics::open(config, false).unwrap();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(analytics.run(listener, async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop,
        task,
        _data: data,
    }
}

impl Running {
    async fn client(&self) -> AnalyticsServiceClient<tonic::transport::Channel> {
        let url = format!("http://{}", self.addr);
        eventually(
            "AnalyticsService reachable",
            Duration::from_secs(10),
            || {
                let url = url.clone();
                async move {
                    AnalyticsServiceClient::connect(url)
                        .await
                        .map_err(|e| e.to_string())
                }
            },
        )
        .await
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// A tenant's answers, as one comparison.
#[derive(Debug, PartialEq)]
struct Answers {
    operators: SummaryResponse,
    channels: SummaryResponse,
    inbound_by_hour: TimeSeriesResponse,
}

fn day() -> Option<TimeRange> {
    Some(TimeRange {
        start: Some(Timestamp {
            seconds: DAY,
            nanos: 0,
        }),
        end: Some(Timestamp {
            seconds: DAY + 86_400,
            nanos: 0,
        }),
    })
}

async fn answers(running: &Running, tenant: &str) -> Result<Answers, String> {
    let mut client = running.client().await;
    let summary = SummaryRequest {
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
    let text = |status: tonic::Status| format!("{tenant}: {status}");
    Ok(Answers {
        operators: client
            .operator_summary(summary.clone())
            .await
            .map_err(text)?
            .into_inner(),
        channels: client
            .channel_summary(summary)
            .await
            .map_err(text)?
            .into_inner(),
        inbound_by_hour: client
            .query_time_series(series)
            .await
            .map_err(text)?
            .into_inner(),
    })
}

/// `requests` conversations of every tenant: a message in, an answer, the request closed.
async fn post_conversations(pipeline: &Pipeline, first: i64, requests: i64) {
    for request in first..first + requests {
        for n in 0..TENANTS {
            let tenant = format!("tenant-{n}");
            let opened = DAY + request * 600 + n as i64;
            let client = 1_000 + request;
            let message = |id: i64, hook: &str, at: i64| {
                json!({"message_id": id, "type": if hook == "inbox" { "from_client" } else { "to_client" },
                       "text": "Olá", "transport": "whatsapp", "client_id": client, "operator_id": if hook == "inbox" { None } else { Some(7 + request % 3) },
                       "channel_id": 3, "request_id": request, "hook_type": hook, "event_time": at})
            };
            pipeline
                .post_as(
                    &tenant,
                    message(request * 10 + 1, "inbox", opened).to_string(),
                )
                .await;
            pipeline
                .post_as(
                    &tenant,
                    message(request * 10 + 2, "outbox", opened + 30 + request).to_string(),
                )
                .await;
            let close = json!({"dialog_id": 1, "request_id": request, "created": opened, "updated": opened + 900,
                               "client_id": client, "channel_id": 3, "operator_id": 7, "transport": "whatsapp",
                               "hook_type": "close_request", "event_time": opened + 900});
            pipeline.post_as(&tenant, close.to_string()).await;
        }
    }
}

/// Waits until `replica` answers every tenant as `whole` does.
async fn agrees(replica: &Running, whole: &Running, what: &str) {
    eventually(what, Duration::from_secs(60), || async move {
        for n in 0..TENANTS {
            let tenant = format!("tenant-{n}");
            let expected = answers(whole, &tenant).await?;
            let got = answers(replica, &tenant).await?;
            if got != expected {
                return Err(format!("{tenant} differs"));
            }
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_answer_every_tenant_as_one_process_reading_the_whole_log_does() {
    let pipeline = Pipeline::start_partitioned(PARTITIONS, TENANTS).await;
    post_conversations(&pipeline, 0, 5).await;
    let whole = start(&pipeline, None).await;
    let first = start(&pipeline, Some("analytics-0")).await;
    let second = start(&pipeline, Some("analytics-1")).await;
    // The whole-log process has every event once its answers stop changing with the log's.
    eventually(
        "the whole-log process caught up",
        Duration::from_secs(60),
        || {
            let whole = &whole;
            async move {
                let answers = answers(whole, "tenant-0").await?;
                let total = answers.operators.total.unwrap_or_default();
                (total.requests_closed == 5)
                    .then_some(())
                    .ok_or(format!("{} requests closed", total.requests_closed))
            }
        },
    )
    .await;
    wait_for_owners(
        &pipeline.nats,
        "analytics",
        PARTITIONS,
        &["analytics-0", "analytics-1"],
    )
    .await;
    agrees(
        &first,
        &whole,
        "analytics-0 answers every tenant, forwarding to analytics-1",
    )
    .await;
    agrees(
        &second,
        &whole,
        "analytics-1 answers every tenant, forwarding to analytics-0",
    )
    .await;

    // analytics-0 stops (its partitions are released), analytics-2 joins, more events arrive.
    first.stop().await;
    let third = start(&pipeline, Some("analytics-2")).await;
    post_conversations(&pipeline, 5, 3).await;
    eventually(
        "the whole-log process has the new events",
        Duration::from_secs(60),
        || {
            let whole = &whole;
            async move {
                let total = answers(whole, "tenant-0")
                    .await?
                    .operators
                    .total
                    .unwrap_or_default();
                (total.requests_closed == 8)
                    .then_some(())
                    .ok_or(format!("{} requests closed", total.requests_closed))
            }
        },
    )
    .await;
    wait_for_owners(
        &pipeline.nats,
        "analytics",
        PARTITIONS,
        &["analytics-1", "analytics-2"],
    )
    .await;
    agrees(&second, &whole, "analytics-1 after the change of replicas").await;
    agrees(&third, &whole, "analytics-2 after the change of replicas").await;
    second.stop().await;
    third.stop().await;
    whole.stop().await;
}
