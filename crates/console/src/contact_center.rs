//! The contact center of one tenant, as its supervisor looks at it: messages in and out,
//! first-response and resolution times (p50 and p90) over time, delivery failures by reason,
//! and the figures by channel and by operator, for a chosen range. Every number comes from
//! AnalyticsService as it answers it; the page follows WatchMinutes, so a minute that changes
//! redraws the charts while the page is open.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use c2d_proto::analytics::v1::{
    Dimension, Granularity, Metric, Point, Quantiles, Summary, SummaryRequest, TimeRange,
    TimeSeriesRequest, WatchMinutesRequest,
};
use futures_util::StreamExt as _;

use crate::Console;
use crate::auth::{Principal, Session};
use crate::chart::{self, Series};
use crate::html::{escape, page, refusal, tenant_field};
use crate::services::{Service, http_status};

const TITLE: &str = "Contact center";
/// The colours of a chart's first and second line (inbound/outbound, p50/p90).
const BLUE: &str = "#2f6db5";
const ORANGE: &str = "#d9822b";

/// What the page asks for (its query string).
#[derive(Debug, Default, serde::Deserialize)]
pub struct View {
    #[serde(default)]
    pub tenant: String,
    /// How far back, e.g. `6h`, `24h`, `30d`; default 24 hours.
    #[serde(default)]
    pub since: String,
}

/// The range a view covers, aligned on its buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub start: i64,
    pub end: i64,
    pub granularity: Granularity,
    /// Seconds per bucket.
    pub bucket: i64,
}

impl Range {
    /// `since` back from `now`, in buckets that keep a chart readable: minutes up to 6 hours,
    /// hours up to 14 days, days beyond.
    pub fn back_from(now: i64, since: Duration) -> Range {
        let since = since.as_secs().max(60) as i64;
        let (granularity, bucket) = if since <= 6 * 3_600 {
            (Granularity::Minute, 60)
        } else if since <= 14 * 86_400 {
            (Granularity::Hour, 3_600)
        } else {
            (Granularity::Day, 86_400)
        };
        let end = (now.div_euclid(bucket) + 1) * bucket;
        let start = (now - since).div_euclid(bucket) * bucket;
        Range {
            start,
            end,
            granularity,
            bucket,
        }
    }

    fn proto(&self) -> TimeRange {
        TimeRange {
            start: Some(timestamp(self.start)),
            end: Some(timestamp(self.end)),
        }
    }
}

