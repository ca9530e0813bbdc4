//! The seed's kernel settings (its `echo "0" >/proc/sys/net/ipv4/ip_forward` and the three
//! `send_redirects` lines) as a pure plan, and the code that applies a plan to a sysctl tree.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use lb_shared::domain::Forward;

use super::{validate_interface, ServiceVip};

/// Where the kernel shows its sysctls.
pub const PROC_SYS: &str = "/proc/sys";

#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("interface name {interface:?} is not valid: {reason}")]
    InvalidInterface { interface: String, reason: String },
    #[error("cannot read sysctl {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {value:?} to sysctl {}: {source}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
}

/// One kernel setting: where it lives under the sysctl root and the value it should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlSetting {
    /// Path components under the root: `["net", "ipv4", "conf", "eth0", "send_redirects"]`.
    components: Vec<String>,
    value: String,
}

impl SysctlSetting {
    pub fn new(components: &[&str], value: &str) -> Self {
        Self {
            components: components.iter().map(|c| (*c).to_owned()).collect(),
            value: value.to_owned(),
        }
    }

    /// The name `sysctl(8)` uses: components joined by `.`, a `.` inside one (a VLAN
    /// interface such as `eth0.100`) written as `/`.
    pub fn name(&self) -> String {
        let escaped: Vec<String> = self
            .components
            .iter()
            .map(|c| c.replace('.', "/"))
            .collect();
        escaped.join(".")
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// The file under `root`.
    pub fn path(&self, root: &Path) -> PathBuf {
        let mut path = root.to_path_buf();
        path.extend(&self.components);
        path
    }
}

/// `sysctl -w` syntax.
impl fmt::Display for SysctlSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name(), self.value)
    }
}

/// A setting whose value was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlChange {
    /// The `sysctl(8)` name, e.g. `net.ipv4.ip_forward`.
    pub name: String,
    pub old: String,
    pub new: String,
}

/// The settings the configured services need, in the seed's order:
/// - `net.ipv4.ip_forward=0` when there is a service and every one forwards with direct
///   routing (a DR director forwards nothing "in the conventional sense"). Left alone when a
///   service uses NAT or tunnel (NAT needs forwarding) or when there is no service at all.
/// - `net.ipv4.conf.{all,default,IFACE}.send_redirects=1` for every interface that carries a
///   VIP: the director is not the realservers' gateway, so ICMP redirects stay on.
/// - with `ecmp`, `net.ipv4.vs.sloppy_tcp=1`: a flow the gateway moves to this director
///   arrives mid-connection, without the SYN IPVS wants before it makes a connection entry;
///   sloppy, it schedules any packet (mh picks the realserver the flow already has). The file
///   exists once IPVS is loaded (the director's first table read loads it).
pub fn plan(services: &[ServiceVip], ecmp: bool) -> Result<Vec<SysctlSetting>, SysctlError> {
    let mut settings = Vec::new();
    if ecmp {
        settings.push(SysctlSetting::new(
            &["net", "ipv4", "vs", "sloppy_tcp"],
            "1",
        ));
    }
    if !services.is_empty() && services.iter().all(|s| s.forward == Forward::Dr) {
        settings.push(SysctlSetting::new(&["net", "ipv4", "ip_forward"], "0"));
    }
    let interfaces: BTreeSet<&str> = services.iter().map(|s| s.interface.as_str()).collect();
    if interfaces.is_empty() {
        return Ok(settings);
    }
    for interface in &interfaces {
        // The name becomes a path component: refuse "..", "/" and the like before any I/O.
        validate_interface(interface).map_err(|reason| SysctlError::InvalidInterface {
            interface: (*interface).to_owned(),
            reason,
        })?;
    }
    for scope in ["all", "default"].into_iter().chain(interfaces) {
        settings.push(SysctlSetting::new(
            &["net", "ipv4", "conf", scope, "send_redirects"],
            "1",
        ));
    }
    Ok(settings)
}

/// A sysctl tree: `/proc/sys` for the daemon, a temporary directory in tests.
#[derive(Debug, Clone)]
pub struct SysctlTree {
    root: PathBuf,
}

impl Default for SysctlTree {
    fn default() -> Self {
        Self::new(PROC_SYS)
    }
}

impl SysctlTree {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `sysctl -n NAME`, without the trailing newline.
    pub fn read(&self, setting: &SysctlSetting) -> Result<String, SysctlError> {
        let path = setting.path(&self.root);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text.trim().to_owned()),
            Err(source) => Err(SysctlError::Read { path, source }),
        }
    }

    /// Writes the setting only when its current value differs; logs and returns the change.
    pub fn ensure(&self, setting: &SysctlSetting) -> Result<Option<SysctlChange>, SysctlError> {
        let old = self.read(setting)?;
        if old == setting.value {
            return Ok(None);
        }
        let path = setting.path(&self.root);
        // No `create`: a sysctl that does not exist is an error, as it is in /proc.
        let written = OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut file| file.write_all(setting.value.as_bytes()));
        if let Err(source) = written {
            return Err(SysctlError::Write {
                path,
                value: setting.value.clone(),
                source,
            });
        }
        let change = SysctlChange {
            name: setting.name(),
            old,
            new: setting.value.clone(),
        };
        tracing::info!(sysctl = %change.name, old = %change.old, new = %change.new, "changed sysctl");
        Ok(Some(change))
    }

    /// [`ensure`](Self::ensure) for each setting in order, stopping at the first error.
    pub fn apply(&self, plan: &[SysctlSetting]) -> Result<Vec<SysctlChange>, SysctlError> {
        let mut changes = Vec::new();
        for setting in plan {
            changes.extend(self.ensure(setting)?);
        }
        Ok(changes)
    }
}

#[cfg(test)]
pub(super) mod tests;
