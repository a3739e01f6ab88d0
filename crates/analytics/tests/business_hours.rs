//! A scripted week of one tenant in New York, across a weekend, the change to daylight saving
//! time (Sunday 2024-03-10, 02:00 EST -> 03:00 EDT), a holiday (Tuesday 2024-03-12), and a
//! channel with Saturday hours of its own: the calendar set over gRPC, the conversations
//! POSTed through a real gateway and consumed by c2d-analytics from a real nats-server. The
//! business-time figures equal what this test computes by hand, hour by hour, and so does
//! the SLA ratio; wall-clock figures are unchanged beside them.

use std::time::Duration;

use c2d_analytics::{Analytics, Config};
use c2d_proto::analytics::AnalyticsServiceClient;
use c2d_proto::analytics::v1::{
    GetCalendarRequest, Metric, SetCalendarRequest, SummaryRequest, TimeRange, TimeSeriesRequest,
};
use c2d_testkit::grpc::connected;
use c2d_testkit::{Pipeline, eventually, stored_events};
use prost_types::Timestamp;
use serde_json::json;
use tonic::Code;

const CALENDAR: &str = r#"{
  "time_zone": "America/New_York",
  "weekly": {"mon": ["09:00-17:00"], "tue": ["09:00-17:00"], "wed": ["09:00-17:00"],
             "thu": ["09:00-17:00"], "fri": ["09:00-17:00"]},
  "channels": {"whatsapp": {"mon": ["09:00-17:00"], "tue": ["09:00-17:00"],
                            "wed": ["09:00-17:00"], "thu": ["09:00-17:00"],
                            "fri": ["09:00-17:00"], "sat": ["10:00-14:00"]}},
  "holidays": ["2024-03-12"]
}"#;

/// 2024-03-08T00:00:00Z, a Friday.
const FRIDAY: i64 = 1_709_856_000;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// One request: when the client wrote, when an operator answered, when it was closed (UTC),
/// and the business seconds of its first response and resolution, worked out by hand.
struct Request {
    id: i64,
    transport: &'static str,
    asked: i64,
    answered: i64,
    closed: i64,
    first_response_business: f64,
    resolution_business: f64,
}

fn script() -> Vec<Request> {
    vec![
        // Friday 16:00 EST (21:00Z) to Monday 09:30 EDT (13:30Z), closed 10:00 EDT: across
        // the weekend and the change of clocks. Friday 16:00-17:00, then Monday from 09:00.
        Request {
            id: 1,
            transport: "telegram",
            asked: FRIDAY + 21 * HOUR,
            answered: FRIDAY + 3 * DAY + 13 * HOUR + 30 * 60,
            closed: FRIDAY + 3 * DAY + 14 * HOUR,
            first_response_business: 3_600.0 + 1_800.0,
            resolution_business: 3_600.0 + 3_600.0,
        },
        // Saturday 13:00 EST (18:00Z) on WhatsApp, which works Saturdays 10:00-14:00: one hour
        // on Saturday, then Monday 09:00-09:10 EDT (13:10Z); closed 09:20 EDT.
        Request {
            id: 2,
            transport: "whatsapp",
            asked: FRIDAY + DAY + 18 * HOUR,
            answered: FRIDAY + 3 * DAY + 13 * HOUR + 10 * 60,
            closed: FRIDAY + 3 * DAY + 13 * HOUR + 20 * 60,
            first_response_business: 3_600.0 + 600.0,
            resolution_business: 3_600.0 + 1_200.0,
        },
        // Monday 16:30 EDT (20:30Z) to Wednesday 09:15 EDT (13:15Z): Tuesday is a holiday.
        // Closed Wednesday 11:00 EDT.
        Request {
            id: 3,
            transport: "telegram",
            asked: FRIDAY + 3 * DAY + 20 * HOUR + 30 * 60,
            answered: FRIDAY + 5 * DAY + 13 * HOUR + 15 * 60,
            closed: FRIDAY + 5 * DAY + 15 * HOUR,
            first_response_business: 1_800.0 + 900.0,
            resolution_business: 1_800.0 + 2.0 * 3_600.0,
        },
        // Wednesday 10:00 to 10:04 EDT: within hours, business time is wall-clock time.
        Request {
            id: 4,
            transport: "telegram",
            asked: FRIDAY + 5 * DAY + 14 * HOUR,
            answered: FRIDAY + 5 * DAY + 14 * HOUR + 240,
            closed: FRIDAY + 5 * DAY + 14 * HOUR + 900,
            first_response_business: 240.0,
            resolution_business: 900.0,
        },
        // Wednesday 23:00 EDT (Thursday 03:00Z) to Thursday 09:02 EDT (13:02Z): the night is
        // not counted. Closed Thursday 09:30 EDT.
        Request {
            id: 5,
            transport: "telegram",
            asked: FRIDAY + 6 * DAY + 3 * HOUR,
            answered: FRIDAY + 6 * DAY + 13 * HOUR + 120,
            closed: FRIDAY + 6 * DAY + 13 * HOUR + 30 * 60,
            first_response_business: 120.0,
            resolution_business: 1_800.0,
        },
    ]
}

