//! `c2dctl analytics`: AnalyticsService's summaries (per operator or channel, with the
//! tenant's total) and time series, over the last `--since`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use c2d_proto::analytics::AnalyticsServiceClient;
use c2d_proto::analytics::v1::{
    Dimension, GetCalendarRequest, Granularity, Metric, Quantiles, SetCalendarRequest, Summary,
    SummaryRequest, TimeRange, TimeSeriesRequest,
};
use serde_json::json;

use crate::cli::AnalyticsArgs;
use c2dctl::output::{Rows, time};

/// The range from `since` ago to now.
pub fn last(since: Duration) -> Option<TimeRange> {
    let now = SystemTime::now();
    Some(TimeRange {
        start: Some(now.checked_sub(since)?.into()),
        end: Some(now.into()),
    })
}

/// AnalyticsService at `url`, or an error that says where it was looked for.
async fn connect(url: &str) -> anyhow::Result<AnalyticsServiceClient<tonic::transport::Channel>> {
    AnalyticsServiceClient::connect(url.to_owned())
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach AnalyticsService at {url}: {e}; is c2d-analytics running? (--analytics-url)"))
}

/// Summaries per operator or per channel, and a TOTAL row for the whole tenant: times in
/// wall-clock and in business seconds, and the share answered within `sla_minutes` of
/// business time (the service's default when `None`).
pub async fn summary(
    args: AnalyticsArgs,
    by_channel: bool,
    sla_minutes: Option<u32>,
) -> anyhow::Result<Rows> {
    let mut client = connect(&args.analytics_url).await?;
    let request = SummaryRequest {
        // 0 asks for the service's default.
        sla_business_minutes: sla_minutes.unwrap_or(0),
        tenant: args.tenant,
        range: last(args.since),
    };
    let answer = if by_channel {
        client.channel_summary(request).await?
    } else {
        client.operator_summary(request).await?
    }
    .into_inner();
    let mut rows = Rows::new(&[
        if by_channel { "channel" } else { "operator" },
        "inbound",
        "outbound",
        "failures",
        "failure_rate",
        "transfers",
        "closed",
        "frt_p50_s",
        "frt_p90_s",
        "resolution_p50_s",
        "resolution_p90_s",
        "frt_business_p50_s",
        "frt_business_p90_s",
        "resolution_business_p90_s",
        "sla",
    ]);
    for summary in answer.summaries.iter().chain(answer.total.iter()) {
        rows.push(summary_row(summary));
    }
    Ok(rows)
}

fn summary_row(s: &Summary) -> Vec<serde_json::Value> {
    let quantile = |q: &Option<Quantiles>, f: fn(&Quantiles) -> f64| {
        q.as_ref()
            .filter(|q| q.count > 0)
            .map_or(json!(null), |q| json!((f(q) * 10.0).round() / 10.0))
    };
    vec![
        json!(if s.key.is_empty() {
            "TOTAL"
        } else {
            s.key.as_str()
        }),
        json!(s.inbound_messages),
        json!(s.outbound_messages),
        json!(s.delivery_failures),
        json!((s.failure_rate * 1000.0).round() / 1000.0),
        json!(s.transfers),
        json!(s.requests_closed),
        quantile(&s.first_response_seconds, |q| q.p50),
        quantile(&s.first_response_seconds, |q| q.p90),
        quantile(&s.resolution_seconds, |q| q.p50),
        quantile(&s.resolution_seconds, |q| q.p90),
        quantile(&s.first_response_business_seconds, |q| q.p50),
        quantile(&s.first_response_business_seconds, |q| q.p90),
        quantile(&s.resolution_business_seconds, |q| q.p90),
        if s.first_response_business_seconds
            .as_ref()
            .is_some_and(|q| q.count > 0)
        {
            json!((s.first_response_sla_ratio * 1000.0).round() / 1000.0)
        } else {
            json!(null)
        },
    ]
}

/// What `c2dctl analytics calendar` does with the tenant's calendar.
#[derive(Debug, Clone)]
pub enum CalendarChange {
    Show,
    /// Set from this JSON file (`-`: stdin).
    Set(PathBuf),
    Delete,
}

/// Shows, sets or deletes `tenant`'s business-hours calendar; the row is the calendar in
/// force afterwards.
pub async fn calendar(url: String, tenant: String, change: CalendarChange) -> anyhow::Result<Rows> {
    let mut client = connect(&url).await?;
    let answer = match change {
        CalendarChange::Show => client.get_calendar(GetCalendarRequest { tenant }).await,
        CalendarChange::Delete => client.delete_calendar(GetCalendarRequest { tenant }).await,
        CalendarChange::Set(path) => {
            let calendar_json = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
                    .map_err(|e| anyhow::anyhow!("cannot read the calendar from stdin: {e}"))?
            } else {
                std::fs::read_to_string(&path).map_err(|e| {
                    anyhow::anyhow!("cannot read the calendar file {}: {e}", path.display())
                })?
            };
            client
                .set_calendar(SetCalendarRequest {
                    tenant,
                    calendar_json,
                })
                .await
        }
    }
    .map_err(|status| anyhow::anyhow!("{}", status.message()))?
    .into_inner();
    let mut rows = Rows::new(&["tenant", "configured", "calendar"]);
    rows.push(vec![
        json!(answer.tenant),
        json!(answer.configured),
        json!(answer.calendar_json),
    ]);
    Ok(rows)
}

/// A metric per bucket, optionally grouped.
pub async fn series(url: String, request: SeriesRequest) -> anyhow::Result<Rows> {
    let mut client = connect(&url).await?;
    let metric = Metric::from_str_name(&format!("METRIC_{}", request.metric.to_uppercase()))
        .ok_or_else(|| anyhow::anyhow!("unknown metric {:?}: use inbound_messages, outbound_messages, delivery_failures, new_clients, tags_added, tags_removed, transfers, dialogs_closed, requests_closed, events, first_response_seconds, resolution_seconds, first_response_business_seconds or resolution_business_seconds", request.metric))?;
    let granularity = Granularity::from_str_name(&format!(
        "GRANULARITY_{}",
        request.granularity.to_uppercase()
    ))
    .ok_or_else(|| {
        anyhow::anyhow!(
            "unknown granularity {:?}: use minute, hour or day",
            request.granularity
        )
    })?;
    let group_by = match &request.group_by {
        None => Dimension::Unspecified,
        Some(name) => Dimension::from_str_name(&format!("DIMENSION_{}", name.to_uppercase()))
            .ok_or_else(|| anyhow::anyhow!("unknown dimension {name:?}: use transport, channel, operator, tag, failure or hook_type"))?,
    };
    let answer = client
        .query_time_series(TimeSeriesRequest {
            tenant: request.tenant,
            metric: metric as i32,
            range: last(request.since),
            granularity: granularity as i32,
            group_by: group_by as i32,
            filters: Vec::new(),
            quantile: request.quantile,
        })
        .await?
        .into_inner();
    let mut rows = Rows::new(&["bucket", "group", "value", "count"]);
    for point in answer.points {
        rows.push(vec![
            time(point.bucket_start.as_ref()),
            json!(point.group),
            json!(point.value),
            json!(point.count),
        ]);
    }
    Ok(rows)
}

/// What `c2dctl analytics series` asks.
#[derive(Debug, Clone)]
pub struct SeriesRequest {
    pub tenant: String,
    pub metric: String,
    pub granularity: String,
    pub group_by: Option<String>,
    pub since: Duration,
    pub quantile: f64,
}
