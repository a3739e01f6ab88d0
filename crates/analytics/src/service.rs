//! AnalyticsService over gRPC: answers read the shared projection under a read lock.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use c2d_proto::analytics::AnalyticsService;
use c2d_proto::analytics::v1::{
    MinuteUpdate, Point, Quantiles, Summary, SummaryRequest, SummaryResponse, TimeSeriesRequest,
    TimeSeriesResponse, WatchMinutesRequest,
};
use futures_util::Stream;
use prost_types::Timestamp;
use tokio::sync::{broadcast, watch};
use tonic::{Request, Response, Status};

use crate::aggregates::{Dimension, Measure, Total};
use crate::projection::Projection;
use crate::query;
use crate::sketch::RELATIVE_ERROR;

/// The gRPC face of the projection.
#[derive(Clone)]
pub struct AnalyticsGrpc {
    projection: Arc<RwLock<Projection>>,
    minutes: broadcast::Sender<MinuteUpdate>,
    /// Raised at shutdown: live streams end, so the server can stop.
    stop: watch::Receiver<bool>,
}

impl AnalyticsGrpc {
    pub fn new(
        projection: Arc<RwLock<Projection>>,
        minutes: broadcast::Sender<MinuteUpdate>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        AnalyticsGrpc {
            projection,
            minutes,
            stop,
        }
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, Projection>, Status> {
        self.projection.read().map_err(|_| {
            Status::internal("the projection was poisoned by a panic; restart c2d-analytics")
        })
    }

    fn summary(
        &self,
        request: &SummaryRequest,
        group: Dimension,
    ) -> Result<SummaryResponse, Status> {
        let projection = self.read()?;
        let tenant = query::tenant(&projection, &request.tenant)?;
        let range = query::summary_range(request.range.as_ref())?;
        let mut summaries: Vec<Summary> = tenant
            .aggregates
            .summary(range, Some(group))
            .into_iter()
            .map(|(key, totals)| summary(key, &totals))
            .collect();
        summaries.sort_by(|a, b| natural(&a.key).cmp(&natural(&b.key)));
        let total = tenant
            .aggregates
            .summary(range, None)
            .remove("")
            .unwrap_or_default();
        Ok(SummaryResponse {
            summaries,
            quantile_relative_error: RELATIVE_ERROR,
            total: Some(summary(String::new(), &total)),
        })
    }
}

type MinuteStream = Pin<Box<dyn Stream<Item = Result<MinuteUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl AnalyticsService for AnalyticsGrpc {
    async fn query_time_series(
        &self,
        request: Request<TimeSeriesRequest>,
    ) -> Result<Response<TimeSeriesResponse>, Status> {
        let request = request.into_inner();
        let projection = self.read()?;
        let tenant = query::tenant(&projection, &request.tenant)?;
        let query = query::series(&request, &tenant.aggregates.names)?;
        let Some(conditions) = &query.conditions else {
            return Ok(Response::new(TimeSeriesResponse {
                points: Vec::new(),
                quantile_relative_error: RELATIVE_ERROR,
            }));
        };
        let totals = tenant.aggregates.series(
            query.measure,
            query.granularity,
            query.range,
            query.group,
            conditions,
        );
        let points = totals
            .into_iter()
            .map(|((bucket_start, group), total)| Point {
                bucket_start: Some(Timestamp {
                    seconds: bucket_start,
                    nanos: 0,
                }),
                group,
                value: if query.measure.is_duration() {
                    total.sketch.quantile(query.quantile)
                } else {
                    total.count as f64
                },
                count: total.count,
            })
            .collect();
        Ok(Response::new(TimeSeriesResponse {
            points,
            quantile_relative_error: RELATIVE_ERROR,
        }))
    }

    async fn operator_summary(
        &self,
        request: Request<SummaryRequest>,
    ) -> Result<Response<SummaryResponse>, Status> {
        self.summary(request.get_ref(), Dimension::Operator)
            .map(Response::new)
    }

    async fn channel_summary(
        &self,
        request: Request<SummaryRequest>,
    ) -> Result<Response<SummaryResponse>, Status> {
        self.summary(request.get_ref(), Dimension::Channel)
            .map(Response::new)
    }

    type WatchMinutesStream = MinuteStream;

    async fn watch_minutes(
        &self,
        request: Request<WatchMinutesRequest>,
    ) -> Result<Response<MinuteStream>, Status> {
        let tenant = request.into_inner().tenant;
        if tenant.is_empty() {
            return Err(query::QueryError::NoTenant.into());
        }
        let updates = self.minutes.subscribe();
        let stream = futures_util::stream::unfold(
            (updates, tenant, self.stop.clone()),
            |(mut updates, tenant, mut stop)| async move {
                loop {
                    let update = tokio::select! {
                        update = updates.recv() => update,
                        _ = stop.wait_for(|stopped| *stopped) => return None,
                    };
                    match update {
                        Ok(update) if update.tenant == tenant => {
                            return Some((Ok(update), (updates, tenant, stop)));
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }
}

fn summary(key: String, totals: &HashMap<Measure, Total>) -> Summary {
    let count = |measure| totals.get(&measure).map_or(0, |t| t.count);
    let quantiles = |measure| {
        totals.get(&measure).map(|t| Quantiles {
            count: t.sketch.count(),
            p50: t.sketch.quantile(0.5),
            p90: t.sketch.quantile(0.9),
            p99: t.sketch.quantile(0.99),
        })
    };
    let (outbound, failures) = (count(Measure::Outbound), count(Measure::DeliveryFailures));
    Summary {
        key,
        inbound_messages: count(Measure::Inbound),
        outbound_messages: outbound,
        delivery_failures: failures,
        failure_rate: if outbound == 0 {
            0.0
        } else {
            failures as f64 / outbound as f64
        },
        transfers: count(Measure::Transfers),
        requests_closed: count(Measure::RequestsClosed),
        first_response_seconds: quantiles(Measure::FirstResponse),
        resolution_seconds: quantiles(Measure::Resolution),
    }
}

/// Numeric keys (operator and channel ids) sort as numbers.
fn natural(key: &str) -> (i64, &str) {
    (key.parse().unwrap_or(i64::MAX), key)
}
