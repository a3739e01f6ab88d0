//! The deployment's NATS users (`deploy/base/config/nats-users.conf`) on a real nats-server:
//! a consumer's credentials read the log and write their dead letters, as the SDK does, but
//! cannot forge a Chat2Desk event or empty the log; a wrong password is refused with an error
//! that says what to check.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use c2d_proto::events::{DLQ_STREAM, STREAM};
use c2d_subscriber::connect::{NatsCredentials, connect_with};
use c2d_subscriber::{Delivery, HandlerError, Subscriber, SubscriberConfig};
use c2d_testkit::{Pipeline, eventually, webhook_fixtures};
use tokio::sync::Notify;

/// The users whose permissions are a consumer's.
const CONSUMERS: [&str; 5] = ["crm-sync", "analytics", "hints", "alerting", "reader"];

/// Connects as `user` the way every service does (its environment's credentials), and
/// collects the errors the server sends back, where permission violations arrive.
async fn connect_as(
    pipeline: &Pipeline,
    user: &str,
) -> (async_nats::Client, Arc<Mutex<Vec<String>>>) {
    let credentials =
        NatsCredentials::from_lookup(|name| pipeline.nats.variable_for(user, name)).unwrap();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let options = credentials
        .apply(async_nats::ConnectOptions::new().name(user))
        .await
        .unwrap()
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(error) = event {
                    seen.lock().unwrap().push(error.to_string());
                }
            }
        });
    let client = connect_with(options, &pipeline.nats.url()).await.unwrap();
    (client, errors)
}

async fn stored(pipeline: &Pipeline, stream: &str) -> u64 {
    let jetstream = async_nats::jetstream::new(pipeline.client().await);
    let mut stream = jetstream.get_stream(stream).await.unwrap();
    stream.info().await.unwrap().state.messages
}

#[tokio::test]
async fn a_consumers_credentials_cannot_publish_events_or_empty_the_log() {
    let pipeline = Pipeline::start_with_users().await;
    let (_, body) = webhook_fixtures().remove(0);
    pipeline.post(body.clone()).await;
    assert_eq!(
        stored(&pipeline, STREAM).await,
        1,
        "the gateway's user publishes"
    );

    for user in CONSUMERS {
        let (client, errors) = connect_as(&pipeline, user).await;
        let jetstream = async_nats::jetstream::ContextBuilder::new()
            .timeout(Duration::from_millis(500))
            .build(client.clone());
        let forged = jetstream
            .publish("chat2desk.events.acme.inbox", body.clone())
            .await;
        // The server drops the message and says why on the connection; no ack ever comes.
        let forged = match forged {
            Ok(ack) => ack.await.map(|_| ()),
            Err(error) => Err(error),
        };
        assert!(forged.is_err(), "{user} published an event");
        assert!(jetstream.delete_stream(STREAM).await.is_err(), "{user}");
        let stream = jetstream.get_stream(STREAM).await.unwrap();
        assert!(stream.purge().await.is_err(), "{user}");
        client.flush().await.unwrap();
        eventually(
            &format!("{user}'s violations reported"),
            Duration::from_secs(10),
            || {
                let errors = errors.lock().unwrap().clone();
                async move {
                    let violations = errors
                        .iter()
                        .filter(|e| e.contains("Permissions Violation"))
                        .count();
                    (violations >= 3).then_some(()).ok_or(format!("{errors:?}"))
                }
            },
        )
        .await;
        assert_eq!(stored(&pipeline, STREAM).await, 1, "{user} changed the log");
    }
}

