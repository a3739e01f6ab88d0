//! What the gateway counts, served at `GET /metrics` in Prometheus text format.
//!
//! Labels are bounded: tenants come from configuration (a request for an unknown tenant is
//! counted without one), and hook types are the 14 known ones or `unknown`.

use c2d_proto::events::{HookType, Subject};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// An event's tenant and hook type.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub tenant: String,
    pub hook_type: String,
}

/// The outcome of one webhook request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// stored, duplicate, dead_letter, spooled, and the rejections' (see
    /// [`crate::error::Rejection::outcome`]).
    pub outcome: &'static str,
}

/// How a hints request was answered: answered, deadline, failed, off.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HintsLabels {
    pub outcome: &'static str,
}

/// Every metric of the gateway.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub events: Family<EventLabels, Counter>,
    pub duplicates: Family<EventLabels, Counter>,
    pub dead_letters: Family<EventLabels, Counter>,
    pub publish_seconds: Histogram,
    pub request_seconds: Histogram,
    pub nats_connected: Gauge,
    /// Events answered 2xx from the spool while JetStream could not take them.
    pub spooled: Counter,
    pub spool_messages: Gauge,
    pub spool_bytes: Gauge,
    /// Bytes of the spool skipped since start because they were not records (a damaged disk).
    pub spool_unreadable_bytes: Gauge,
    /// Events the spool set aside since start, because JetStream can never take them as they are.
    pub spool_set_aside: Gauge,
    /// Events this gateway found in its spool at start, left by one that stopped or died
    /// before forwarding them: the trace, after the fact, of a stop that could not drain.
    pub spool_inherited: Gauge,
    /// 1 from the stop signal on: readiness fails and deliveries get 503 while the gateway
    /// finishes its requests and forwards its spool.
    pub stopping: Gauge,
    pub hints: Family<HintsLabels, Counter>,
    /// What Chat2Desk sends that the parser does not know.
    pub drift: crate::drift::Drift,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("c2d_gateway");
        let metrics = Metrics {
            requests: Family::default(),
            events: Family::default(),
            duplicates: Family::default(),
            dead_letters: Family::default(),
            // 100 µs to ~3.3 s.
            publish_seconds: Histogram::new(exponential_buckets(0.000_1, 2.0, 16)),
            request_seconds: Histogram::new(exponential_buckets(0.000_1, 2.0, 16)),
            nats_connected: Gauge::default(),
            spooled: Counter::default(),
            spool_messages: Gauge::default(),
            spool_bytes: Gauge::default(),
            spool_unreadable_bytes: Gauge::default(),
            spool_set_aside: Gauge::default(),
            spool_inherited: Gauge::default(),
            stopping: Gauge::default(),
            drift: crate::drift::Drift::default(),
            hints: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Webhook requests by outcome",
            metrics.requests.clone(),
        );
        registry.register(
            "events",
            "Events stored in JetStream for the first time (spooled ones once forwarded)",
            metrics.events.clone(),
        );
        registry.register(
            "dedupe_hits",
            "Deliveries JetStream recognised as retries of a stored event",
            metrics.duplicates.clone(),
        );
        registry.register(
            "dead_letters",
            "Undecodable deliveries stored on chat2desk.dlq.{tenant}",
            metrics.dead_letters.clone(),
        );
        registry.register_with_unit(
            "publish_duration",
            "Time from publish to JetStream acknowledgement",
            Unit::Seconds,
            metrics.publish_seconds.clone(),
        );
        registry.register_with_unit(
            "request_duration",
            "Time to answer a webhook request",
            Unit::Seconds,
            metrics.request_seconds.clone(),
        );
        registry.register(
            "nats_connected",
            "1 while the gateway is connected to NATS",
            metrics.nats_connected.clone(),
        );
        registry.register(
            "spooled",
            "Events written to the spool because JetStream could not take them",
            metrics.spooled.clone(),
        );
        registry.register(
            "spool_messages",
            "Events in the spool, waiting to be forwarded to JetStream",
            metrics.spool_messages.clone(),
        );
        registry.register_with_unit(
            "spool",
            "Size of the spool's events waiting to be forwarded",
            Unit::Bytes,
            metrics.spool_bytes.clone(),
        );
        registry.register_with_unit(
            "spool_unreadable",
            "Bytes of the spool skipped since start because they were not records (a damaged disk): events in them are lost unless Chat2Desk retries them",
            Unit::Bytes,
            metrics.spool_unreadable_bytes.clone(),
        );
        registry.register(
            "spool_inherited_messages",
            "Events found in the spool at start, left by a gateway that stopped or died before forwarding them (forwarded first)",
            metrics.spool_inherited.clone(),
        );
        registry.register(
            "stopping",
            "1 while the gateway stops: readiness fails, deliveries get 503, the spool is forwarded before exit",
            metrics.stopping.clone(),
        );
        registry.register(
            "spool_set_aside",
            "Events set aside in spool.rejected since start because the NATS server refuses them as too large; tried again at the next start",
            metrics.spool_set_aside.clone(),
        );
        registry.register(
            "hints_requests",
            "ai_hints_requested answers by outcome (answered by HintsService, deadline, failed, off)",
            metrics.hints.clone(),
        );
        metrics.drift.register(&mut registry);
        Metrics {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    /// Counts an event JetStream took where `subject` says: a new event, a dead letter, or a
    /// retry JetStream recognised (`duplicate`).
    pub fn stored(&self, subject: Subject<'_>, duplicate: bool) {
        let (tenant, hook_type) = match subject {
            // Known hook types only, so that new ones cannot grow the label set.
            Subject::Event { tenant, hook_type } => (
                tenant,
                HookType::parse(hook_type).map_or("unknown", HookType::as_str),
            ),
            Subject::DeadLetter { tenant } => (tenant, "undecodable"),
        };
        let labels = EventLabels {
            tenant: tenant.to_owned(),
            hook_type: hook_type.to_owned(),
        };
        let counter = match (duplicate, subject) {
            (true, _) => &self.duplicates,
            (false, Subject::DeadLetter { .. }) => &self.dead_letters,
            (false, Subject::Event { .. }) => &self.events,
        };
        counter.get_or_create(&labels).inc();
    }

    /// Counts a request's outcome.
    pub fn request(&self, outcome: &'static str) {
        self.requests
            .get_or_create(&RequestLabels { outcome })
            .inc();
    }

    /// Counts how a hints request was answered.
    pub fn hint(&self, outcome: crate::hints::Outcome) {
        self.hints
            .get_or_create(&HintsLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        c2d_telemetry::metrics::render(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_rules_name_only_metrics_the_gateway_renders() {
        let metrics = Metrics::default();
        // A sample in each labelled family, so that every metric is rendered.
        metrics.request("unavailable");
        metrics.stored(Subject::DeadLetter { tenant: "acme" }, false);
        metrics.stored(
            Subject::Event {
                tenant: "acme",
                hook_type: "inbox",
            },
            true,
        );
        metrics.hint(crate::hints::Outcome::Answered);
        metrics.drift.observe("inbox", true, &["sentiment".into()]);
        metrics.drift.observe("call_recorded", false, &[]);
        let unknown = c2d_telemetry::metrics::named_by_alert_rules_but_not_exposed(
            env!("CARGO_MANIFEST_DIR"),
            "c2d_gateway_",
            &metrics.render(),
        )
        .unwrap();
        assert!(
            unknown.is_empty(),
            "alert rules name metrics the gateway does not emit: {unknown:?}"
        );
    }

    #[test]
    fn renders_counters_with_their_labels() {
        let metrics = Metrics::default();
        metrics.request("stored");
        let labels = EventLabels {
            tenant: "acme".into(),
            hook_type: "inbox".into(),
        };
        metrics.dead_letters.get_or_create(&labels).inc();
        let text = metrics.render();
        assert!(
            text.contains(r#"c2d_gateway_requests_total{outcome="stored"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"c2d_gateway_dead_letters_total{tenant="acme",hook_type="inbox"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("c2d_gateway_publish_duration_seconds_bucket"),
            "{text}"
        );
    }

    #[test]
    fn stored_events_are_counted_by_what_their_subject_names() {
        let metrics = Metrics::default();
        let event = |hook_type| Subject::Event {
            tenant: "acme",
            hook_type,
        };
        metrics.stored(event("inbox"), false);
        metrics.stored(event("inbox"), true);
        metrics.stored(event("some_new_hook"), false);
        metrics.stored(Subject::DeadLetter { tenant: "acme" }, false);
        let text = metrics.render();
        for line in [
            r#"c2d_gateway_events_total{tenant="acme",hook_type="inbox"} 1"#,
            r#"c2d_gateway_dedupe_hits_total{tenant="acme",hook_type="inbox"} 1"#,
            r#"c2d_gateway_events_total{tenant="acme",hook_type="unknown"} 1"#,
            r#"c2d_gateway_dead_letters_total{tenant="acme",hook_type="undecodable"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
