//! The director's state machine: registrations, operator overrides, and the reconcile pass that
//! brings the kernel's IPVS table to the desired state. gRPC handlers and the periodic loop call
//! into it; it is the only code that writes to the [`IpvsBackend`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;
use tracing::{info, warn};

use lb_ipvs::{IpvsBackend, IpvsError, ServiceKey};

use crate::config::{DirectorConfig, ServiceConfig};
use crate::desired::{desired, retired};
use crate::host::OwnedVip;
use crate::plan::plan;
use crate::registry::{Lease, LeaseState, RealServer, Registry, RegistryError};
use crate::state::{OwnedService, State, StateError, StateFile};
use crate::table::ObservedTable;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("unknown service {service:?}: the director has no [[service]] of that name")]
    UnknownService { service: String },
    #[error("no realserver named {0}")]
    UnknownRealServer(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("reading the IPVS table: {0}")]
    Ipvs(#[from] IpvsError),
}

/// What one reconcile pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Operations the kernel accepted.
    pub applied: usize,
    /// Operations the kernel refused (logged; the next pass tries again).
    pub failed: usize,
}

struct Inner {
    registry: Registry,
    state: State,
    /// Destinations found in the kernel are adopted once, on the first pass after start.
    adopted: bool,
}

pub struct Director<I> {
    config: Arc<DirectorConfig>,
    ipvs: I,
    state_file: StateFile,
    inner: Mutex<Inner>,
    /// One pass at a time: two concurrent passes would plan from the same observation twice.
    pass: tokio::sync::Mutex<()>,
    /// Pokes the resync loop to recompute when it must wake (a new lease may expire first).
    leases_changed: tokio::sync::Notify,
}

impl<I: IpvsBackend> Director<I> {
    /// Loads the state file (refusing a corrupt one) and prepares, touching nothing in the kernel.
    pub fn new(config: Arc<DirectorConfig>, ipvs: I) -> Result<Director<I>, ControlError> {
        let state_file = StateFile::new(&config.state_dir);
        let state = state_file.load()?;
        Ok(Director {
            inner: Mutex::new(Inner {
                registry: Registry::new(config.lease_ttl),
                state,
                adopted: false,
            }),
            config,
            ipvs,
            state_file,
            pass: tokio::sync::Mutex::new(()),
            leases_changed: tokio::sync::Notify::new(),
        })
    }

    pub fn config(&self) -> &DirectorConfig {
        &self.config
    }

    pub fn ipvs(&self) -> &I {
        &self.ipvs
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The data stays consistent across a panic (every change is a single assignment).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The VIPs the previous configuration owned (from the state file): host setup removes
    /// those the current configuration no longer uses.
    pub fn previous_vips(&self) -> Vec<OwnedVip> {
        self.lock()
            .state
            .owned
            .iter()
            .map(|o| OwnedVip {
                interface: o.interface.clone(),
                vip: o.vip,
            })
            .collect()
    }

    /// Records that this director now owns exactly the configured services (after the retired
    /// ones are gone from the kernel).
    pub fn save_owned(&self) -> Result<(), ControlError> {
        let owned = self
            .config
            .services
            .iter()
            .map(|s| OwnedService {
                name: s.name.clone(),
                protocol: s.protocol.to_string(),
                vip: s.vip,
                port: s.port,
                interface: s.interface.clone(),
            })
            .collect();
        self.update_state(|state| state.owned = owned)
    }

    fn owns(&self, key: &ServiceKey, retired: &[ServiceKey]) -> bool {
        self.config.services.iter().any(|s| s.key() == *key) || retired.contains(key)
    }

    /// Saves a changed copy of the state first and keeps it only once it is on disk, so an
    /// override the operator was told about is never lost and a failed write changes nothing.
    fn update_state(&self, change: impl FnOnce(&mut State)) -> Result<(), ControlError> {
        let mut inner = self.lock();
        let mut next = inner.state.clone();
        change(&mut next);
        if next != inner.state {
            self.state_file.save(&next)?;
            inner.state = next;
        }
        Ok(())
    }

    /// One reconcile pass: read the owned part of the kernel table, plan, apply.
    #[tracing::instrument(name = "reconcile", skip(self), fields(applied, failed))]
    pub async fn reconcile(&self) -> Result<PassReport, ControlError> {
        let _one_at_a_time = self.pass.lock().await;
        let retired = {
            let inner = self.lock();
            retired(&self.config, &inner.state)
        };
        let observed = ObservedTable::read(&self.ipvs, |k| self.owns(k, &retired)).await?;
        let wanted = {
            let mut inner = self.lock();
            let now = Instant::now();
            if !inner.adopted {
                adopt(&mut inner, &self.config.services, &observed, now);
                inner.adopted = true;
            }
            for name in inner.registry.expire(now) {
                warn!(realserver = %name, "lease expired: quiescing (weight 0) until its connections end");
            }
            forget_gone(&mut inner.registry, &self.config.services, &observed);
            desired(&self.config, &inner.registry, &inner.state, &observed)
        };
        let ops = plan(&wanted, &observed);
        let mut report = PassReport::default();
        if ops.is_empty() {
            return Ok(report);
        }
        let results = self.ipvs.apply(&ops).await?;
        for (op, result) in ops.iter().zip(results) {
            match result {
                Ok(()) => {
                    report.applied += 1;
                    info!(op = %op, "applied");
                }
                Err(error) => {
                    report.failed += 1;
                    warn!(%error, "kernel refused an operation; the next pass retries");
                }
            }
        }
        tracing::Span::current().record("applied", report.applied);
        tracing::Span::current().record("failed", report.failed);
        Ok(report)
    }

    /// The earliest moment a lease runs out (the loop wakes then to quiesce it).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.lock().registry.next_expiry()
    }

