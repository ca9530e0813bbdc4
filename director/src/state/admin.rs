//! The operator's admin state as directors exchange it (issue 12): per realserver two fields,
//! drained and the weight override, each a last-writer-wins register stamped with a
//! [`Revision`]. Every write through any director gets a revision later than anything that
//! director has seen (a hybrid logical clock), so a write made after seeing another one always
//! wins over it, whatever the wall clocks say; writes that never saw each other (a partition)
//! are ordered by wall time, then by the writer's name.
//!
//! Two registers rather than one record per realserver: a weight set on one director and a
//! drain made on the other during a partition are different intentions, and both survive.
//! An undrain is a write like a drain, so a stale "not drained" never beats a newer drain.

use serde::{Deserialize, Serialize};

use super::State;

/// When, and through which director, an admin field was last written.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revision {
    /// Milliseconds since the Unix epoch, as the writer's hybrid logical clock gave them.
    pub at: u64,
    /// The writing director's `name`: orders two writes of the same millisecond.
    pub by: String,
}

impl Revision {
    /// Overrides from a state file written before revisions existed: older than any write.
    pub fn legacy() -> Revision {
        Revision::default()
    }
}

/// The revisions of one realserver's two fields; None: never written (or written before
/// revisions existed, when the field holds a value: see [`Revision::legacy`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revisions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<Revision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Revision>,
}

/// A value with the revision that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped<T> {
    pub value: T,
    pub revision: Revision,
}

/// One realserver's admin state: what a director sends its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRecord {
    pub realserver: String,
    /// Drained or not; None: never drained nor undrained anywhere this director heard of.
    pub drain: Option<Stamped<bool>>,
    /// The weight override (None inside: no override); None: never written.
    pub weight: Option<Stamped<Option<u32>>>,
}

/// An operator's write to one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminChange {
    Drain(bool),
    Weight(u32),
}

/// Whether `incoming` should replace `local`: a written field beats an unwritten one, a later
/// revision beats an earlier one, and the same revision with the same value is the same write.
/// Equal revisions with different values happen only between legacy overrides (state files
/// from before revisions, all at revision 0) of two directors: the greater value wins on both
/// (drained over not drained), so they still agree.
pub fn newer<T: Ord>(local: Option<&Stamped<T>>, incoming: Option<&Stamped<T>>) -> bool {
    match (local, incoming) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(l), Some(i)) => (&i.revision, &i.value) > (&l.revision, &l.value),
    }
}

/// The hybrid logical clock of one director: a new revision is the wall clock's millisecond,
/// or one more than the latest revision seen when that is later (a clock that went back, or a
/// peer whose clock runs ahead).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    last: u64,
}

impl Clock {
    pub fn starting_after(at: u64) -> Clock {
        Clock { last: at }
    }

    /// The `at` of a new write made at wall time `wall_ms`.
    pub fn tick(&mut self, wall_ms: u64) -> u64 {
        self.last = wall_ms.max(self.last.saturating_add(1));
        self.last
    }

    /// A revision came from a peer: later writes here must order after it.
    pub fn observe(&mut self, at: u64) {
        self.last = self.last.max(at);
    }
}

/// Now, in milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(now.as_millis()).unwrap_or(u64::MAX)
}

/// How a taken revision is kept: a legacy one is implied by its value and not written.
fn stored(revision: &Revision) -> Option<Revision> {
    (*revision != Revision::legacy()).then(|| revision.clone())
}

impl State {
    /// The admin record of `name`, None when neither field was ever written.
    pub fn admin_record(&self, name: &str) -> Option<AdminRecord> {
        let revisions = self.revisions.get(name);
        let drained = self.drained.contains(name);
        let weight = self.weights.get(name).copied();
        let drain_rev = revisions.and_then(|r| r.drain.clone());
        let weight_rev = revisions.and_then(|r| r.weight.clone());
        let drain = match drain_rev {
            Some(revision) => Some(Stamped {
                value: drained,
                revision,
            }),
            None if drained => Some(Stamped {
                value: true,
                revision: Revision::legacy(),
            }),
            None => None,
        };
        let weight = match weight_rev {
            Some(revision) => Some(Stamped {
                value: weight,
                revision,
            }),
            None => weight.map(|w| Stamped {
                value: Some(w),
                revision: Revision::legacy(),
            }),
        };
        if drain.is_none() && weight.is_none() {
            return None;
        }
        Some(AdminRecord {
            realserver: name.to_owned(),
            drain,
            weight,
        })
    }

    /// Every realserver's admin record, by name.
    pub fn admin_records(&self) -> Vec<AdminRecord> {
        let mut names: std::collections::BTreeSet<&String> = self.drained.iter().collect();
        names.extend(self.weights.keys());
        names.extend(self.revisions.keys());
        names
            .into_iter()
            .filter_map(|n| self.admin_record(n))
            .collect()
    }

    /// The latest revision this state holds (where a restarted clock resumes).
    pub fn latest_revision(&self) -> u64 {
        self.revisions
            .values()
            .flat_map(|r| [r.drain.as_ref(), r.weight.as_ref()])
            .flatten()
            .map(|r| r.at)
            .max()
            .unwrap_or(0)
    }

    /// An operator's write, stamped `revision`.
    pub fn write_admin(&mut self, name: &str, change: AdminChange, revision: Revision) {
        let revisions = self.revisions.entry(name.to_owned()).or_default();
        match change {
            AdminChange::Drain(drained) => {
                revisions.drain = Some(revision);
                self.set_drained(name, drained);
            }
            AdminChange::Weight(weight) => {
                revisions.weight = Some(revision);
                self.weights.insert(name.to_owned(), weight);
            }
        }
    }

    /// Takes each field of `incoming` that is newer than this state's; true when any was.
    pub fn merge_admin(&mut self, incoming: &AdminRecord) -> bool {
        let name = incoming.realserver.as_str();
        let local = self.admin_record(name);
        let mut changed = false;
        if newer(
            local.as_ref().and_then(|l| l.drain.as_ref()),
            incoming.drain.as_ref(),
        ) {
            if let Some(drain) = &incoming.drain {
                self.set_drained(name, drain.value);
                self.revisions.entry(name.to_owned()).or_default().drain = stored(&drain.revision);
                changed = true;
            }
        }
        if newer(
            local.as_ref().and_then(|l| l.weight.as_ref()),
            incoming.weight.as_ref(),
        ) {
            if let Some(weight) = &incoming.weight {
                match weight.value {
                    Some(w) => self.weights.insert(name.to_owned(), w),
                    None => self.weights.remove(name),
                };
                self.revisions.entry(name.to_owned()).or_default().weight =
                    stored(&weight.revision);
                changed = true;
            }
        }
        // A legacy field is implied by its value: keep the file as a legacy one was.
        if self.revisions.get(name) == Some(&Revisions::default()) {
            self.revisions.remove(name);
        }
        changed
    }

    fn set_drained(&mut self, name: &str, drained: bool) {
        if drained {
            self.drained.insert(name.to_owned());
        } else {
            self.drained.remove(name);
        }
    }
}

#[cfg(test)]
mod tests;
