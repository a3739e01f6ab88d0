//! Taking a write back. An input's effects are written to the bucket one by one; when one
//! fails, the input is retried later and must meet the state it first met. Were the writes
//! before the failure left in place, the retry would decide on a state that is half of what
//! the first try decided: a firing alert whose notification was written but whose own record
//! was not would fire again on the retry with a new start, and so be notified twice, the
//! second time under another key (a receiver would open a second incident and never see the
//! first one resolved). So the engine writes back, in reverse, what each key written by the
//! change under way held before: the writes since the last alert it published, since a
//! published alert cannot be taken back and must stay as it was announced.

use super::{Effect, Heard, Machine, Record};

/// What takes one write back.
#[derive(Debug, Clone, PartialEq)]
pub struct Undo {
    /// The key written.
    pub key: String,
    /// What the bucket held under it (None: nothing).
    pub before: Option<Record>,
    /// What gives memory back what it held.
    pub memory: Vec<Effect>,
}

impl Machine {
    /// What takes `effect` back once it is written; None for an effect that writes nothing.
    pub fn undo_of(&self, effect: &Effect) -> Option<Undo> {
        let key = match effect {
            Effect::Put(record) => record.key(),
            Effect::Delete(key) => key.clone(),
            Effect::Heard { .. } | Effect::Evaluated { .. } | Effect::Publish(_) => return None,
        };
        let before = self.record(&key);
        let mut memory = vec![match &before {
            Some(record) => Effect::Put(record.clone()),
            None => Effect::Delete(key.clone()),
        }];
        // Memory knows a tenant was heard from later than the bucket says.
        if let Some(("seen", tenant)) = key.split_once('.')
            && let Some(Heard { last, .. }) = self.seen.get(tenant)
        {
            memory.push(Effect::Heard {
                tenant: tenant.to_owned(),
                at: *last,
            });
        }
        Some(Undo {
            key,
            before,
            memory,
        })
    }

    /// The record memory holds under `key`, as the bucket holds it.
    fn record(&self, key: &str) -> Option<Record> {
        match key.split_once('.')? {
            ("alert", fingerprint) => self.alerts.get(fingerprint).cloned().map(Record::Alert),
            ("timer", _) => self.timers.get(key).cloned().map(Record::Timer),
            // Written 0: heard of from the rules alone, never written.
            ("seen", tenant) => {
                self.seen
                    .get(tenant)
                    .filter(|heard| heard.written > 0)
                    .map(|heard| Record::Seen {
                        tenant: tenant.to_owned(),
                        at: heard.written,
                    })
            }
            ("notify", _) => {
                self.notifications
                    .get(key)
                    .cloned()
                    .map(|notification| Record::Notification {
                        key: key.to_owned(),
                        notification,
                    })
            }
            ("silence", id) => self.silences.get(id).cloned().map(Record::Silence),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undone_write_leaves_memory_as_it_was() {
        let mut machine = Machine::default();
        machine.apply(Effect::Put(Record::Seen {
            tenant: "acme".into(),
            at: 1_000,
        }));
        machine.apply(Effect::Heard {
            tenant: "acme".into(),
            at: 1_500,
        });
        let before = machine.clone();
        let writes = [
            Effect::Put(Record::Seen {
                tenant: "acme".into(),
                at: 2_000,
            }),
            Effect::Put(Record::Seen {
                tenant: "globex".into(),
                at: 2_000,
            }),
            Effect::Delete("seen.acme".into()),
        ];
        for write in writes {
            let undo = machine.undo_of(&write).expect("a write");
            machine.apply(write);
            for effect in undo.memory {
                machine.apply(effect);
            }
            assert_eq!(machine, before);
        }
        assert_eq!(
            machine.undo_of(&Effect::Put(Record::Seen {
                tenant: "acme".into(),
                at: 2_000,
            })),
            Some(Undo {
                key: "seen.acme".into(),
                before: Some(Record::Seen {
                    tenant: "acme".into(),
                    at: 1_000
                }),
                memory: vec![
                    Effect::Put(Record::Seen {
                        tenant: "acme".into(),
                        at: 1_000
                    }),
                    Effect::Heard {
                        tenant: "acme".into(),
                        at: 1_500
                    }
                ],
            })
        );
    }
}
