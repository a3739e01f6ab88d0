//! `c2dctl analytics`: AnalyticsService's summaries (per operator or channel, with the
//! tenant's total) and time series, over the last `--since`.

use std::time::{Duration, SystemTime};

use c2d_proto::analytics::AnalyticsServiceClient;
use c2d_proto::analytics::v1::{
    Dimension, Granularity, Metric, Quantiles, Summary, SummaryRequest, TimeRange,
    TimeSeriesRequest,
};
use serde_json::json;

use c2dctl::output::{Rows, time};

/// The range from `since` ago to now.
pub fn last(since: Duration) -> Option<TimeRange> {
    let now = SystemTime::now();
    Some(TimeRange {
        start: Some(now.checked_sub(since)?.into()),
        end: Some(now.into()),
    })
}

/// Summaries per operator or per channel, and a TOTAL row for the whole tenant.
pub async fn summary(
    url: String,
    tenant: String,
    by_channel: bool,
    since: Duration,
) -> anyhow::Result<Rows> {
    let mut client = AnalyticsServiceClient::connect(url.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach AnalyticsService at {url}: {e}; is c2d-analytics running? (--analytics-url)"))?;
    let request = SummaryRequest {
        tenant,
        range: last(since),
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
    ]
}

/// A metric per bucket, optionally grouped.
pub async fn series(url: String, request: SeriesRequest) -> anyhow::Result<Rows> {
    let mut client = AnalyticsServiceClient::connect(url.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach AnalyticsService at {url}: {e}; is c2d-analytics running? (--analytics-url)"))?;
    let metric = Metric::from_str_name(&format!("METRIC_{}", request.metric.to_uppercase()))
        .ok_or_else(|| anyhow::anyhow!("unknown metric {:?}: use inbound_messages, outbound_messages, delivery_failures, new_clients, tags_added, tags_removed, transfers, dialogs_closed, requests_closed, events, first_response_seconds or resolution_seconds", request.metric))?;
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
