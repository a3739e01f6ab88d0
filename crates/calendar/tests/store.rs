//! The calendar store against a real nats-server: what one replica writes, every other replica
//! sees without a restart; what a person writes wrong by hand is refused, and never replaces a
//! calendar in force.

use std::time::Duration;

use c2d_calendar::{
    CALENDARS_BUCKET, Calendar, CalendarError, CalendarStore, Calendars, StoreError, Timestamp,
};
use c2d_testkit::{NatsServer, eventually};
use futures_util::StreamExt as _;

/// How long a change may take to reach a watching replica.
const WAIT: Duration = Duration::from_secs(10);

/// Berlin office hours on weekdays: 9 hours of Monday 2 March 2026 (08:00-17:00 UTC).
const OFFICE: &str = r#"{"time_zone":"Europe/Berlin","weekly":{"mon":["09:00-18:00"],"tue":["09:00-18:00"],"wed":["09:00-18:00"],"thu":["09:00-18:00"],"fri":["09:00-18:00"]}}"#;
/// Short Mondays: 4 hours of that Monday.
const SHORT: &str = r#"{"time_zone":"Europe/Berlin","weekly":{"mon":["10:00-14:00"]}}"#;
/// Saturdays only in Sao Paulo: nothing of that Monday.
const WEEKEND: &str = r#"{"time_zone":"America/Sao_Paulo","weekly":{"sat":["10:00-14:00"]}}"#;

fn calendar(json: &str) -> Calendar {
    Calendar::parse_json(json).expect("the test's calendars are valid")
}

/// Business seconds of the tenant's calendar over Monday 2026-03-02, 00:00 to 24:00 UTC.
fn monday_seconds(calendars: &Calendars, tenant: &str) -> u64 {
    let from: Timestamp = "2026-03-02T00:00:00Z".parse().unwrap();
    let to: Timestamp = "2026-03-03T00:00:00Z".parse().unwrap();
    calendars
        .for_tenant(tenant)
        .business_seconds(None, from, to)
}

/// Waits until the view's calendar of `tenant` is `expected`.
async fn until_seen(calendars: &Calendars, tenant: &str, expected: &Calendar, what: &str) {
    eventually(what, WAIT, || {
        let seen = calendars.for_tenant(tenant);
        std::future::ready(if *seen == *expected {
            Ok(())
        } else {
            Err(format!("{tenant} has {}", seen.to_json()))
        })
    })
    .await;
}

/// A store on its own connection: one replica of some service.
async fn replica(nats: &NatsServer) -> CalendarStore {
    CalendarStore::open(nats.client().await, 1)
        .await
        .expect("the calendars bucket opens")
}

#[tokio::test]
async fn a_change_reaches_every_replica_without_restart() {
    let nats = NatsServer::start().await.unwrap();
    let writer = replica(&nats).await;
    let reader = replica(&nats).await;

    // Loaded before `watch` returns: no waiting for what was there already.
    writer.put("early", &calendar(WEEKEND)).await.unwrap();
    let calendars = reader.watch().await.unwrap();
    assert_eq!(*calendars.for_tenant("early"), calendar(WEEKEND));
    assert_eq!(monday_seconds(&calendars, "early"), 0);
    assert_eq!(*calendars.for_tenant("acme"), Calendar::always_open());
    assert_eq!(monday_seconds(&calendars, "acme"), 24 * 3600);

    let first = writer.put("acme", &calendar(OFFICE)).await.unwrap();
    until_seen(&calendars, "acme", &calendar(OFFICE), "acme's office hours").await;
    assert_eq!(monday_seconds(&calendars, "acme"), 9 * 3600);
    // Every clone is the same view.
    assert_eq!(monday_seconds(&calendars.clone(), "acme"), 9 * 3600);
    assert_eq!(reader.get("acme").await.unwrap(), Some(calendar(OFFICE)));

    let second = writer.put("acme", &calendar(SHORT)).await.unwrap();
    assert!(second > first, "revisions grow: {first} then {second}");
    until_seen(&calendars, "acme", &calendar(SHORT), "acme's short Mondays").await;
    assert_eq!(monday_seconds(&calendars, "acme"), 4 * 3600);
    assert_eq!(
        reader.list().await.unwrap(),
        vec![
            ("acme".to_owned(), calendar(SHORT)),
            ("early".to_owned(), calendar(WEEKEND)),
        ]
    );

    writer.delete("acme").await.unwrap();
    until_seen(
        &calendars,
        "acme",
        &Calendar::always_open(),
        "acme always open again",
    )
    .await;
    assert_eq!(monday_seconds(&calendars, "acme"), 24 * 3600);
    assert_eq!(reader.get("acme").await.unwrap(), None);
    assert_eq!(
        reader.list().await.unwrap(),
        vec![("early".to_owned(), calendar(WEEKEND))]
    );
    // A tenant nobody touched kept its calendar throughout.
    assert_eq!(monday_seconds(&calendars, "early"), 0);

    // A replica started now loads the same state.
    let late = replica(&nats).await.watch().await.unwrap();
    assert_eq!(*late.for_tenant("acme"), Calendar::always_open());
    assert_eq!(*late.for_tenant("early"), calendar(WEEKEND));
}

