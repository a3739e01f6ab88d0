//! The consumer services as users run them: crm-sync, analytics, alerting and hints, each its
//! own process with its own NATS user, on free ports, ready (their gRPC health SERVING, so
//! their consumers have caught up with what the log held) when [`Services::start`] returns.

use std::path::Path;

use crate::{NatsServer, ServiceProcess, free_port, workspace_binary};

/// The four running services and where their gRPC servers are.
pub struct Services {
    pub crm: ServiceProcess,
    pub analytics: ServiceProcess,
    pub alerting: ServiceProcess,
    pub hints: ServiceProcess,
    pub crm_url: String,
    pub analytics_url: String,
    pub alerting_url: String,
    pub hints_url: String,
}

impl Services {
    /// Starts them against `nats` (started with users), their data under `dir`, alerting with
    /// the rules file `rules` (TOML, as ALERTING_RULES_FILE).
    pub async fn start(nats: &NatsServer, dir: &Path, rules: &str) -> anyhow::Result<Services> {
        let rules_file = dir.join("alerting-rules.toml");
        std::fs::write(&rules_file, rules)?;
        let addr = |port: u16| format!("127.0.0.1:{port}");
        let (crm_port, analytics_port, alerting_port, hints_port) =
            (free_port(), free_port(), free_port(), free_port());
        let spawn = |binary: &str, user: &str, own: Vec<(&'static str, String)>| {
            let env = [nats.env_for(user), own].concat();
            ServiceProcess::spawn(workspace_binary(binary)?.to_str().unwrap_or(binary), &env)
        };
        let crm_url = format!("http://{}", addr(crm_port));
        let mut services = Services {
            crm: spawn(
                "c2d-crm-sync",
                "crm-sync",
                vec![
                    ("CRM_GRPC_ADDR", addr(crm_port)),
                    (
                        "CRM_STORE_URL",
                        format!("sqlite://{}", dir.join("crm.db").display()),
                    ),
                    ("CRM_METRICS_ADDR", "off".into()),
                ],
            )?,
            analytics: spawn(
                "c2d-analytics",
                "analytics",
                vec![
                    ("ANALYTICS_GRPC_ADDR", addr(analytics_port)),
                    ("ANALYTICS_METRICS_ADDR", "off".into()),
                    (
                        "ANALYTICS_DATA_DIR",
                        dir.join("analytics").display().to_string(),
                    ),
                ],
            )?,
            alerting: spawn(
                "c2d-alerting",
                "alerting",
                vec![
                    ("ALERTING_GRPC_ADDR", addr(alerting_port)),
                    ("ALERTING_METRICS_ADDR", "off".into()),
                    ("ALERTING_RULES_FILE", rules_file.display().to_string()),
                    ("ALERTING_CRM_URL", crm_url.clone()),
                ],
            )?,
            hints: spawn(
                "c2d-hints",
                "hints",
                vec![
                    ("HINTS_GRPC_ADDR", addr(hints_port)),
                    ("HINTS_METRICS_ADDR", "off".into()),
                ],
            )?,
            crm_url,
            analytics_url: format!("http://{}", addr(analytics_port)),
            alerting_url: format!("http://{}", addr(alerting_port)),
            hints_url: format!("http://{}", addr(hints_port)),
        };
        let s = &mut services;
        crate::grpc::wait_serving(&s.crm_url, c2d_proto::crm::SERVICE_NAME, &mut s.crm).await;
        crate::grpc::wait_serving(
            &s.analytics_url,
            c2d_proto::analytics::SERVICE_NAME,
            &mut s.analytics,
        )
        .await;
        crate::grpc::wait_serving(
            &s.alerting_url,
            c2d_proto::alerting::SERVICE_NAME,
            &mut s.alerting,
        )
        .await;
        crate::grpc::wait_serving(&s.hints_url, c2d_proto::hints::SERVICE_NAME, &mut s.hints).await;
        Ok(services)
    }
}
