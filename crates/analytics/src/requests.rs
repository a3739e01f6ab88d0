//! First-response and resolution times, from events that may arrive late or out of order.
//!
//! A request's clock keeps the times of its messages. The first response is the first
//! operator message at or after the client's first message; the resolution, from the
//! request's first message to its close_request. Whenever a late event moves either, the
//! sample recorded before is taken back from the sketches and the new one added, so the
//! figures are those of the events' own times, whatever order they came in.
//!
//! Each duration is also measured in business time: the working time the tenant's calendar
//! counts between the same two instants, under the hours of the request's transport. A client
//! who writes at 23:00 on a Friday and is answered at 09:05 on Monday waited five business
//! minutes. A tenant without a calendar is open around the clock, so both figures are equal.

use std::sync::Arc;

use c2d_calendar::Calendar;

use serde::{Deserialize, Serialize};

use crate::aggregates::{Dims, DimsId, Measure, TenantAggregates};

/// A duration sample as recorded: the bucket time, the dimensions and the value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Sample {
    at: i64,
    dims: DimsId,
    seconds: f64,
}

/// The clock of one request. Dimensions are kept as the tenant's combination ids: a busy
/// tenant has a clock for every request of the last weeks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RequestClock {
    /// The client's first message: time and dimensions.
    first_client: Option<(f64, DimsId)>,
    /// Every operator message: time and dimensions (requests hold few).
    replies: Vec<(f64, DimsId)>,
    /// The first message of any kind.
    opened: Option<f64>,
    /// close_request: time and dimensions.
    closed: Option<(f64, DimsId)>,
    first_response: Option<Sample>,
    resolution: Option<Sample>,
    first_response_business: Option<Sample>,
    resolution_business: Option<Sample>,
}

/// The tenant's calendar, when it has one: `None` counts business time as wall-clock time
/// without asking a calendar.
pub type TenantCalendar = Option<Arc<Calendar>>;

