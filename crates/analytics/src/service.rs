//! AnalyticsService over gRPC: answers read the tenant's projection under a read lock, here,
//! or in the replica that holds the tenant ([`crate::partitioned`]).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{RwLock, RwLockReadGuard};

use c2d_calendar::Calendar;
use c2d_calendar::{CalendarStore, Calendars};
use c2d_proto::analytics::AnalyticsService;
use c2d_proto::analytics::v1::{
    GetCalendarRequest, MinuteUpdate, Point, Quantiles, SetCalendarRequest, Summary,
    SummaryRequest, SummaryResponse, TenantCalendar, TimeSeriesRequest, TimeSeriesResponse,
    WatchMinutesRequest,
};
use futures_util::Stream;
use prost_types::Timestamp;
use tokio::sync::{broadcast, watch};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::aggregates::{Dimension, Measure, Total};
use crate::error::{calendar_status, calendar_store_status};
use crate::partitioned::{FORWARDED, Located, Projections};
use crate::projection::Projection;
use crate::query;
use crate::sketch::RELATIVE_ERROR;

/// The gRPC face of the projections.
#[derive(Clone)]
pub struct AnalyticsGrpc {
    projections: Projections,
    minutes: broadcast::Sender<MinuteUpdate>,
    /// Raised at shutdown: live streams end, so the server can stop.
    stop: watch::Receiver<bool>,
    /// Where the tenants' calendars are kept, and this process's view of them; none: the
    /// calendar calls are UNAVAILABLE.
    calendars: Option<(CalendarStore, Calendars)>,
}

impl AnalyticsGrpc {
    pub fn new(
        projections: Projections,
        minutes: broadcast::Sender<MinuteUpdate>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        AnalyticsGrpc {
            projections,
            minutes,
            stop,
            calendars: None,
        }
    }

    /// The calendar calls read and write `store`; a change is answered once `view` (what
    /// this process counts by) shows it.
    pub fn with_calendars(mut self, store: CalendarStore, view: Calendars) -> Self {
        self.calendars = Some((store, view));
        self
    }

    fn calendars(&self) -> Result<&CalendarStore, Status> {
        match &self.calendars {
            Some((store, _)) => Ok(store),
            None => Err(Status::unavailable(
                "this c2d-analytics keeps no calendars (it has no NATS connection)",
            )),
        }
    }

    /// Waits (up to five seconds) until this process counts `tenant`'s business time by
    /// `calendar`: events applied after a SetCalendar answer use it. The other replicas see
    /// the change as quickly, through the same bucket.
    async fn in_force(&self, tenant: &str, calendar: Option<&Calendar>) {
        let Some((_, view)) = &self.calendars else {
            return;
        };
        for _ in 0..500 {
            if view.configured(tenant).as_deref() == calendar {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        tracing::warn!(%tenant, "the calendar change is stored but not seen here after 5 s; the watch of C2D_CALENDARS may be reconnecting");
    }

    /// Where the tenant of `request` is held; an empty tenant is refused first.
    async fn locate<T>(&self, request: &Request<T>, tenant: &str) -> Result<Located, Status> {
        if tenant.is_empty() {
            return Err(query::QueryError::NoTenant.into());
        }
        let forwarded = request.metadata().contains_key(FORWARDED);
        self.projections.locate(tenant, forwarded).await
    }
}

fn read(projection: &RwLock<Projection>) -> Result<RwLockReadGuard<'_, Projection>, Status> {
    projection.read().map_err(|_| {
        Status::internal("the projection was poisoned by a panic; restart c2d-analytics")
    })
}

/// `request`, marked as forwarded by a replica, so its owner does not forward it again.
fn forwarded<T>(request: T) -> Request<T> {
    let mut request = Request::new(request);
    request
        .metadata_mut()
        .insert(FORWARDED, MetadataValue::from_static("1"));
    request
}

fn summary_of(
    projection: &RwLock<Projection>,
    request: &SummaryRequest,
    group: Dimension,
) -> Result<SummaryResponse, Status> {
    let projection = read(projection)?;
    let tenant = query::tenant(&projection, &request.tenant)?;
    let range = query::summary_range(request.range.as_ref())?;
    let sla_minutes = match request.sla_business_minutes {
        0 => DEFAULT_SLA_BUSINESS_MINUTES,
        minutes => minutes,
    };
    let mut summaries: Vec<Summary> = tenant
        .aggregates
        .summary(range, Some(group))
        .into_iter()
        .map(|(key, totals)| summary(key, &totals, sla_minutes))
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
        total: Some(summary(String::new(), &total, sla_minutes)),
        sla_business_minutes: sla_minutes,
    })
}

