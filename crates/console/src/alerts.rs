//! Alerts as the people on call see them: what is firing and what resolved, who acknowledged
//! what, the silences in force, and the hints service's figures for the tenant. Every action
//! (acknowledge, silence, expire a silence) goes through AlertingService, with the session's
//! CSRF token, and only on the login's own tenant: an alert or silence of another tenant is
//! refused by the console before AlertingService is asked.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use c2d_proto::alerting::v1::{
    AcknowledgeRequest, Alert, AlertState, CreateSilenceRequest, ExpireSilenceRequest,
    GetAlertRequest, ListAlertsRequest, ListSilencesRequest, Silence,
};
use c2d_proto::hints::v1::StatsRequest;

use crate::Console;
use crate::auth::Session;
use crate::html::{csrf_field, escape, page, refusal, tenant_field};
use crate::services::Service;
use crate::time::when;

const TITLE: &str = "Alerts";

/// What the alerts page asks for.
#[derive(Debug, Default, serde::Deserialize)]
pub struct View {
    #[serde(default)]
    pub tenant: String,
    /// `firing`, `resolved`, or empty for both.
    #[serde(default)]
    pub state: String,
}

/// GET /alerts.
pub async fn list(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(view): Query<View>,
) -> Response {
    let (_, session) = match console.session(&headers) {
        Ok(session) => session,
        Err(login) => return *login,
    };
    let tenant = match session.principal.scope(&view.tenant) {
        Ok(tenant) => tenant,
        Err(out) => return refusal(out.status(), TITLE, Some(&session), &out.to_string()),
    };
    let state = match view.state.trim() {
        "" => AlertState::Unspecified,
        "firing" => AlertState::Firing,
        "resolved" => AlertState::Resolved,
        other => {
            let why = format!("{other:?} is not a state: firing, resolved, or empty for both.");
            return refusal(StatusCode::BAD_REQUEST, TITLE, Some(&session), &why);
        }
    };
    let mut alerting = console.services.alerting.clone();
    let alerts = alerting
        .list_alerts(ListAlertsRequest {
            state: state as i32,
            tenant: tenant.clone().unwrap_or_default(),
            rule: String::new(),
        })
        .await;
    let silences = alerting.list_silences(ListSilencesRequest {}).await;
    let (alerts, silences) = match (alerts, silences) {
        (Ok(alerts), Ok(silences)) => (alerts.into_inner().alerts, silences.into_inner().silences),
        (Err(status), _) | (_, Err(status)) => {
            return console
                .services
                .refusal(Service::Alerting, &status, TITLE, &session);
        }
    };
    let hints = match &tenant {
        Some(tenant) => hints(&console, &session, tenant).await,
        None => "<p>Choose a tenant to see its hints figures.</p>".to_owned(),
    };
    let rows: String = alerts
        .iter()
        .filter(|alert| session.principal.may_see(&alert.tenant))
        .map(|alert| row(&session, alert))
        .collect();
    let silence_rows: String = silences
        .iter()
        .filter(|silence| silence.tenant.is_empty() || session.principal.may_see(&silence.tenant))
        .map(|silence| silence_row(&session, silence))
        .collect();
    let tenant_field = tenant_field(&session, tenant.as_deref().unwrap_or(""), "tenant (any)");
    let body = format!(
        "<form class=\"search\" method=\"get\" action=\"/alerts\">{tenant_field}\
         <select name=\"state\">{states}</select>\
         <button type=\"submit\">Show</button></form>\
         <table id=\"alerts\"><thead><tr><th>state</th><th>rule</th><th>tenant</th><th>severity</th><th>what</th><th>since</th><th>until</th><th>acknowledged</th></tr></thead>\
         <tbody>{rows}</tbody></table>\
         <h2>Silences</h2><table id=\"silences\"><thead><tr><th>tenant</th><th>rule</th><th>labels</th><th>until</th><th>why</th><th></th></tr></thead><tbody>{silence_rows}</tbody></table>\
         <form class=\"search\" method=\"post\" action=\"/silences\">{csrf}{silence_tenant}\
         <input name=\"rule\" placeholder=\"rule (any)\"><input name=\"duration\" placeholder=\"for (2h)\" required>\
         <input name=\"comment\" placeholder=\"why\" required><button type=\"submit\">Silence</button></form>\
         <h2>Hints</h2>{hints}",
        csrf = csrf_field(&session),
        states = [
            ("", "firing and resolved"),
            ("firing", "firing"),
            ("resolved", "resolved")
        ]
        .iter()
        .map(|(value, label)| {
            let selected = if *value == view.state.trim() {
                " selected"
            } else {
                ""
            };
            format!("<option value=\"{value}\"{selected}>{label}</option>")
        })
        .collect::<String>(),
        silence_tenant = match session.principal.tenant() {
            Some(_) => String::new(),
            None => "<input name=\"tenant\" placeholder=\"tenant (any)\">".to_owned(),
        },
    );
    page(TITLE, Some(&session), &body).into_response()
}

