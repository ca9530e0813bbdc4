//! What this director knows of each peer: whether the last exchange worked and when one last
//! did. The admin calls read it (a peer known to be away is not waited for), and so do the
//! metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerHealth {
    /// The last call to it (exchange or push) worked. False before the first one.
    pub reachable: bool,
    /// When a call to it last worked.
    pub last_success: Option<SystemTime>,
    /// Why the last call failed, while it is unreachable.
    pub last_error: Option<String>,
    /// Failed exchanges in a row (the backoff).
    pub failures: u32,
}

#[derive(Debug, Default)]
pub struct PeerBoard {
    peers: Mutex<BTreeMap<String, PeerHealth>>,
}

impl PeerBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, PeerHealth>> {
        // Each change is a whole-value assignment: consistent after a panic.
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, peer: &str) -> PeerHealth {
        self.lock().get(peer).cloned().unwrap_or_default()
    }

    pub fn all(&self) -> BTreeMap<String, PeerHealth> {
        self.lock().clone()
    }

    /// A call worked; returns whether the peer was unreachable before (to log its return).
    pub fn succeeded(&self, peer: &str) -> bool {
        let mut peers = self.lock();
        let health = peers.entry(peer.to_owned()).or_default();
        let was_away = health.failures > 0;
        *health = PeerHealth {
            reachable: true,
            last_success: Some(SystemTime::now()),
            last_error: None,
            failures: 0,
        };
        was_away
    }

    /// A call failed; returns the failures in a row, this one included.
    pub fn failed(&self, peer: &str, error: String) -> u32 {
        let mut peers = self.lock();
        let health = peers.entry(peer.to_owned()).or_default();
        health.reachable = false;
        health.last_error = Some(error);
        health.failures = health.failures.saturating_add(1);
        health.failures
    }

    /// Forgets peers a reload removed.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.lock().retain(|name, _| keep(name));
    }
}
