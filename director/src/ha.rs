//! HA mode (`[ha]`): two directors behind keepalived's VRRP. keepalived moves the service VIPs
//! between them; each director keeps the complete table from the same registrations, learns
//! its role from whether a service VIP is on its interface, and runs the kernel's connection
//! sync daemons in both directions, so the peer that takes the VIP over also has the open
//! sessions (and gets them back on a quick failback).
//!
//! Pure parts here (the role from the addresses, the daemon plan); the reconciler reads the
//! addresses and applies the plan, as it does for the table.

use lb_ipvs::{SyncDaemon, SyncRole};
use lb_proto as pb;
use tokio::sync::watch;

use crate::config::HaConfig;
use crate::host::OwnedVip;

/// Which side of the pair this director is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// No `[ha]`: the director owns its VIPs.
    Single,
    /// A service VIP is on this host: clients reach this director.
    Active,
    /// No service VIP here: the peer serves, this table is kept ready.
    Standby,
    /// `[ha] mode = "ecmp"`: one of several directors active at once behind the gateway's
    /// multipath route.
    Ecmp,
}

impl Role {
    pub fn word(self) -> &'static str {
        match self {
            Role::Single => "SINGLE",
            Role::Active => "ACTIVE",
            Role::Standby => "STANDBY",
            Role::Ecmp => "ECMP",
        }
    }

    pub fn to_proto(self) -> pb::DirectorRole {
        match self {
            Role::Single => pb::DirectorRole::Single,
            Role::Active => pb::DirectorRole::Active,
            Role::Standby => pb::DirectorRole::Standby,
            Role::Ecmp => pb::DirectorRole::Ecmp,
        }
    }

    /// The role a director starts in: in an active/standby pair standby until it has seen a
    /// VIP on its interface; the others never change.
    pub fn at_start(config: &crate::config::DirectorConfig) -> Role {
        if config.ha.is_some() {
            Role::Standby
        } else if config.ecmp {
            Role::Ecmp
        } else {
            Role::Single
        }
    }

    /// Whether clients reach this director: a single one and an ECMP one always, in a pair the
    /// active one.
    pub fn serves(self) -> bool {
        self != Role::Standby
    }
}

/// The role as the reconciler last saw it, for status and metrics.
#[derive(Debug)]
pub struct RoleCell(watch::Sender<Role>);

impl RoleCell {
    pub fn new(role: Role) -> RoleCell {
        RoleCell(watch::Sender::new(role))
    }

    pub fn get(&self) -> Role {
        *self.0.borrow()
    }

    /// Answers whether the role changed.
    pub fn set(&self, role: Role) -> bool {
        self.0.send_if_modified(|current| {
            let changed = *current != role;
            *current = role;
            changed
        })
    }

    pub fn subscribe(&self) -> watch::Receiver<Role> {
        self.0.subscribe()
    }
}

/// The role from which of the configured VIPs are on this host: active when any is. keepalived
/// moves one instance's VIPs together; `present` lists the VIPs seen here, `absent` the others
/// (both non-empty is a split the caller reports).
pub fn role_of(present: &[OwnedVip]) -> Role {
    if present.is_empty() {
        Role::Standby
    } else {
        Role::Active
    }
}

/// The sync daemons `[ha]` asks for: a master that sends this director's connections and a
/// backup that takes the peer's, on the same interface and id. Both run on both directors, so
/// whichever holds the VIP sends, and a quick failback finds its old sessions synced back
/// (keepalived's `lvs_sync_daemon` runs only the one of the current state and loses them).
pub fn wanted_daemons(ha: &HaConfig) -> [SyncDaemon; 2] {
    [SyncRole::Master, SyncRole::Backup].map(|role| SyncDaemon {
        role,
        interface: ha.sync_interface.clone(),
        sync_id: u32::from(ha.sync_id),
    })
}