#[tokio::test]
async fn a_consumers_credentials_are_enough_to_read_and_dead_letter() {
    let pipeline = Pipeline::start_with_users().await;
    let fixtures = webhook_fixtures();
    for (_, body) in &fixtures {
        pipeline.post(body.clone()).await;
    }
    let (client, errors) = connect_as(&pipeline, "reader").await;
    let subscriber = Subscriber::open(client, SubscriberConfig::new("permissions-reader"))
        .await
        .expect("a consumer opens its durable");
    let handled = Arc::new(Mutex::new(0usize));
    let done = Arc::new(Notify::new());
    let (count, finished, total) = (handled.clone(), done.clone(), fixtures.len());
    let run = tokio::spawn(subscriber.run(
        move |delivery: Delivery| {
            let (count, finished) = (count.clone(), finished.clone());
            async move {
                let mut count = count.lock().unwrap();
                *count += 1;
                if *count == total {
                    finished.notify_one();
                }
                // One event refused for good: its dead letter is the consumer's to write.
                if delivery.stream_sequence == 1 {
                    return Err(HandlerError::Permanent("refused by the test".into()));
                }
                Ok(())
            }
        },
        async move { done.notified().await },
    ));
    run.await.unwrap().expect("the subscriber runs to the end");
    assert_eq!(*handled.lock().unwrap(), fixtures.len());
    assert_eq!(stored(&pipeline, DLQ_STREAM).await, 1, "the dead letter");
    let errors = errors.lock().unwrap();
    assert!(errors.is_empty(), "the server refused: {errors:?}");
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_what_to_check() {
    let pipeline = Pipeline::start_with_users().await;
    let credentials = NatsCredentials::from_lookup(|name| match name {
        "NATS_USER" => Some("crm-sync".into()),
        "NATS_PASSWORD" => Some("not-the-password".into()),
        _ => None,
    })
    .unwrap();
    let options = credentials
        .apply(async_nats::ConnectOptions::new())
        .await
        .unwrap();
    let error = connect_with(options, &pipeline.nats.url())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("NATS_PASSWORD"), "{error}");
    assert!(
        pipeline.nats.client_as("nobody").await.is_err(),
        "an unknown user"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicas_credentials_are_enough_to_share_partitions_and_read_its_own() {
    use c2d_proto::partitions::partition_of;
    use c2d_subscriber::ownership::{Ownership, OwnershipConfig};
    let pipeline = Pipeline::start_partitioned_with_users(4, 4).await;
    for n in 0..8 {
        pipeline
            .post_as(&format!("tenant-{}", n % 4), c2d_testkit::inbox(n))
            .await;
    }
    for user in ["analytics", "crm-sync"] {
        let (client, errors) = connect_as(&pipeline, user).await;
        let mut config = OwnershipConfig::new(user, &format!("{user}-0"), "-", 4);
        config.lease = Duration::from_secs(2);
        let ownership = Ownership::join(client.clone(), config)
            .await
            .expect("a replica opens the leases bucket");
        let mut owned = ownership.owned();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let keeper = ownership.clone();
        let leases = tokio::spawn(async move {
            keeper
                .run(async move {
                    let _ = stopped.await;
                })
                .await
        });
        let all = owned
            .wait_for(|owned| owned.len() == 4)
            .await
            .expect("the replica owns every partition")
            .clone();
        // Each partition's events, read with this user's credentials.
        for partition in all {
            let expected = (0..8u64)
                .filter(|n| partition_of(&format!("tenant-{}", n % 4), 4) == partition)
                .count();
            if expected == 0 {
                continue;
            }
            let config = SubscriberConfig::new(format!("{user}-partition-{partition}"))
                .partition(partition)
                .position_kept_by_handler();
            let subscriber = Subscriber::open(client.clone(), config)
                .await
                .expect("a replica reads its partition");
            let (seen, done) = (Arc::new(Mutex::new(0usize)), Arc::new(Notify::new()));
            let (count, finished) = (seen.clone(), done.clone());
            subscriber
                .run(
                    move |_: Delivery| {
                        let (count, finished) = (count.clone(), finished.clone());
                        async move {
                            let mut count = count.lock().unwrap();
                            *count += 1;
                            if *count == expected {
                                finished.notify_one();
                            }
                            Ok::<(), HandlerError>(())
                        }
                    },
                    async move { done.notified().await },
                )
                .await
                .expect("the partition is read");
            assert_eq!(
                *seen.lock().unwrap(),
                expected,
                "{user}: partition {partition}"
            );
        }
        let _ = stop.send(());
        leases.await.unwrap();
        ownership.release().await;
        let errors = errors.lock().unwrap();
        assert!(errors.is_empty(), "{user}: the server refused: {errors:?}");
    }
}
