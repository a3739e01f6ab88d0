//! A value AnalyticsService measured for a threshold rule: above the threshold fires, at or
//! below it resolves. The runner asks every `every` of the rule; the machine only compares,
//! so a measurement that fails is simply not an input.

use std::time::Duration;

use crate::alert::fingerprint;
use crate::rules::{Condition, Labels, Rule, Rules, ThresholdMetric, human};

use super::{Effect, Machine, Step};

impl Machine {
    /// `rule` measured `value` for `tenant` at `now`. Not a threshold rule: nothing.
    pub fn threshold(
        &mut self,
        rules: &Rules,
        rule: &Rule,
        tenant: &str,
        value: f64,
        now: i64,
    ) -> Vec<Effect> {
        let Condition::Threshold {
            metric,
            above,
            window,
            ..
        } = rule.condition
        else {
            return Vec::new();
        };
        let mut step = Step::new(self, rules, now);
        let fp = fingerprint(&rule.name, tenant, &Labels::new());
        let firing = step.machine.is_firing(&fp);
        step.evaluated(
            &rule.name,
            format!(
                "{tenant}: {} {value:.1}, {} {above}",
                metric.as_str(),
                if value > above { "above" } else { "not above" }
            ),
        );
        if value > above && !firing {
            let summary = threshold_summary(metric, value, above, window);
            let alert = step.firing(rule, tenant, Labels::new(), summary);
            step.fire(rule, alert);
        } else if value <= above && firing {
            step.resolve(&fp);
        }
        step.finish()
    }
}

/// What a threshold alert says; shared with rule trials, so that a trial reads as the alert
/// would.
pub fn threshold_summary(
    metric: ThresholdMetric,
    value: f64,
    above: f64,
    window: Duration,
) -> String {
    format!(
        "{} is {value:.1} over the last {}, above {above}",
        metric.as_str(),
        human(window)
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::alert::State;

    fn failure_rate() -> Rule {
        rule(
            "failing",
            Condition::Threshold {
                metric: ThresholdMetric::DeliveryFailureRate,
                above: 20.0,
                window: Duration::from_secs(600),
                every: Duration::from_secs(30),
            },
        )
    }

    #[test]
    fn a_value_above_the_threshold_fires_once() {
        let rule = failure_rate();
        let rules = rules(vec![rule.clone()]);
        let mut machine = Machine::default();
        let effects = run(&mut machine, |m| {
            m.threshold(&rules, &rule, "acme", 35.0, T0)
        });
        let alert = &put_alerts(&effects)[0];
        assert_eq!(alert.state, State::Firing);
        assert!(alert.labels.is_empty(), "about the whole tenant");
        assert_eq!(
            alert.summary,
            "delivery_failure_rate is 35.0 over the last 10m, above 20"
        );
        assert_eq!(notifications(&effects).len(), 1);
        let effects = run(&mut machine, |m| {
            m.threshold(&rules, &rule, "acme", 50.0, T0 + 30 * SECOND)
        });
        assert!(put_alerts(&effects).is_empty(), "still above: no news");
        assert_eq!(
            machine.evaluations(&rules)["failing"]
                .0
                .clone()
                .map(|e| (e.at, e.result)),
            Some((
                T0 + 30 * SECOND,
                "acme: delivery_failure_rate 50.0, above 20".to_owned()
            ))
        );
    }

    #[test]
    fn a_value_at_or_below_the_threshold_resolves() {
        let rule = failure_rate();
        let rules = rules(vec![rule.clone()]);
        let mut machine = Machine::default();
        let effects = run(&mut machine, |m| {
            m.threshold(&rules, &rule, "acme", 20.0, T0)
        });
        assert!(
            put_alerts(&effects).is_empty(),
            "at the threshold: not above"
        );
        run(&mut machine, |m| {
            m.threshold(&rules, &rule, "acme", 21.0, T0)
        });
        let effects = run(&mut machine, |m| {
            m.threshold(&rules, &rule, "acme", 20.0, T0 + MINUTE)
        });
        let resolved = &put_alerts(&effects)[0];
        assert_eq!(resolved.state, State::Resolved);
        assert_eq!(resolved.ends_at, Some(T0 + MINUTE));
        assert_eq!(notifications(&effects).len(), 1);
    }

    #[test]
    fn a_rule_that_is_not_a_threshold_measures_nothing() {
        let rule = rule("qr", qr_condition());
        let rules = rules(vec![rule.clone()]);
        let mut machine = Machine::default();
        let effects = run(&mut machine, |m| {
            m.threshold(&rules, &rule, "acme", 1e9, T0)
        });
        assert!(effects.is_empty());
    }
}
