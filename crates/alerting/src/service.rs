//! AlertingService over gRPC: the engine's alerts, rules and silences, acknowledgements, and
//! rule trials over the recent event log.

use std::sync::Arc;

use c2d_proto::alerting::AlertingService;
use c2d_proto::alerting::v1::{
    AcknowledgeRequest, Alert, AlertState, CreateSilenceRequest, ExpireSilenceRequest,
    GetAlertRequest, ListAlertsRequest, ListAlertsResponse, ListRulesRequest, ListRulesResponse,
    ListSilencesRequest, ListSilencesResponse, Rule, Silence, TestRuleRequest, TestRuleResponse,
};
use c2d_subscriber::StartAt;
use tonic::{Request, Response, Status};

use crate::alert::{AlertRecord, State, now_ms, timestamp};
use crate::engine::{Engine, StateError};
use crate::machine::{NotAcknowledged, threshold_summary};
use crate::measure::Analytics;
use crate::rules::{Condition, Labels};

/// A trial reads this far back unless asked otherwise.
const TRIAL_LOOKBACK_SECONDS: u64 = 3_600;
/// A trial reads at most this many events unless asked otherwise.
const TRIAL_MAX_EVENTS: u32 = 10_000;
/// No trial reads more than this many events: it runs inside one gRPC call.
const TRIAL_EVENT_LIMIT: u32 = 200_000;

/// The gRPC face of the engine.
#[derive(Clone)]
pub struct AlertingGrpc {
    engine: Arc<Engine>,
    /// For rule trials: the event log, and AnalyticsService for threshold rules.
    nats: async_nats::Client,
    analytics: Option<Analytics>,
}

impl AlertingGrpc {
    pub fn new(
        engine: Arc<Engine>,
        nats: async_nats::Client,
        analytics: Option<Analytics>,
    ) -> Self {
        AlertingGrpc {
            engine,
            nats,
            analytics,
        }
    }

    /// An empty rule name (any rule) or a configured one.
    fn known_rule(&self, rule: &str) -> Result<(), Status> {
        if rule.is_empty() || self.engine.rules.rules.iter().any(|r| r.name == rule) {
            return Ok(());
        }
        Err(Status::invalid_argument(format!(
            "no rule is named {rule:?}; see ListRules"
        )))
    }
}

