//! The director's host setup, which replaces the seed's director script up to its ipvsadm
//! part: each service's VIP as a host address on its interface ([`address`]) and the kernel
//! settings an LVS-DR director wants ([`sysctl`]).

pub mod address;
#[cfg(any(test, feature = "testing"))]
mod memory;
pub mod sysctl;

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use lb_shared::domain::Forward;

pub use address::{host_prefix, AddressBackend, AddressError, RtnetlinkAddresses};
#[cfg(any(test, feature = "testing"))]
pub use memory::MemoryAddresses;
pub use sysctl::{SysctlChange, SysctlError, SysctlSetting, SysctlTree};

/// What one configured service asks of the host: its VIP on its interface, and its forward
/// method (which decides `ip_forward`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceVip {
    pub interface: String,
    pub vip: IpAddr,
    pub forward: Forward,
}

/// A VIP the configuration puts on an interface. The director remembers these in its state file
/// (`state::OwnedService` holds both fields), so that the next configuration knows which VIPs it
/// may remove.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct OwnedVip {
    pub interface: String,
    pub vip: IpAddr,
}

impl fmt::Display for OwnedVip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} dev {}",
            self.vip,
            host_prefix(self.vip),
            self.interface
        )
    }
}

/// The VIPs the services own, once each (several services may share a VIP), sorted: what the
/// state file should hold after [`HostSetup::apply`].
pub fn owned_vips(services: &[ServiceVip]) -> Vec<OwnedVip> {
    let set: BTreeSet<OwnedVip> = services
        .iter()
        .map(|s| OwnedVip {
            interface: s.interface.clone(),
            vip: s.vip,
        })
        .collect();
    set.into_iter().collect()
}

/// Checks a network interface name the way the kernel does (`dev_valid_name`): 1 to 15 bytes,
/// not `.` or `..`, no `/`, `:` or whitespace.
pub fn validate_interface(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 15 {
        return Err(format!(
            "is {} bytes long; the kernel allows at most 15",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err("must not be \".\" or \"..\"".into());
    }
    if let Some((device, _)) = name.split_once(':') {
        return Err(format!(
            "contains ':': an alias like the seed's eth0:1 is not needed, use \"{device}\""
        ));
    }
    if let Some(c) = name.chars().find(|c| *c == '/' || c.is_whitespace()) {
        return Err(format!("contains {c:?}, which the kernel refuses"));
    }
    Ok(())
}

/// One step of [`HostSetup::apply`] that failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("add VIP {vip}: {source}")]
    AddVip {
        vip: OwnedVip,
        #[source]
        source: AddressError,
    },
    #[error("remove VIP {vip}: {source}")]
    RemoveVip {
        vip: OwnedVip,
        #[source]
        source: AddressError,
    },
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
}

/// What [`HostSetup::apply`] changed on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostChanges {
    pub added: Vec<OwnedVip>,
    pub removed: Vec<OwnedVip>,
    pub sysctls: Vec<SysctlChange>,
}

impl HostChanges {
    /// True when the host already was as configured.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.sysctls.is_empty()
    }
}

/// Some steps failed; the others were done, and `changes` says what they changed.
#[derive(Debug, thiserror::Error)]
#[error("host setup incomplete: {}", list(failures))]
pub struct HostSetupError {
    pub changes: HostChanges,
    /// Every failed step, in the order tried; never empty.
    pub failures: Vec<HostError>,
}

fn list(failures: &[HostError]) -> String {
    let words: Vec<String> = failures.iter().map(ToString::to_string).collect();
    words.join("; ")
}

/// Brings the host in line with the configured services: their VIPs present, the VIPs of
/// services no longer configured gone, the seed's sysctls set. Idempotent: a second run over an
/// unchanged host changes nothing.
///
/// There is deliberately no teardown: the director never removes a VIP when it stops, because
/// removing it would cut the service for the length of a restart, and IPVS keeps forwarding
/// while the director is away. A VIP goes only when its services leave the configuration.
pub struct HostSetup<A> {
    addresses: A,
    sysctls: SysctlTree,
    ecmp: bool,
}

