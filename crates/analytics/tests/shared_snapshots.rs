//! The shared partition snapshots against a real nats-server: a snapshot is replaced only by
//! one further along, and one from a later rebuild is further along whatever its sequence, so
//! neither a lagging owner nor one from before a rebuild can set a partition back.

use c2d_analytics::projection::Projection;
use std::collections::HashSet;
use std::time::Duration;

use futures_util::TryStreamExt as _;

use c2d_analytics::shared_snapshots::{BUCKET, SharedSnapshots, Standing};
use c2d_analytics::snapshot::SnapshotStore;
use c2d_testkit::NatsServer;

fn snapshot(origin: u64, sequence: u64) -> (Standing, Vec<u8>) {
    let mut projection = Projection::default();
    projection.origin = origin;
    projection.last_sequence = sequence;
    (
        Standing::of(&projection),
        SnapshotStore::encode(&projection).unwrap(),
    )
}

#[tokio::test]
async fn only_a_snapshot_further_along_replaces_the_shared_one() {
    let nats = NatsServer::start().await.unwrap();
    let shared = SharedSnapshots::open(&nats.client().await, 1)
        .await
        .unwrap();
    assert_eq!(shared.standing(3).await.unwrap(), None);
    assert!(shared.load(3).await.unwrap().is_none());

    let put = |origin, sequence| {
        let shared = shared.clone();
        async move {
            let (standing, bytes) = snapshot(origin, sequence);
            shared.put(3, standing, &bytes).await.unwrap()
        }
    };
    assert!(put(0, 10).await, "the first snapshot is shared");
    assert!(!put(0, 9).await, "a lagging owner's is not");
    assert!(!put(0, 10).await, "nor the same again");
    assert!(put(0, 11).await);
    assert!(
        put(7, 2).await,
        "a rebuild's snapshot replaces any from before it"
    );
    assert!(
        !put(0, 500).await,
        "one from before the rebuild never comes back"
    );

    let loaded = shared.load(3).await.unwrap().expect("shared");
    assert_eq!((loaded.origin, loaded.last_sequence), (7, 2));
    assert_eq!(
        shared.standing(3).await.unwrap(),
        Some(Standing {
            origin: 7,
            sequence: 2
        })
    );
    assert_eq!(shared.standing(4).await.unwrap(), None, "per partition");
}

/// With the deployment's NATS users, analytics' own may make the bucket and share snapshots;
/// another consumer's (here the users' own services', `reader`) may not write them, nor empty
/// or delete the bucket, nor may analytics' own delete it.
#[tokio::test]
async fn the_analytics_user_shares_snapshots_and_no_other_consumer_writes_them() {
    let nats = NatsServer::start_with_users().await.unwrap();
    let analytics = nats.client_as("analytics").await.unwrap();
    let shared = SharedSnapshots::open(&analytics, 1)
        .await
        .expect("analytics makes the bucket");
    let (standing, bytes) = snapshot(0, 5);
    assert!(
        shared
            .put(1, standing, &bytes)
            .await
            .expect("analytics shares")
    );
    assert_eq!(shared.load(1).await.unwrap().unwrap().last_sequence, 5);
    let suspects = shared
        .sweep(&HashSet::new(), Duration::ZERO)
        .await
        .expect("analytics sweeps");
    shared
        .sweep(&suspects, Duration::ZERO)
        .await
        .expect("and clears");

    let reader = nats.client_as("reader").await.unwrap();
    let theirs = SharedSnapshots::open(&reader, 1).await.unwrap();
    let (standing, bytes) = snapshot(0, 6);
    assert!(theirs.put(1, standing, &bytes).await.is_err());
    let mut jetstream = async_nats::jetstream::new(reader);
    jetstream.set_timeout(Duration::from_millis(500));
    let stream = format!("OBJ_{BUCKET}");
    let bucket = jetstream.get_stream(&stream).await.unwrap();
    assert!(bucket.purge().await.is_err(), "a reader empties it");
    assert!(jetstream.delete_stream(&stream).await.is_err());
    let mut jetstream = async_nats::jetstream::new(analytics);
    jetstream.set_timeout(Duration::from_millis(500));
    assert!(jetstream.delete_stream(&stream).await.is_err());
    assert_eq!(shared.standing(1).await.unwrap().unwrap().sequence, 5);
}

/// The chunks of an upload cut short are cleared at the second sweep that finds them unnamed
/// by any object (the first might have met an upload under way), once none was written
/// lately; a shared snapshot's stay.
#[tokio::test]
async fn chunks_of_an_upload_cut_short_are_cleared_by_the_second_sweep() {
    let nats = NatsServer::start().await.unwrap();
    let client = nats.client().await;
    let shared = SharedSnapshots::open(&client, 1).await.unwrap();
    let (standing, bytes) = snapshot(0, 9);
    assert!(shared.put(2, standing, &bytes).await.unwrap());
    let jetstream = async_nats::jetstream::new(client);
    let cut_short = format!("$O.{BUCKET}.C.cutshort");
    jetstream
        .publish(cut_short.clone(), bytes.clone().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let chunks = || async {
        let stream = jetstream.get_stream(format!("OBJ_{BUCKET}")).await.unwrap();
        let mut subjects: Vec<String> = stream
            .info_with_subjects(format!("$O.{BUCKET}.C.>"))
            .await
            .unwrap()
            .map_ok(|(subject, _)| subject)
            .try_collect()
            .await
            .unwrap();
        subjects.sort();
        subjects
    };
    assert_eq!(chunks().await.len(), 2);

    let suspects = shared.sweep(&HashSet::new(), Duration::ZERO).await.unwrap();
    assert_eq!(suspects, HashSet::from([cut_short.clone()]));
    assert_eq!(chunks().await.len(), 2, "the first sweep only suspects it");
    let again = shared
        .sweep(&suspects, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        again, suspects,
        "written in the last hour: perhaps still under way"
    );
    assert_eq!(chunks().await.len(), 2);
    let suspects = shared.sweep(&suspects, Duration::ZERO).await.unwrap();
    assert!(suspects.is_empty());
    let left = chunks().await;
    assert_eq!(left.len(), 1);
    assert_ne!(left[0], cut_short);
    let loaded = shared
        .load(2)
        .await
        .unwrap()
        .expect("the snapshot is whole");
    assert_eq!(loaded.last_sequence, 9);
}
