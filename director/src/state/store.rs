//! The state file in memory, and the one way to change it.
//!
//! Two kinds of change, on purpose:
//! - an operator's override (drain, weight) is written to disk first and kept only once it is
//!   there ([`StateStore::update`]): the operator is told it holds, so it must survive a crash,
//!   and a full disk fails the drain with nothing changed;
//! - what the director learns on its own (realserver names, the services it owns or retires,
//!   its VIPs) is changed in memory at once and written later by the reconciler
//!   ([`StateStore::note`], [`StateStore::flush`]): a registration or a heartbeat must never wait
//!   for, or fail on, the disk.
//!
//! The disk write happens outside the lock that readers take, so no fsync ever holds up a
//! heartbeat or a status call.

use std::sync::{Mutex, MutexGuard};

use super::{wall_ms, AdminChange, AdminRecord, Clock, Revision, State, StateError, StateFile};

pub struct StateStore {
    file: StateFile,
    current: Mutex<Current>,
    /// One writer at a time, so two saves cannot land in the wrong order.
    writer: tokio::sync::Mutex<()>,
}

struct Current {
    state: State,
    /// A `note` changed the state since the last successful write.
    dirty: bool,
    /// Stamps the operator's writes after every revision this director has seen.
    clock: Clock,
}

impl StateStore {
    /// Loads the file (a corrupt one is an error naming it).
    pub fn load(file: StateFile) -> Result<StateStore, StateError> {
        let state = file.load()?;
        let clock = Clock::starting_after(state.latest_revision());
        Ok(StateStore {
            file,
            current: Mutex::new(Current {
                state,
                dirty: false,
                clock,
            }),
            writer: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Current> {
        // Every change is a whole-value assignment: the data is consistent after a panic.
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the state as it is now.
    pub fn state(&self) -> State {
        self.lock().state.clone()
    }

    /// Reads the state without copying it.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.lock().state)
    }

    /// Changes what the director learned on its own; written by the next [`StateStore::flush`].
    pub fn note(&self, change: impl FnOnce(&mut State)) {
        let mut current = self.lock();
        let before = current.state.clone();
        change(&mut current.state);
        if current.state != before {
            current.dirty = true;
        }
    }

    /// Changes an override durably: on disk first, in memory only once it is there. A failed
    /// write changes nothing and says why.
    pub async fn update(&self, change: impl FnOnce(&mut State)) -> Result<(), StateError> {
        let _one_writer = self.writer.lock().await;
        let mut next = self.state();
        change(&mut next);
        if next == self.state() {
            return Ok(());
        }
        self.save(next.clone()).await?;
        let mut current = self.lock();
        // Notes taken while the file was written stay; the override lands on top of them, and
        // whatever differs from the file now is written by the next flush.
        current.state.drained = next.drained.clone();
        current.state.weights = next.weights.clone();
        current.state.revisions = next.revisions.clone();
        current.dirty = current.state != next;
        Ok(())
    }

    /// An operator's drain, undrain or weight through this director (`writer`, its name):
    /// stamped with a new revision, on disk before it counts, like [`StateStore::update`].
    /// Written even when the value does not change, so the latest intention wins across
    /// directors. Returns the realserver's record to hand to the peers.
    pub async fn admin_write(
        &self,
        name: &str,
        writer: &str,
        change: AdminChange,
    ) -> Result<AdminRecord, StateError> {
        let revision = {
            let mut current = self.lock();
            Revision {
                at: current.clock.tick(wall_ms()),
                by: writer.to_owned(),
            }
        };
        self.update(|s| s.write_admin(name, change, revision))
            .await?;
        Ok(self
            .read(|s| s.admin_record(name))
            .unwrap_or_else(|| AdminRecord {
                realserver: name.to_owned(),
                drain: None,
                weight: None,
            }))
    }

    /// Takes the fields of a peer's records that are newer than ours, on disk before they
    /// count. Returns the names of the realservers that changed.
    pub async fn merge(&self, records: &[AdminRecord]) -> Result<Vec<String>, StateError> {
        {
            let mut current = self.lock();
            for record in records {
                for revision in [
                    record.drain.as_ref().map(|d| &d.revision),
                    record.weight.as_ref().map(|w| &w.revision),
                ]
                .into_iter()
                .flatten()
                {
                    current.clock.observe(revision.at);
                }
            }
        }
        let mut changed = Vec::new();
        self.update(|s| {
            for record in records {
                if s.merge_admin(record) {
                    changed.push(record.realserver.clone());
                }
            }
        })
        .await?;
        Ok(changed)
    }

    /// Writes the state when a note changed it. The reconciler calls this after each pass; a
    /// failure is returned for it to log, and the next pass tries again.
    pub async fn flush(&self) -> Result<bool, StateError> {
        let _one_writer = self.writer.lock().await;
        let state = {
            let current = self.lock();
            if !current.dirty {
                return Ok(false);
            }
            current.state.clone()
        };
        self.save(state.clone()).await?;
        let mut current = self.lock();
        current.dirty = current.state != state;
        Ok(true)
    }

    async fn save(&self, state: State) -> Result<(), StateError> {
        let file = self.file.clone();
        // The fsyncs block; they run beside the runtime, never on it.
        match tokio::task::spawn_blocking(move || file.save(&state)).await {
            Ok(result) => result,
            Err(join) => Err(StateError::Write {
                path: self.file.path().to_owned(),
                source: std::io::Error::other(join.to_string()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &std::path::Path) -> StateStore {
        StateStore::load(StateFile::new(dir)).unwrap()
    }

    #[tokio::test]
    async fn an_override_is_on_disk_before_it_counts_and_notes_wait_for_flush() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.note(|st| {
            st.realservers
                .insert("10.0.0.11".parse().unwrap(), "llc5".into());
        });
        s.update(|st| {
            st.drained.insert("llc5".into());
        })
        .await
        .unwrap();
        let on_disk = StateFile::new(dir.path()).load().unwrap();
        assert!(on_disk.drained.contains("llc5"));
        assert!(s
            .state()
            .realservers
            .contains_key(&"10.0.0.11".parse().unwrap()));
        s.flush().await.unwrap();
        let on_disk = StateFile::new(dir.path()).load().unwrap();
        assert_eq!(on_disk, s.state(), "after a flush the file is the state");
        assert!(!s.flush().await.unwrap(), "nothing left to write");
    }

    #[tokio::test]
    async fn a_failed_write_changes_no_override_and_leaves_notes_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let s = store(&state_dir);
        // state_dir becomes a regular file: every write fails, as on a broken disk (root
        // ignores permissions, so a read-only directory would not do).
        std::fs::write(&state_dir, "not a directory").unwrap();
        let drained = s
            .update(|st| {
                st.drained.insert("llc5".into());
            })
            .await;
        assert!(matches!(drained, Err(StateError::Write { .. })));
        assert!(s.state().drained.is_empty(), "nothing half-applied");
        s.note(|st| {
            st.realservers
                .insert("10.0.0.11".parse().unwrap(), "llc5".into());
        });
        assert!(s.flush().await.is_err());
        assert_eq!(s.state().realservers.len(), 1, "kept for the next flush");
    }
}