fn row(session: &Session, alert: &Alert) -> String {
    let state = alert.state();
    let acknowledged = match &alert.acknowledgement {
        Some(ack) => format!(
            "<span class=\"acknowledged\">{} at {}{}</span>",
            escape(&ack.by),
            escape(&when(ack.at.as_ref())),
            if ack.comment.is_empty() {
                String::new()
            } else {
                format!(": {}", escape(&ack.comment))
            }
        ),
        None if state == AlertState::Firing => format!(
            "<form class=\"inline\" method=\"post\" action=\"/alerts/acknowledge\">{}\
             <input type=\"hidden\" name=\"fingerprint\" value=\"{}\">\
             <input name=\"comment\" placeholder=\"comment\"><button type=\"submit\">Acknowledge</button></form>",
            csrf_field(session),
            escape(&alert.fingerprint)
        ),
        None => String::new(),
    };
    let what = match &alert.client {
        Some(client) => format!(
            "{} (client {})",
            escape(&alert.summary),
            escape(
                client
                    .name
                    .as_deref()
                    .unwrap_or(&client.client_id.to_string())
            )
        ),
        None => escape(&alert.summary),
    };
    let (class, state) = match state {
        AlertState::Firing => ("firing", "firing"),
        AlertState::Resolved => ("resolved", "resolved"),
        AlertState::Unspecified => ("", "?"),
    };
    format!(
        "<tr data-fingerprint=\"{fingerprint}\"><td class=\"{class}\">{state}</td><td>{rule}</td><td>{tenant}</td><td>{severity}</td><td>{what}</td><td>{since}</td><td>{until}</td><td>{acknowledged}</td></tr>",
        fingerprint = escape(&alert.fingerprint),
        rule = escape(&alert.rule),
        tenant = escape(&alert.tenant),
        severity = escape(&alert.severity),
        since = escape(&when(alert.starts_at.as_ref())),
        until = escape(&when(alert.ends_at.as_ref())),
    )
}

fn silence_row(session: &Session, silence: &Silence) -> String {
    // A silence of every tenant is the operator's: a tenant's login learns that it holds, not
    // its labels or why (they may name other tenants).
    if silence.tenant.is_empty() && session.principal.tenant().is_some() {
        return format!(
            "<tr><td>any</td><td>{}</td><td></td><td>{}</td><td>(the operator's)</td><td></td></tr>",
            if silence.rule.is_empty() {
                "any".to_owned()
            } else {
                escape(&silence.rule)
            },
            escape(&when(silence.ends_at.as_ref())),
        );
    }
    let labels: Vec<String> = silence
        .labels
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect();
    // A tenant's login does not end a silence that covers every tenant.
    let may_expire =
        silence.active && (session.principal.tenant().is_none() || !silence.tenant.is_empty());
    let expire = if may_expire {
        format!(
            "<form class=\"inline\" method=\"post\" action=\"/silences/expire\">{}\
             <input type=\"hidden\" name=\"id\" value=\"{}\"><button type=\"submit\">End now</button></form>",
            csrf_field(session),
            escape(&silence.id)
        )
    } else if silence.active {
        String::new()
    } else {
        "ended".to_owned()
    };
    format!(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{expire}</td></tr>",
        if silence.tenant.is_empty() {
            "any".to_owned()
        } else {
            escape(&silence.tenant)
        },
        if silence.rule.is_empty() {
            "any".to_owned()
        } else {
            escape(&silence.rule)
        },
        labels.join(", "),
        escape(&when(silence.ends_at.as_ref())),
        escape(&silence.comment),
    )
}

/// HintsService's figures for `tenant`, or why they are missing (the rest of the page stays).
async fn hints(console: &Console, session: &Session, tenant: &str) -> String {
    let mut hints = console.services.hints.clone();
    match hints
        .stats(StatsRequest {
            tenant: tenant.to_owned(),
        })
        .await
    {
        Ok(stats) => {
            let stats = stats.into_inner();
            format!(
                "<div class=\"figures\" id=\"hints\">\
                 <div>question-answer pairs<b>{}</b></div><div>distinct answers<b>{}</b></div>\
                 <div>conversations followed<b>{}</b></div><div>hints asked since start<b>{}</b></div>\
                 <div>operator choices learned<b>{}</b></div></div>",
                stats.pairs, stats.answers, stats.conversations, stats.suggestions, stats.feedback
            )
        }
        Err(status) => format!(
            "<p class=\"error\">{}</p>",
            escape(
                &console
                    .services
                    .explain(Service::Hints, &status, &session.principal)
            )
        ),
    }
}

#[derive(serde::Deserialize)]
struct AcknowledgeForm {
    fingerprint: String,
    #[serde(default)]
    comment: String,
}

