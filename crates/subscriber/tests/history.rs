//! Reading the log without being one of its consumers, against a real gateway and
//! nats-server: a stretch between two sequences, and a tail that follows from a start and
//! skips what is not an event (a reader cannot repair it, and must not stop on it).

use std::time::Duration;

use c2d_subscriber::StartAt;
use c2d_subscriber::history::{follow, read_between};
use c2d_testkit::{Pipeline, inbox};
use futures_util::StreamExt as _;

#[tokio::test]
async fn a_stretch_between_two_sequences_is_read_and_nothing_after_it() {
    let pipeline = Pipeline::start().await;
    for n in 1..=5 {
        pipeline.post(inbox(n)).await;
    }
    let part = read_between(pipeline.client().await, 2, 4, None, 100)
        .await
        .unwrap();
    let sequences: Vec<u64> = part.events.iter().map(|e| e.stream_sequence).collect();
    assert_eq!(sequences, [2, 3, 4]);
    assert!(!part.truncated);
    let empty = read_between(pipeline.client().await, 4, 3, None, 100)
        .await
        .unwrap();
    assert!(empty.events.is_empty());
}

#[tokio::test]
async fn a_tail_follows_its_subjects_and_skips_what_is_not_an_event() {
    let pipeline = Pipeline::start().await;
    pipeline.post(inbox(1)).await;
    let client = pipeline.client().await;
    let mut tail = Box::pin(
        follow(
            client.clone(),
            StartAt::Sequence(2),
            Some("chat2desk.events.acme.*".into()),
        )
        .await
        .unwrap(),
    );
    // Not an event, published around the gateway; then another tenant's; then acme's.
    async_nats::jetstream::new(client)
        .publish("chat2desk.events.acme.inbox", "garbage".into())
        .await
        .unwrap()
        .await
        .unwrap();
    pipeline.post_as("globex", inbox(2)).await;
    pipeline.post_as("acme", inbox(3)).await;
    let next = tokio::time::timeout(Duration::from_secs(30), tail.next())
        .await
        .expect("the tail delivers acme's event")
        .expect("the tail goes on");
    assert_eq!(next.stream_sequence, 4);
    assert_eq!(next.event.tenant, "acme");
}