#[tonic::async_trait]
impl AlertingService for AlertingGrpc {
    async fn list_alerts(
        &self,
        request: Request<ListAlertsRequest>,
    ) -> Result<Response<ListAlertsResponse>, Status> {
        let request = request.into_inner();
        let state = match AlertState::try_from(request.state) {
            Ok(AlertState::Unspecified) => None,
            Ok(AlertState::Firing) => Some(State::Firing),
            Ok(AlertState::Resolved) => Some(State::Resolved),
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "state {} is not ALERT_STATE_FIRING, ALERT_STATE_RESOLVED or unset",
                    request.state
                )));
            }
        };
        self.known_rule(&request.rule)?;
        let mut alerts: Vec<_> = self
            .engine
            .alerts()
            .await
            .into_iter()
            .filter(|a| state.is_none_or(|s| a.state == s))
            .filter(|a| request.tenant.is_empty() || a.tenant == request.tenant)
            .filter(|a| request.rule.is_empty() || a.rule == request.rule)
            .collect();
        alerts.sort_by(|a, b| {
            b.updated_at
                .cmp(&a.updated_at)
                .then(a.fingerprint.cmp(&b.fingerprint))
        });
        Ok(Response::new(ListAlertsResponse {
            alerts: alerts.iter().map(|a| a.to_proto()).collect(),
        }))
    }

    async fn get_alert(
        &self,
        request: Request<GetAlertRequest>,
    ) -> Result<Response<Alert>, Status> {
        let fingerprint = request.into_inner().fingerprint;
        if fingerprint.is_empty() {
            return Err(Status::invalid_argument(
                "fingerprint is required (see ListAlerts)",
            ));
        }
        self.engine
            .alerts()
            .await
            .into_iter()
            .find(|a| a.fingerprint == fingerprint)
            .map(|a| Response::new(a.to_proto()))
            .ok_or_else(|| Status::not_found(format!("no alert has fingerprint {fingerprint:?}")))
    }

    async fn acknowledge(
        &self,
        request: Request<AcknowledgeRequest>,
    ) -> Result<Response<Alert>, Status> {
        let request = request.into_inner();
        if request.fingerprint.is_empty() {
            return Err(Status::invalid_argument(
                "fingerprint is required (see ListAlerts)",
            ));
        }
        if request.by.trim().is_empty() {
            return Err(Status::invalid_argument(
                "by is required: who is on it, for whoever reads the alert",
            ));
        }
        match self
            .engine
            .acknowledge(&request.fingerprint, request.by, request.comment)
            .await
            .map_err(unavailable)?
        {
            Ok(alert) => Ok(Response::new(alert.to_proto())),
            Err(NotAcknowledged::Unknown) => Err(Status::not_found(format!(
                "no alert has fingerprint {:?}; see ListAlerts",
                request.fingerprint
            ))),
            Err(NotAcknowledged::Resolved) => Err(Status::failed_precondition(format!(
                "alert {} is resolved: there is nothing left to acknowledge",
                request.fingerprint
            ))),
        }
    }

    async fn list_rules(
        &self,
        _request: Request<ListRulesRequest>,
    ) -> Result<Response<ListRulesResponse>, Status> {
        let evaluations = self.engine.evaluations().await;
        Ok(Response::new(ListRulesResponse {
            rules: self
                .engine
                .rules
                .rules
                .iter()
                .map(|rule| {
                    let (last, firing) = evaluations.get(&rule.name).cloned().unwrap_or_default();
                    Rule {
                        name: rule.name.clone(),
                        kind: rule.kind().into(),
                        severity: rule.severity.clone(),
                        receiver: rule.receiver.clone(),
                        description: rule.describe(),
                        last_evaluated_at: last.as_ref().map(|e| timestamp(e.at)),
                        last_result: last.map(|e| e.result).unwrap_or_default(),
                        firing,
                    }
                })
                .collect(),
        }))
    }

    async fn test_rule(
        &self,
        request: Request<TestRuleRequest>,
    ) -> Result<Response<TestRuleResponse>, Status> {
        let request = request.into_inner();
        if request.rule.is_empty() {
            return Err(Status::invalid_argument("rule is required (see ListRules)"));
        }
        self.known_rule(&request.rule)?;
        let Some(rule) = self
            .engine
            .rules
            .rules
            .iter()
            .find(|r| r.name == request.rule)
        else {
            return Err(Status::internal("the rule vanished"));
        };
        let mut rule = rule.clone();
        if !request.tenant.is_empty() {
            if !rule.applies_to(&request.tenant) {
                return Err(Status::invalid_argument(format!(
                    "rule {} does not apply to tenant {:?} (its tenants: {})",
                    rule.name,
                    request.tenant,
                    rule.tenants.join(", ")
                )));
            }
            rule.tenants = vec![request.tenant.clone()];
        }
        let now = now_ms();
        if let Condition::Threshold {
            metric,
            above,
            window,
            ..
        } = rule.condition
        {
            return self.test_threshold(&rule, metric, above, window, now).await;
        }
        let lookback = match request.lookback_seconds {
            0 => TRIAL_LOOKBACK_SECONDS,
            seconds => seconds,
        };
        let max_events = match request.max_events {
            0 => TRIAL_MAX_EVENTS,
            n if n > TRIAL_EVENT_LIMIT => {
                return Err(Status::invalid_argument(format!(
                    "max_events is at most {TRIAL_EVENT_LIMIT}"
                )));
            }
            n => n,
        };
        let since = std::time::SystemTime::now()
            .checked_sub(std::time::Duration::from_secs(lookback))
            .ok_or_else(|| Status::invalid_argument("lookback_seconds reaches before 1970"))?;
        let filter =
            (!request.tenant.is_empty()).then(|| format!("chat2desk.events.{}.>", request.tenant));
        let history = c2d_subscriber::history::read(
            self.nats.clone(),
            StartAt::Time(since),
            filter,
            max_events as usize,
        )
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
        let events: Vec<_> = history.events.into_iter().map(|e| e.event).collect();
        let alerts = crate::trial::try_rule(&rule, &events, now);
        let mut explanation = format!(
            "{} events of the last {lookback} s replayed through rule {}: {} alerts would have fired",
            events.len(),
            rule.name,
            alerts.len()
        );
        if history.truncated {
            explanation.push_str(&format!(
                "; stopped at max_events = {max_events}, later events were not read"
            ));
        }
        if let Condition::Silence { .. } = rule.condition {
            explanation.push_str("; a tenant with no event at all in the window is not seen here");
        }
        Ok(Response::new(TestRuleResponse {
            alerts: alerts.iter().map(AlertRecord::to_proto).collect(),
            events_read: events.len() as u64,
            explanation,
        }))
    }

    async fn create_silence(
        &self,
        request: Request<CreateSilenceRequest>,
    ) -> Result<Response<Silence>, Status> {
        let request = request.into_inner();
        if request.duration_seconds == 0 {
            return Err(Status::invalid_argument(
                "duration_seconds is required: how long the silence lasts, e.g. 3600",
            ));
        }
        self.known_rule(&request.rule)?;
        let silence = self
            .engine
            .create_silence(
                request.tenant,
                request.rule,
                request.labels.into_iter().collect(),
                std::time::Duration::from_secs(request.duration_seconds),
                request.comment,
            )
            .await
            .map_err(unavailable)?;
        Ok(Response::new(silence.to_proto(now_ms())))
    }

    async fn expire_silence(
        &self,
        request: Request<ExpireSilenceRequest>,
    ) -> Result<Response<Silence>, Status> {
        let id = request.into_inner().id;
        match self.engine.expire_silence(&id).await.map_err(unavailable)? {
            Some(silence) => Ok(Response::new(silence.to_proto(now_ms()))),
            None => Err(Status::not_found(format!(
                "no silence has id {id:?}; see ListSilences"
            ))),
        }
    }

    async fn list_silences(
        &self,
        _request: Request<ListSilencesRequest>,
    ) -> Result<Response<ListSilencesResponse>, Status> {
        let now = now_ms();
        let mut silences = self.engine.silences().await;
        silences.sort_by_key(|s| (!s.is_active(now), std::cmp::Reverse(s.ends_at)));
        Ok(Response::new(ListSilencesResponse {
            silences: silences.iter().map(|s| s.to_proto(now)).collect(),
        }))
    }
}

