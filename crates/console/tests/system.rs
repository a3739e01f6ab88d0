//! The console in headless Chromium against the whole system as users run it: nats-server
//! with a user per service, the gateway, crm-sync, analytics, alerting and hints as their own
//! processes, and `c2dctl simulate` as Chat2Desk with two accounts delivering traffic to the
//! gateway's webhooks. The browser sees a delivery appear in the live tail, finds it by a
//! search and opens it, reads the contact center's charts and checks each number
//! against what AnalyticsService answers for the same range, watches them redraw live when a
//! delivery arrives, acknowledges an alert, and opens a client's card with its timeline. A
//! tenant's login is then refused, by request, every page and action of the other tenant.
//!
//! Screenshots go to the target directory, or to `C2D_SCREENSHOTS_DIR` (`make screenshots`
//! writes the README's this way).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use c2d_console::{Config, Console};
use c2d_proto::alerting::AlertingServiceClient;
use c2d_proto::alerting::v1::{AlertState, GetAlertRequest, ListAlertsRequest};
use c2d_proto::analytics::AnalyticsServiceClient;
use c2d_proto::analytics::v1::{
    Dimension, Granularity, Metric, SummaryRequest, TimeRange, TimeSeriesRequest,
};
use c2d_testkit::browser::Browser;
use c2d_testkit::gateway::TENANTS;
use c2d_testkit::{
    GatewayProcess, NatsServer, ServiceProcess, Services, eventually, free_port, workspace_binary,
};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};

const ADMIN: &str = "admin-token-0123456789abcdef";
const GLOBEX: &str = "globex-token-0123456789abcdef";
const EVENTS: &str = "800";

fn secret(tenant: &str) -> String {
    TENANTS
        .split(',')
        .find_map(|pair| pair.strip_prefix(&format!("{tenant}=")))
        .expect("a test tenant")
        .to_owned()
}

fn screenshots() -> std::path::PathBuf {
    std::env::var_os("C2D_SCREENSHOTS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
        })
}

/// Every `data-{attribute}` value of elements that also carry `marker` in their tag, in page
/// order, with the element's `data-value`.
fn values(page: &str, marker: &str, attribute: &str) -> Vec<(String, f64)> {
    page.split('<')
        .filter(|tag| tag.contains(marker))
        .filter_map(|tag| {
            let read = |name: &str| {
                let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
                Some(tag[start..].split('"').next()?.to_owned())
            };
            Some((read(attribute)?, read("data-value")?.parse().ok()?))
        })
        .collect()
}

