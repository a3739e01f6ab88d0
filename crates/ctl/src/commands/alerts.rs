//! `c2dctl alerts`: AlertingService's alerts, rules, acknowledgements, silences and rule
//! trials.

use c2d_proto::alerting::AlertingServiceClient;
use c2d_proto::alerting::v1::{
    AcknowledgeRequest, Alert, AlertState, CreateSilenceRequest, ListAlertsRequest,
    ListRulesRequest, TestRuleRequest,
};
use serde_json::json;
use tonic::transport::Channel;

use c2dctl::output::{Rows, time};

async fn connect(url: &str) -> anyhow::Result<AlertingServiceClient<Channel>> {
    AlertingServiceClient::connect(url.to_owned())
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach AlertingService at {url}: {e}; is c2d-alerting running? (--alerting-url)"))
}

/// The columns of an alert row.
const ALERT_COLUMNS: [&str; 8] = [
    "fingerprint",
    "state",
    "tenant",
    "rule",
    "severity",
    "since",
    "summary",
    "muted_or_acked",
];

fn alert_row(a: &Alert) -> Vec<serde_json::Value> {
    let state = AlertState::try_from(a.state).map_or("?", |s| match s {
        AlertState::Firing => "firing",
        AlertState::Resolved => "resolved",
        AlertState::Unspecified => "?",
    });
    let note = if let Some(ack) = &a.acknowledgement {
        format!("acked by {}", ack.by)
    } else if !a.silenced_by.is_empty() {
        format!("silenced {}", a.silenced_by)
    } else if !a.inhibited_by.is_empty() {
        format!("inhibited by {}", a.inhibited_by)
    } else {
        String::new()
    };
    vec![
        json!(a.fingerprint),
        json!(state),
        json!(a.tenant),
        json!(a.rule),
        json!(a.severity),
        time(a.starts_at.as_ref()),
        json!(a.summary),
        json!(note),
    ]
}

/// Alerts by state ("firing", "resolved" or any), tenant and rule.
pub async fn list(
    url: String,
    state: Option<String>,
    tenant: String,
    rule: String,
) -> anyhow::Result<Rows> {
    let state = match state.as_deref() {
        None | Some("any") => AlertState::Unspecified,
        Some("firing") => AlertState::Firing,
        Some("resolved") => AlertState::Resolved,
        Some(other) => anyhow::bail!("--state {other:?}: use firing, resolved or any"),
    };
    let alerts = connect(&url)
        .await?
        .list_alerts(ListAlertsRequest {
            state: state as i32,
            tenant,
            rule,
        })
        .await?
        .into_inner()
        .alerts;
    let mut rows = Rows::new(&ALERT_COLUMNS);
    for alert in &alerts {
        rows.push(alert_row(alert));
    }
    Ok(rows)
}

/// Acknowledges a firing alert.
pub async fn acknowledge(
    url: String,
    fingerprint: String,
    by: String,
    comment: String,
) -> anyhow::Result<Rows> {
    let alert = connect(&url)
        .await?
        .acknowledge(AcknowledgeRequest {
            fingerprint,
            by,
            comment,
        })
        .await?
        .into_inner();
    let mut rows = Rows::new(&ALERT_COLUMNS);
    rows.push(alert_row(&alert));
    Ok(rows)
}

/// The rules and their last evaluation.
pub async fn rules(url: String) -> anyhow::Result<Rows> {
    let rules = connect(&url)
        .await?
        .list_rules(ListRulesRequest {})
        .await?
        .into_inner()
        .rules;
    let mut rows = Rows::new(&[
        "name",
        "kind",
        "severity",
        "receiver",
        "firing",
        "last_evaluated",
        "last_result",
    ]);
    for r in &rules {
        rows.push(vec![
            json!(r.name),
            json!(r.kind),
            json!(r.severity),
            json!(r.receiver),
            json!(r.firing),
            time(r.last_evaluated_at.as_ref()),
            json!(r.last_result),
        ]);
    }
    Ok(rows)
}

/// Mutes matching alerts for `duration`.
pub async fn silence(
    url: String,
    tenant: String,
    rule: String,
    duration: std::time::Duration,
    comment: String,
) -> anyhow::Result<Rows> {
    let silence = connect(&url)
        .await?
        .create_silence(CreateSilenceRequest {
            tenant,
            rule,
            labels: Default::default(),
            duration_seconds: duration.as_secs().max(1),
            comment,
        })
        .await?
        .into_inner();
    let mut rows = Rows::new(&["id", "tenant", "rule", "ends_at", "comment"]);
    rows.push(vec![
        json!(silence.id),
        json!(silence.tenant),
        json!(silence.rule),
        time(silence.ends_at.as_ref()),
        json!(silence.comment),
    ]);
    Ok(rows)
}

/// What a rule would have fired over the recent log.
pub async fn test(
    url: String,
    rule: String,
    tenant: String,
    lookback: std::time::Duration,
) -> anyhow::Result<(Rows, String)> {
    let answer = connect(&url)
        .await?
        .test_rule(TestRuleRequest {
            rule,
            tenant,
            lookback_seconds: lookback.as_secs().max(1),
            max_events: 0,
        })
        .await?
        .into_inner();
    let mut rows = Rows::new(&ALERT_COLUMNS);
    for alert in &answer.alerts {
        rows.push(alert_row(alert));
    }
    Ok((rows, answer.explanation))
}
