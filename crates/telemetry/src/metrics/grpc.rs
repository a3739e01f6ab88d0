//! gRPC calls counted and timed per method, the same in every service: what an operator
//! reads to see which query is slow or failing, whichever service answers it.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// A method and how its call ended: the gRPC status code's name (`Ok`, `InvalidArgument`,
/// `Unavailable`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub method: String,
    pub code: String,
}

/// A method of the service.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: String,
}

/// `{prefix}_grpc_requests_total{method, code}` and
/// `{prefix}_grpc_request_duration_seconds{method}`.
#[derive(Debug, Clone)]
pub struct GrpcMetrics {
    requests: Family<CallLabels, Counter>,
    durations: Family<MethodLabels, Histogram>,
}

impl GrpcMetrics {
    /// Registers the two families in `registry` (whose prefix names the service).
    pub fn register(registry: &mut Registry) -> GrpcMetrics {
        let metrics = GrpcMetrics {
            requests: Family::default(),
            // 100 µs to ~6.5 s.
            durations: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
            }),
        };
        registry.register(
            "grpc_requests",
            "gRPC calls answered, by method and status code",
            metrics.requests.clone(),
        );
        registry.register_with_unit(
            "grpc_request_duration",
            "Time from a call's arrival to its answer's headers (a whole unary call)",
            Unit::Seconds,
            metrics.durations.clone(),
        );
        metrics
    }

    /// Counts one call of `method` that ended with `code`, after `took`.
    pub fn observe(&self, method: &str, code: tonic::Code, took: Duration) {
        self.requests
            .get_or_create(&CallLabels {
                method: method.to_owned(),
                code: format!("{code:?}"),
            })
            .inc();
        self.durations
            .get_or_create(&MethodLabels {
                method: method.to_owned(),
            })
            .observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_method_and_code_and_timed_by_method() {
        let mut registry = Registry::with_prefix("c2d_x");
        let grpc = GrpcMetrics::register(&mut registry);
        grpc.observe("Summary", tonic::Code::Ok, Duration::from_millis(3));
        grpc.observe(
            "Summary",
            tonic::Code::InvalidArgument,
            Duration::from_millis(1),
        );
        let text = super::super::render(&registry);
        assert!(
            text.contains(
                r#"c2d_x_grpc_requests_total{method="Summary",code="InvalidArgument"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"c2d_x_grpc_request_duration_seconds_count{method="Summary"} 2"#),
            "{text}"
        );
    }
}