impl RequestClock {
    /// The time of the request's last known event.
    pub fn last_activity(&self) -> f64 {
        let replies = self.replies.iter().map(|(at, _)| *at);
        let closed = self.closed.map(|(at, _)| at);
        replies
            .chain(closed)
            .chain(self.opened)
            .fold(f64::MIN, f64::max)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// A message from the client at `at`.
    pub fn client_message(
        &mut self,
        at: f64,
        dims: Dims,
        aggregates: &mut TenantAggregates,
        calendar: &TenantCalendar,
    ) {
        if self.first_client.is_none_or(|(first, _)| at < first) {
            self.first_client = Some((at, aggregates.combinations.intern(dims)));
        }
        self.opened(at);
        self.settle(aggregates, calendar);
    }

    /// A message from an operator at `at`.
    pub fn operator_message(
        &mut self,
        at: f64,
        dims: Dims,
        aggregates: &mut TenantAggregates,
        calendar: &TenantCalendar,
    ) {
        self.replies
            .push((at, aggregates.combinations.intern(dims)));
        self.opened(at);
        self.settle(aggregates, calendar);
    }

    /// The request was closed at `at`.
    pub fn closed(
        &mut self,
        at: f64,
        dims: Dims,
        aggregates: &mut TenantAggregates,
        calendar: &TenantCalendar,
    ) {
        if self.closed.is_none_or(|(closed, _)| at < closed) {
            self.closed = Some((at, aggregates.combinations.intern(dims)));
        }
        self.settle(aggregates, calendar);
    }

    fn opened(&mut self, at: f64) {
        if self.opened.is_none_or(|opened| at < opened) {
            self.opened = Some(at);
        }
    }

    /// Records the samples the clock now defines, replacing outdated ones.
    fn settle(&mut self, aggregates: &mut TenantAggregates, calendar: &TenantCalendar) {
        let first_response = self.first_client.and_then(|(asked, client)| {
            let (answered, operator) = self
                .replies
                .iter()
                .filter(|(at, _)| *at >= asked)
                .min_by(|a, b| a.0.total_cmp(&b.0))?;
            let combinations = &mut aggregates.combinations;
            let dims = Dims {
                operator: combinations.get(*operator).operator,
                ..combinations.get(client)
            };
            Some(Sample {
                at: asked.floor() as i64,
                dims: combinations.intern(dims),
                seconds: answered - asked,
            })
        });
        let first_response_business = first_response
            .zip(self.first_client)
            .map(|(sample, (asked, _))| business(sample, asked, aggregates, calendar));
        replace(
            aggregates,
            Measure::FirstResponse,
            &mut self.first_response,
            first_response,
        );
        replace(
            aggregates,
            Measure::FirstResponseBusiness,
            &mut self.first_response_business,
            first_response_business,
        );

        let resolution = match (self.opened, self.closed) {
            (Some(opened), Some((closed, dims))) if closed >= opened => Some(Sample {
                at: closed.floor() as i64,
                dims,
                seconds: closed - opened,
            }),
            _ => None,
        };
        let resolution_business = resolution
            .zip(self.opened)
            .map(|(sample, opened)| business(sample, opened, aggregates, calendar));
        replace(
            aggregates,
            Measure::Resolution,
            &mut self.resolution,
            resolution,
        );
        replace(
            aggregates,
            Measure::ResolutionBusiness,
            &mut self.resolution_business,
            resolution_business,
        );
    }
}

/// `sample`, a wall-clock duration from `start`, in the business time of `calendar` under the
/// hours of the sample's transport.
fn business(
    sample: Sample,
    start: f64,
    aggregates: &TenantAggregates,
    calendar: &TenantCalendar,
) -> Sample {
    let Some(calendar) = calendar else {
        return sample;
    };
    let transport = aggregates.combinations.get(sample.dims).transport;
    let channel = (transport != 0).then(|| aggregates.names.text(transport));
    let seconds = match (instant(start), instant(start + sample.seconds)) {
        (Some(from), Some(to)) => calendar.business_time(channel, from, to).as_secs_f64(),
        _ => sample.seconds,
    };
    Sample { seconds, ..sample }
}

/// Fractional Unix seconds as an instant; `None` outside the years calendars know.
fn instant(seconds: f64) -> Option<c2d_calendar::Timestamp> {
    let whole = seconds.floor();
    c2d_calendar::from_unix(whole as i64, ((seconds - whole) * 1e9) as i32)
}

fn replace(
    aggregates: &mut TenantAggregates,
    measure: Measure,
    recorded: &mut Option<Sample>,
    new: Option<Sample>,
) {
    if *recorded == new {
        return;
    }
    if let Some(old) = recorded.take() {
        aggregates.remove_duration(measure, old.at, old.dims, old.seconds);
    }
    if let Some(sample) = new {
        aggregates.add_duration(measure, sample.at, sample.dims, sample.seconds);
    }
    *recorded = new;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregates::{Dimension, Granularity};

    const T0: i64 = 1_709_251_200;

    fn frt(aggregates: &TenantAggregates) -> Vec<(u64, f64)> {
        aggregates
            .series(
                Measure::FirstResponse,
                Granularity::Day,
                (T0, T0 + 86_400),
                None,
                &[],
            )
            .values()
            .map(|t| (t.count, t.sketch.quantile(1.0)))
            .collect()
    }

    fn operator(id: i64) -> Dims {
        Dims {
            operator: Some(id),
            ..Dims::default()
        }
    }

    #[test]
    fn business_time_counts_only_the_tenants_working_hours() {
        // Weekdays 09:00-18:00 in São Paulo (UTC-3, no DST since 2019).
        let calendar = Calendar::parse_json(
            r#"{"time_zone": "America/Sao_Paulo", "weekly": {"mon": ["09:00-18:00"],
                "tue": ["09:00-18:00"], "wed": ["09:00-18:00"], "thu": ["09:00-18:00"],
                "fri": ["09:00-18:00"]}}"#,
        )
        .unwrap();
        let calendar = Some(Arc::new(calendar));
        let mut aggregates = TenantAggregates::default();
        let mut clock = RequestClock::default();
        // Friday 2024-03-01 17:00 local (20:00Z); answered Monday 09:05 local (12:05Z).
        let asked = (T0 + 20 * 3_600) as f64;
        let answered = (T0 + 3 * 86_400 + 12 * 3_600 + 5 * 60) as f64;
        clock.client_message(asked, Dims::default(), &mut aggregates, &calendar);
        clock.operator_message(answered, operator(5), &mut aggregates, &calendar);
        clock.closed(answered + 600.0, operator(5), &mut aggregates, &calendar);
        let range = (T0, T0 + 7 * 86_400);
        let whole = &aggregates.summary(range, None)[""];
        let max = |measure| whole[&measure].sketch.quantile(1.0);
        // Wall clock: 2 days 16 h 5 min. Business: Friday 17:00-18:00 and Monday 09:00-09:05.
        assert!(
            (max(Measure::FirstResponse) - (answered - asked)).abs() < 0.01 * (answered - asked)
        );
        assert!((max(Measure::FirstResponseBusiness) - 3_900.0).abs() < 39.0);
        assert!((max(Measure::ResolutionBusiness) - 4_500.0).abs() < 45.0);
    }

    #[test]
    fn first_response_is_the_first_operator_message_after_the_client() {
        let mut aggregates = TenantAggregates::default();
        let mut clock = RequestClock::default();
        let t = T0 as f64;
        clock.client_message(t + 100.0, Dims::default(), &mut aggregates, &None);
        clock.operator_message(t + 160.0, operator(5), &mut aggregates, &None);
        clock.operator_message(t + 400.0, operator(6), &mut aggregates, &None);
        let [(count, seconds)] = frt(&aggregates)[..] else {
            panic!()
        };
        assert_eq!(count, 1);
        assert!((seconds - 60.0).abs() < 1.0);
        let by_operator = aggregates.summary((T0, T0 + 86_400), Some(Dimension::Operator));
        assert_eq!(by_operator["5"][&Measure::FirstResponse].count, 1);
    }

    #[test]
    fn a_late_earlier_client_message_moves_the_sample() {
        let mut aggregates = TenantAggregates::default();
        let mut clock = RequestClock::default();
        let t = T0 as f64;
        clock.client_message(t + 100.0, Dims::default(), &mut aggregates, &None);
        clock.operator_message(t + 160.0, operator(5), &mut aggregates, &None);
        // Delivered late: the client had written 40 s earlier.
        clock.client_message(t + 60.0, Dims::default(), &mut aggregates, &None);
        let [(count, seconds)] = frt(&aggregates)[..] else {
            panic!()
        };
        assert_eq!(count, 1, "one sample, replaced");
        assert!((seconds - 100.0).abs() < 1.0, "{seconds}");
    }

    #[test]
    fn an_operator_message_before_the_client_is_no_response() {
        let mut aggregates = TenantAggregates::default();
        let mut clock = RequestClock::default();
        let t = T0 as f64;
        clock.operator_message(t + 10.0, operator(5), &mut aggregates, &None);
        clock.client_message(t + 100.0, Dims::default(), &mut aggregates, &None);
        assert!(frt(&aggregates).is_empty());
        clock.operator_message(t + 130.0, operator(5), &mut aggregates, &None);
        assert_eq!(frt(&aggregates).len(), 1);
    }

    #[test]
    fn resolution_runs_from_the_first_message_to_the_close() {
        let mut aggregates = TenantAggregates::default();
        let mut clock = RequestClock::default();
        let t = T0 as f64;
        clock.closed(t + 3_700.0, operator(5), &mut aggregates, &None);
        clock.client_message(t + 100.0, Dims::default(), &mut aggregates, &None);
        let resolution = aggregates.series(
            Measure::Resolution,
            Granularity::Day,
            (T0, T0 + 86_400),
            None,
            &[],
        );
        let total = resolution.values().next().unwrap();
        assert_eq!(total.count, 1);
        assert!((total.sketch.quantile(0.5) - 3_600.0).abs() < 36.0);
    }
}
