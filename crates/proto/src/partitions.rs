//! The partitioned copy of the event log, for services that run several replicas.
//!
//! A replica that holds a read model for some tenants only must read those tenants' events
//! only, or its replay time still grows with the whole log. NATS cannot filter a consumer by a
//! hash of a subject token, but a stream can *source* another stream through a subject
//! transform, and the transform's `partition(n, token)` function hashes a token into one of
//! `n` partitions. So `CHAT2DESK_PARTITIONED` sources every event of `CHAT2DESK` (the log
//! itself is untouched: its subjects are the public contract) and stores it as
//! `chat2desk.partitioned.{partition}.{tenant}.{hook_type}`; a replica owning partitions 3 and
//! 7 reads `chat2desk.partitioned.3.>` and `chat2desk.partitioned.7.>`, in order, and nothing
//! else. Every event of a tenant is in one partition, so a tenant's read model is whole in one
//! replica.
//!
//! [`partition_of`] computes the same partition as nats-server (FNV-1a, 32 bits, of the
//! tenant, modulo the count), so a query for a tenant is sent to the replica that owns it
//! without asking the server.

/// The stream that holds every event of [`crate::events::STREAM`] again, by partition.
pub const PARTITIONED_STREAM: &str = "CHAT2DESK_PARTITIONED";
/// Subjects of [`PARTITIONED_STREAM`].
pub const PARTITIONED_SUBJECTS: &str = "chat2desk.partitioned.>";
/// Partitions when not configured: a few times the replicas a deployment is likely to run,
/// so that ownership moves in small steps, and few enough that a replica's consumers stay few.
pub const DEFAULT_PARTITIONS: u32 = 16;

/// The partition `tenant`'s events are stored in, as nats-server's `partition()` computes it.
pub fn partition_of(tenant: &str, partitions: u32) -> u32 {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    let hash = tenant.bytes().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(PRIME)
    });
    hash % partitions.max(1)
}

/// `chat2desk.partitioned.{partition}.>`: what a replica owning `partition` reads.
pub fn partition_filter(partition: u32) -> String {
    format!("chat2desk.partitioned.{partition}.>")
}

/// The subject transform from [`crate::events::STREAM_SUBJECTS`] to the partitioned subjects:
/// (source, destination) as a stream source's `subject_transforms` takes them.
pub fn partition_transform(partitions: u32) -> (String, String) {
    (
        "chat2desk.events.*.*".to_owned(),
        format!(
            "chat2desk.partitioned.{{{{partition({},1)}}}}.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}",
            partitions.max(1)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_fnv1a_of_the_tenant() {
        // FNV-1a 32 of "" is the offset basis; of "a" is 0xe40c292c (the published test vector).
        assert_eq!(partition_of("", 1 << 31), 0x811c_9dc5 % (1 << 31));
        assert_eq!(partition_of("a", 1 << 31), 0xe40c_292c % (1 << 31));
        assert!((0..1000).all(|n| partition_of(&format!("tenant-{n}"), 16) < 16));
        assert_eq!(partition_of("acme", 1), 0);
        assert_eq!(partition_of("acme", 0), 0, "no partitions read as one");
    }

    #[test]
    fn the_transform_is_written_as_nats_server_reads_it() {
        assert_eq!(
            partition_transform(16),
            (
                "chat2desk.events.*.*".to_owned(),
                "chat2desk.partitioned.{{partition(16,1)}}.{{wildcard(1)}}.{{wildcard(2)}}"
                    .to_owned()
            )
        );
        assert_eq!(partition_filter(3), "chat2desk.partitioned.3.>");
    }
}
