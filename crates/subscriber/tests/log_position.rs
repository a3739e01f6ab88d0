//! `log_position::log_sequence_handled` against a real nats-server and gateway filing events
//! by partition: the whole log's position worked out from partition positions, with events of
//! ignored hook types stepped over.

use std::collections::BTreeMap;
use std::time::Duration;

use c2d_proto::partitions::{PARTITIONED_STREAM, partition_of};
use c2d_subscriber::log_position::log_sequence_handled;
use c2d_testkit::{Pipeline, eventually, fixture, inbox};

const PARTITIONS: u32 = 4;
const TENANTS: usize = 8;

/// One event of the partitioned copy: where it is there, and where it came from.
#[derive(Debug, Clone, Copy)]
struct Copied {
    sequence: u64,
    log_sequence: u64,
    inbox: bool,
}

/// Every event of the partitioned copy, by partition, once all `expected` are copied.
async fn partitioned(pipeline: &Pipeline, expected: u64) -> BTreeMap<u32, Vec<Copied>> {
    let jetstream = pipeline.nats.jetstream().await;
    let stream = jetstream.get_stream(PARTITIONED_STREAM).await.unwrap();
    eventually("every event copied", Duration::from_secs(30), || {
        let mut stream = stream.clone();
        async move {
            let copied = stream
                .info()
                .await
                .map_err(|e| e.to_string())?
                .state
                .messages;
            (copied == expected)
                .then_some(())
                .ok_or(format!("{copied} of {expected}"))
        }
    })
    .await;
    let mut by_partition: BTreeMap<u32, Vec<Copied>> = BTreeMap::new();
    for sequence in 1..=expected {
        let message = stream.direct_get(sequence).await.unwrap();
        let source = message.headers.get("Nats-Stream-Source").unwrap().as_str();
        let mut tokens = message.subject.split('.');
        let partition: u32 = tokens.nth(2).unwrap().parse().unwrap();
        by_partition.entry(partition).or_default().push(Copied {
            sequence,
            log_sequence: source.split(' ').nth(1).unwrap().parse().unwrap(),
            inbox: message.subject.ends_with(".inbox"),
        });
    }
    by_partition
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_position_is_just_before_the_earliest_event_a_partition_has_left() {
    let pipeline = Pipeline::start_partitioned(PARTITIONS, TENANTS).await;
    for n in 0..40 {
        let tenant = format!("tenant-{}", n % TENANTS as u64);
        pipeline.post_as(&tenant, inbox(n)).await;
    }
    // The last event of the log: a delivery status, which a reader of messages ignores.
    let quiet = "tenant-5";
    pipeline.post_as(quiet, fixture("outbox_status")).await;
    let copies = partitioned(&pipeline, 41).await;
    assert_eq!(
        copies.len(),
        PARTITIONS as usize,
        "every partition has events"
    );
    let jetstream = pipeline.nats.jetstream().await;
    let every_event = |_: &str| true;
    let inbox_only = |subject: &str| subject.ends_with(".inbox");
    let all_handled: Vec<u64> = (0..PARTITIONS)
        .map(|p| copies[&p].last().unwrap().sequence)
        .collect();

    let nothing = vec![0; PARTITIONS as usize];
    let position = log_sequence_handled(&jetstream, &nothing, every_event).await;
    assert_eq!(position.unwrap(), 0, "nothing handled: nothing of the log");

    let position = log_sequence_handled(&jetstream, &all_handled, every_event).await;
    assert_eq!(position.unwrap(), 41, "everything handled: the whole log");

    // One partition behind: the log is handled up to just before its next event.
    let behind = partition_of("tenant-3", PARTITIONS);
    let mut handled = all_handled.clone();
    handled[behind as usize] = copies[&behind][1].sequence;
    let next = copies[&behind][2].log_sequence;
    let position = log_sequence_handled(&jetstream, &handled, every_event).await;
    assert_eq!(position.unwrap(), next - 1, "partition {behind} behind");

    // The quiet tenant's partition handled up to its last message: the status after it counts
    // as left for a reader of everything, and is stepped over by a reader of messages.
    let partition = partition_of(quiet, PARTITIONS);
    let status = *copies[&partition].last().unwrap();
    assert!(!status.inbox);
    assert_eq!(status.log_sequence, 41);
    let mut handled = all_handled.clone();
    handled[partition as usize] = copies[&partition].iter().rev().nth(1).unwrap().sequence;
    let position = log_sequence_handled(&jetstream, &handled, every_event).await;
    assert_eq!(position.unwrap(), 40, "the status is the first event left");
    let position = log_sequence_handled(&jetstream, &handled, inbox_only).await;
    assert_eq!(position.unwrap(), 41, "the status stepped over");
}
