//! The rules file (`ALERTING_RULES_FILE`, TOML): receivers and rules, validated at start so
//! that a typo is an error with its place, not a silent rule that never fires.
//!
//! ```toml
//! [[receiver]]
//! name = "ops"
//! kind = "webhook"                 # webhook (JSON), slack (incoming webhook), telegram
//! url = "https://ops.example.com/alerts"
//!
//! [[rule]]
//! name = "whatsapp-disconnected"
//! kind = "event"                   # event, wait, threshold or silence
//! hook_type = "new_qr_code"        # event: new_qr_code, outbox_status (failures), or any hook type
//! receiver = "ops"
//! ```
//!
//! A rule may also group its notifications (`group_wait`), repeat them until acknowledged
//! (`repeat_interval`), keep the tenant's working hours (`hours = "business"`: a wait counts
//! working time only, other rules raise nothing while the tenant is closed), and `[[inhibit]]`
//! entries let a greater alert mute a lesser one of the same tenant. `${NAME}` in any string is
//! read from the environment. Durations are written `500ms`, `30s`, `10m`, `2h`.

use std::collections::BTreeMap;
use std::time::Duration;

use c2d_calendar::Calendars;
use serde::Deserialize;

/// Where notifications go.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    pub name: String,
    pub target: ReceiverTarget,
    /// Attempts per notification before it is given up (and logged).
    pub max_attempts: u32,
    /// The delay after the first failure; doubles with each failure.
    pub initial_backoff: Duration,
}

#[derive(Clone, PartialEq)]
pub enum ReceiverTarget {
    /// POST of the alert as JSON.
    Webhook { url: String },
    /// A Slack-compatible incoming webhook: `{"text": ...}`.
    Slack { url: String },
    /// Telegram Bot API `sendMessage`.
    Telegram {
        base_url: String,
        token: String,
        chat_id: String,
    },
}

/// The bot token stays out of logs.
impl std::fmt::Debug for ReceiverTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReceiverTarget::Webhook { url } => write!(f, "Webhook({url})"),
            ReceiverTarget::Slack { url } => write!(f, "Slack({url})"),
            ReceiverTarget::Telegram {
                base_url, chat_id, ..
            } => write!(f, "Telegram({base_url}, chat {chat_id})"),
        }
    }
}

/// What makes a rule fire.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// An event of this hook type (for outbox_status: a failed delivery) fires at once, and
    /// resolves after `resolve_after` without a new one.
    Event {
        hook_type: String,
        resolve_after: Duration,
    },
    /// A client message with no operator answer in its request within `after` fires; the
    /// answer, or the request's closing, resolves it (or cancels it before it fires).
    Wait { after: Duration },
    /// A number AnalyticsService computes over the last `window`, asked every `every`, above
    /// `above` fires; back at or below it resolves.
    Threshold {
        metric: ThresholdMetric,
        above: f64,
        window: Duration,
        every: Duration,
    },
    /// No event at all from a tenant for `after` fires (a webhook Chat2Desk disabled looks
    /// like this); the next event resolves it.
    Silence { after: Duration },
}

/// What a threshold rule measures, from AnalyticsService's channel summary of the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdMetric {
    /// Failed deliveries per outgoing message, in percent.
    DeliveryFailureRate,
    /// Client messages in the window: a spike.
    InboundMessages,
    /// The 90th percentile of first-response times in the window, in seconds.
    FirstResponseP90Seconds,
    /// Client messages in the window per the usual number in a window as long, measured over
    /// the `baseline` before it: 3 means three times the usual volume.
    InboundSpikeRatio { baseline: Duration },
}

