//! `c2dctl webhooks` against the simulated Chat2Desk API over real HTTP: the seed's rules
//! (five webhooks at most, a null url deletes) and the API's error answers turned into errors
//! that say what to do.

use std::process::Command;

use c2dctl::chat2desk::{ApiError, Chat2DeskApi, WebhookSpec, every_hook_type};
use c2dctl::simulator::{self, SimulatorConfig};

async fn start_simulator() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let config = SimulatorConfig {
        accounts: vec![("acme".into(), "acme-api-token".into())],
        webhooks: Vec::new(),
        rate: 1.0,
        events: None,
        seed: 1,
        time_scale: 1.0,
        record: None,
        // No traffic: only the API is under test.
        wait_for_webhooks: true,
        keep_serving: false,
    };
    tokio::spawn(simulator::run(config, listener, std::future::pending()));
    url
}

fn c2dctl(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_c2dctl"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("c2dctl runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `c2dctl --json webhooks register` for acme against the simulated API, with `args` after
/// (the gateway, the token).
fn register_acme(api_url: &str, args: &[&str]) -> (bool, String, String) {
    let mut all = vec![
        "--json",
        "webhooks",
        "register",
        "--api-url",
        api_url,
        "--api-token",
        "acme-api-token",
        "--tenant",
        "acme",
    ];
    all.extend_from_slice(args);
    c2dctl(&all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_follow_the_seed_and_errors_say_what_to_do() {
    let api_url = start_simulator().await;
    let api = Chat2DeskApi::new(&api_url, "acme-api-token").unwrap();
    let spec = |n: usize| WebhookSpec {
        name: Some(format!("hook-{n}")),
        url: Some(Some(format!("https://crm.example.com/hooks/{n}"))),
        events: Some(vec!["inbox".into(), "outbox".into()]),
    };
    for n in 0..5 {
        api.create(&spec(n)).await.unwrap();
    }
    let sixth = api.create(&spec(5)).await.unwrap_err();
    assert!(
        matches!(&sixth, ApiError::Refused { status: 400, message } if message.contains("at most 5")),
        "{sixth}"
    );
    // register refuses too, and says what to do.
    let (ok, _, stderr) = register_acme(
        &api_url,
        &[
            "--gateway-url",
            "http://gw.example.com:8080",
            "--token",
            "s3cret",
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains("delete one (c2dctl webhooks delete ID) first"),
        "{stderr}"
    );

    // A null url deletes, as the seed says; DELETE does too.
    let listed = api.list().await.unwrap();
    let deleted = api
        .update(
            listed[0].id,
            &WebhookSpec {
                url: Some(None),
                ..WebhookSpec::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(deleted, None);
    api.delete(listed[1].id).await.unwrap();
    assert_eq!(api.list().await.unwrap().len(), 3);

    // Without a gateway's webhook to keep the address of, register asks for one.
    let (ok, _, stderr) = register_acme(&api_url, &["--token", "s3cret"]);
    assert!(!ok);
    assert!(stderr.contains("give --gateway-url"), "{stderr}");

    // register now creates the gateway's webhook with every hook type, then updates it.
    let (ok, stdout, stderr) = register_acme(
        &api_url,
        &[
            "--gateway-url",
            "http://gw.example.com:8080",
            "--token",
            "s3cret",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("created webhook"), "{stderr}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        rows[0]["url"],
        "http://gw.example.com:8080/hooks/chat2desk/acme?token=***"
    );
    let (ok, _, stderr) = register_acme(&api_url, &["--token", "rotated+1/2"]);
    assert!(ok && stderr.contains("updated webhook"), "{stderr}");
    let gateway = api
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|w| w.name == "c2d-gateway")
        .unwrap();
    assert_eq!(gateway.events, every_hook_type());
    assert_eq!(
        gateway.url, "http://gw.example.com:8080/hooks/chat2desk/acme?token=rotated%2B1%2F2",
        "a rotation keeps the gateway and changes the token alone"
    );

    // Bad input and a bad token are named.
    let (ok, _, stderr) = c2dctl(&[
        "webhooks",
        "create",
        "--api-url",
        &api_url,
        "--api-token",
        "acme-api-token",
        "--name",
        "x",
        "--url",
        "https://x",
        "--events",
        "inbox,smoke",
    ]);
    assert!(
        !ok && stderr.contains("\"smoke\" is not a hook type"),
        "{stderr}"
    );
    let (ok, _, stderr) = c2dctl(&[
        "webhooks",
        "create",
        "--api-url",
        &api_url,
        "--api-token",
        "acme-api-token",
        "--name",
        "x",
        "--url",
        "ftp://x",
    ]);
    assert!(
        !ok && stderr.contains("url: must be an http or https URL"),
        "{stderr}"
    );
    let (ok, _, stderr) = c2dctl(&[
        "webhooks",
        "list",
        "--api-url",
        &api_url,
        "--api-token",
        "wrong",
    ]);
    assert!(!ok && stderr.contains("check C2D_API_TOKEN"), "{stderr}");
    let (ok, _, stderr) = c2dctl(&[
        "webhooks",
        "list",
        "--api-url",
        "http://127.0.0.1:9/v1",
        "--api-token",
        "x",
    ]);
    assert!(
        !ok && stderr.contains("cannot reach the Chat2Desk API"),
        "{stderr}"
    );
}
