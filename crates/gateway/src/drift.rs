//! Payload drift: what Chat2Desk sends that the parser does not know, counted so that an
//! operator hears of it the day it starts (the alert `Chat2DeskPayloadsChanged`), not the day a
//! consumer misses a field.
//!
//! Nothing is lost meanwhile: the raw body travels with every event, and an unknown hook type
//! is stored with its own name and an `Unknown` payload. What drifts is only what the parsed
//! fields tell consumers, and a new field or hook type is the first sign.
//!
//! The names come from a body, so they are bounded before they become labels: a name that is
//! not a plausible field name (`[a-z0-9_.]`, at most 48 characters), or one beyond the first
//! [`MAX_NAMES`] seen, is counted as `other`. A tenant that sends junk cannot grow the
//! gateway's metrics without bound.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// How many distinct names (fields and hook types together) get a label of their own.
pub const MAX_NAMES: usize = 200;

/// A hook type, and a field of its body the parser does not read.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FieldLabels {
    pub hook_type: String,
    pub field: String,
}

/// A hook type the parser does not know.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookTypeLabels {
    pub hook_type: String,
}

/// `c2d_gateway_payload_unknown_fields_total{hook_type, field}` and
/// `c2d_gateway_unknown_hook_types_total{hook_type}`.
#[derive(Debug, Default)]
pub struct Drift {
    fields: Family<FieldLabels, Counter>,
    hook_types: Family<HookTypeLabels, Counter>,
    named: Mutex<HashSet<String>>,
    /// The (hook type, field) pairs seen so far, by label: what is new is told once.
    told: Mutex<HashSet<FieldLabels>>,
}

impl Drift {
    /// Registers both families in the gateway's `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "payload_unknown_fields",
            "Deliveries with a top-level field the parser does not read, by hook type and field",
            self.fields.clone(),
        );
        registry.register(
            "unknown_hook_types",
            "Deliveries of a hook type the parser does not know",
            self.hook_types.clone(),
        );
    }

    /// Counts what one delivery of `hook_type` brought that the parser does not know:
    /// `unknown_fields`, and the hook type itself when `known_hook_type` is false. Whether any of
    /// it is new (its first delivery since the gateway started): the log tells that once, not
    /// on every delivery of a field Chat2Desk now always sends.
    pub fn observe(
        &self,
        hook_type: &str,
        known_hook_type: bool,
        unknown_fields: &[String],
    ) -> bool {
        // The common case, on every delivery: nothing new, so no lock and no label.
        if known_hook_type && unknown_fields.is_empty() {
            return false;
        }
        let hook_type = self.label(hook_type);
        let fields: Vec<FieldLabels> = if known_hook_type {
            unknown_fields
                .iter()
                .map(|field| FieldLabels {
                    hook_type: hook_type.clone(),
                    field: self.label(field),
                })
                .collect()
        } else {
            self.hook_types
                .get_or_create(&HookTypeLabels {
                    hook_type: hook_type.clone(),
                })
                .inc();
            // Every field of an unknown hook type is unknown: the hook type says it all.
            vec![FieldLabels {
                hook_type,
                field: String::new(),
            }]
        };
        let mut told = self.told.lock().unwrap_or_else(|p| p.into_inner());
        let mut new = false;
        for labels in fields {
            if known_hook_type {
                self.fields.get_or_create(&labels).inc();
            }
            // Bounded as the labels are: at most MAX_NAMES names, so at most that many squared
            // pairs, and in practice a handful.
            new |= told.insert(labels);
        }
        new
    }

    /// `name` as a label value: itself while plausible and among the first [`MAX_NAMES`],
    /// `other` beyond.
    fn label(&self, name: &str) -> String {
        let plausible = !name.is_empty()
            && name.len() <= 48
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
        if !plausible {
            return "other".to_owned();
        }
        let mut named = self.named.lock().unwrap_or_else(|p| p.into_inner());
        if named.contains(name) || named.len() < MAX_NAMES && named.insert(name.to_owned()) {
            name.to_owned()
        } else {
            "other".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(drift: &Drift) -> String {
        let mut registry = Registry::with_prefix("c2d_gateway");
        drift.register(&mut registry);
        c2d_telemetry::metrics::render(&registry)
    }

    #[test]
    fn new_fields_and_hook_types_are_counted_by_name() {
        let drift = Drift::default();
        assert!(drift.observe("inbox", true, &["sentiment".into()]));
        assert!(
            !drift.observe("inbox", true, &["sentiment".into()]),
            "told once"
        );
        assert!(drift.observe("call_recorded", false, &["duration".into()]));
        assert!(!drift.observe("call_recorded", false, &["duration".into()]));
        assert!(!drift.observe("inbox", true, &[]));
        let text = rendered(&drift);
        for line in [
            r#"c2d_gateway_payload_unknown_fields_total{hook_type="inbox",field="sentiment"} 2"#,
            r#"c2d_gateway_unknown_hook_types_total{hook_type="call_recorded"} 2"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(!text.contains("duration"), "{text}");
    }

    #[test]
    fn junk_names_cannot_grow_the_labels() {
        let drift = Drift::default();
        drift.observe("inbox", true, &["DROP TABLE;".into(), "x".repeat(49)]);
        for n in 0..(MAX_NAMES + 50) {
            drift.observe("inbox", true, &[format!("field_{n}")]);
        }
        let text = rendered(&drift);
        let series = text
            .lines()
            .filter(|l| l.starts_with("c2d_gateway_payload_unknown_fields_total{"))
            .count();
        // The hook type took one name; the rest went to `other`, once.
        assert_eq!(series, MAX_NAMES - 1 + 1, "{text}");
        // Two junk names, and the 51 names past the limit.
        assert!(text.contains(r#"field="other"} 53"#), "{text}");
    }
}