impl<A: AddressBackend> HostSetup<A> {
    pub fn new(addresses: A, sysctls: SysctlTree) -> Self {
        Self {
            addresses,
            sysctls,
            ecmp: false,
        }
    }

    /// With `[ha] mode = "ecmp"`: the sysctls include IPVS's `sloppy_tcp`.
    pub fn ecmp(self, on: bool) -> Self {
        Self { ecmp: on, ..self }
    }

    pub fn addresses(&self) -> &A {
        &self.addresses
    }

    /// Ensures every VIP of `services`, removes each VIP of `previous` (what the last
    /// configuration owned, from the state file) that no configured service owns any more, then
    /// applies the sysctls. A failed step does not stop the others: all failures are returned
    /// together, with what the rest changed. A stale VIP whose interface has gone counts as
    /// removed already (the kernel took it with the interface).
    #[tracing::instrument(name = "host_setup", skip_all)]
    pub async fn apply(
        &self,
        services: &[ServiceVip],
        previous: &[OwnedVip],
    ) -> Result<HostChanges, HostSetupError> {
        let mut changes = HostChanges::default();
        let mut failures = Vec::new();
        let wanted = owned_vips(services);

        for vip in &wanted {
            match self.addresses.ensure_vip(&vip.interface, vip.vip).await {
                Ok(true) => {
                    tracing::info!(vip = %vip.vip, interface = %vip.interface, "added VIP");
                    changes.added.push(vip.clone());
                }
                Ok(false) => {}
                Err(source) => failures.push(HostError::AddVip {
                    vip: vip.clone(),
                    source,
                }),
            }
        }

        let stale: BTreeSet<&OwnedVip> = previous.iter().filter(|v| !wanted.contains(v)).collect();
        for vip in stale {
            match self.addresses.remove_vip(&vip.interface, vip.vip).await {
                Ok(true) => {
                    tracing::info!(vip = %vip.vip, interface = %vip.interface,
                        "removed VIP: no configured service uses it any more");
                    changes.removed.push(vip.clone());
                }
                Ok(false) | Err(AddressError::NoSuchInterface { .. }) => {}
                Err(source) => failures.push(HostError::RemoveVip {
                    vip: vip.clone(),
                    source,
                }),
            }
        }

        self.ensure_sysctls(services, &mut changes, &mut failures);
        if failures.is_empty() {
            Ok(changes)
        } else {
            Err(HostSetupError { changes, failures })
        }
    }

    /// The host setup of a director in HA mode: the sysctls only. keepalived adds and removes
    /// the VIPs as VRRP decides; a director that put one back on the standby would answer for
    /// the VIP beside the active one.
    #[tracing::instrument(name = "host_setup", skip_all)]
    pub async fn apply_without_vips(
        &self,
        services: &[ServiceVip],
    ) -> Result<HostChanges, HostSetupError> {
        let mut changes = HostChanges::default();
        let mut failures = Vec::new();
        self.ensure_sysctls(services, &mut changes, &mut failures);
        if failures.is_empty() {
            Ok(changes)
        } else {
            Err(HostSetupError { changes, failures })
        }
    }

    fn ensure_sysctls(
        &self,
        services: &[ServiceVip],
        changes: &mut HostChanges,
        failures: &mut Vec<HostError>,
    ) {
        match sysctl::plan(services, self.ecmp) {
            Ok(plan) => {
                for setting in &plan {
                    match self.sysctls.ensure(setting) {
                        Ok(change) => changes.sysctls.extend(change),
                        Err(e) => failures.push(e.into()),
                    }
                }
            }
            Err(e) => failures.push(e.into()),
        }
    }
}

#[cfg(test)]
mod tests;
