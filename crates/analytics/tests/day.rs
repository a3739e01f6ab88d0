//! A scripted day of conversations for two tenants, POSTed through a real gateway, consumed by
//! c2d-analytics from a real nats-server, and read back over real gRPC: the answers match what
//! this test computes by hand, exactly for counts and within the sketch's error for quantiles;
//! and again after a restart, after a rebuild, and after every event is delivered twice.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use c2d_analytics::{Analytics, Config};
use c2d_proto::analytics::AnalyticsServiceClient;
use c2d_proto::analytics::v1::{
    Dimension, Filter, Granularity, Metric, SummaryRequest, SummaryResponse, TimeRange,
    TimeSeriesRequest, WatchMinutesRequest,
};
use c2d_testkit::{InProcess, Pipeline, stored_events};
use prost_types::Timestamp;
use serde_json::json;
use tonic::Code;

/// 2024-03-10T00:00:00Z.
const DAY: i64 = 1_710_028_800;
const RELATIVE_ERROR: f64 = 0.01;

/// One request of the script, with the durations the test expects.
struct Conversation {
    tenant: &'static str,
    request: i64,
    operator: i64,
    transport: &'static str,
    channel: i64,
    opened: i64,
    first_response: i64,
    resolution: i64,
    transferred: bool,
    failed_reply: bool,
}

fn script() -> Vec<Conversation> {
    let mut conversations = Vec::new();
    for (tenant, count, base_operator) in [("acme", 24, 1), ("globex", 10, 10)] {
        for i in 0..count {
            conversations.push(Conversation {
                tenant,
                request: 10_000 * base_operator + i,
                operator: base_operator + i % 3,
                transport: if i % 2 == 0 { "telegram" } else { "whatsapp" },
                channel: 100 + i % 2,
                opened: DAY + 3_600 * (8 + i % 9) + 60 * i,
                first_response: 20 + 37 * i,
                resolution: 1_800 + 131 * i,
                transferred: i % 4 == 0,
                failed_reply: i % 5 == 0,
            });
        }
    }
    conversations
}

/// The webhook bodies of one conversation, in the order Chat2Desk would send them.
fn deliveries(c: &Conversation) -> Vec<serde_json::Value> {
    let client = c.request + 1_000_000;
    let message = |id: i64, hook: &str, at: i64, operator: Option<i64>| {
        json!({
            "message_id": id, "type": if hook == "inbox" { "from_client" } else { "to_client" },
            "text": "Olá", "transport": c.transport, "client_id": client, "operator_id": operator,
            "channel_id": c.channel, "request_id": c.request, "hook_type": hook, "event_time": at,
            "client": {"id": client, "name": "Cliente"}
        })
    };
    let reply_id = c.request * 10 + 3;
    let answered = c.opened + c.first_response;
    let mut bodies = vec![
        json!({"id": client, "name": "Cliente", "channels": [{"id": c.channel, "transports": [c.transport]}],
               "hook_type": "new_client", "event_time": c.opened}),
        message(c.request * 10 + 1, "inbox", c.opened, None),
        message(c.request * 10 + 2, "inbox", c.opened + 10, None),
        message(reply_id, "outbox", answered, Some(c.operator)),
        message(
            c.request * 10 + 4,
            "outbox",
            answered + 300,
            Some(c.operator),
        ),
        json!({"id": 7, "name": "VIP", "client_id": client, "hook_type": "add_tag_to_client", "event_time": c.opened + 5}),
    ];
    if c.failed_reply {
        bodies.push(json!({"id": reply_id, "dialog_id": 1, "client_id": client, "channel_id": c.channel,
                           "created": answered + 2, "gateway_status": "failed", "error": "timeout error",
                           "hook_type": "outbox_status", "event_time": answered + 2}));
    }
    if c.transferred {
        bodies.push(json!({"dialog_id": 1, "request_id": c.request, "client_id": client, "channel_id": c.channel,
                           "operator_id": c.operator, "current_operator_id": c.operator, "last_operator_id": 99,
                           "transport": c.transport, "hook_type": "dialog_transferred", "event_time": answered + 100}));
    }
    bodies.push(json!({"dialog_id": 1, "request_id": c.request, "created": c.opened, "updated": c.opened + c.resolution,
                       "client_id": client, "channel_id": c.channel, "operator_id": c.operator, "transport": c.transport,
                       "hook_type": "close_request", "event_time": c.opened + c.resolution}));
    bodies
}

