//! AnalyticsService requests checked and turned into aggregate queries.
//!
//! Everything a caller can get wrong is caught here with a message that names the field and
//! what it accepts; the aggregates only ever see valid questions.

use c2d_proto::analytics::v1::{
    self as api, Dimension as ApiDimension, Granularity as ApiGranularity, Metric,
};

use crate::aggregates::{Condition, Dimension, Granularity, Measure, Names};
use crate::projection::{Projection, Tenant, seconds};

/// The most buckets one time-series query may return per group.
pub const MAX_BUCKETS: i64 = 50_000;

/// The longest range a summary covers: a year and a month, so that this month of last year
/// can be compared with this one. A summary walks its range under the projection's read lock,
/// which the event log waits for; longer views are a daily time series, summed by the caller.
pub const MAX_SUMMARY_DAYS: i64 = 400;

/// The earliest instant a range may start at: 1970-01-01T00:00:00Z. Chat2Desk's events are
/// all later; an earlier start is a caller's mistake (a zero or negative timestamp).
pub const EARLIEST: i64 = 0;

/// The instant a range may end at, at the latest: 10000-01-01T00:00:00Z, the end of the years
/// an RFC 3339 timestamp can write. Beyond it, bucket arithmetic would run into i64's limits.
pub const LATEST: i64 = 253_402_300_800;

/// A request that cannot be answered as asked.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QueryError {
    #[error("tenant is required")]
    NoTenant,
    #[error("unknown tenant {0:?}: no event of this tenant has been seen")]
    UnknownTenant(String),
    #[error("unknown metric {0}: use one of the Metric values, e.g. METRIC_INBOUND_MESSAGES")]
    UnknownMetric(i32),
    #[error("granularity is required: GRANULARITY_MINUTE, GRANULARITY_HOUR or GRANULARITY_DAY")]
    NoGranularity,
    #[error("range is required, with start and end")]
    NoRange,
    #[error("range start must be before its end")]
    EmptyRange,
    #[error(
        "range must lie between 1970-01-01T00:00:00Z and 10000-01-01T00:00:00Z (end exclusive), got {start} to {end} in unix seconds"
    )]
    OutOfTime { start: i64, end: i64 },
    #[error(
        "the range spans {0} days; a summary covers at most {MAX_SUMMARY_DAYS} days: ask for a shorter range, or for a QueryTimeSeries by day"
    )]
    SummaryTooLong(i64),
    #[error(
        "the range holds {0} buckets of this granularity; at most {MAX_BUCKETS}: use a coarser granularity or a shorter range"
    )]
    TooManyBuckets(i64),
    #[error("unknown dimension {0} in {1}")]
    UnknownDimension(i32, &'static str),
    #[error("filter on {0} needs a numeric id, got {1:?}")]
    NotAnId(&'static str, String),
    #[error("quantile must be in (0, 1], got {0}")]
    BadQuantile(f64),
}

/// A checked time-series query.
pub struct SeriesQuery {
    pub measure: Measure,
    pub granularity: Granularity,
    pub range: (i64, i64),
    pub group: Option<Dimension>,
    /// `None` when a filter names a value never seen: nothing can match.
    pub conditions: Option<Vec<Condition>>,
    pub quantile: f64,
}

/// The tenant a request names.
pub fn tenant<'p>(projection: &'p Projection, name: &str) -> Result<&'p Tenant, QueryError> {
    if name.is_empty() {
        return Err(QueryError::NoTenant);
    }
    projection
        .tenants
        .get(name)
        .ok_or_else(|| QueryError::UnknownTenant(name.to_owned()))
}

/// Checks a time-series request against a tenant's names.
pub fn series(request: &api::TimeSeriesRequest, names: &Names) -> Result<SeriesQuery, QueryError> {
    let measure = measure(request.metric)?;
    let granularity = match ApiGranularity::try_from(request.granularity) {
        Ok(ApiGranularity::Minute) => Granularity::Minute,
        Ok(ApiGranularity::Hour) => Granularity::Hour,
        Ok(ApiGranularity::Day) => Granularity::Day,
        _ => return Err(QueryError::NoGranularity),
    };
    let range = range(request.range.as_ref())?;
    let span = range.1 - granularity.floor(range.0);
    let buckets = (span + granularity.seconds() - 1) / granularity.seconds();
    if buckets > MAX_BUCKETS {
        return Err(QueryError::TooManyBuckets(buckets));
    }
    let group = match ApiDimension::try_from(request.group_by) {
        Ok(ApiDimension::Unspecified) => None,
        Ok(dimension) => Some(self::dimension(dimension)),
        Err(_) => return Err(QueryError::UnknownDimension(request.group_by, "group_by")),
    };
    let mut conditions = Some(Vec::with_capacity(request.filters.len()));
    for filter in &request.filters {
        match condition(filter, names)? {
            Some(condition) => conditions.as_mut().map(|c| c.push(condition)),
            None => conditions.take().map(|_| ()),
        };
    }
    let quantile = match request.quantile {
        0.0 => 0.5,
        q if q > 0.0 && q <= 1.0 => q,
        q => return Err(QueryError::BadQuantile(q)),
    };
    Ok(SeriesQuery {
        measure,
        granularity,
        range,
        group,
        conditions,
        quantile,
    })
}