impl ThresholdMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            ThresholdMetric::DeliveryFailureRate => "delivery_failure_rate",
            ThresholdMetric::InboundMessages => "inbound_messages",
            ThresholdMetric::FirstResponseP90Seconds => "first_response_p90_seconds",
            ThresholdMetric::InboundSpikeRatio { .. } => "inbound_spike_ratio",
        }
    }
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub condition: Condition,
    pub severity: String,
    pub receiver: String,
    /// Clients with one of these tags go to another receiver (first match wins).
    pub routes: Vec<(String, String)>,
    /// Only these tenants; all when empty.
    pub tenants: Vec<String>,
    /// How long a new notification waits for others of its group (same receiver, rule and
    /// tenant), so that a burst is one message; None: sent at once.
    pub group_wait: Option<Duration>,
    /// A firing alert nobody acknowledged is notified again this often; None: once.
    pub repeat_interval: Option<Duration>,
    /// Whether the rule keeps the tenant's working hours.
    pub hours: Hours,
}

/// Which hours a rule keeps (`hours = "business"`): the tenant's calendar
/// (docs/business-hours.md). A tenant without a calendar is always open, so for it both are
/// the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hours {
    /// Around the clock.
    #[default]
    Always,
    /// Only working hours: a wait rule's `after` counts working time only (a client who
    /// writes at night is waited for from the opening), and any other rule raises no alert
    /// while the tenant is closed.
    Business,
}

impl Rule {
    pub fn kind(&self) -> &'static str {
        match self.condition {
            Condition::Event { .. } => "event",
            Condition::Wait { .. } => "wait",
            Condition::Threshold { .. } => "threshold",
            Condition::Silence { .. } => "silence",
        }
    }

    pub fn applies_to(&self, tenant: &str) -> bool {
        self.tenants.is_empty() || self.tenants.iter().any(|t| t == tenant)
    }

    /// The receiver for a client with `tags`.
    pub fn receiver_for(&self, tags: &[String]) -> &str {
        self.routes
            .iter()
            .find(|(tag, _)| tags.contains(tag))
            .map_or(self.receiver.as_str(), |(_, receiver)| receiver.as_str())
    }

    /// The rule in words, for ListRules.
    pub fn describe(&self) -> String {
        let scope = if self.tenants.is_empty() {
            "every tenant".to_owned()
        } else {
            format!("tenants {}", self.tenants.join(", "))
        };
        let what = match &self.condition {
            Condition::Event {
                hook_type,
                resolve_after,
            } => format!(
                "fires on each {hook_type} event, resolves {} after the last",
                human(*resolve_after)
            ),
            Condition::Wait { after } => format!(
                "fires when a client message has no operator answer within {}",
                human(*after)
            ),
            Condition::Threshold {
                metric,
                above,
                window,
                every,
            } => format!(
                "fires when {}{} over the last {} is above {above} (asked every {})",
                metric.as_str(),
                match metric {
                    ThresholdMetric::InboundSpikeRatio { baseline } =>
                        format!(" (against the {} before)", human(*baseline)),
                    _ => String::new(),
                },
                human(*window),
                human(*every)
            ),
            Condition::Silence { after } => {
                format!("fires when a tenant sends no event for {}", human(*after))
            }
        };
        let mut text = format!("{what}; {scope}");
        match (self.hours, &self.condition) {
            (Hours::Always, _) => {}
            (Hours::Business, Condition::Wait { .. }) => {
                text.push_str("; counting the tenant's working hours only")
            }
            (Hours::Business, _) => text.push_str("; only while the tenant is open"),
        }
        if let Some(wait) = self.group_wait {
            text.push_str(&format!("; notifications grouped for {}", human(wait)));
        }
        if let Some(every) = self.repeat_interval {
            text.push_str(&format!(
                "; repeated every {} until acknowledged",
                human(every)
            ));
        }
        text
    }
}

/// Which alerts an inhibition speaks of: a rule's, or a severity's (both when both are set).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertMatcher {
    pub rule: Option<String>,
    pub severity: Option<String>,
}

impl AlertMatcher {
    pub fn matches(&self, rule: &str, severity: &str) -> bool {
        self.rule.as_deref().is_none_or(|r| r == rule)
            && self.severity.as_deref().is_none_or(|s| s == severity)
    }