fn nearest_rank(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((q * values.len() as f64).ceil() as usize).max(1) - 1]
}

fn assert_close(got: f64, exact: f64, what: &str) {
    assert!(
        (got - exact).abs() <= RELATIVE_ERROR * exact + 1e-6,
        "{what}: {got} is not within 1% of {exact}"
    );
}

fn day_range() -> Option<TimeRange> {
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

/// c2d-analytics running in-process on a free port, stoppable.
struct Running {
    addr: SocketAddr,
    service: InProcess<c2d_analytics::AnalyticsError>,
    projection: std::sync::Arc<std::sync::RwLock<c2d_analytics::projection::Projection>>,
}

async fn start(pipeline: &Pipeline, data_dir: &std::path::Path, rebuild: bool) -> Running {
    let url = pipeline.nats.url();
    let dir = data_dir.display().to_string();
    let config = Config::from_lookup(|name| match name {
        "NATS_URL" => Some(url.clone()),
        "ANALYTICS_DATA_DIR" => Some(dir.clone()),
        "ANALYTICS_SNAPSHOT_SECS" => Some("1".into()),
        "ANALYTICS_METRICS_ADDR" => Some("127.0.0.1:0".into()),
        _ => None,
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rebuild = if rebuild {
        c2d_analytics::Rebuild::Alone
    } else {
        c2d_analytics::Rebuild::No
    };
    let analytics = Analytics::open(config, rebuild).unwrap();
    let projection = analytics.projection();
    let service = InProcess::spawn(|shutdown| analytics.run(listener, shutdown));
    Running {
        addr,
        service,
        projection,
    }
}

impl Running {
    async fn caught_up(&self, last: u64) {
        c2d_testkit::eventually(
            &format!("analytics caught up to sequence {last}"),
            Duration::from_secs(60),
            || async {
                let at = self.projection.read().unwrap().last_sequence;
                if at >= last {
                    Ok(())
                } else {
                    Err(format!("at {at}"))
                }
            },
        )
        .await
    }

    async fn client(&self) -> AnalyticsServiceClient<tonic::transport::Channel> {
        c2d_testkit::grpc::connected(
            "AnalyticsService",
            &format!("http://{}", self.addr),
            Duration::from_secs(5),
            AnalyticsServiceClient::connect,
        )
        .await
    }

    async fn stop(self) {
        self.service.stop().await;
    }
}

/// Every answer the test checks, to compare runs.
#[derive(Debug, PartialEq)]
struct Answers {
    inbound_by_transport: BTreeMap<String, f64>,
    operators: SummaryResponse,
    channels: SummaryResponse,
    frt_p90_by_hour: Vec<(i64, f64, u64)>,
}

async fn answers(
    client: &mut AnalyticsServiceClient<tonic::transport::Channel>,
    tenant: &str,
) -> Answers {
    let series = |metric: Metric, granularity: Granularity, group_by: Dimension, quantile: f64| {
        TimeSeriesRequest {
            tenant: tenant.into(),
            metric: metric as i32,
            range: day_range(),
            granularity: granularity as i32,
            group_by: group_by as i32,
            filters: vec![],
            quantile,
        }
    };
    let inbound = client
        .query_time_series(series(
            Metric::InboundMessages,
            Granularity::Day,
            Dimension::Transport,
            0.0,
        ))
        .await
        .unwrap()
        .into_inner();
    let frt = client
        .query_time_series(series(
            Metric::FirstResponseSeconds,
            Granularity::Hour,
            Dimension::Unspecified,
            0.9,
        ))
        .await
        .unwrap()
        .into_inner();
    let summary = SummaryRequest {
        sla_business_minutes: 0,
        tenant: tenant.into(),
        range: day_range(),
    };
    Answers {
        inbound_by_transport: inbound
            .points
            .iter()
            .map(|p| (p.group.clone(), p.value))
            .collect(),
        operators: client
            .operator_summary(summary.clone())
            .await
            .unwrap()
            .into_inner(),
        channels: client.channel_summary(summary).await.unwrap().into_inner(),
        frt_p90_by_hour: frt
            .points
            .iter()
            .map(|p| (p.bucket_start.unwrap().seconds, p.value, p.count))
            .collect(),
    }
}

fn check_against_script(answers: &Answers, tenant: &str, script: &[Conversation]) {
    let mine: Vec<&Conversation> = script.iter().filter(|c| c.tenant == tenant).collect();
    let inbound = |transport| 2.0 * mine.iter().filter(|c| c.transport == transport).count() as f64;
    assert_eq!(
        answers.inbound_by_transport["telegram"],
        inbound("telegram"),
        "{tenant}: inbound on telegram"
    );
    assert_eq!(
        answers.inbound_by_transport["whatsapp"],
        inbound("whatsapp"),
        "{tenant}: inbound on whatsapp"
    );

    let mut operators: Vec<i64> = mine.iter().map(|c| c.operator).collect();
    operators.sort();
    operators.dedup();
    assert_eq!(
        answers.operators.summaries.len(),
        operators.len(),
        "{tenant}: one summary per operator"
    );
    for (summary, operator) in answers.operators.summaries.iter().zip(&operators) {
        assert_eq!(summary.key, operator.to_string());
        let served: Vec<&&Conversation> = mine.iter().filter(|c| c.operator == *operator).collect();
        let n = served.len() as u64;
        let failures = served.iter().filter(|c| c.failed_reply).count() as u64;
        assert_eq!(
            summary.outbound_messages,
            2 * n,
            "operator {operator}: outbound"
        );
        assert_eq!(
            summary.delivery_failures, failures,
            "operator {operator}: failures"
        );
        assert_close(
            summary.failure_rate,
            failures as f64 / (2 * n) as f64,
            "failure rate",
        );
        assert_eq!(
            summary.transfers,
            served.iter().filter(|c| c.transferred).count() as u64
        );
        assert_eq!(summary.requests_closed, n);
        let frt = summary
            .first_response_seconds
            .as_ref()
            .expect("first response times");
        let mut exact: Vec<f64> = served.iter().map(|c| c.first_response as f64).collect();
        assert_eq!(frt.count, n);
        assert_close(
            frt.p50,
            nearest_rank(&mut exact, 0.5),
            &format!("operator {operator} FRT p50"),
        );
        assert_close(
            frt.p90,
            nearest_rank(&mut exact, 0.9),
            &format!("operator {operator} FRT p90"),
        );
        let resolution = summary
            .resolution_seconds
            .as_ref()
            .expect("resolution times");
        let mut exact: Vec<f64> = served.iter().map(|c| c.resolution as f64).collect();
        assert_close(
            resolution.p50,
            nearest_rank(&mut exact, 0.5),
            "resolution p50",
        );
        assert_close(
            resolution.p90,
            nearest_rank(&mut exact, 0.9),
            "resolution p90",
        );
    }

    for summary in &answers.channels.summaries {
        let channel: i64 = summary.key.parse().unwrap();
        let on: Vec<&&Conversation> = mine.iter().filter(|c| c.channel == channel).collect();
        assert_eq!(
            summary.inbound_messages,
            2 * on.len() as u64,
            "channel {channel}: inbound"
        );
    }

    // The tenant's total: every conversation, its FRT quantiles over all samples together.
    let total = answers.channels.total.as_ref().expect("the tenant's total");
    assert_eq!(
        total.inbound_messages,
        2 * mine.len() as u64,
        "{tenant}: total inbound"
    );
    let frt = total.first_response_seconds.as_ref().expect("total FRT");
    let mut exact: Vec<f64> = mine.iter().map(|c| c.first_response as f64).collect();
    assert_eq!(frt.count, mine.len() as u64);
    assert_close(frt.p90, nearest_rank(&mut exact, 0.9), "total FRT p90");

    // FRT p90 per hour of the client's first message.
    let mut by_hour: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for c in &mine {
        by_hour
            .entry(c.opened - c.opened.rem_euclid(3_600))
            .or_default()
            .push(c.first_response as f64);
    }
    assert_eq!(answers.frt_p90_by_hour.len(), by_hour.len());
    for ((hour, p90, count), (exact_hour, values)) in
        answers.frt_p90_by_hour.iter().zip(by_hour.iter_mut())
    {
        assert_eq!(hour, exact_hour);
        assert_eq!(*count, values.len() as u64);
        assert_close(*p90, nearest_rank(values, 0.9), "hourly FRT p90");
    }
}

#[tokio::test]
async fn a_scripted_day_is_answered_exactly_across_restarts_rebuilds_and_redeliveries() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    let pipeline = Pipeline::start().await;
    let data = tempfile::tempdir().unwrap();
    let script = script();

    // Analytics runs while part of the day arrives, to see live minute updates.
    let running = start(&pipeline, data.path(), false).await;
    let mut client = running.client().await;
    let mut watch = client
        .watch_minutes(WatchMinutesRequest {
            tenant: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    for conversation in &script {
        for body in deliveries(conversation) {
            pipeline
                .post_as(conversation.tenant, body.to_string())
                .await;
        }
    }
    // One message of today, for the live minute stream (the scripted day is in the past).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    pipeline
        .post_as("acme", json!({"hook_type": "inbox", "message_id": 1, "transport": "telegram", "event_time": now}).to_string())
        .await;
    let stored = stored_events(&pipeline.nats).await.unwrap();
    let last = stored.last().unwrap().0.sequence;
    running.caught_up(last).await;
    let update = tokio::time::timeout(Duration::from_secs(30), watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(update.tenant, "acme");
    assert!(update.events > 0);

    // What grpcurl relies on: health and reflection.
    let endpoint = format!("http://{}", running.addr);
    let status = c2d_testkit::grpc::health(&endpoint, c2d_proto::analytics::SERVICE_NAME)
        .await
        .unwrap();
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    c2d_testkit::grpc::assert_lists_only(&endpoint, c2d_proto::analytics::SERVICE_NAME).await;

    let first = answers(&mut client, "acme").await;
    check_against_script(&first, "acme", &script);
    let globex = answers(&mut client, "globex").await;
    check_against_script(&globex, "globex", &script);

    // Every event delivered a second time changes nothing.
    {
        let mut projection = running.projection.write().unwrap();
        for (message, event) in &stored {
            assert!(
                !projection.apply(message.sequence, event),
                "redelivery of {} is skipped",
                message.sequence
            );
        }
    }
    assert_eq!(
        answers(&mut client, "acme").await,
        first,
        "after redelivery"
    );

    // Clear errors for bad questions.
    let unknown = client
        .operator_summary(SummaryRequest {
            sla_business_minutes: 0,
            tenant: "initech".into(),
            range: day_range(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(
        unknown.message().contains("unknown tenant"),
        "{}",
        unknown.message()
    );
    let backwards = TimeRange {
        start: day_range().unwrap().end,
        end: day_range().unwrap().start,
    };
    let bad_range = client
        .channel_summary(SummaryRequest {
            sla_business_minutes: 0,
            tenant: "acme".into(),
            range: Some(backwards),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_range.code(), Code::InvalidArgument);
    let bad_metric = client
        .query_time_series(TimeSeriesRequest {
            tenant: "acme".into(),
            metric: 99,
            range: day_range(),
            granularity: 2,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_metric.code(), Code::InvalidArgument);
    assert!(
        bad_metric.message().contains("unknown metric"),
        "{}",
        bad_metric.message()
    );

    // A filter narrows a series: failures by reason, on one channel.
    let failures = client
        .query_time_series(TimeSeriesRequest {
            tenant: "acme".into(),
            metric: Metric::DeliveryFailures as i32,
            range: day_range(),
            granularity: Granularity::Day as i32,
            group_by: Dimension::Failure as i32,
            filters: vec![Filter {
                dimension: Dimension::Channel as i32,
                value: "100".into(),
            }],
            quantile: 0.0,
        })
        .await
        .unwrap()
        .into_inner();
    let expected = script
        .iter()
        .filter(|c| c.tenant == "acme" && c.failed_reply && c.channel == 100)
        .count();
    assert_eq!(failures.points.len(), 1);
    assert_eq!(failures.points[0].group, "failed: timeout error");
    assert_eq!(failures.points[0].count, expected as u64);

    // A restart loads the snapshot and answers the same.
    running.stop().await;
    let restarted = start(&pipeline, data.path(), false).await;
    assert_eq!(
        restarted.projection.read().unwrap().last_sequence,
        last,
        "the snapshot holds every event"
    );
    let mut client = restarted.client().await;
    assert_eq!(answers(&mut client, "acme").await, first, "after a restart");
    restarted.stop().await;

    // A rebuild replays the whole stream into the same answers.
    let rebuilt = start(&pipeline, data.path(), true).await;
    rebuilt.caught_up(last).await;
    let mut client = rebuilt.client().await;
    assert_eq!(answers(&mut client, "acme").await, first, "after --rebuild");
    assert_eq!(
        answers(&mut client, "globex").await,
        globex,
        "after --rebuild"
    );
    rebuilt.stop().await;
}