/// Checks a range: both ends set, in order, between [`EARLIEST`] and [`LATEST`], so that
/// what walks its buckets never overflows.
pub fn range(range: Option<&api::TimeRange>) -> Result<(i64, i64), QueryError> {
    let range = range.ok_or(QueryError::NoRange)?;
    let (Some(start), Some(end)) = (&range.start, &range.end) else {
        return Err(QueryError::NoRange);
    };
    // Out-of-range floats saturate: a timestamp far out stays far out, and is refused below.
    let (start, end) = (seconds(start).floor() as i64, seconds(end).ceil() as i64);
    if start >= end {
        return Err(QueryError::EmptyRange);
    }
    if start < EARLIEST || end > LATEST {
        return Err(QueryError::OutOfTime { start, end });
    }
    Ok((start, end))
}

/// Checks a summary's range: a [`range`] of at most [`MAX_SUMMARY_DAYS`].
pub fn summary_range(range: Option<&api::TimeRange>) -> Result<(i64, i64), QueryError> {
    let (start, end) = self::range(range)?;
    let day = Granularity::Day.seconds();
    let days = (end - start + day - 1) / day;
    if days > MAX_SUMMARY_DAYS {
        return Err(QueryError::SummaryTooLong(days));
    }
    Ok((start, end))
}

fn measure(metric: i32) -> Result<Measure, QueryError> {
    Ok(match Metric::try_from(metric) {
        Ok(Metric::InboundMessages) => Measure::Inbound,
        Ok(Metric::OutboundMessages) => Measure::Outbound,
        Ok(Metric::DeliveryFailures) => Measure::DeliveryFailures,
        Ok(Metric::NewClients) => Measure::NewClients,
        Ok(Metric::TagsAdded) => Measure::TagsAdded,
        Ok(Metric::TagsRemoved) => Measure::TagsRemoved,
        Ok(Metric::Transfers) => Measure::Transfers,
        Ok(Metric::DialogsClosed) => Measure::DialogsClosed,
        Ok(Metric::RequestsClosed) => Measure::RequestsClosed,
        Ok(Metric::Events) => Measure::Events,
        Ok(Metric::FirstResponseSeconds) => Measure::FirstResponse,
        Ok(Metric::ResolutionSeconds) => Measure::Resolution,
        Ok(Metric::FirstResponseBusinessSeconds) => Measure::FirstResponseBusiness,
        Ok(Metric::ResolutionBusinessSeconds) => Measure::ResolutionBusiness,
        Ok(Metric::Unspecified) | Err(_) => return Err(QueryError::UnknownMetric(metric)),
    })
}

fn dimension(dimension: ApiDimension) -> Dimension {
    match dimension {
        ApiDimension::Transport => Dimension::Transport,
        ApiDimension::Channel => Dimension::Channel,
        ApiDimension::Operator | ApiDimension::Unspecified => Dimension::Operator,
        ApiDimension::Tag => Dimension::Tag,
        ApiDimension::Failure => Dimension::Failure,
        ApiDimension::HookType => Dimension::HookType,
    }
}

