//! What the director remembers across restarts, in `state_dir/state.json`: the operator's
//! overrides (drained realservers, weight overrides), the names of realservers it has seen (so
//! a destination adopted from the kernel after a restart is shown by name), the services it
//! owned (so a service removed from the config is retired, and only then), the services being
//! retired, and the VIPs it put on interfaces (so a VIP whose removal failed is retried).
//! Each override carries the revision that orders it against the same override written
//! through another director ([`admin`]).
//!
//! Writes are atomic (temporary file, fsync, rename, fsync of the directory): a crash leaves the
//! old file or the new one, never half of one. A file that cannot be read or parsed stops the
//! director before it touches the kernel, naming the file.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use lb_ipvs::ServiceKey;
use lb_shared::domain::Protocol;

use crate::host::OwnedVip;

mod admin;
mod store;
pub use admin::{newer, wall_ms, AdminChange, AdminRecord, Clock, Revision, Revisions, Stamped};
pub use store::StateStore;

const FILE_NAME: &str = "state.json";
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is corrupt ({source}); the kernel table is left as it is: move the file away to start without the saved drains and weights")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("state file {path} has version {found}, this director understands {VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("cannot write state file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A service the director owned, enough to remove it and its VIP later.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OwnedService {
    pub name: String,
    pub protocol: String,
    pub vip: IpAddr,
    pub port: u16,
    pub interface: String,
    /// A fwmark service's mark; then `vip` is its first VIP, `port` 0 and `protocol` unused.
    /// Absent from files of older directors, which had address services only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// A fwmark service's VIPs after the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_vips: Vec<IpAddr>,
}

impl OwnedService {
    pub fn protocol(&self) -> Option<Protocol> {
        self.protocol.parse().ok()
    }

    /// The IPVS service; None for a protocol this build does not know (a newer state file).
    pub fn key(&self) -> Option<ServiceKey> {
        if let Some(mark) = self.fwmark {
            return Some(ServiceKey::FwMark {
                family: lb_ipvs::Family::of(&self.vip),
                mark,
            });
        }
        Some(ServiceKey::Addr {
            protocol: self.protocol()?,
            addr: self.vip,
            port: self.port,
        })
    }

    /// The VIPs it put on its interface.
    pub fn vips(&self) -> Vec<OwnedVip> {
        std::iter::once(self.vip)
            .chain(self.more_vips.iter().copied())
            .map(|vip| OwnedVip {
                interface: self.interface.clone(),
                vip,
            })
            .collect()
    }
}

/// A service that left the configuration: quiesced, kept (with its VIP) until its connections
/// end or `retire_timeout` passes, then deleted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RetiringService {
    pub service: OwnedService,
    /// When it left the configuration, in seconds since the Unix epoch (wall clock, so the
    /// deadline holds across restarts).
    pub since: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    /// `lbctl drain NAME`.
    #[serde(default)]
    pub drained: BTreeSet<String>,
    /// `lbctl weight NAME N`.
    #[serde(default)]
    pub weights: BTreeMap<String, u32>,
    /// When each realserver's drain and weight were last written, through which director: how
    /// directors order their writes (issue 12). A file from before it has none: its overrides
    /// count as older than any write ([`Revision::legacy`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revisions: BTreeMap<String, Revisions>,
    /// Realserver names by address, learned at registration.
    #[serde(default)]
    pub realservers: BTreeMap<IpAddr, String>,
    #[serde(default)]
    pub owned: BTreeSet<OwnedService>,
    #[serde(default)]
    pub retiring: BTreeSet<RetiringService>,
    /// VIPs the director put on an interface and has not removed yet.
    #[serde(default)]
    pub vips: BTreeSet<OwnedVip>,
}

impl State {
    /// The weight a realserver should have: 0 when drained, else the operator's override, else
    /// what its agent registered.
    pub fn effective_weight(&self, name: &str, registered: u32) -> u32 {
        if self.drained.contains(name) {
            0
        } else {
            self.weights.get(name).copied().unwrap_or(registered)
        }
    }

    /// Every VIP this director may have put on an interface: the candidates for removal once
    /// no service wants them.
    pub fn known_vips(&self) -> Vec<OwnedVip> {
        let mut vips: BTreeSet<OwnedVip> = self.vips.clone();
        vips.extend(self.owned.iter().flat_map(OwnedService::vips));
        vips.extend(self.retiring.iter().flat_map(|r| r.service.vips()));
        vips.into_iter().collect()
    }
}

/// The state file of one state directory.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(state_dir: &Path) -> StateFile {
        StateFile {
            path: state_dir.join(FILE_NAME),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the state; a missing file is an empty state (first start).
    pub fn load(&self) -> Result<State, StateError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State {
                    version: VERSION,
                    ..State::default()
                })
            }
            Err(source) => {
                return Err(StateError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let state: State =
            serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        if state.version != VERSION {
            return Err(StateError::Version {
                path: self.path.clone(),
                found: state.version,
            });
        }
        Ok(state)
    }

    /// Replaces the file atomically.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let write_err = |source| StateError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(write_err)?;
        let mut json = serde_json::to_vec_pretty(state).map_err(|e| write_err(e.into()))?;
        json.push(b'\n');
        let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
        let mut file = std::fs::File::create(&tmp).map_err(write_err)?;
        file.write_all(&json).map_err(write_err)?;
        file.sync_all().map_err(write_err)?;
        std::fs::rename(&tmp, &self.path).map_err(write_err)?;
        // The rename is durable only once the directory entry is.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(write_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_an_empty_state_and_saves_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(&dir.path().join("sub"));
        let mut state = file.load().unwrap();
        assert_eq!(state.version, VERSION);
        assert!(state.drained.is_empty());
        state.drained.insert("llc5".into());
        state.weights.insert("llc6".into(), 3);
        state
            .realservers
            .insert("10.0.0.11".parse().unwrap(), "llc5".into());
        file.save(&state).unwrap();
        assert_eq!(file.load().unwrap(), state);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["state.json"], "no temporary file left behind");
    }

    #[test]
    fn corrupt_or_truncated_file_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path());
        let mut state = file.load().unwrap();
        state.drained.insert("llc5".into());
        file.save(&state).unwrap();
        let full = std::fs::read(file.path()).unwrap();
        std::fs::write(file.path(), &full[..full.len() / 2]).unwrap();
        let err = file.load().unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }));
        assert!(err.to_string().contains(&file.path().display().to_string()));
        std::fs::write(file.path(), "{\"version\": 9}").unwrap();
        assert!(matches!(
            file.load(),
            Err(StateError::Version { found: 9, .. })
        ));
    }
}