fn time_series(
    projection: &RwLock<Projection>,
    request: &TimeSeriesRequest,
) -> Result<TimeSeriesResponse, Status> {
    let projection = read(projection)?;
    let tenant = query::tenant(&projection, &request.tenant)?;
    let query = query::series(request, &tenant.aggregates.names)?;
    let Some(conditions) = &query.conditions else {
        return Ok(TimeSeriesResponse {
            points: Vec::new(),
            quantile_relative_error: RELATIVE_ERROR,
        });
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
    Ok(TimeSeriesResponse {
        points,
        quantile_relative_error: RELATIVE_ERROR,
    })
}

type MinuteStream = Pin<Box<dyn Stream<Item = Result<MinuteUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl AnalyticsService for AnalyticsGrpc {
    async fn query_time_series(
        &self,
        request: Request<TimeSeriesRequest>,
    ) -> Result<Response<TimeSeriesResponse>, Status> {
        match self.locate(&request, &request.get_ref().tenant).await? {
            Located::Here(projection) => {
                time_series(&projection, request.get_ref()).map(Response::new)
            }
            Located::There(mut owner) => {
                owner
                    .query_time_series(forwarded(request.into_inner()))
                    .await
            }
        }
    }

    async fn operator_summary(
        &self,
        request: Request<SummaryRequest>,
    ) -> Result<Response<SummaryResponse>, Status> {
        match self.locate(&request, &request.get_ref().tenant).await? {
            Located::Here(projection) => {
                summary_of(&projection, request.get_ref(), Dimension::Operator).map(Response::new)
            }
            Located::There(mut owner) => {
                owner
                    .operator_summary(forwarded(request.into_inner()))
                    .await
            }
        }
    }

    async fn channel_summary(
        &self,
        request: Request<SummaryRequest>,
    ) -> Result<Response<SummaryResponse>, Status> {
        match self.locate(&request, &request.get_ref().tenant).await? {
            Located::Here(projection) => {
                summary_of(&projection, request.get_ref(), Dimension::Channel).map(Response::new)
            }
            Located::There(mut owner) => {
                owner.channel_summary(forwarded(request.into_inner())).await
            }
        }
    }

    async fn get_calendar(
        &self,
        request: Request<GetCalendarRequest>,
    ) -> Result<Response<TenantCalendar>, Status> {
        let tenant = request.into_inner().tenant;
        let calendar = self
            .calendars()?
            .get(&tenant)
            .await
            .map_err(calendar_store_status)?;
        Ok(Response::new(tenant_calendar(tenant, calendar)))
    }

    async fn set_calendar(
        &self,
        request: Request<SetCalendarRequest>,
    ) -> Result<Response<TenantCalendar>, Status> {
        let SetCalendarRequest {
            tenant,
            calendar_json,
        } = request.into_inner();
        let calendar = Calendar::parse_json(&calendar_json).map_err(calendar_status)?;
        self.calendars()?
            .put(&tenant, &calendar)
            .await
            .map_err(calendar_store_status)?;
        self.in_force(&tenant, Some(&calendar)).await;
        tracing::info!(%tenant, time_zone = calendar.time_zone(), "calendar set");
        Ok(Response::new(tenant_calendar(tenant, Some(calendar))))
    }

    async fn delete_calendar(
        &self,
        request: Request<GetCalendarRequest>,
    ) -> Result<Response<TenantCalendar>, Status> {
        let tenant = request.into_inner().tenant;
        self.calendars()?
            .delete(&tenant)
            .await
            .map_err(calendar_store_status)?;
        self.in_force(&tenant, None).await;
        tracing::info!(%tenant, "calendar deleted");
        Ok(Response::new(tenant_calendar(tenant, None)))
    }

    type WatchMinutesStream = MinuteStream;

    async fn watch_minutes(
        &self,
        request: Request<WatchMinutesRequest>,
    ) -> Result<Response<MinuteStream>, Status> {
        if let Located::There(mut owner) = self.locate(&request, &request.get_ref().tenant).await? {
            let updates = owner
                .watch_minutes(forwarded(request.into_inner()))
                .await?
                .into_inner();
            let stream: MinuteStream = Box::pin(updates);
            return Ok(Response::new(stream));
        }
        let tenant = request.into_inner().tenant;
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

/// What the calendar calls answer: the calendar in force for `tenant`.
fn tenant_calendar(tenant: String, calendar: Option<Calendar>) -> TenantCalendar {
    TenantCalendar {
        tenant,
        configured: calendar.is_some(),
        calendar_json: calendar.unwrap_or_else(Calendar::always_open).to_json(),
    }
}

/// The SLA target when a request names none: a first response within 15 business minutes.
pub const DEFAULT_SLA_BUSINESS_MINUTES: u32 = 15;

fn summary(key: String, totals: &HashMap<Measure, Total>, sla_minutes: u32) -> Summary {
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
        first_response_business_seconds: quantiles(Measure::FirstResponseBusiness),
        resolution_business_seconds: quantiles(Measure::ResolutionBusiness),
        first_response_sla_ratio: totals
            .get(&Measure::FirstResponseBusiness)
            .map_or(0.0, |t| {
                t.sketch.fraction_at_most(f64::from(sla_minutes) * 60.0)
            }),
    }
}

/// Numeric keys (operator and channel ids) sort as numbers.
fn natural(key: &str) -> (i64, &str) {
    (key.parse().unwrap_or(i64::MAX), key)
}