#[tokio::test]
async fn an_invalid_value_written_by_hand_is_refused_and_the_previous_calendar_stays() {
    let nats = NatsServer::start().await.unwrap();
    let store = replica(&nats).await;
    store.put("acme", &calendar(OFFICE)).await.unwrap();
    store.put("other", &calendar(WEEKEND)).await.unwrap();
    let calendars = replica(&nats).await.watch().await.unwrap();
    assert_eq!(monday_seconds(&calendars, "acme"), 9 * 3600);

    // Someone runs `nats kv put C2D_CALENDARS acme '{"time_zone":"MSK",...}'`.
    let raw = nats
        .jetstream()
        .await
        .get_key_value(CALENDARS_BUCKET)
        .await
        .unwrap();
    raw.put("acme", r#"{"time_zone":"MSK","weekly":{}}"#.into())
        .await
        .unwrap();

    match store.get("acme").await {
        Err(StoreError::Calendar(CalendarError::UnknownTimeZone { name })) => {
            assert_eq!(name, "MSK");
        }
        other => panic!("expected the unknown zone to be refused, got {other:?}"),
    }
    let error = store.get("acme").await.unwrap_err().to_string();
    assert!(
        error.starts_with(
            "the calendar stored in C2D_CALENDARS is invalid, so it is not used: unknown time zone \"MSK\""
        ),
        "{error}"
    );
    // Left out of the list; the others are still there.
    assert_eq!(
        store.list().await.unwrap(),
        vec![("other".to_owned(), calendar(WEEKEND))]
    );

    // A change written after the bad one shows the watcher has got past it, in order.
    store.put("marker", &calendar(SHORT)).await.unwrap();
    until_seen(&calendars, "marker", &calendar(SHORT), "the marker").await;
    assert_eq!(*calendars.for_tenant("acme"), calendar(OFFICE));
    assert_eq!(monday_seconds(&calendars, "acme"), 9 * 3600);

    // Not JSON at all, and not even UTF-8: refused the same way.
    raw.put("acme", b"\xff\xfe not json".to_vec().into())
        .await
        .unwrap();
    assert!(matches!(
        store.get("acme").await,
        Err(StoreError::Calendar(CalendarError::Json(_)))
    ));
    store.put("marker", &calendar(WEEKEND)).await.unwrap();
    until_seen(
        &calendars,
        "marker",
        &calendar(WEEKEND),
        "the second marker",
    )
    .await;
    assert_eq!(monday_seconds(&calendars, "acme"), 9 * 3600);

    // A replica started now has no previous calendar of acme: acme is always open there,
    // and the rest loads.
    let late = replica(&nats).await.watch().await.unwrap();
    assert_eq!(*late.for_tenant("acme"), Calendar::always_open());
    assert_eq!(*late.for_tenant("other"), calendar(WEEKEND));

    // Fixed, it applies everywhere.
    store.put("acme", &calendar(SHORT)).await.unwrap();
    until_seen(
        &calendars,
        "acme",
        &calendar(SHORT),
        "the corrected calendar",
    )
    .await;
    until_seen(
        &late,
        "acme",
        &calendar(SHORT),
        "the corrected calendar, late",
    )
    .await;
    assert_eq!(monday_seconds(&late, "acme"), 4 * 3600);
}

#[tokio::test]
async fn a_bad_tenant_name_is_refused() {
    let nats = NatsServer::start().await.unwrap();
    let store = replica(&nats).await;
    for bad in ["", "a.b", "acme>", "*", "two words", "арбуз"] {
        match store.put(bad, &calendar(OFFICE)).await {
            Err(StoreError::BadTenant(name)) => assert_eq!(name, bad),
            other => panic!("put {bad:?}: expected BadTenant, got {other:?}"),
        }
        assert!(matches!(
            store.get(bad).await,
            Err(StoreError::BadTenant(_))
        ));
        assert!(matches!(
            store.delete(bad).await,
            Err(StoreError::BadTenant(_))
        ));
    }
    let error = store.put("a.b", &calendar(OFFICE)).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("only ASCII letters, digits, '-' and '_'"),
        "{error}"
    );
    // Nothing was written.
    assert_eq!(store.list().await.unwrap(), Vec::new());
}