fn timestamp(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

/// GET /contact-center: the page, with the charts inside.
pub async fn show(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(view): Query<View>,
) -> Response {
    let (_, session) = match console.session(&headers) {
        Ok(session) => session,
        Err(login) => return *login,
    };
    let (tenant, range) = match scope(&session, &view) {
        Ok(scoped) => scoped,
        Err(refused) => return *refused,
    };
    let tenant_field = tenant_field(&session, tenant.as_deref().unwrap_or(""), "tenant");
    let form = format!(
        "<form class=\"search\" method=\"get\" action=\"/contact-center\">{tenant_field}\
         <input name=\"since\" placeholder=\"since (24h)\" value=\"{}\">\
         <button type=\"submit\">Show</button></form>",
        escape(view.since.trim())
    );
    let Some(tenant) = tenant else {
        let body = format!("{form}<p>Choose a tenant.</p>");
        return page(TITLE, Some(&session), &body).into_response();
    };
    let charts = match charts(&console, &session.principal, &tenant, range).await {
        Ok(charts) => charts,
        Err((status, why)) => {
            // The form stays, so a wrong tenant or range can be put right.
            let body = format!("{form}<p class=\"error\">{}</p>", escape(&why));
            return (status, page(TITLE, Some(&session), &body)).into_response();
        }
    };
    // The live part: each minute WatchMinutes reports asks for the charts again (at most
    // once a second), and the page counts its redraws in `data-updates`. A failed ask, or a
    // session that ended (401), leaves the charts as they were.
    let body = format!(
        "{form}<div id=\"charts\">{charts}</div>\
         <script>let pending = null; const live = new EventSource('/contact-center/live' + location.search);\
         live.onopen = () => document.body.dataset.live = 'open';\
         live.onmessage = () => {{ if (pending) return; pending = setTimeout(async () => {{\
           try {{ const answer = await fetch('/contact-center/charts' + location.search, {{redirect: 'error'}});\
             if (answer.ok) {{ document.getElementById('charts').innerHTML = await answer.text();\
               document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1); }}\
           }} catch (error) {{}} finally {{ pending = null; }} }}, 1000); }};</script>"
    );
    page(&format!("{TITLE}: {tenant}"), Some(&session), &body).into_response()
}

/// GET /contact-center/charts: the charts alone, for the page's live redraw.
pub async fn fragment(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(view): Query<View>,
) -> Response {
    // A script asks for it: without a session it answers 401, not the login page.
    let Ok((_, session)) = console.session(&headers) else {
        return (StatusCode::UNAUTHORIZED, "Log in again.").into_response();
    };
    match scope(&session, &view) {
        Ok((Some(tenant), range)) => {
            match charts(&console, &session.principal, &tenant, range).await {
                Ok(charts) => Html(charts).into_response(),
                Err(answer) => answer.into_response(),
            }
        }
        Ok((None, _)) => (StatusCode::BAD_REQUEST, "Choose a tenant.").into_response(),
        Err(refused) => *refused,
    }
}

/// GET /contact-center/live: one Server-Sent Event per minute update of the tenant
/// (WatchMinutes), for the page to redraw.
pub async fn live(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(view): Query<View>,
) -> Response {
    let (_, session) = match console.session(&headers) {
        Ok(session) => session,
        Err(login) => return *login,
    };
    let tenant = match scope(&session, &view) {
        Ok((Some(tenant), _)) => tenant,
        Ok((None, _)) => return (StatusCode::BAD_REQUEST, "Choose a tenant.").into_response(),
        Err(refused) => return *refused,
    };
    let mut analytics = console.services.analytics.clone();
    // The watch lasts as long as the page: no deadline.
    let mut request = tonic::Request::new(WatchMinutesRequest { tenant });
    request.set_timeout(Duration::from_secs(365 * 86_400));
    let updates = match analytics.watch_minutes(request).await {
        Ok(updates) => updates.into_inner(),
        Err(status) => {
            let why = console
                .services
                .explain(Service::Analytics, &status, &session.principal);
            return (http_status(&status), why).into_response();
        }
    };
    let events = updates.filter_map(|update| async move {
        let update = update.ok()?;
        let minute = update.minute.map(|m| m.seconds).unwrap_or_default();
        Some(Ok::<_, std::convert::Infallible>(
            SseEvent::default().data(format!("{minute} {}", update.events)),
        ))
    });
    Sse::new(events.take_until(console.stopped()))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The tenant and range a view asks for, or the refusal to answer instead.
fn scope(session: &Session, view: &View) -> Result<(Option<String>, Range), Box<Response>> {
    let refuse = |status, why: &str| Box::new(refusal(status, TITLE, Some(session), why));
    let tenant = session
        .principal
        .scope(&view.tenant)
        .map_err(|out| refuse(out.status(), &out.to_string()))?;
    let since = match view.since.trim() {
        "" => Duration::from_secs(86_400),
        text => c2d_telemetry::env::duration(text).map_err(|_| {
            refuse(
                StatusCode::BAD_REQUEST,
                "How far back: a duration such as 6h, 24h or 30d.",
            )
        })?,
    };
    // Aligned on days, 399 days back span 400, AnalyticsService's most.
    if since > Duration::from_secs(399 * 86_400) {
        return Err(refuse(StatusCode::BAD_REQUEST, "At most 399 days back."));
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    Ok((tenant, Range::back_from(now, since)))
}

/// The charts and tables of `tenant` over `range`, all asked at once; or why not, with the
/// HTTP status that fits.
async fn charts(
    console: &Console,
    principal: &Principal,
    tenant: &str,
    range: Range,
) -> Result<String, (StatusCode, String)> {
    let services = &console.services;
    let series = |metric: Metric, quantile: f64, group_by: Dimension| {
        let mut analytics = services.analytics.clone();
        let request = TimeSeriesRequest {
            tenant: tenant.to_owned(),
            metric: metric as i32,
            range: Some(range.proto()),
            granularity: range.granularity as i32,
            group_by: group_by as i32,
            filters: Vec::new(),
            quantile,
        };
        async move {
            analytics
                .query_time_series(request)
                .await
                .map(|r| r.into_inner().points)
        }
    };
    let summary = |by_operator: bool| {
        let mut analytics = services.analytics.clone();
        let request = SummaryRequest {
            sla_business_minutes: 0,
            tenant: tenant.to_owned(),
            range: Some(range.proto()),
        };
        async move {
            let answer = if by_operator {
                analytics.operator_summary(request).await
            } else {
                analytics.channel_summary(request).await
            };
            answer.map(|r| r.into_inner())
        }
    };
    let none = Dimension::Unspecified;
    let answers = tokio::try_join!(
        series(Metric::InboundMessages, 0.0, none),
        series(Metric::OutboundMessages, 0.0, none),
        series(Metric::FirstResponseSeconds, 0.5, none),
        series(Metric::FirstResponseSeconds, 0.9, none),
        series(Metric::ResolutionSeconds, 0.5, none),
        series(Metric::ResolutionSeconds, 0.9, none),
        series(Metric::DeliveryFailures, 0.0, Dimension::Failure),
        summary(false),
        summary(true),
    );
    let (
        inbound,
        outbound,
        first_50,
        first_90,
        resolution_50,
        resolution_90,
        failures,
        by_channel,
        by_operator,
    ) = answers.map_err(|status| {
        (
            http_status(&status),
            services.explain(Service::Analytics, &status, principal),
        )
    })?;
    // Counts: AnalyticsService answers the buckets that have events; the others are zero.
    let counted = |points: Vec<Point>| -> Vec<Point> {
        let mut filled = Vec::with_capacity(((range.end - range.start) / range.bucket) as usize);
        let mut given = points.into_iter().peekable();
        for at in (range.start..range.end).step_by(range.bucket as usize) {
            match given.next_if(|p| p.bucket_start.map(|t| t.seconds) == Some(at)) {
                Some(point) => filled.push(point),
                None => filled.push(Point {
                    bucket_start: Some(timestamp(at)),
                    ..Default::default()
                }),
            }
        }
        filled
    };
    let (inbound, outbound) = (counted(inbound), counted(outbound));
    let line = |name: &str, color, points: Vec<Point>| Series {
        name: name.to_owned(),
        color,
        points: points
            .into_iter()
            .map(|p| {
                (
                    p.bucket_start.map(|t| t.seconds).unwrap_or_default(),
                    p.value,
                )
            })
            .collect(),
    };
    let mut failure_rows: Vec<(String, f64)> = Vec::new();
    for point in failures {
        match failure_rows
            .iter_mut()
            .find(|(reason, _)| *reason == point.group)
        {
            Some((_, total)) => *total += point.value,
            None => failure_rows.push((point.group, point.value)),
        }
    }
    failure_rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let total = by_channel.total.unwrap_or_default();
    let (start, end) = (range.start, range.end);
    let quantiles_chart =
        |id, title, line: &dyn Fn(&str, &'static str, Vec<Point>) -> Series, p50, p90| {
            chart::lines(
                id,
                title,
                "seconds",
                start,
                end,
                range.bucket,
                &[line("p50", BLUE, p50), line("p90", ORANGE, p90)],
            )
        };
    Ok(format!(
        "{figures}<div class=\"charts\">{volume}{first}{resolution}{failures}</div>\
         <h2>By channel</h2>{channels}<h2>By operator</h2>{operators}",
        figures = figures(&total, by_channel.sla_business_minutes),
        volume = chart::lines(
            "volume",
            "Messages in and out",
            "messages",
            start,
            end,
            range.bucket,
            &[
                line("inbound", BLUE, inbound),
                line("outbound", ORANGE, outbound)
            ]
        ),
        first = quantiles_chart(
            "first-response",
            "First response time",
            &line,
            first_50,
            first_90
        ),
        resolution = quantiles_chart(
            "resolution",
            "Resolution time",
            &line,
            resolution_50,
            resolution_90
        ),
        failures = chart::bars(
            "failures",
            "Delivery failures by reason",
            "failures",
            &failure_rows
        ),
        channels = table("channels", "channel", &by_channel.summaries),
        operators = table("operators", "operator", &by_operator.summaries),
    ))
}

/// The range's totals, as the headline figures.
fn figures(total: &Summary, sla_minutes: u32) -> String {
    let quantiles = |q: Option<Quantiles>| {
        let q = q.unwrap_or_default();
        format!("{} / {} s", chart::shown(q.p50), chart::shown(q.p90))
    };
    format!(
        "<div class=\"figures\" id=\"totals\">\
         <div>inbound<b data-figure=\"inbound\">{}</b></div>\
         <div>outbound<b data-figure=\"outbound\">{}</b></div>\
         <div>delivery failures<b data-figure=\"failures\">{}</b></div>\
         <div>requests closed<b data-figure=\"requests-closed\">{}</b></div>\
         <div>first response p50 / p90<b>{}</b></div>\
         <div>resolution p50 / p90<b>{}</b></div>\
         <div>in business hours: first response p50 / p90<b data-figure=\"first-response-business\">{}</b></div>\
         <div>answered within {} business minutes<b data-figure=\"sla\">{}</b></div></div>",
        total.inbound_messages,
        total.outbound_messages,
        total.delivery_failures,
        total.requests_closed,
        quantiles(total.first_response_seconds),
        quantiles(total.resolution_seconds),
        quantiles(total.first_response_business_seconds),
        sla_minutes,
        sla(total),
    )
}

/// The SLA ratio as a percentage; blank without first responses.
fn sla(summary: &Summary) -> String {
    match &summary.first_response_business_seconds {
        Some(q) if q.count > 0 => format!("{:.0}%", summary.first_response_sla_ratio * 100.0),
        _ => String::new(),
    }
}

/// The summaries by channel or operator as a table.
fn table(id: &str, key: &str, summaries: &[Summary]) -> String {
    if summaries.is_empty() {
        return "<p>None in this range.</p>".to_owned();
    }
    let quantile = |q: Option<Quantiles>, p90: bool| {
        let q = q.unwrap_or_default();
        if q.count == 0 {
            return String::new();
        }
        chart::shown(if p90 { q.p90 } else { q.p50 })
    };
    let rows: String = summaries
        .iter()
        .map(|s| {
            format!(
                "<tr data-key=\"{key}\"><td>{key}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                s.inbound_messages,
                s.outbound_messages,
                s.delivery_failures,
                s.failure_rate * 100.0,
                quantile(s.first_response_seconds, false),
                quantile(s.first_response_seconds, true),
                quantile(s.resolution_seconds, false),
                quantile(s.resolution_seconds, true),
                quantile(s.first_response_business_seconds, true),
                sla(s),
                key = escape(&s.key),
            )
        })
        .collect();
    format!(
        "<table id=\"{id}\"><thead><tr><th>{key}</th><th>inbound</th><th>outbound</th><th>failures</th><th>failure rate</th>\
         <th>first response p50 (s)</th><th>p90</th><th>resolution p50 (s)</th><th>p90</th>\
         <th>first response p90, business (s)</th><th>SLA</th></tr></thead><tbody>{rows}</tbody></table>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_cut_in_buckets_that_keep_a_chart_readable() {
        let now = 1_700_000_123;
        let hour = Range::back_from(now, Duration::from_secs(3_600));
        assert_eq!(hour.granularity, Granularity::Minute);
        assert_eq!(hour.end, 1_700_000_160);
        assert_eq!(hour.start, 1_699_996_500);
        assert_eq!(
            Range::back_from(now, Duration::from_secs(86_400)).granularity,
            Granularity::Hour
        );
        let month = Range::back_from(now, Duration::from_secs(30 * 86_400));
        assert_eq!(month.granularity, Granularity::Day);
        assert_eq!(month.start % 86_400, 0);
    }
}
