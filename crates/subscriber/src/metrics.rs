//! A consumer's progress as Prometheus metrics, the same in every service that reads the log:
//! registered once with [`register`], read from [`Stats`] at each scrape, so the numbers are
//! never older than the scrape and the service keeps no second set of counters.
//!
//! With the registry's prefix (`c2d_analytics`, say):
//! - `{prefix}_events_handled_total`: events done with (handled, or refused and
//!   dead-lettered);
//! - `{prefix}_events_retried_total` and `{prefix}_events_dead_lettered_total`;
//! - `{prefix}_consumer_lag_events`: events of the log not handled yet (the alert on a
//!   consumer falling behind reads this);
//! - `{prefix}_consumer_caught_up`: 1 once everything that was in the log at start has been
//!   handled (the service is then SERVING in gRPC health); for a replica, while every
//!   partition it reads has caught up;
//! - `{prefix}_partitions_read`: the partitions a replica reads now (replicas only).

use std::sync::Arc;

use c2d_telemetry::metrics::GrpcMetrics;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::Stats;

/// What the metrics read of a consumer: one subscriber's [`Stats`], or a replica's partition
/// readers together ([`crate::replica_progress::ReplicaProgress`]).
pub trait ConsumerProgress: std::fmt::Debug + Send + Sync {
    fn handled(&self) -> u64;
    fn retried(&self) -> u64;
    fn dead_lettered(&self) -> u64;
    fn pending(&self) -> u64;
    fn is_caught_up(&self) -> bool;
    /// The partitions read now, by a replica; `None` for a reader of the whole log.
    fn partitions(&self) -> Option<usize> {
        None
    }
}

impl ConsumerProgress for Stats {
    fn handled(&self) -> u64 {
        Stats::handled(self)
    }
    fn retried(&self) -> u64 {
        Stats::retried(self)
    }
    fn dead_lettered(&self) -> u64 {
        Stats::dead_lettered(self)
    }
    fn pending(&self) -> u64 {
        Stats::pending(self)
    }
    fn is_caught_up(&self) -> bool {
        Stats::is_caught_up(self)
    }
}

/// Registers the consumer's metrics in `registry`.
pub fn register(registry: &mut Registry, consumer: Arc<dyn ConsumerProgress>) {
    registry.register_collector(Box::new(ConsumerCollector(consumer)));
}

/// The registry of a service that consumes the log and answers gRPC, under `prefix`
/// (`c2d_analytics`): its consumer's progress and its calls per method. The service adds its
/// own metrics to it, and gives the [`GrpcMetrics`] to the server.
pub fn service_registry(
    prefix: &str,
    consumer: Arc<dyn ConsumerProgress>,
) -> (Registry, GrpcMetrics) {
    let mut registry = Registry::with_prefix(prefix);
    let grpc = GrpcMetrics::register(&mut registry);
    register(&mut registry, consumer);
    (registry, grpc)
}

#[derive(Debug)]
struct ConsumerCollector(Arc<dyn ConsumerProgress>);

impl Collector for ConsumerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = &self.0;
        let counters = [
            (
                "events_handled",
                "Events done with: handled, or refused and dead-lettered",
                stats.handled(),
            ),
            (
                "events_retried",
                "Handler failures retried",
                stats.retried(),
            ),
            (
                "events_dead_lettered",
                "Events stored on the dead-letter subject",
                stats.dead_lettered(),
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let gauges = [
            (
                "consumer_lag_events",
                "Events of the log not handled yet",
                stats.pending() as i64,
            ),
            (
                "consumer_caught_up",
                "1 once the consumer has handled what the log held when it started",
                i64::from(stats.is_caught_up()),
            ),
        ];
        let partitions = stats.partitions().map(|read| {
            (
                "partitions_read",
                "Partitions of the log this replica reads now (replicas only)",
                read as i64,
            )
        });
        for (name, help, value) in gauges.into_iter().chain(partitions) {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumers_progress_is_read_at_scrape_time() {
        let stats = Arc::new(Stats::default());
        let mut registry = Registry::with_prefix("c2d_x");
        register(&mut registry, stats.clone());
        let before = c2d_telemetry::metrics::render(&registry);
        assert!(before.contains("c2d_x_consumer_caught_up 0"), "{before}");
        stats.observe_pending(3);
        stats.done_with(0);
        let after = c2d_telemetry::metrics::render(&registry);
        for line in [
            "c2d_x_events_handled_total 1",
            "c2d_x_consumer_lag_events 0",
            "c2d_x_consumer_caught_up 1",
        ] {
            assert!(after.contains(line), "{line} in {after}");
        }
    }
}
