//! The reconciler's HA steps (`[ha]`): the sync daemons brought to the config like the table,
//! and the role read from the service VIPs keepalived puts on this host. Neither adds or
//! removes a VIP.

use std::collections::BTreeSet;

use tracing::{error, info, warn};

use lb_ipvs::IpvsBackend;

use super::Reconciler;
use crate::config::{DirectorConfig, HaConfig};
use crate::director::Director;
use crate::ha::{describe, plan_daemons, role_of, wanted_daemons, DaemonOp};
use crate::host::{AddressBackend, AddressError, OwnedVip};

/// What the HA steps logged last, so a problem that lasts is one line, not one per pass.
#[derive(Debug, Default)]
pub(super) struct HaProblems {
    daemons: Option<String>,
    role: Option<String>,
    split: Option<BTreeSet<OwnedVip>>,
}

impl<I: IpvsBackend, A: AddressBackend> Reconciler<I, A> {
    /// Starts what does not run, replaces what runs with other settings; never stops a daemon
    /// for good and never flushes anything. A failure is logged once and retried next pass.
    pub(super) async fn sync_daemons(&mut self, ha: &HaConfig) {
        let wanted = wanted_daemons(ha);
        let running = match self.ipvs.daemons().await {
            Ok(running) => running,
            Err(error) => {
                self.daemon_problem(format!("cannot list the sync daemons: {error}"));
                return;
            }
        };
        let mut failed = None;
        for op in plan_daemons(&wanted, &running) {
            let result = match &op {
                DaemonOp::Start(daemon) => {
                    let started = self.ipvs.start_daemon(daemon).await;
                    if started.is_ok() {
                        info!(daemon = %describe(daemon), "started the connection sync daemon");
                    }
                    started
                }
                DaemonOp::Replace { running, wanted } => {
                    warn!(running = %describe(running), wanted = %describe(wanted),
                        "a sync daemon runs with other settings than [ha]: replacing it (left alone, the failover would lose the sessions)");
                    match self.ipvs.stop_daemon(running.role).await {
                        Ok(()) => self.ipvs.start_daemon(wanted).await,
                        Err(error) => Err(error),
                    }
                }
            };
            if let Err(error) = result {
                failed = Some(format!("{op:?}: {error}"));
            }
        }
        match failed {
            Some(text) => self.daemon_problem(text),
            None => {
                if let Some(problem) = self.ha_problems.daemons.take() {
                    info!(previous = %problem, "connection sync daemons run as configured again");
                }
            }
        }
    }

    fn daemon_problem(&mut self, text: String) {
        if self.ha_problems.daemons.as_deref() != Some(&text) {
            error!(error = %text, "connection sync daemons not as [ha] says; retrying at every pass");
            self.ha_problems.daemons = Some(text);
        }
    }

    /// Reads which service VIPs are on this host and publishes the role; logs each change.
    /// A VIP whose interface is missing counts as absent; a read that fails keeps the role.
    pub(super) async fn check_role(&mut self, director: &Director, config: &DirectorConfig) {
        if config.ha.is_none() {
            return;
        }
        let vips = crate::host::owned_vips(&config.service_vips());
        let mut present = Vec::new();
        for vip in &vips {
            match self.host.addresses().has_vip(&vip.interface, vip.vip).await {
                Ok(true) => present.push(vip.clone()),
                Ok(false) | Err(AddressError::NoSuchInterface { .. }) => {}
                Err(error) => {
                    let text = error.to_string();
                    if self.ha_problems.role.as_deref() != Some(&text) {
                        warn!(%error, "cannot read the addresses; the role stays as it was");
                        self.ha_problems.role = Some(text);
                    }
                    return;
                }
            }
        }
        self.ha_problems.role = None;
        let split: BTreeSet<OwnedVip> = if present.is_empty() || present.len() == vips.len() {
            BTreeSet::new()
        } else {
            present.iter().cloned().collect()
        };
        if !split.is_empty() && self.ha_problems.split.as_ref() != Some(&split) {
            let here: Vec<String> = present.iter().map(ToString::to_string).collect();
            warn!(here = %here.join(", "), "only some service VIPs are on this host: put every service VIP in one keepalived vrrp_instance so they move together");
        }
        self.ha_problems.split = Some(split);
        let role = role_of(&present);
        if director.role().set(role) {
            director.metrics().role(role);
            match present.first() {
                Some(vip) => info!(role = role.word(), %vip, "role: ACTIVE, keepalived put the VIP on this host"),
                None => info!(role = role.word(), "role: STANDBY, no service VIP on this host (the peer serves); the table is kept ready"),
            }
        }
    }
}
