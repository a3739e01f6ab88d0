//! Who owns a service's partitions, as a test of replicas waits for it.

use std::collections::BTreeSet;
use std::time::Duration;

use c2d_subscriber::ownership::{Ownership, OwnershipConfig};

use crate::{NatsServer, eventually};

/// Waits until `group`'s `partitions` are owned by exactly `replicas` (each owning some, none
/// unowned): the replicas have shared them out.
pub async fn wait_for_owners(nats: &NatsServer, group: &str, partitions: u32, replicas: &[&str]) {
    let config = OwnershipConfig::new(group, "test-observer", "-", partitions);
    // Joined, never run: it reads the leases and holds none.
    let observer = Ownership::join(nats.client().await, config)
        .await
        .expect("the leases bucket opens");
    let wanted: BTreeSet<String> = replicas.iter().map(|r| (*r).to_owned()).collect();
    eventually(
        &format!("{group}'s partitions owned by {replicas:?}"),
        Duration::from_secs(60),
        || {
            let (observer, wanted) = (observer.clone(), wanted.clone());
            async move {
                let mut owners = BTreeSet::new();
                for partition in 0..partitions {
                    let owner = observer
                        .owner_of(partition)
                        .await
                        .map_err(|e| e.to_string())?;
                    owners.insert(owner.map_or("nobody".to_owned(), |owner| owner.replica));
                }
                (owners == wanted)
                    .then_some(())
                    .ok_or(format!("owners: {owners:?}"))
            }
        },
    )
    .await;
}