    fn describe(&self) -> String {
        match (&self.rule, &self.severity) {
            (Some(rule), Some(severity)) => format!("{severity} alerts of rule {rule}"),
            (Some(rule), None) => format!("alerts of rule {rule}"),
            (None, Some(severity)) => format!("{severity} alerts"),
            (None, None) => "any alert".into(),
        }
    }
}

/// While a `source` alert fires for a tenant, that tenant's `target` alerts are not notified:
/// the greater alert (the WhatsApp number is disconnected) says what the lesser ones (messages
/// are not delivered) would only repeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Inhibition {
    pub source: AlertMatcher,
    pub target: AlertMatcher,
}

impl Inhibition {
    pub fn describe(&self) -> String {
        format!(
            "{} inhibit {} of the same tenant",
            self.source.describe(),
            self.target.describe()
        )
    }
}

/// Receivers, rules and inhibitions, checked against each other.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rules {
    pub receivers: Vec<Receiver>,
    pub rules: Vec<Rule>,
    pub inhibitions: Vec<Inhibition>,
    /// The tenants' calendars, which `hours = "business"` rules keep: the C2D_CALENDARS
    /// bucket as it is now (none until the service watches it: always open).
    pub calendars: Calendars,
}

impl Rules {
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }
}

/// A rules file that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// Unreadable, or not TOML of the rules' shape: the file, line and column.
    #[error(transparent)]
    File(#[from] c2d_telemetry::config_file::ConfigFileError),
    #[error("{path}: {what} {name:?}: {message}")]
    Invalid {
        path: String,
        what: &'static str,
        name: String,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    receiver: Vec<ReceiverSpec>,
    #[serde(default)]
    rule: Vec<RuleSpec>,
    #[serde(default)]
    inhibit: Vec<InhibitSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InhibitSpec {
    source_rule: Option<String>,
    source_severity: Option<String>,
    target_rule: Option<String>,
    target_severity: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiverSpec {
    name: String,
    kind: String,
    url: Option<String>,
    base_url: Option<String>,
    token: Option<String>,
    chat_id: Option<String>,
    max_attempts: Option<u32>,
    initial_backoff: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    kind: String,
    hook_type: Option<String>,
    after: Option<String>,
    metric: Option<String>,
    above: Option<f64>,
    window: Option<String>,
    every: Option<String>,
    resolve_after: Option<String>,
    #[serde(default = "default_severity")]
    severity: String,
    receiver: String,
    #[serde(default)]
    tenants: Vec<String>,
    #[serde(default)]
    route: Vec<RouteSpec>,
    group_wait: Option<String>,
    repeat_interval: Option<String>,
    baseline: Option<String>,
    hours: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSpec {
    tag: String,
    receiver: String,
}

fn default_severity() -> String {
    "warning".into()
}

/// Telegram's API, unless a receiver says otherwise (tests point it at a local server).
pub const TELEGRAM_API: &str = "https://api.telegram.org";
/// How long an event alert stays firing after its last event, unless the rule says otherwise.
pub const DEFAULT_RESOLVE_AFTER: Duration = Duration::from_secs(3600);

/// Reads and checks the rules file at `path`, with `${NAME}` from `env`.
pub fn load(path: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Rules, RulesError> {
    check(path, c2d_telemetry::config_file::read("rules", path)?, env)
}

/// Parses a rules file; `path` only names it in errors.
pub fn parse(
    path: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Rules, RulesError> {
    check(
        path,
        c2d_telemetry::config_file::parse("rules", path, text)?,
        env,
    )
}

/// The rules a parsed file declares, once every reference and value in it holds.
fn check(
    path: &str,
    file: File,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Rules, RulesError> {
    let mut rules = Rules::default();
    for spec in file.receiver {
        let invalid = |message: String| RulesError::Invalid {
            path: path.into(),
            what: "receiver",
            name: spec.name.clone(),
            message,
        };
        if rules.receiver(&spec.name).is_some() {
            return Err(invalid("two receivers have this name".into()));
        }
        let text = |field: &str, value: &Option<String>| -> Result<String, RulesError> {
            let value = value
                .as_deref()
                .ok_or_else(|| invalid(format!("kind {:?} needs {field}", spec.kind)))?;
            c2d_telemetry::env::expand(value, env)
                .map_err(|name| invalid(format!("{field} refers to ${{{name}}}, which is not set")))
        };
        let target = match spec.kind.as_str() {
            "webhook" => ReceiverTarget::Webhook {
                url: text("url", &spec.url)?,
            },
            "slack" => ReceiverTarget::Slack {
                url: text("url", &spec.url)?,
            },
            "telegram" => ReceiverTarget::Telegram {
                base_url: match &spec.base_url {
                    Some(_) => text("base_url", &spec.base_url)?,
                    None => TELEGRAM_API.to_owned(),
                },
                token: text("token", &spec.token)?,
                chat_id: text("chat_id", &spec.chat_id)?,
            },
            other => {
                return Err(invalid(format!(
                    "kind {other:?} is not known: use webhook, slack or telegram"
                )));
            }
        };
        let initial_backoff = match &spec.initial_backoff {
            Some(text) => duration(text).map_err(invalid)?,
            None => Duration::from_secs(1),
        };
        rules.receivers.push(Receiver {
            name: spec.name.clone(),
            target,
            max_attempts: spec.max_attempts.unwrap_or(8).max(1),
            initial_backoff,
        });
    }
    for spec in file.rule {
        let invalid = |message: String| RulesError::Invalid {
            path: path.into(),
            what: "rule",
            name: spec.name.clone(),
            message,
        };
        if rules.rules.iter().any(|r| r.name == spec.name) {
            return Err(invalid("two rules have this name".into()));
        }
        let after = || -> Result<Duration, RulesError> {
            let text = spec
                .after
                .as_deref()
                .ok_or_else(|| invalid(format!("kind {:?} needs after = \"10m\"", spec.kind)))?;
            duration(text).map_err(invalid)
        };
        let condition = match spec.kind.as_str() {
            "event" => Condition::Event {
                hook_type: spec.hook_type.clone().ok_or_else(|| {
                    invalid("kind \"event\" needs hook_type, e.g. \"new_qr_code\"".into())
                })?,
                resolve_after: match &spec.resolve_after {
                    Some(text) => duration(text).map_err(invalid)?,
                    None => DEFAULT_RESOLVE_AFTER,
                },
            },
            "wait" => Condition::Wait { after: after()? },
            "silence" => Condition::Silence { after: after()? },
            "threshold" => {
                let metric = match spec.metric.as_deref() {
                    Some("delivery_failure_rate") => ThresholdMetric::DeliveryFailureRate,
                    Some("inbound_messages") => ThresholdMetric::InboundMessages,
                    Some("first_response_p90_seconds") => ThresholdMetric::FirstResponseP90Seconds,
                    Some("inbound_spike_ratio") => ThresholdMetric::InboundSpikeRatio {
                        baseline: duration(spec.baseline.as_deref().unwrap_or("24h"))
                            .map_err(|e| invalid(format!("baseline: {e}")))?,
                    },
                    other => {
                        return Err(invalid(format!(
                            "metric {other:?} is not known: use delivery_failure_rate (percent), inbound_messages, inbound_spike_ratio or first_response_p90_seconds"
                        )));
                    }
                };
                let above = spec
                    .above
                    .filter(|a| a.is_finite() && *a >= 0.0)
                    .ok_or_else(|| {
                        invalid("kind \"threshold\" needs above = <a number>, e.g. 20".into())
                    })?;
                let span = |field: &str, value: &Option<String>, default: &str| {
                    duration(value.as_deref().unwrap_or(default))
                        .map_err(|e| invalid(format!("{field}: {e}")))
                };
                Condition::Threshold {
                    metric,
                    above,
                    window: span("window", &spec.window, "10m")?,
                    every: span("every", &spec.every, "30s")?,
                }
            }
            other => {
                return Err(invalid(format!(
                    "kind {other:?} is not known: use event, wait, threshold or silence"
                )));
            }
        };
        let mut receivers: Vec<&str> = vec![&spec.receiver];
        receivers.extend(spec.route.iter().map(|r| r.receiver.as_str()));
        for receiver in receivers {
            if rules.receiver(receiver).is_none() {
                let known: Vec<&str> = rules.receivers.iter().map(|r| r.name.as_str()).collect();
                return Err(invalid(format!(
                    "receiver {receiver:?} is not defined; defined: {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
        if spec.baseline.is_some()
            && !matches!(
                condition,
                Condition::Threshold {
                    metric: ThresholdMetric::InboundSpikeRatio { .. },
                    ..
                }
            )
        {
            return Err(invalid(
                "baseline is only read for metric = \"inbound_spike_ratio\"".into(),
            ));
        }
        let optional = |field: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(duration)
                .transpose()
                .map_err(|e| invalid(format!("{field}: {e}")))
        };
        let hours = match spec.hours.as_deref() {
            None | Some("always") => Hours::Always,
            Some("business") => Hours::Business,
            Some(other) => {
                return Err(invalid(format!(
                    "hours {other:?} is not known: use \"always\" (the default) or \"business\" (the tenant's calendar)"
                )));
            }
        };
        let group_wait = optional("group_wait", &spec.group_wait)?;
        let repeat_interval = optional("repeat_interval", &spec.repeat_interval)?;
        rules.rules.push(Rule {
            name: spec.name.clone(),
            condition,
            severity: spec.severity.clone(),
            receiver: spec.receiver.clone(),
            routes: spec
                .route
                .iter()
                .map(|r| (r.tag.clone(), r.receiver.clone()))
                .collect(),
            tenants: spec.tenants.clone(),
            group_wait,
            repeat_interval,
            hours,
        });
    }
    for (index, spec) in file.inhibit.into_iter().enumerate() {
        let invalid = |message: String| RulesError::Invalid {
            path: path.into(),
            what: "inhibit",
            name: format!("#{}", index + 1),
            message,
        };
        let source = AlertMatcher {
            rule: spec.source_rule,
            severity: spec.source_severity,
        };
        let target = AlertMatcher {
            rule: spec.target_rule,
            severity: spec.target_severity,
        };
        for (side, matcher) in [("source", &source), ("target", &target)] {
            if matcher.rule.is_none() && matcher.severity.is_none() {
                return Err(invalid(format!(
                    "needs {side}_rule or {side}_severity (or both)"
                )));
            }
            if let Some(rule) = &matcher.rule
                && !rules.rules.iter().any(|r| &r.name == rule)
            {
                return Err(invalid(format!("{side}_rule {rule:?} is not a rule")));
            }
        }
        if source == target {
            return Err(invalid(
                "source and target are the same alerts: an alert cannot inhibit its own kind"
                    .into(),
            ));
        }
        rules.inhibitions.push(Inhibition { source, target });
    }
    Ok(rules)
}

pub use c2d_telemetry::env::{duration, human};

/// Labels with a stable order, for fingerprints and notifications.
pub type Labels = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        [[receiver]]
        name = "ops"
        kind = "webhook"
        url = "http://127.0.0.1:9/alerts"

        [[receiver]]
        name = "vip"
        kind = "telegram"
        token = "${BOT_TOKEN}"
        chat_id = "-100"

        [[rule]]
        name = "qr"
        kind = "event"
        hook_type = "new_qr_code"
        severity = "critical"
        receiver = "ops"

        [[rule]]
        name = "waiting"
        kind = "wait"
        after = "10m"
        hours = "business"
        receiver = "ops"
        route = [{ tag = "VIP", receiver = "vip" }]

        [[rule]]
        name = "failing"
        kind = "threshold"
        metric = "delivery_failure_rate"
        above = 20
        window = "10m"
        receiver = "ops"

        [[rule]]
        name = "silent"
        kind = "silence"
        after = "30m"
        receiver = "ops"
        tenants = ["acme"]
        group_wait = "30s"
        repeat_interval = "4h"

        [[rule]]
        name = "spike"
        kind = "threshold"
        metric = "inbound_spike_ratio"
        baseline = "6h"
        above = 3
        receiver = "ops"

        [[inhibit]]
        source_rule = "qr"
        target_severity = "warning"
    "#;

    fn env(name: &str) -> Option<String> {
        (name == "BOT_TOKEN").then(|| "123:abc".to_owned())
    }

    #[test]
    fn a_rules_file_is_read() {
        let rules = parse("r.toml", FILE, &env).unwrap();
        assert_eq!(rules.rules.len(), 5);
        assert_eq!(
            rules.rules[4].describe(),
            "fires when inbound_spike_ratio (against the 6h before) over the last 10m is above 3 (asked every 30s); every tenant"
        );
        assert_eq!(
            rules.rules[2].describe(),
            "fires when delivery_failure_rate over the last 10m is above 20 (asked every 30s); every tenant"
        );
        assert_eq!(
            rules.rules[1].condition,
            Condition::Wait {
                after: Duration::from_secs(600)
            }
        );
        assert_eq!(
            (rules.rules[0].hours, rules.rules[1].hours),
            (Hours::Always, Hours::Business)
        );
        assert_eq!(
            rules.rules[1].describe(),
            "fires when a client message has no operator answer within 10m; every tenant; counting the tenant's working hours only"
        );
        assert_eq!(rules.rules[1].receiver_for(&["VIP".into()]), "vip");
        assert_eq!(rules.rules[1].receiver_for(&[]), "ops");
        assert!(rules.rules[3].applies_to("acme") && !rules.rules[3].applies_to("globex"));
        assert!(
            !format!("{:?}", rules.receivers[1]).contains("123:abc"),
            "no token in logs"
        );
        assert_eq!(
            rules.rules[0].describe(),
            "fires on each new_qr_code event, resolves 1h after the last; every tenant"
        );
        assert_eq!(
            rules.rules[3].describe(),
            "fires when a tenant sends no event for 30m; tenants acme; notifications grouped for 30s; repeated every 4h until acknowledged"
        );
        let inhibition = &rules.inhibitions[0];
        assert!(inhibition.source.matches("qr", "critical"));
        assert!(inhibition.target.matches("waiting", "warning"));
        assert!(!inhibition.target.matches("qr", "critical"));
        assert_eq!(
            inhibition.describe(),
            "alerts of rule qr inhibit warning alerts of the same tenant"
        );
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (
                FILE.replace("after = \"10m\"", "after = \"10 minutes\""),
                "500ms, 30s",
            ),
            (
                FILE.replace("receiver = \"vip\" }", "receiver = \"nobody\" }"),
                "\"nobody\" is not defined",
            ),
            (
                FILE.replace("kind = \"silence\"", "kind = \"sometimes\""),
                "event, wait, threshold or silence",
            ),
            (FILE.replace("BOT_TOKEN", "UNSET"), "${UNSET}"),
            (
                FILE.replace("hours = \"business\"", "hours = \"office\""),
                "use \"always\" (the default) or \"business\"",
            ),
            (FILE.replace("hook_type = ", "hook_typ = "), "hook_typ"),
            (
                FILE.replace("hook_type = ", "hook_typ = "),
                "the rules file r.toml is not valid at line ",
            ),
            (
                FILE.replace("delivery_failure_rate", "happiness"),
                "use delivery_failure_rate",
            ),
            (
                FILE.replace("source_rule = \"qr\"", "source_rule = \"qrr\""),
                "inhibit \"#1\": source_rule \"qrr\" is not a rule",
            ),
            (
                FILE.replace("target_severity = \"warning\"", ""),
                "needs target_rule or target_severity",
            ),
            (
                FILE.replace("inbound_spike_ratio", "inbound_messages"),
                "baseline is only read for metric = \"inbound_spike_ratio\"",
            ),
            (
                FILE.replace("group_wait = \"30s\"", "group_wait = \"soon\""),
                "group_wait: \"soon\" is not a duration",
            ),
        ];
        for (text, expected) in cases {
            let error = parse("r.toml", &text, &env).unwrap_err().to_string();
            assert!(error.contains(expected), "{expected:?} in {error}");
        }
    }
}
