//! The console against a real gateway and nats-server, over HTTP as a browser talks to it:
//! a login opens a session, a delivery posted to the gateway is found and shown typed beside
//! its raw body, a tenant's login sees its tenant only (checked by request, not by hidden
//! links), and an action without the session's CSRF token is refused.

use std::sync::Arc;

use c2d_console::{Config, Console};
use c2d_testkit::{Pipeline, inbox};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

const ADMIN: &str = "admin-token-0123456789abcdef";
const ACME: &str = "acme-token-0123456789abcdef";
const GLOBEX: &str = "globex-token-0123456789abcdef";

struct Running {
    pipeline: Pipeline,
    url: String,
    http: reqwest::Client,
}

async fn start() -> Running {
    let pipeline = Pipeline::start().await;
    let config = Config::from_lookup(|name| match name {
        "CONSOLE_ADMIN_TOKEN" => Some(ADMIN.into()),
        "CONSOLE_TENANT_TOKENS" => Some(format!("acme={ACME},globex={GLOBEX}")),
        name => pipeline.nats.variable_for("reader", name),
    })
    .unwrap();
    let console: Arc<Console> = Console::start(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(console.serve(listener, std::future::pending()));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Running {
        pipeline,
        url,
        http,
    }
}

/// Logs in with `token`; the session cookie as a browser would send it back.
async fn login(running: &Running, token: &str) -> String {
    let answer = running
        .http
        .post(format!("{}/login", running.url))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()[LOCATION], "/events");
    let set_cookie = answer.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} in {set_cookie}"
        );
    }
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn get(running: &Running, cookie: &str, path: &str) -> (StatusCode, String) {
    let answer = running
        .http
        .get(format!("{}{path}", running.url))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    (answer.status(), answer.text().await.unwrap())
}

