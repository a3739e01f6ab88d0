//! Every tenant's [`Knowledge`], and how far into the event log it reaches.
//!
//! The hints service keeps nothing on disk: at every start it reads the log's inbox, outbox
//! and ai_hints_requested events from the beginning (100,000 pairs take seconds), so the log
//! stays the only truth and a new version of the ranking applies to all history at once.

use c2d_proto::events::Event;
use rustc_hash::FxHashMap;

use crate::knowledge::Knowledge;

/// All tenants' knowledge.
#[derive(Debug, Default)]
pub struct Projection {
    pub tenants: FxHashMap<String, Knowledge>,
    /// The stream sequence of the last event applied.
    pub last_sequence: u64,
}

impl Projection {
    /// Applies the event stored at `sequence`, once: a sequence already applied is skipped.
    pub fn apply(&mut self, sequence: u64, event: &Event) {
        if sequence != 0 && sequence <= self.last_sequence {
            return;
        }
        self.tenants
            .entry(event.tenant.clone())
            .or_default()
            .apply(event);
        self.last_sequence = self.last_sequence.max(sequence);
    }

    /// The knowledge of `tenant`, if any event of it was seen.
    pub fn tenant(&self, tenant: &str) -> Option<&Knowledge> {
        self.tenants.get(tenant)
    }
}