fn deliveries(r: &Request) -> Vec<serde_json::Value> {
    let client = 1_000 + r.id;
    let message = |id: i64, hook: &str, at: i64, operator: Option<i64>| {
        json!({
            "message_id": id, "type": if hook == "inbox" { "from_client" } else { "to_client" },
            "text": "Hello", "transport": r.transport, "client_id": client, "operator_id": operator,
            "channel_id": 100, "request_id": r.id, "hook_type": hook, "event_time": at,
        })
    };
    vec![
        message(r.id * 10 + 1, "inbox", r.asked, None),
        message(r.id * 10 + 2, "outbox", r.answered, Some(7)),
        json!({"dialog_id": 1, "request_id": r.id, "created": r.asked, "updated": r.closed,
               "client_id": client, "channel_id": 100, "operator_id": 7, "transport": r.transport,
               "hook_type": "close_request", "event_time": r.closed}),
    ]
}

fn nearest_rank(values: &[f64], q: f64) -> f64 {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    values[((q * values.len() as f64).ceil() as usize).max(1) - 1]
}

fn assert_close(got: f64, exact: f64, what: &str) {
    assert!(
        (got - exact).abs() <= 0.01 * exact + 1e-6,
        "{what}: {got} is not within 1% of {exact}"
    );
}

fn week() -> Option<TimeRange> {
    let at = |seconds| Some(Timestamp { seconds, nanos: 0 });
    Some(TimeRange {
        start: at(FRIDAY),
        end: at(FRIDAY + 7 * DAY),
    })
}

