//! An in-memory [`AddressBackend`] for tests (feature `testing`). It answers like the kernel:
//! a missing interface is [`AddressError::NoSuchInterface`], a bad name is
//! [`AddressError::InvalidInterface`], adding twice keeps one address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::address::{check_interface, no_such_interface, AddressBackend, AddressError};

/// Interfaces and their VIPs, plus a count of the changes made, so tests can check that a
/// second pass over an unchanged host writes nothing.
#[derive(Debug, Default)]
pub struct MemoryAddresses {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    interfaces: BTreeMap<String, BTreeSet<IpAddr>>,
    writes: usize,
}

impl MemoryAddresses {
    /// A host with these interfaces and no VIPs.
    pub fn with_interfaces(names: &[&str]) -> Self {
        let memory = Self::default();
        for name in names {
            memory.add_interface(name);
        }
        memory
    }

    /// `ip link add NAME`: a no-op when it exists.
    pub fn add_interface(&self, name: &str) {
        self.lock().interfaces.entry(name.to_owned()).or_default();
    }

    /// `ip link del NAME`: its addresses go with it, as in the kernel.
    pub fn remove_interface(&self, name: &str) {
        self.lock().interfaces.remove(name);
    }

    /// The VIPs on an interface, in order; `None` when the interface does not exist.
    pub fn vips(&self, interface: &str) -> Option<Vec<IpAddr>> {
        let state = self.lock();
        let vips = state.interfaces.get(interface)?;
        Some(vips.iter().copied().collect())
    }

    /// How many addresses were added or removed so far.
    pub fn writes(&self) -> usize {
        self.lock().writes
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another test thread must not hide this test's own result.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the interface's VIPs, failing as the kernel would when it is missing.
    fn with_vips<T>(
        &self,
        interface: &str,
        f: impl FnOnce(&mut BTreeSet<IpAddr>) -> T,
    ) -> Result<T, AddressError> {
        check_interface(interface)?;
        let mut state = self.lock();
        let vips = state
            .interfaces
            .get_mut(interface)
            .ok_or_else(|| no_such_interface(interface))?;
        Ok(f(vips))
    }

    fn count_write(&self, changed: bool) -> bool {
        if changed {
            self.lock().writes += 1;
        }
        changed
    }
}

impl AddressBackend for MemoryAddresses {
    async fn ensure_vip(&self, interface: &str, vip: IpAddr) -> Result<bool, AddressError> {
        let added = self.with_vips(interface, |vips| vips.insert(vip))?;
        Ok(self.count_write(added))
    }

    async fn remove_vip(&self, interface: &str, vip: IpAddr) -> Result<bool, AddressError> {
        let removed = self.with_vips(interface, |vips| vips.remove(&vip))?;
        Ok(self.count_write(removed))
    }

    async fn has_vip(&self, interface: &str, vip: IpAddr) -> Result<bool, AddressError> {
        self.with_vips(interface, |vips| vips.contains(&vip))
    }
}