#[tokio::test]
async fn the_view_follows_again_after_nats_restarts() {
    let mut nats = NatsServer::start().await.unwrap();
    let store = replica(&nats).await;
    store.put("acme", &calendar(OFFICE)).await.unwrap();
    let calendars = replica(&nats).await.watch().await.unwrap();
    assert_eq!(monday_seconds(&calendars, "acme"), 9 * 3600);

    nats.restart().await.unwrap();
    // Meanwhile the known calendar stays in force.
    assert_eq!(monday_seconds(&calendars, "acme"), 9 * 3600);

    // The writer's client reconnects by itself; retry the write until it has.
    eventually("the write after the restart", WAIT, || {
        let store = store.clone();
        async move {
            store
                .put("acme", &calendar(SHORT))
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await;
    until_seen(
        &calendars,
        "acme",
        &calendar(SHORT),
        "the change made after the restart",
    )
    .await;
    assert_eq!(monday_seconds(&calendars, "acme"), 4 * 3600);
}

#[tokio::test]
async fn the_view_follows_again_after_its_watch_breaks() {
    let nats = NatsServer::start().await.unwrap();
    let store = replica(&nats).await;
    store.put("acme", &calendar(OFFICE)).await.unwrap();
    let calendars = replica(&nats).await.watch().await.unwrap();

    // The server loses the watch's consumer (an operator removed it, a node holding it died):
    // no error reaches the watch until its heartbeats are missed.
    let stream = nats
        .jetstream()
        .await
        .get_stream(format!("KV_{CALENDARS_BUCKET}"))
        .await
        .unwrap();
    let names: Vec<String> = stream
        .consumer_names()
        .map(|name| name.expect("the consumers are listed"))
        .collect()
        .await;
    assert!(!names.is_empty(), "the view watches through a consumer");
    for name in names {
        stream.delete_consumer(&name).await.unwrap();
    }

    store.put("acme", &calendar(SHORT)).await.unwrap();
    // Two missed heartbeats (10 s), then the reload a second later.
    eventually("the change made after the watch broke", 3 * WAIT, || {
        std::future::ready(match monday_seconds(&calendars, "acme") {
            seconds if seconds == 4 * 3600 => Ok(()),
            seconds => Err(format!("acme has {seconds} business seconds on Monday")),
        })
    })
    .await;
    assert_eq!(*calendars.for_tenant("acme"), calendar(SHORT));
}