/// One step towards the wanted daemons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonOp {
    /// `ipvsadm --start-daemon`: none of this role runs (never started, or stopped by hand).
    Start(SyncDaemon),
    /// A daemon of this role runs with other settings (a reload changed [ha], or someone
    /// started it by hand or from keepalived's `lvs_sync_daemon`): stopped, then started as
    /// configured. Left alone it would sync with nobody, or with another pair, and the
    /// failover would silently lose every session.
    Replace {
        running: SyncDaemon,
        wanted: SyncDaemon,
    },
}

/// Pure: what brings `running` to `wanted`; nothing when they agree. A daemon is never stopped
/// for good: a role not wanted does not exist in HA mode.
pub fn plan_daemons(wanted: &[SyncDaemon], running: &[SyncDaemon]) -> Vec<DaemonOp> {
    wanted
        .iter()
        .filter_map(|want| match running.iter().find(|d| d.role == want.role) {
            None => Some(DaemonOp::Start(want.clone())),
            Some(have) if have == want => None,
            Some(have) => Some(DaemonOp::Replace {
                running: have.clone(),
                wanted: want.clone(),
            }),
        })
        .collect()
}

/// "master sync daemon on eth0, syncid 54".
pub fn describe(daemon: &SyncDaemon) -> String {
    let role = match daemon.role {
        SyncRole::Master => "master",
        SyncRole::Backup => "backup",
    };
    format!(
        "{role} sync daemon on {}, syncid {}",
        daemon.interface, daemon.sync_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ha(interface: &str, id: u8) -> HaConfig {
        HaConfig {
            sync_interface: interface.into(),
            sync_id: id,
        }
    }

    #[test]
    fn both_daemons_start_on_a_fresh_kernel() {
        let wanted = wanted_daemons(&ha("eth0", 54));
        let ops = plan_daemons(&wanted, &[]);
        assert_eq!(
            ops,
            vec![
                DaemonOp::Start(wanted[0].clone()),
                DaemonOp::Start(wanted[1].clone())
            ]
        );
        assert_eq!(wanted[0].role, SyncRole::Master);
        assert_eq!(wanted[1].role, SyncRole::Backup);
        assert_eq!(wanted[1].sync_id, 54);
    }

    #[test]
    fn running_as_configured_plans_nothing() {
        let wanted = wanted_daemons(&ha("eth0", 54));
        assert!(plan_daemons(&wanted, &wanted).is_empty());
    }

    #[test]
    fn a_stopped_daemon_starts_again_and_the_other_is_left() {
        let wanted = wanted_daemons(&ha("eth0", 54));
        let ops = plan_daemons(&wanted, &wanted[..1]);
        assert_eq!(ops, vec![DaemonOp::Start(wanted[1].clone())]);
    }

    #[test]
    fn other_settings_are_replaced() {
        let wanted = wanted_daemons(&ha("eth0", 54));
        let other = wanted_daemons(&ha("eth1", 7));
        let ops = plan_daemons(&wanted, &[other[0].clone(), wanted[1].clone()]);
        assert_eq!(
            ops,
            vec![DaemonOp::Replace {
                running: other[0].clone(),
                wanted: wanted[0].clone()
            }]
        );
    }

    #[test]
    fn role_follows_the_vips() {
        let vip = OwnedVip {
            interface: "eth0".into(),
            vip: "10.0.0.100".parse().unwrap(),
        };
        assert_eq!(role_of(&[]), Role::Standby);
        assert_eq!(role_of(&[vip]), Role::Active);
        assert!(Role::Single.serves() && Role::Active.serves() && !Role::Standby.serves());
    }

    #[test]
    fn the_cell_says_when_the_role_changed() {
        let cell = RoleCell::new(Role::Standby);
        assert_eq!(cell.get(), Role::Standby);
        assert!(!cell.set(Role::Standby));
        assert!(cell.set(Role::Active));
        assert_eq!(cell.get(), Role::Active);
        assert_eq!(RoleCell::new(Role::Single).get(), Role::Single);
    }
}