    /// Resolves when a registration may have moved the next expiry earlier.
    pub async fn leases_changed(&self) {
        self.leases_changed.notified().await
    }

    /// Registers a realserver: a pending lease and each service's VIP for its REDIRECT rule.
    pub fn register(
        &self,
        name: &str,
        address: IpAddr,
        weights: BTreeMap<String, u32>,
    ) -> Result<(Lease, Vec<&ServiceConfig>), ControlError> {
        let services = weights
            .keys()
            .map(|service| {
                self.config
                    .service(service)
                    .ok_or_else(|| ControlError::UnknownService {
                        service: service.clone(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let lease = self
            .lock()
            .registry
            .register(name, address, weights, Instant::now())?;
        self.leases_changed.notify_one();
        // Remember the name so an adopted destination is shown by name after a restart.
        self.update_state(|state| {
            state.realservers.insert(address, name.to_owned());
        })?;
        info!(realserver = %name, %address, "registered; waiting for its rule");
        Ok((lease, services))
    }

    /// The agent's REDIRECT rule is in place: the realserver joins the table now.
    pub async fn confirm(&self, lease_id: &str) -> Result<(), ControlError> {
        let name = self
            .lock()
            .registry
            .confirm(lease_id, Instant::now())?
            .name
            .clone();
        info!(realserver = %name, "rule confirmed: adding to the table");
        self.reconcile_logged().await;
        Ok(())
    }

    /// The name of the realserver holding a live lease.
    pub fn lease_holder(&self, lease_id: &str) -> Option<String> {
        self.lock()
            .registry
            .iter()
            .find(|rs| rs.lease_id.as_deref() == Some(lease_id) && rs.state.is_live())
            .map(|rs| rs.name.clone())
    }

    pub fn heartbeat(&self, lease_id: &str) -> Result<std::time::Duration, ControlError> {
        let mut inner = self.lock();
        inner.registry.heartbeat(lease_id, Instant::now())?;
        Ok(inner.registry.ttl())
    }

    pub async fn deregister(&self, lease_id: &str) -> Result<(), ControlError> {
        let name = self.lock().registry.deregister(lease_id)?.name.clone();
        info!(realserver = %name, "deregistered: quiescing until its connections end");
        self.reconcile_logged().await;
        Ok(())
    }

    /// Runs a pass for a change that was already accepted; a kernel failure is logged and left
    /// to the periodic resync, it does not undo the accepted change.
    pub async fn reconcile_logged(&self) {
        if let Err(error) = self.reconcile().await {
            warn!(%error, "reconcile failed; the periodic resync retries");
        }
    }

    /// Whether the name is a realserver this director knows (registered now or remembered).
    fn knows(&self, name: &str) -> bool {
        let inner = self.lock();
        inner.registry.named(name).next().is_some()
            || inner.state.realservers.values().any(|n| n == name)
    }

    fn known(&self, name: &str) -> Result<(), ControlError> {
        if self.knows(name) {
            Ok(())
        } else {
            Err(ControlError::UnknownRealServer(name.to_owned()))
        }
    }

    /// `lbctl drain NAME`: weight 0 on every service, persisted.
    pub async fn drain(&self, name: &str) -> Result<String, ControlError> {
        self.known(name)?;
        self.update_state(|s| {
            s.drained.insert(name.to_owned());
        })?;
        self.reconcile_logged().await;
        Ok(format!(
            "{name} drained: weight 0, established sessions continue"
        ))
    }

    /// `lbctl undrain NAME`: back to the registered (or overridden) weight.
    pub async fn undrain(&self, name: &str) -> Result<String, ControlError> {
        self.known(name)?;
        let mut was = false;
        self.update_state(|s| was = s.drained.remove(name))?;
        self.reconcile_logged().await;
        Ok(if was {
            format!("{name} undrained")
        } else {
            format!("{name} was not drained")
        })
    }

    /// `lbctl weight NAME N`: overrides the registered weight, persisted.
    pub async fn set_weight(&self, name: &str, weight: u32) -> Result<String, ControlError> {
        self.known(name)?;
        self.update_state(|s| {
            s.weights.insert(name.to_owned(), weight);
        })?;
        self.reconcile_logged().await;
        let drained = self.lock().state.drained.contains(name);
        Ok(if drained {
            format!("{name} weight set to {weight} (stays 0 while drained)")
        } else {
            format!("{name} weight set to {weight}")
        })
    }

    /// A snapshot of registrations and overrides for status output.
    pub fn snapshot(&self) -> (Vec<RealServer>, State) {
        let inner = self.lock();
        (
            inner.registry.iter().cloned().collect(),
            inner.state.clone(),
        )
    }

    /// Reads the owned services from the kernel.
    pub async fn observe(&self) -> Result<ObservedTable, ControlError> {
        Ok(ObservedTable::read(&self.ipvs, |k| self.owns(k, &[])).await?)
    }

    /// Whether `name` is known, for the drain watch.
    pub fn check_known(&self, name: &str) -> Result<(), ControlError> {
        self.known(name)
    }

    /// Addresses under which `name` is known (registered now, or remembered from before).
    pub fn addresses_of(&self, name: &str) -> Vec<IpAddr> {
        let inner = self.lock();
        let mut addrs: Vec<IpAddr> = inner.registry.named(name).map(|rs| rs.address).collect();
        addrs.extend(
            inner
                .state
                .realservers
                .iter()
                .filter(|(_, n)| *n == name)
                .map(|(a, _)| *a),
        );
        addrs.sort();
        addrs.dedup();
        addrs
    }
}

/// On the first pass after start, every destination of an owned service that no agent has
/// claimed yet is kept as it is for one lease TTL.
fn adopt(inner: &mut Inner, services: &[ServiceConfig], observed: &ObservedTable, now: Instant) {
    for service in services {
        let Some(have) = observed.services.get(&service.key()) else {
            continue;
        };
        for entry in have.destinations.values() {
            let addr = entry.destination.addr;
            if inner
                .registry
                .get(&addr)
                .is_some_and(|rs| rs.state != LeaseState::Adopted)
            {
                continue;
            }
            let name = inner
                .state
                .realservers
                .get(&addr)
                .cloned()
                .unwrap_or_else(|| addr.to_string());
            info!(realserver = %name, %addr, service = %service.name, weight = entry.destination.weight,
                "adopted from the kernel table; waiting one lease TTL for its agent");
            inner
                .registry
                .adopt(addr, name, &service.name, entry.destination.weight, now);
        }
    }
}

/// Drops expired or deregistered realservers that have left every owned service in the kernel.
fn forget_gone(registry: &mut Registry, services: &[ServiceConfig], observed: &ObservedTable) {
    let gone: Vec<IpAddr> = registry
        .iter()
        .filter(|rs| !rs.state.is_live())
        .filter(|rs| {
            !services.iter().any(|s| {
                observed
                    .destination(&s.key(), &s.destination(rs.address, 0).key())
                    .is_some()
            })
        })
        .map(|rs| rs.address)
        .collect();
    for addr in gone {
        registry.forget(&addr);
    }
}