async fn client(addr: std::net::SocketAddr) -> AnalyticsServiceClient<tonic::transport::Channel> {
    let endpoint = format!("http://{addr}");
    connected(
        "AnalyticsService",
        &endpoint,
        Duration::from_secs(10),
        AnalyticsServiceClient::connect,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_week_counts_business_time_as_computed_by_hand() {
    let pipeline = Pipeline::start().await;
    let data = tempfile::tempdir().unwrap();
    let (url, dir) = (pipeline.nats.url(), data.path().display().to_string());
    let config = Config::from_lookup(|name| match name {
        "NATS_URL" => Some(url.clone()),
        "ANALYTICS_DATA_DIR" => Some(dir.clone()),
        "ANALYTICS_METRICS_ADDR" => Some("off".into()),
        _ => None,
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let analytics = Analytics::open(config, c2d_analytics::Rebuild::No).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(analytics.run(listener, async move {
        let _ = stopped.await;
    }));
    let mut analytics = client(addr).await;

    // A calendar that does not parse is refused with where and how to fix it.
    let refused = analytics
        .set_calendar(SetCalendarRequest {
            tenant: "acme".into(),
            calendar_json: CALENDAR.replace("09:00-17:00", "9-17"),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("HH:MM-HH:MM"),
        "{}",
        refused.message()
    );
    let none = analytics
        .get_calendar(GetCalendarRequest {
            tenant: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!none.configured, "no calendar yet: always open");

    let set = analytics
        .set_calendar(SetCalendarRequest {
            tenant: "acme".into(),
            calendar_json: CALENDAR.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(set.configured);
    let got = analytics
        .get_calendar(GetCalendarRequest {
            tenant: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.calendar_json, set.calendar_json);
    assert!(got.calendar_json.contains("America/New_York"));

    let script = script();
    for request in &script {
        for body in deliveries(request) {
            pipeline.post(body.to_string()).await;
        }
    }
    let stored = stored_events(&pipeline.nats).await.unwrap().len();
    let requests = script.len() as u64;
    let summary = eventually("every request closed", Duration::from_secs(30), || {
        let mut analytics = analytics.clone();
        async move {
            let answer = analytics
                .operator_summary(SummaryRequest {
                    tenant: "acme".into(),
                    range: week(),
                    sla_business_minutes: 0,
                })
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            let total = answer.total.clone().unwrap_or_default();
            (total.requests_closed == requests)
                .then_some(answer)
                .ok_or(format!(
                    "{} of {requests} requests closed ({stored} events stored)",
                    total.requests_closed
                ))
        }
    })
    .await;
    let total = summary.total.unwrap();

    let first: Vec<f64> = script.iter().map(|r| r.first_response_business).collect();
    let resolution: Vec<f64> = script.iter().map(|r| r.resolution_business).collect();
    let wall: Vec<f64> = script
        .iter()
        .map(|r| (r.answered - r.asked) as f64)
        .collect();
    let business = total.first_response_business_seconds.unwrap();
    assert_eq!(business.count, script.len() as u64);
    for (q, got) in [
        (0.5, business.p50),
        (0.9, business.p90),
        (0.99, business.p99),
    ] {
        assert_close(
            got,
            nearest_rank(&first, q),
            &format!("first response p{q}"),
        );
    }
    let business = total.resolution_business_seconds.unwrap();
    for (q, got) in [(0.5, business.p50), (0.9, business.p90)] {
        assert_close(
            got,
            nearest_rank(&resolution, q),
            &format!("resolution p{q}"),
        );
    }
    // Beside them, wall-clock time as before.
    let clock = total.first_response_seconds.unwrap();
    assert_close(
        clock.p90,
        nearest_rank(&wall, 0.9),
        "wall-clock first response p90",
    );
    // Within 15 business minutes: the Wednesday and Thursday requests.
    assert_eq!(summary.sla_business_minutes, 15);
    assert!((total.first_response_sla_ratio - 2.0 / 5.0).abs() < 1e-9);

    // Per day, where each sample is filed by its start: the business series by hand too.
    let series = analytics
        .query_time_series(TimeSeriesRequest {
            tenant: "acme".into(),
            metric: Metric::FirstResponseBusinessSeconds as i32,
            granularity: c2d_proto::analytics::v1::Granularity::Day as i32,
            range: week(),
            quantile: 1.0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let by_day: Vec<(i64, f64)> = series
        .points
        .iter()
        .map(|p| (p.bucket_start.unwrap().seconds, p.value))
        .collect();
    let expected: Vec<(i64, f64)> = script
        .iter()
        .map(|r| (r.asked - r.asked.rem_euclid(DAY), r.first_response_business))
        .collect();
    assert_eq!(by_day.len(), expected.len(), "{by_day:?}");
    for ((day, got), (expected_day, exact)) in by_day.iter().zip(&expected) {
        assert_eq!(day, expected_day);
        assert_close(*got, *exact, "the day's longest first response");
    }

    let _ = stop.send(());
    running.await.unwrap().unwrap();
}