/// Posts an inbox of acme's with `text`, happening now (the test fixtures' times are years
/// ago), to the gateway's webhook.
async fn post_inbox(gateway: &GatewayProcess, n: u64, text: &str) {
    let mut inbox: serde_json::Value = serde_json::from_str(&c2d_testkit::inbox(n)).unwrap();
    inbox["text"] = text.into();
    inbox["event_time"] = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .into();
    let answer = c2d_testkit::http::post_json(
        &gateway.hook_url("acme", &secret("acme")),
        inbox.to_string(),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
}

/// The text of the element `<b data-figure="{name}">`.
fn figure(page: &str, name: &str) -> u64 {
    let marker = format!("data-figure=\"{name}\">");
    let start = page.find(&marker).expect("the figure") + marker.len();
    page[start..].split('<').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_the_console_shows_what_the_services_answer_and_acts_for_its_tenant_only() {
    let nats = NatsServer::start_with_users()
        .await
        .expect("nats-server starts");
    let dir = tempfile::tempdir().unwrap();
    let gateway = GatewayProcess::start(
        workspace_binary("c2d-gateway").unwrap().to_str().unwrap(),
        &nats,
        &[],
    )
    .await
    .unwrap();
    let receiver = c2d_testkit::http::json_receiver("/alerts").await.unwrap();
    let rules = format!(
        "[[receiver]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{}\"\n\n\
         [[rule]]\nname = \"whatsapp-disconnected\"\nkind = \"event\"\nhook_type = \"new_qr_code\"\nreceiver = \"ops\"\n",
        receiver.url
    );
    let services = Services::start(&nats, dir.path(), &rules).await.unwrap();

    // Chat2Desk with two accounts, delivering to the gateway's webhooks.
    let c2dctl = workspace_binary("c2dctl").unwrap();
    let api_port = free_port();
    let api = format!("http://127.0.0.1:{api_port}");
    let mut simulator = ServiceProcess::spawn_with_args(
        c2dctl.to_str().unwrap(),
        &[
            "simulate",
            "--listen",
            &format!("127.0.0.1:{api_port}"),
            "--accounts",
            "acme=acme-api-token,globex=globex-api-token",
            "--rate",
            "400",
            "--events",
            EVENTS,
            "--seed",
            "11",
            // Operators answer, requests close and deliveries fail within the run.
            "--time-scale",
            "1800",
            "--wait-for-webhooks",
        ],
        &[],
    )
    .unwrap();
    simulator
        .wait_for_ok(&format!("{api}/simulator/stats"), Duration::from_secs(30))
        .await
        .unwrap();
    for tenant in ["acme", "globex"] {
        let output = std::process::Command::new(&c2dctl)
            .args([
                "webhooks",
                "register",
                "--api-url",
                &format!("{api}/v1"),
                "--api-token",
                &format!("{tenant}-api-token"),
                "--gateway-url",
                &gateway.base_url(),
                "--tenant",
                tenant,
                "--token",
                &secret(tenant),
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let finished = eventually("the simulator to finish", Duration::from_secs(120), || {
        let exited = simulator.exited();
        async move {
            match exited {
                Ok(Some(status)) => Ok(status),
                _ => Err("still delivering".to_owned()),
            }
        }
    })
    .await;
    assert!(finished.success(), "the simulator failed: {finished}");
    // The console, as the `console` NATS user, reading through the real services.
    let config = Config::from_lookup(|name| match name {
        "CONSOLE_ADMIN_TOKEN" => Some(ADMIN.into()),
        "CONSOLE_TENANT_TOKENS" => Some(format!("globex={GLOBEX}")),
        "CONSOLE_ANALYTICS_URL" => Some(services.analytics_url.clone()),
        "CONSOLE_CRM_URL" => Some(services.crm_url.clone()),
        "CONSOLE_ALERTING_URL" => Some(services.alerting_url.clone()),
        "CONSOLE_HINTS_URL" => Some(services.hints_url.clone()),
        "CONSOLE_GATEWAY_URL" => Some(gateway.base_url()),
        "CONSOLE_GATEWAY_TOKENS" => Some(TENANTS.to_owned()),
        name => nats.variable_for("console", name),
    })
    .unwrap();
    let console: Arc<Console> = Console::start(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(console.serve(listener, std::future::pending()));

    let browser = Browser::start().await.expect("headless Chromium starts");
    browser.go(&format!("{url}/login")).await.unwrap();
    browser.type_into("input[name=token]", ADMIN).await.unwrap();
    browser.click("button[type=submit]").await.unwrap();
    let shots = screenshots();

    // The live tail: a delivery posted to the gateway appears on top of the events page.
    browser
        .wait_for("the live tail open", |source| {
            source.contains("data-live=\"open\"")
        })
        .await;
    let posted = std::time::Instant::now();
    post_inbox(&gateway, 515_151, "where is order 5151").await;
    browser
        .wait_for("the delivery on top of the live tail", |source| {
            let top = source.split("<tbody>").nth(1).unwrap_or_default();
            let first_row = top.split("</tr>").next().unwrap_or_default();
            first_row.contains("<td>acme</td><td>inbox</td>")
        })
        .await;
    println!(
        "measured: the delivery appeared in the live tail {:.0} ms after it was posted",
        posted.elapsed().as_secs_f64() * 1_000.0
    );
    browser.screenshot(&shots.join("events.png")).await.unwrap();
    // A search finds it, and its page shows it typed beside its raw body.
    browser
        .type_into("input[name=text]", "order 5151")
        .await
        .unwrap();
    browser.click("form.search button").await.unwrap();
    browser
        .wait_for("the search to find it", |source| {
            source.contains("1 events (newest first")
        })
        .await;
    browser.click("tbody tr a").await.unwrap();
    browser
        .wait_for("the event page", |source| {
            source.contains("id=\"typed\"")
                && source.contains("\"clientId\"")
                && source.contains("id=\"raw\"")
                && source.contains("where is order 5151")
        })
        .await;
    browser.screenshot(&shots.join("event.png")).await.unwrap();

    // Analytics has applied everything the log holds for acme.
    let mut analytics = AnalyticsServiceClient::connect(services.analytics_url.clone())
        .await
        .unwrap();
    let acme_events = c2d_testkit::stored_events(&nats)
        .await
        .unwrap()
        .iter()
        .filter(|(_, event)| event.tenant == "acme")
        .count() as f64;
    let whole_day = {
        let now = std::time::SystemTime::now();
        TimeRange {
            start: Some((now - Duration::from_secs(86_400)).into()),
            end: Some((now + Duration::from_secs(3_600)).into()),
        }
    };
    let analytics_ref = &analytics;
    eventually(
        "analytics to apply acme's events",
        Duration::from_secs(60),
        || async move {
            let counted: f64 = analytics_ref
                .clone()
                .query_time_series(TimeSeriesRequest {
                    tenant: "acme".into(),
                    metric: Metric::Events as i32,
                    range: Some(whole_day),
                    granularity: Granularity::Day as i32,
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?
                .into_inner()
                .points
                .iter()
                .map(|p| p.value)
                .sum();
            (counted == acme_events)
                .then_some(())
                .ok_or_else(|| format!("{counted} of {acme_events}"))
        },
    )
    .await;

    // A WhatsApp number of acme is disconnected: the rule fires. (Its
    // event time is years ago: analytics files it there, out of the ranges below.)
    let answer = c2d_testkit::http::post_json(
        &gateway.hook_url("acme", &secret("acme")),
        c2d_testkit::fixture("new_qr_code"),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());

    // The contact center: every point and figure is what AnalyticsService answers.
    browser
        .go(&format!("{url}/contact-center?tenant=acme&since=6h"))
        .await
        .unwrap();
    let page = browser.source().await.unwrap();
    let inbound_points = values(&page, "data-series=\"inbound\"", "data-at");
    assert!(
        !inbound_points.is_empty(),
        "the volume chart has points: {page}"
    );
    let first = inbound_points[0].0.parse::<i64>().unwrap();
    let last = inbound_points.last().unwrap().0.parse::<i64>().unwrap();
    let range = TimeRange {
        start: Some(prost_types::Timestamp {
            seconds: first,
            nanos: 0,
        }),
        end: Some(prost_types::Timestamp {
            seconds: last + 60,
            nanos: 0,
        }),
    };
    let series = |metric: Metric, quantile: f64| {
        let mut analytics = analytics.clone();
        async move {
            analytics
                .query_time_series(TimeSeriesRequest {
                    tenant: "acme".into(),
                    metric: metric as i32,
                    range: Some(range),
                    granularity: Granularity::Minute as i32,
                    quantile,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .points
                .into_iter()
                .map(|p| (p.bucket_start.unwrap().seconds.to_string(), p.value))
                .collect::<Vec<_>>()
        }
    };
    // A count chart has a point per minute of the range, zero where AnalyticsService has no
    // bucket; every other point is its answer.
    let minutes = (last + 60 - first) / 60;
    assert_eq!(inbound_points.len() as i64, minutes);
    let answered = |points: Vec<(String, f64)>| {
        points
            .into_iter()
            .filter(|(_, value)| *value != 0.0)
            .collect::<Vec<_>>()
    };
    let inbound_points = answered(inbound_points);
    assert_eq!(inbound_points, series(Metric::InboundMessages, 0.0).await);
    assert_eq!(
        answered(values(&page, "data-series=\"outbound\"", "data-at")),
        series(Metric::OutboundMessages, 0.0).await
    );
    let chart = |id: &str| {
        let start = page.find(&format!("id=\"{id}\"")).expect("the chart");
        page[start..].split("</figure>").next().unwrap().to_owned()
    };
    assert_eq!(
        values(&chart("first-response"), "data-series=\"p90\"", "data-at"),
        series(Metric::FirstResponseSeconds, 0.9).await
    );
    assert_eq!(
        values(&chart("resolution"), "data-series=\"p50\"", "data-at"),
        series(Metric::ResolutionSeconds, 0.5).await
    );
    let mut failures: BTreeMap<String, f64> = BTreeMap::new();
    for point in analytics
        .query_time_series(TimeSeriesRequest {
            tenant: "acme".into(),
            metric: Metric::DeliveryFailures as i32,
            range: Some(range),
            granularity: Granularity::Minute as i32,
            group_by: Dimension::Failure as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .points
    {
        *failures.entry(point.group).or_default() += point.value;
    }
    let shown_failures: BTreeMap<String, f64> = values(&page, "data-label=", "data-label")
        .into_iter()
        .collect();
    assert_eq!(shown_failures, failures);
    let total = analytics
        .channel_summary(SummaryRequest {
            sla_business_minutes: 0,
            tenant: "acme".into(),
            range: Some(range),
        })
        .await
        .unwrap()
        .into_inner()
        .total
        .unwrap();
    assert!(
        total.inbound_messages > 0 && total.outbound_messages > 0,
        "{total:?}"
    );
    assert_eq!(figure(&page, "inbound"), total.inbound_messages);
    assert_eq!(figure(&page, "outbound"), total.outbound_messages);
    assert_eq!(figure(&page, "failures"), total.delivery_failures);
    println!(
        "the charts show what AnalyticsService answers: {} minutes, {} in, {} out, {} failures by {} reasons",
        inbound_points.len(),
        total.inbound_messages,
        total.outbound_messages,
        total.delivery_failures,
        failures.len()
    );
    browser
        .screenshot(&shots.join("contact-center.png"))
        .await
        .unwrap();

    // Live: a new inbox for acme redraws the charts (WatchMinutes), with one more inbound.
    browser
        .wait_for("the live charts open", |source| {
            source.contains("data-live=\"open\"")
        })
        .await;
    let before = figure(&browser.source().await.unwrap(), "inbound");
    post_inbox(&gateway, 424_242, "hello again").await;
    browser
        .wait_for("the charts redrawn with the new inbox", |source| {
            source.contains("data-updates=") && figure(source, "inbound") == before + 1
        })
        .await;

    // An alert, acknowledged in the browser.
    let mut alerting = AlertingServiceClient::connect(services.alerting_url.clone())
        .await
        .unwrap();
    let alerting_ref = &alerting;
    let alert = eventually(
        "acme's alert firing",
        Duration::from_secs(30),
        || async move {
            let alerts = alerting_ref
                .clone()
                .list_alerts(ListAlertsRequest {
                    state: AlertState::Firing as i32,
                    tenant: "acme".into(),
                    rule: "whatsapp-disconnected".into(),
                })
                .await
                .map_err(|e| e.to_string())?
                .into_inner()
                .alerts;
            alerts.into_iter().next().ok_or("no alert yet".to_owned())
        },
    )
    .await;
    browser
        .go(&format!("{url}/alerts?tenant=acme"))
        .await
        .unwrap();
    browser
        .type_into(
            &format!(
                "tr[data-fingerprint=\"{}\"] input[name=comment]",
                alert.fingerprint
            ),
            "scanning the new QR code",
        )
        .await
        .unwrap();
    browser
        .click(&format!(
            "tr[data-fingerprint=\"{}\"] button",
            alert.fingerprint
        ))
        .await
        .unwrap();
    browser
        .wait_for("the alert shown acknowledged", |source| {
            source.contains("console (operator)")
        })
        .await;
    let acknowledged = alerting
        .get_alert(GetAlertRequest {
            fingerprint: alert.fingerprint.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .acknowledgement
        .expect("acknowledged through AlertingService");
    assert_eq!(acknowledged.by, "console (operator)");
    assert_eq!(acknowledged.comment, "scanning the new QR code");
    browser.screenshot(&shots.join("alerts.png")).await.unwrap();

    // A client's card, with the timeline of their events from the log.
    browser
        .go(&format!("{url}/clients?tenant=acme"))
        .await
        .unwrap();
    browser.click("#clients tbody tr a").await.unwrap();
    let page = browser
        .wait_for("the client's card", |source| source.contains("id=\"card\""))
        .await;
    assert!(
        page.contains("id=\"timeline\"") && page.contains("href=\"/events/"),
        "{page}"
    );
    browser.screenshot(&shots.join("client.png")).await.unwrap();
    let client_page = browser.url().await.unwrap();
    let client_path = client_page.strip_prefix(&url).unwrap().to_owned();

    // globex's login: acme's pages and actions are refused by request.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(format!("{url}/login"))
        .form(&[("token", GLOBEX)])
        .send()
        .await
        .unwrap();
    let cookie = login.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let get = |path: String| {
        let request = http
            .get(format!("{url}{path}"))
            .header(COOKIE, cookie.clone());
        async move {
            let answer = request.send().await.unwrap();
            (answer.status(), answer.text().await.unwrap())
        }
    };
    let (status, page) = get("/alerts".into()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !page.contains(&alert.fingerprint),
        "acme's alert hidden from globex"
    );
    let start = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    let csrf = page[start..].split('"').next().unwrap().to_owned();
    for path in [
        "/contact-center?tenant=acme",
        "/contact-center/charts?tenant=acme",
        "/alerts?tenant=acme",
        "/clients?tenant=acme",
        "/events?tenant=acme",
        "/events/live?tenant=acme",
        "/contact-center/live?tenant=acme",
    ] {
        assert_eq!(get(path.into()).await.0, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(get(client_path).await.0, StatusCode::NOT_FOUND);
    let act = |path: &str, form: Vec<(&str, String)>| {
        http.post(format!("{url}{path}"))
            .header(COOKIE, cookie.clone())
            .form(&form)
            .send()
    };
    let answer = act(
        "/alerts/acknowledge",
        vec![
            ("csrf", csrf.clone()),
            ("fingerprint", alert.fingerprint.clone()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        answer.status(),
        StatusCode::NOT_FOUND,
        "another tenant's alert"
    );
    let answer = act(
        "/silences",
        vec![
            ("csrf", csrf.clone()),
            ("tenant", "acme".into()),
            ("duration", "1h".into()),
            ("comment", "x".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        answer.status(),
        StatusCode::FORBIDDEN,
        "a silence for another tenant"
    );
    // Without the CSRF token, even its own tenant's action is refused.
    let answer = act(
        "/silences",
        vec![("duration", "1h".into()), ("comment", "x".into())],
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    // acme's silence (the operator's, through AlertingService) cannot be ended by globex, nor
    // can globex queue again a CRM dead letter that is not its own.
    let acme_silence = alerting
        .create_silence(c2d_proto::alerting::v1::CreateSilenceRequest {
            tenant: "acme".into(),
            duration_seconds: 3_600,
            comment: "maintenance".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let answer = act(
        "/silences/expire",
        vec![("csrf", csrf.clone()), ("id", acme_silence.id.clone())],
    )
    .await
    .unwrap();
    assert_eq!(
        answer.status(),
        StatusCode::NOT_FOUND,
        "another tenant's silence"
    );
    let answer = act(
        "/connectors/retry",
        vec![("csrf", csrf.clone()), ("id", "1".into())],
    )
    .await
    .unwrap();
    assert_eq!(
        answer.status(),
        StatusCode::NOT_FOUND,
        "not globex's dead letter"
    );
    let silences = alerting
        .list_silences(c2d_proto::alerting::v1::ListSilencesRequest {})
        .await
        .unwrap()
        .into_inner()
        .silences;
    assert_eq!(
        silences.len(),
        1,
        "no refused action reached AlertingService: {silences:?}"
    );
    assert!(
        silences[0].active,
        "acme's silence still holds: {silences:?}"
    );
    let still = alerting
        .get_alert(GetAlertRequest {
            fingerprint: alert.fingerprint,
        })
        .await
        .unwrap()
        .into_inner()
        .acknowledgement
        .unwrap();
    assert_eq!(still.by, "console (operator)", "globex changed nothing");
    println!("screenshots in {}", shots.display());
}
