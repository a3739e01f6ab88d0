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
    /// Stops the console (as SIGTERM does the binary), and its serving task.
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start() -> Running {
    start_with(&[]).await
}

/// As [`start`], with `variables` set too.
async fn start_with(variables: &[(&str, &str)]) -> Running {
    let pipeline = Pipeline::start().await;
    let config = Config::from_lookup(|name| match name {
        name if variables.iter().any(|(n, _)| *n == name) => variables
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value.to_string()),
        "CONSOLE_ADMIN_TOKEN" => Some(ADMIN.into()),
        "CONSOLE_TENANT_TOKENS" => Some(format!("acme={ACME},globex={GLOBEX}")),
        "CONSOLE_GATEWAY_URL" => Some(pipeline.base_url.clone()),
        "CONSOLE_GATEWAY_TOKENS" => Some(c2d_testkit::gateway::TENANTS.to_owned()),
        name => pipeline.nats.variable_for("console", name),
    })
    .unwrap();
    let console: Arc<Console> = Console::start(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(console.serve(listener, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Running {
        pipeline,
        url,
        http,
        stop,
        serving,
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
    // No other site may frame a console page.
    assert_eq!(answer.headers()["x-frame-options"], "DENY");
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

    // Without a session every page sends the browser to the login form; what a page's script
    // asks for answers 401 instead (it must not draw the login form into a chart).
    let (status, _) = get(&running, "", "/events").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = get(&running, "", "/contact-center/charts?tenant=acme").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let cookie = login(&running, ADMIN).await;
    let (status, page) = get(&running, &cookie, "/events?text=PARCEL%205531&since=7d").await;
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
    // Typed: the protobuf's JSON mapping, the names a consumer in any language reads.
    assert!(
        page.contains("id=\"typed\"") && page.contains("&quot;inbox&quot;: {"),
        "typed: {page}"
    );
    assert!(
        page.contains("&quot;clientId&quot;: &quot;500&quot;"),
        "typed: {page}"
    );
    // The fixture's event time is years before it was posted: no retry explains that.
    assert!(
        page.contains("later than Chat2Desk retries"),
        "arrival: {page}"
    );
    assert!(page.contains("where is my parcel 5531"), "raw: {page}");

    // By the client the event is about (inbox(7) is about client 500), not by text.
    let (_, page) = get(&running, &cookie, "/events?client=500").await;
    assert!(page.contains("1 events"), "{page}");
    let (_, page) = get(&running, &cookie, "/events?client=502").await;
    assert!(page.contains("0 events"), "{page}");
    let (status, _) = get(&running, &cookie, "/events?client=abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

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

#[tokio::test]
async fn a_search_that_matches_rarely_reads_a_page_at_a_time_and_goes_on_from_there() {
    let running = start_with(&[("CONSOLE_SEARCH_LIMIT", "2")]).await;
    let needle = inbox(40).replace("\"text\"", "\"text\": \"the needle 777\", \"old_text\"");
    running.pipeline.post_as("acme", needle).await;
    for n in 41..45 {
        running.pipeline.post_as("acme", inbox(n)).await;
    }
    let cookie = login(&running, ADMIN).await;
    let mut path = "/events?text=needle%20777&since=7d".to_owned();
    let mut pages = 0;
    let page = loop {
        pages += 1;
        assert!(pages <= 3, "five events, two read per page");
        let (status, page) = get(&running, &cookie, &path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        if page.contains("1 events") {
            break page;
        }
        assert!(page.contains("This page read 2 events"), "{page}");
        let start = page
            .find("<p id=\"older\">")
            .expect("a link to older events");
        let href = page[start..]
            .split("href=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        path = href.replace("&amp;", "&");
    };
    assert_eq!(pages, 3);
    assert!(!page.contains("id=\"older\""), "nothing older: {page}");
}

#[tokio::test]
async fn a_stop_ends_the_live_pages_instead_of_waiting_for_them() {
    let running = start().await;
    let cookie = login(&running, ADMIN).await;
    // A browser with the live tail open, which never closes it by itself.
    let tail = running
        .http
        .get(format!("{}/events/live", running.url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), StatusCode::OK);
    running.stop.send(()).unwrap();
    let served = tokio::time::timeout(std::time::Duration::from_secs(60), running.serving)
        .await
        .expect("the console stops although a live page is open");
    served.unwrap().unwrap();
    // The page's stream ended with it.
    assert!(tail.bytes().await.is_ok());
}

/// The CSRF token of the session's pages.
async fn csrf(running: &Running, cookie: &str) -> String {
    let (_, page) = get(running, cookie, "/events").await;
    let start = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    page[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn selected_events_are_replayed_to_the_gateway_after_a_confirmation() {
    let running = start().await;
    running.pipeline.post_as("acme", inbox(31)).await;
    running.pipeline.post_as("globex", inbox(32)).await;
    let admin = login(&running, ADMIN).await;
    let (_, page) = get(&running, &admin, "/events?tenant=acme").await;
    let acme_event = first_sequence(&page);
    let (_, page) = get(&running, &admin, "/events?tenant=globex").await;
    let globex_event = first_sequence(&page);
    let replay = |cookie: &str, form: Vec<(&'static str, String)>| {
        running
            .http
            .post(format!("{}/events/replay", running.url))
            .header(COOKIE, cookie.to_owned())
            .form(&form)
            .send()
    };

    // Without the CSRF token: refused.
    let answer = replay(&admin, vec![("seq", acme_event.to_string())])
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    // First the confirmation: nothing is posted yet.
    let token = csrf(&running, &admin).await;
    let answer = replay(
        &admin,
        vec![("csrf", token.clone()), ("seq", acme_event.to_string())],
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let page = answer.text().await.unwrap();
    assert!(page.contains("Post these 1 raw bodies again"), "{page}");
    assert!(page.contains("name=\"confirm\" value=\"yes\""), "{page}");
    // Confirmed: the gateway answers duplicate, the log already holds the event, and the
    // stream did not grow.
    let before = c2d_testkit::stored_events(&running.pipeline.nats)
        .await
        .unwrap()
        .len();
    let answer = replay(
        &admin,
        vec![
            ("csrf", token),
            ("seq", acme_event.to_string()),
            ("confirm", "yes".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let page = answer.text().await.unwrap();
    assert!(
        page.contains("1 replayed: 0 stored, 1 duplicates, 0 failed"),
        "{page}"
    );
    let after = c2d_testkit::stored_events(&running.pipeline.nats)
        .await
        .unwrap()
        .len();
    assert_eq!(before, after);

    // A tenant's login cannot replay another tenant's event, even among its own.
    let acme = login(&running, ACME).await;
    let token = csrf(&running, &acme).await;
    let answer = replay(
        &acme,
        vec![
            ("csrf", token),
            ("seq", acme_event.to_string()),
            ("seq", globex_event.to_string()),
            ("confirm", "yes".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("nothing was replayed")
    );
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
    // Logged in once the form's navigation has brought the events page.
    browser
        .wait_for("the events page after the login", |page| {
            page.contains("<h1>Events</h1>")
        })
        .await;
    let url = browser.url().await.unwrap();
    assert!(url.ends_with("/events"), "logged in, at {url}");

    // The tail is open once the page's script has its stream (it marks the body); then the
    // delivery.
    browser
        .wait_for("the live tail open", |source| {
            source.contains("data-live=\"open\"")
        })
        .await;
    let body = inbox(9).replace("\"text\"", "\"text\": \"seen live 4242\", \"old_text\"");
    let posted = std::time::Instant::now();
    running.pipeline.post_as("acme", body).await;
    let started = posted;
    browser
        .wait_for("the delivery on top of the live tail", |source| {
            source.contains("<td>acme</td><td>inbox</td>")
        })
        .await;
    println!(
        "measured: a delivery appeared in the live tail {:.0} ms after it was posted",
        started.elapsed().as_secs_f64() * 1_000.0
    );
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    browser
        .screenshot(&shots.join("live-tail.png"))
        .await
        .unwrap();

    browser.click("tbody tr a").await.unwrap();
    // The click starts a navigation; the event page is there once its views are.
    browser
        .wait_for("the event page with its typed and raw views", |page| {
            page.contains("id=\"typed\"") && page.contains("seen live 4242")
        })
        .await;
    browser.screenshot(&shots.join("event.png")).await.unwrap();
    println!("screenshots in {}", shots.display());
}
