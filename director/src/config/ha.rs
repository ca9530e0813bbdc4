//! `[ha]`: the director is one of several. In the default `mode = "active-standby"` it is one of
//! two behind keepalived: keepalived's VRRP owns the service VIPs (the director never adds or
//! removes one) and the director runs the kernel's IPVS connection sync daemons, master and
//! backup, so the peer can take over open sessions. With `mode = "ecmp"` every director is
//! active behind the gateway's multipath route: each owns its VIPs (on `lo`), and a flow that
//! moves to another director is scheduled there to the same realserver (mh, `sloppy_tcp`), so
//! nothing is synced.

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

/// What `[ha]` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HaSection {
    Absent,
    ActiveStandby(HaConfig),
    Ecmp,
}

/// The scheduler an ECMP director's services must use.
pub const ECMP_SCHEDULER: &str = "mh";

/// Reads `[ha]`; None when it has problems (recorded on `root`).
pub(super) fn read_ha(root: &Section<'_>, first_vip: Option<IpAddr>) -> Option<HaSection> {
    let Some(ha) = root.table("ha") else {
        // Absent, or not a table (recorded by `table`).
        return root.peek("ha").is_none().then_some(HaSection::Absent);
    };
    let mode = ha.optional("mode", |s| match s {
        "active-standby" => Ok(false),
        "ecmp" => Ok(true),
        _ => Err("is not a mode: use \"active-standby\" (keepalived moves the VIPs, connections are synced) or \"ecmp\" (every director active behind the gateway's multipath route)".to_owned()),
    })?;
    if mode == Some(true) {
        for key in ["sync_interface", "sync_id"] {
            if ha.has(key) {
                ha.problem(
                    key,
                    &ha.raw(key),
                    "has no use with mode = \"ecmp\": nothing is synced, every director schedules a flow to the same realserver (remove it)",
                );
            }
        }
        return Some(HaSection::Ecmp);
    }
    let interface = ha.required("sync_interface", |s| {
        crate::host::validate_interface(s).map(|()| s.to_owned())
    });
    let sync_id = ha.integer::<u8>("sync_id", 1..=255, Some(default_sync_id(first_vip)));
    Some(HaSection::ActiveStandby(HaConfig {
        sync_interface: interface?,
        sync_id: sync_id?,
    }))
}