/// A filter as a condition; `None` when its text was never seen (nothing can match).
fn condition(filter: &api::Filter, names: &Names) -> Result<Option<Condition>, QueryError> {
    let id = |name: &'static str| {
        filter
            .value
            .trim()
            .parse::<i64>()
            .map_err(|_| QueryError::NotAnId(name, filter.value.clone()))
    };
    let text = |wrap: fn(u32) -> Condition| Ok(names.find(&filter.value).map(wrap));
    match ApiDimension::try_from(filter.dimension) {
        Ok(ApiDimension::Transport) => text(Condition::Transport),
        Ok(ApiDimension::Tag) => text(Condition::Tag),
        Ok(ApiDimension::Failure) => text(Condition::Failure),
        Ok(ApiDimension::HookType) => text(Condition::HookType),
        Ok(ApiDimension::Channel) => Ok(Some(Condition::Channel(id("channel")?))),
        Ok(ApiDimension::Operator) => Ok(Some(Condition::Operator(id("operator")?))),
        Ok(ApiDimension::Unspecified) | Err(_) => {
            Err(QueryError::UnknownDimension(filter.dimension, "filters"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Timestamp;

    fn request(metric: Metric, start: i64, end: i64) -> api::TimeSeriesRequest {
        api::TimeSeriesRequest {
            tenant: "acme".into(),
            metric: metric as i32,
            range: Some(api::TimeRange {
                start: Some(Timestamp {
                    seconds: start,
                    nanos: 0,
                }),
                end: Some(Timestamp {
                    seconds: end,
                    nanos: 0,
                }),
            }),
            granularity: ApiGranularity::Hour as i32,
            ..Default::default()
        }
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let names = Names::default();
        let check = |r: api::TimeSeriesRequest| series(&r, &names).err();
        assert_eq!(
            check(request(Metric::Unspecified, 0, 3600)),
            Some(QueryError::UnknownMetric(0))
        );
        assert_eq!(
            check(request(Metric::InboundMessages, 3600, 0)),
            Some(QueryError::EmptyRange)
        );
        let mut no_range = request(Metric::InboundMessages, 0, 1);
        no_range.range = None;
        assert_eq!(check(no_range), Some(QueryError::NoRange));
        let mut minutes = request(Metric::InboundMessages, 0, 365 * 86_400);
        minutes.granularity = ApiGranularity::Minute as i32;
        assert!(matches!(
            check(minutes),
            Some(QueryError::TooManyBuckets(_))
        ));
        let mut quantile = request(Metric::FirstResponseSeconds, 0, 3600);
        quantile.quantile = 1.5;
        assert_eq!(check(quantile), Some(QueryError::BadQuantile(1.5)));
        let mut filter = request(Metric::InboundMessages, 0, 3600);
        filter.filters.push(api::Filter {
            dimension: ApiDimension::Operator as i32,
            value: "bob".into(),
        });
        assert_eq!(
            check(filter),
            Some(QueryError::NotAnId("operator", "bob".into()))
        );
    }

    fn time_range(start: i64, end: i64) -> api::TimeRange {
        let at = |seconds| Some(Timestamp { seconds, nanos: 0 });
        api::TimeRange {
            start: at(start),
            end: at(end),
        }
    }

    #[test]
    fn summary_ranges_are_bounded_in_time_and_length() {
        const DAY: i64 = 86_400;
        const T0: i64 = 1_709_251_200; // 2024-03-01T00:00:00Z
        let check = |start, end| summary_range(Some(&time_range(start, end)));
        assert_eq!(
            check(T0, T0 + MAX_SUMMARY_DAYS * DAY),
            Ok((T0, T0 + MAX_SUMMARY_DAYS * DAY))
        );
        assert_eq!(
            check(T0, T0 + MAX_SUMMARY_DAYS * DAY + 1),
            Err(QueryError::SummaryTooLong(MAX_SUMMARY_DAYS + 1))
        );
        assert_eq!(check(T0 + DAY, T0), Err(QueryError::EmptyRange));
        assert_eq!(check(T0, T0), Err(QueryError::EmptyRange));
        assert!(matches!(
            check(-DAY, DAY),
            Err(QueryError::OutOfTime { .. })
        ));
        assert!(matches!(
            check(LATEST - DAY, LATEST + 1),
            Err(QueryError::OutOfTime { .. })
        ));
        assert!(matches!(
            check(T0, i64::MAX),
            Err(QueryError::OutOfTime { .. })
        ));
        assert!(matches!(
            check(i64::MIN, T0),
            Err(QueryError::OutOfTime { .. })
        ));
        let message = check(T0, T0 + 1_000 * DAY).unwrap_err().to_string();
        assert!(
            message.contains("at most 400 days") && message.contains("shorter range"),
            "{message}"
        );
    }

    #[test]
    fn a_time_series_far_out_in_time_is_refused_not_overflowed() {
        let names = Names::default();
        let mut far = request(Metric::InboundMessages, i64::MIN, i64::MAX);
        far.granularity = ApiGranularity::Day as i32;
        assert!(matches!(
            series(&far, &names).err(),
            Some(QueryError::OutOfTime { .. })
        ));
    }

    #[test]
    fn a_filter_on_an_unseen_text_matches_nothing() {
        let mut r = request(Metric::InboundMessages, 0, 3600);
        r.filters.push(api::Filter {
            dimension: ApiDimension::Transport as i32,
            value: "pigeon".into(),
        });
        let query = series(&r, &Names::default()).unwrap();
        assert!(query.conditions.is_none());
        assert_eq!(query.quantile, 0.5);
    }
}