/// The stream sequence of the first event row of a search page.
fn first_sequence(page: &str) -> u64 {
    let start = page.find("href=\"/events/").expect("an event row") + "href=\"/events/".len();
    page[start..].split('"').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_delivery_is_found_and_shown_typed_beside_its_raw_body() {
    let running = start().await;
    let body = inbox(7).replace(
        "\"text\"",
        "\"text\": \"where is my parcel 5531\", \"old_text\"",
    );
    running.pipeline.post_as("acme", body).await;
    running.pipeline.post_as("globex", inbox(8)).await;

    // Without a session every page sends the browser to the login form.
    let (status, _) = get(&running, "", "/events").await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    let cookie = login(&running, ADMIN).await;
    let (status, page) = get(&running, &cookie, "/events?text=PARCEL%205531").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("1 events"), "{page}");
    assert!(page.contains("<td>acme</td><td>inbox</td>"), "{page}");
    let sequence = first_sequence(&page);

    let (status, page) = get(&running, &cookie, &format!("/events/{sequence}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("chat2desk.events.acme.inbox"),
        "the subject: {page}"
    );
    assert!(
        page.contains("id=\"typed\"") && page.contains("Inbox("),
        "typed: {page}"
    );
    assert!(page.contains("where is my parcel 5531"), "raw: {page}");

    // Every tenant, to the operator.
    let (_, page) = get(&running, &cookie, "/events").await;
    assert!(
        page.contains("<td>globex</td>") && page.contains("<td>acme</td>"),
        "{page}"
    );
}

#[tokio::test]
async fn a_tenants_login_sees_its_tenant_only() {
    let running = start().await;
    running.pipeline.post_as("acme", inbox(1)).await;
    running.pipeline.post_as("globex", inbox(2)).await;
    let admin = login(&running, ADMIN).await;
    let (_, page) = get(&running, &admin, "/events?tenant=acme").await;
    let acme_event = first_sequence(&page);

    let globex = login(&running, GLOBEX).await;
    let (status, page) = get(&running, &globex, "/events").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("<td>globex</td>") && !page.contains("<td>acme</td>"),
        "{page}"
    );
    // Asked for by request, not only hidden: refused, and not found.
    let (status, _) = get(&running, &globex, "/events?tenant=acme").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, page) = get(&running, &globex, &format!("/events/{acme_event}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!page.contains("acme"), "nothing of acme's event: {page}");
    let (status, _) = get(&running, &admin, &format!("/events/{acme_event}")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_dead_letters_show_why_each_of_its_tenant_was_put_aside() {
    let running = start().await;
    // A body that is not a JSON object: the gateway keeps it on chat2desk.dlq.{tenant}.
    let answer = running
        .pipeline
        .post_as("acme", "[\"not\", \"an object\"]")
        .await;
    assert_eq!(answer["status"], "dead_letter", "{answer}");
    running.pipeline.post_as("globex", "42").await;

    let admin = login(&running, ADMIN).await;
    let (status, page) = get(&running, &admin, "/dead-letters").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("2 dead letters"), "{page}");
    assert!(
        page.contains("a JSON array, not an object"),
        "the reason: {page}"
    );
    assert!(page.contains("the gateway"), "{page}");

    let globex = login(&running, GLOBEX).await;
    let (_, page) = get(&running, &globex, "/dead-letters").await;
    assert!(page.contains("1 dead letters"), "{page}");
    assert!(!page.contains("<td>acme</td>"), "{page}");
}

#[tokio::test]
async fn an_action_without_the_csrf_token_is_refused_and_a_wrong_token_opens_nothing() {
    let running = start().await;
    let answer = running
        .http
        .post(format!("{}/login", running.url))
        .form(&[("token", "not-a-token-0123456789")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert!(answer.headers().get(SET_COOKIE).is_none());

    let cookie = login(&running, ACME).await;
    let logout = |csrf: Option<String>| {
        let request = running
            .http
            .post(format!("{}/logout", running.url))
            .header(COOKIE, cookie.clone());
        match csrf {
            Some(csrf) => request.form(&[("csrf", csrf)]),
            None => request.form(&[("other", "x")]),
        }
        .send()
    };
    assert_eq!(logout(None).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(
        logout(Some("0".repeat(64))).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // Still logged in: the forged requests changed nothing.
    let (status, page) = get(&running, &cookie, "/events").await;
    assert_eq!(status, StatusCode::OK);
    let start = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    let csrf = page[start..].split('"').next().unwrap().to_owned();
    assert_eq!(
        logout(Some(csrf)).await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    let (status, _) = get(&running, &cookie, "/events").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the session ended");
}

/// In headless Chromium, as a user: log in, watch the live tail, see a delivery posted to the
/// gateway appear on top, open it, and find the typed and raw views. The time from the post to
/// the row is printed (the target is 2 s); the screenshots go to the target directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_delivery_appears_in_the_live_tail_and_opens() {
    let running = start().await;
    let browser = c2d_testkit::browser::Browser::start()
        .await
        .expect("headless Chromium starts");
    browser.go(&format!("{}/login", running.url)).await.unwrap();
    browser.type_into("input[name=token]", ADMIN).await.unwrap();
    browser.click("button[type=submit]").await.unwrap();
    let url = browser.url().await.unwrap();
    assert!(url.ends_with("/events"), "logged in, at {url}");

    // The tail is open once the page's script has its stream (it marks the body); then the
    // delivery.
    let browser_ref = &browser;
    c2d_testkit::eventually(
        "the live tail open",
        std::time::Duration::from_secs(15),
        || async move {
            let source = browser_ref.source().await.map_err(|e| e.to_string())?;
            source
                .contains("data-live=\"open\"")
                .then_some(())
                .ok_or_else(|| "not open yet".to_owned())
        },
    )
    .await;
    let body = inbox(9).replace("\"text\"", "\"text\": \"seen live 4242\", \"old_text\"");
    let posted = std::time::Instant::now();
    running.pipeline.post_as("acme", body).await;
    let started = posted;
    c2d_testkit::eventually(
        "the delivery on top of the live tail",
        std::time::Duration::from_secs(15),
        || async move {
            let source = browser_ref.source().await.map_err(|e| e.to_string())?;
            if source.contains("<td>acme</td><td>inbox</td>") {
                Ok(())
            } else {
                Err("not yet in the table".to_owned())
            }
        },
    )
    .await;
    println!(
        "measured: a delivery appeared in the live tail {:.0} ms after it was posted",
        started.elapsed().as_secs_f64() * 1_000.0
    );
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    browser.screenshot(&shots.join("events.png")).await.unwrap();

    browser.click("tbody tr a").await.unwrap();
    let page = browser.source().await.unwrap();
    assert!(
        page.contains("Typed") && page.contains("seen live 4242"),
        "{page}"
    );
    browser.screenshot(&shots.join("event.png")).await.unwrap();
    println!("screenshots in {}", shots.display());
}