/// POST /alerts/acknowledge: someone is on it. The alert must be the login's tenant's.
pub async fn acknowledge(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    form: Bytes,
) -> Response {
    let (session, form) = match console.action::<AcknowledgeForm>(&headers, &form) {
        Ok(action) => action,
        Err(refused) => return *refused,
    };
    let mut alerting = console.services.alerting.clone();
    let not_found = || {
        refusal(
            StatusCode::NOT_FOUND,
            TITLE,
            Some(&session),
            "No such alert that this login may see.",
        )
    };
    // Asked first, so a tenant cannot act on another's alert by its fingerprint.
    match alerting
        .get_alert(GetAlertRequest {
            fingerprint: form.fingerprint.clone(),
        })
        .await
    {
        Ok(alert) if session.principal.may_see(&alert.get_ref().tenant) => {}
        Ok(_) => return not_found(),
        Err(status) if status.code() == tonic::Code::NotFound => return not_found(),
        Err(status) => {
            return console
                .services
                .refusal(Service::Alerting, &status, TITLE, &session);
        }
    }
    let by = match session.principal.tenant() {
        Some(tenant) => format!("console (tenant {tenant})"),
        None => "console (operator)".to_owned(),
    };
    match alerting
        .acknowledge(AcknowledgeRequest {
            fingerprint: form.fingerprint,
            by,
            comment: form.comment.trim().to_owned(),
        })
        .await
    {
        Ok(alert) => {
            let alert = alert.into_inner();
            tracing::info!(fingerprint = %alert.fingerprint, tenant = %alert.tenant, "alert acknowledged");
            back_to(&alert.tenant)
        }
        Err(status) => console
            .services
            .refusal(Service::Alerting, &status, TITLE, &session),
    }
}

#[derive(serde::Deserialize)]
struct SilenceForm {
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    rule: String,
    duration: String,
    comment: String,
}

/// POST /silences: alerts of a tenant (a tenant login: its own) and rule are not notified for
/// a while.
pub async fn silence(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    form: Bytes,
) -> Response {
    let (session, form) = match console.action::<SilenceForm>(&headers, &form) {
        Ok(action) => action,
        Err(refused) => return *refused,
    };
    let tenant = match session.principal.scope(&form.tenant) {
        Ok(tenant) => tenant.unwrap_or_default(),
        Err(out) => return refusal(out.status(), TITLE, Some(&session), &out.to_string()),
    };
    let duration = match c2d_telemetry::env::duration(form.duration.trim()) {
        Ok(duration) if duration >= Duration::from_secs(1) => duration,
        _ => {
            return refusal(
                StatusCode::BAD_REQUEST,
                TITLE,
                Some(&session),
                "For how long: a duration such as 30m, 2h or 1d.",
            );
        }
    };
    let mut alerting = console.services.alerting.clone();
    let page = back_to(&tenant);
    match alerting
        .create_silence(CreateSilenceRequest {
            tenant,
            rule: form.rule.trim().to_owned(),
            labels: Default::default(),
            duration_seconds: duration.as_secs(),
            comment: form.comment.trim().to_owned(),
        })
        .await
    {
        Ok(_) => page,
        Err(status) => console
            .services
            .refusal(Service::Alerting, &status, TITLE, &session),
    }
}

/// After an action, the alerts page of the tenant it was about.
fn back_to(tenant: &str) -> Response {
    let query = serde_urlencoded::to_string([("tenant", tenant)]).unwrap_or_default();
    Redirect::to(&format!("/alerts?{query}")).into_response()
}

#[derive(serde::Deserialize)]
struct ExpireForm {
    id: String,
}

/// POST /silences/expire: a silence ends now. A tenant's login ends its tenant's only.
pub async fn expire(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    form: Bytes,
) -> Response {
    let (session, form) = match console.action::<ExpireForm>(&headers, &form) {
        Ok(action) => action,
        Err(refused) => return *refused,
    };
    let mut alerting = console.services.alerting.clone();
    let silences = match alerting.list_silences(ListSilencesRequest {}).await {
        Ok(silences) => silences.into_inner().silences,
        Err(status) => {
            return console
                .services
                .refusal(Service::Alerting, &status, TITLE, &session);
        }
    };
    let silence = silences.iter().find(|silence| {
        silence.id == form.id
            && match session.principal.tenant() {
                None => true,
                Some(own) => silence.tenant == own,
            }
    });
    let Some(page) = silence.map(|silence| back_to(&silence.tenant)) else {
        return refusal(
            StatusCode::NOT_FOUND,
            TITLE,
            Some(&session),
            "No such silence that this login may end.",
        );
    };
    match alerting
        .expire_silence(ExpireSilenceRequest { id: form.id })
        .await
    {
        Ok(_) => page,
        Err(status) => console
            .services
            .refusal(Service::Alerting, &status, TITLE, &session),
    }
}