impl AlertingGrpc {
    /// A threshold rule is tried by asking AnalyticsService now, for its tenants.
    async fn test_threshold(
        &self,
        rule: &crate::rules::Rule,
        metric: crate::rules::ThresholdMetric,
        above: f64,
        window: std::time::Duration,
        now: i64,
    ) -> Result<Response<TestRuleResponse>, Status> {
        let Some(analytics) = &self.analytics else {
            return Err(Status::failed_precondition(
                "threshold rules ask AnalyticsService: set ALERTING_ANALYTICS_URL",
            ));
        };
        let tenants = if rule.tenants.is_empty() {
            self.engine.tenants().await
        } else {
            rule.tenants.clone()
        };
        let mut alerts = Vec::new();
        let mut values = Vec::new();
        for tenant in &tenants {
            let Some(value) = analytics.measure(tenant, metric, window).await else {
                values.push(format!("{tenant}: no answer"));
                continue;
            };
            values.push(format!("{tenant}: {value:.1}"));
            if value > above {
                let summary = threshold_summary(metric, value, above, window);
                let alert = AlertRecord::firing(rule, tenant, Labels::new(), summary, now);
                alerts.push(alert.to_proto());
            }
        }
        Ok(Response::new(TestRuleResponse {
            alerts,
            events_read: 0,
            explanation: format!(
                "measured now by AnalyticsService over the last {} ({}); fires above {above}",
                crate::rules::human(window),
                if values.is_empty() {
                    "no tenant heard from yet".to_owned()
                } else {
                    values.join(", ")
                }
            ),
        }))
    }
}

/// The state bucket could not be written: worth retrying once NATS is back.
fn unavailable(error: StateError) -> Status {
    Status::unavailable(error.to_string())
}
