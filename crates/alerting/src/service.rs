//! AlertingService over gRPC: reads of the engine's alerts and rules.

use std::sync::Arc;

use c2d_proto::alerting::AlertingService;
use c2d_proto::alerting::v1::{
    Alert, AlertState, CreateSilenceRequest, ExpireSilenceRequest, GetAlertRequest,
    ListAlertsRequest, ListAlertsResponse, ListRulesRequest, ListRulesResponse,
    ListSilencesRequest, ListSilencesResponse, Rule, Silence,
};
use tonic::{Request, Response, Status};

use crate::alert::{State, now_ms};
use crate::engine::Engine;
use crate::engine::StateError;

/// The gRPC face of the engine.
#[derive(Clone)]
pub struct AlertingGrpc {
    engine: Arc<Engine>,
}

impl AlertingGrpc {
    pub fn new(engine: Arc<Engine>) -> Self {
        AlertingGrpc { engine }
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

    async fn list_rules(
        &self,
        _request: Request<ListRulesRequest>,
    ) -> Result<Response<ListRulesResponse>, Status> {
        Ok(Response::new(ListRulesResponse {
            rules: self
                .engine
                .rules
                .rules
                .iter()
                .map(|rule| Rule {
                    name: rule.name.clone(),
                    kind: rule.kind().into(),
                    severity: rule.severity.clone(),
                    receiver: rule.receiver.clone(),
                    description: rule.describe(),
                })
                .collect(),
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

/// The state bucket could not be written: worth retrying once NATS is back.
fn unavailable(error: StateError) -> Status {
    Status::unavailable(error.to_string())
}
