//! `[ha]`: the director is one of two behind keepalived. keepalived's VRRP owns the service
//! VIPs (the director never adds or removes one) and the director runs the kernel's IPVS
//! connection sync daemons, master and backup, so the peer can take over open sessions.

use std::net::IpAddr;

use lb_shared::config::Section;

/// The `[ha]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaConfig {
    /// The interface the sync daemons send and receive their multicast on
    /// (`ipvsadm --start-daemon ... --mcast-interface`).
    pub sync_interface: String,
    /// `--syncid`: a backup daemon takes only messages with its own id, so two director pairs
    /// on one network segment do not mix their connections.
    pub sync_id: u8,
}

/// The default `sync_id`: the last byte of the first service's VIP (0 becomes 1). Both
/// directors of a pair read the same services, so they agree without anyone choosing, and two
/// pairs on one segment serving different VIPs get different ids. The seed's VIP
/// 129.129.190.54 gives 54.
pub fn default_sync_id(first_vip: Option<IpAddr>) -> u8 {
    let last = match first_vip {
        Some(IpAddr::V4(v4)) => v4.octets()[3],
        Some(IpAddr::V6(v6)) => v6.octets()[15],
        None => 1,
    };
    last.max(1)
}

/// Reads `[ha]`: Some(None) when absent, None when it has problems (recorded on `root`).
pub(super) fn read_ha(root: &Section, first_vip: Option<IpAddr>) -> Option<Option<HaConfig>> {
    let Some(ha) = root.table("ha") else {
        // Absent, or not a table (recorded by `table`).
        return root.peek("ha").is_none().then_some(None);
    };
    let interface = ha.required("sync_interface", |s| {
        crate::host::validate_interface(s).map(|()| s.to_owned())
    });
    let sync_id = ha.integer::<u8>("sync_id", 1..=255, Some(default_sync_id(first_vip)));
    Some(Some(HaConfig {
        sync_interface: interface?,
        sync_id: sync_id?,
    }))
}
