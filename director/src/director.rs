//! The director's shared state and the request side of it: what gRPC handlers may read and
//! change (the configuration in force, leases, the operator's overrides), and how they ask the
//! reconciler for a pass that includes their change. Nothing here writes to the kernel: the
//! [`crate::reconciler`] task is the only writer of the IPVS table and the VIPs.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::time::Instant;
use tracing::{info, warn};

use crate::access::Access;
use crate::config::{DirectorConfig, ServiceConfig};
use crate::ha::RoleCell;
use crate::metrics::DirectorMetrics;
use crate::peers::PeerBoard;
use crate::reconciler::{PassError, PassOutcome, Passes, Snapshot};
use crate::registry::{AgentVerdict, Lease, RealServer, RefusedAgent, Registry, RegistryError};
use crate::state::{AdminChange, AdminRecord, State, StateError, StateFile, StateStore};

#[derive(Debug, thiserror::Error)]
pub enum DirectorError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("unknown service {service:?}: the director has no [[service]] of that name")]
    UnknownService { service: String },
    #[error("no realserver named {0}")]
    UnknownRealServer(String),
    /// An agent names a host the config already lists under `[[service.realserver]]`.
    #[error("{address} is configured as realserver {name:?} of service {service:?} ([[service.realserver]]): an agent cannot register it; remove it from the director's config to let its agent manage it")]
    ConfiguredStatically {
        address: IpAddr,
        name: String,
        service: String,
    },
    #[error("{0}; nothing was changed")]
    State(#[from] StateError),
    /// IPVS direct routing forwards IPv4 to IPv4 and IPv6 to IPv6.
    #[error("service {service:?} is {service_family} and {address} is not: an agent registers one address, so run one agent per address family (its own name and config, address = the realserver's {service_family} address)")]
    WrongFamily {
        service: String,
        service_family: &'static str,
        address: IpAddr,
    },
}

pub struct Director {
    config: RwLock<Arc<DirectorConfig>>,
    access: RwLock<Arc<Access>>,
    leases: Mutex<Registry>,
    store: StateStore,
    passes: Passes,
    /// Events counted for the metrics (the table's metrics come from the snapshot).
    metrics: DirectorMetrics,
    /// In HA mode, the side of the pair the reconciler last saw this director on.
    role: RoleCell,
    /// How the peer directors answered lately.
    peer_board: PeerBoard,
}

/// What a lease holder, a status call or the reconciler sees of the leases at one moment.
#[derive(Debug, Clone, Default)]
pub struct LeaseView {
    pub realservers: Vec<RealServer>,
    pub refused: Vec<RefusedAgent>,
}

impl Director {
    /// Loads the state file (refusing a corrupt one), touching nothing in the kernel.
    pub fn new(config: Arc<DirectorConfig>) -> Result<Director, DirectorError> {
        let store = StateStore::load(StateFile::new(&config.state_dir))?;
        let role = RoleCell::new(crate::ha::Role::at_start(&config));
        let metrics = DirectorMetrics::default();
        metrics.role(role.get());
        Ok(Director {
            access: RwLock::new(Arc::new(Access::of(&config))),
            leases: Mutex::new(Registry::new(config.lease_ttl)),
            role,
            config: RwLock::new(config),
            store,
            passes: Passes::new(),
            metrics,
            peer_board: PeerBoard::default(),
        })
    }

    /// The configuration in force (a reload replaces it between passes).
    pub fn config(&self) -> Arc<DirectorConfig> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn access(&self) -> Arc<Access> {
        self.access
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts a validated configuration in force: the next pass brings the kernel to it.
    pub fn replace_config(&self, config: Arc<DirectorConfig>) {
        self.leases().set_ttl(config.lease_ttl);
        *self.access.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Access::of(&config));
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    pub(crate) fn leases(&self) -> MutexGuard<'_, Registry> {
        // Every change is a single assignment: the data stays consistent across a panic.
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn store(&self) -> &StateStore {
        &self.store
    }

    pub fn metrics(&self) -> &DirectorMetrics {
        &self.metrics
    }

    /// SINGLE without `[ha]`; ACTIVE or STANDBY as the service VIPs say.
    pub fn role(&self) -> &RoleCell {
        &self.role
    }

    pub fn peer_board(&self) -> &PeerBoard {
        &self.peer_board
    }

    pub(crate) fn passes(&self) -> &Passes {
        &self.passes
    }

    /// The kernel table as the last pass left it, for status, drain watches and metrics.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.passes.latest().snapshot
    }

    pub fn state(&self) -> State {
        self.store.state()
    }

    pub fn lease_view(&self) -> LeaseView {
        let leases = self.leases();
        LeaseView {
            realservers: leases.iter().cloned().collect(),
            refused: leases.refused_agents().cloned().collect(),
        }
    }

    /// Asks for a pass that includes every change made so far and waits for its outcome. Safe
    /// to drop: the pass runs in the reconciler task whether anyone still waits or not.
    pub async fn pass(&self) -> PassOutcome {
        self.passes.request().await
    }

    /// Registers a realserver: a pending lease and each service's VIP for its REDIRECT rule.
    /// Never touches the disk: a full `state_dir` must not stop a realserver from joining.
    pub fn register(
        &self,
        name: &str,
        address: IpAddr,
        weights: BTreeMap<String, u32>,
    ) -> Result<(Lease, Vec<ServiceConfig>), DirectorError> {
        let config = self.config();
        let configured = config
            .static_at(address)
            .or_else(|| config.static_realservers().find(|(_, rs)| rs.name == name));
        if let Some((service, rs)) = configured {
            return Err(DirectorError::ConfiguredStatically {
                address: rs.address,
                name: rs.name.clone(),
                service: service.name.clone(),
            });
        }
        let services = weights
            .keys()
            .map(|service| {
                config
                    .service(service)
                    .cloned()
                    .ok_or_else(|| DirectorError::UnknownService {
                        service: service.clone(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(service) = services.iter().find(|s| s.is_ipv6() != address.is_ipv6()) {
            return Err(DirectorError::WrongFamily {
                service: service.name.clone(),
                service_family: if service.is_ipv6() { "IPv6" } else { "IPv4" },
                address,
            });
        }
        let lease = self
            .leases()
            .register(name, address, weights, Instant::now())?;
        // Remembered so an adopted destination is shown by name after a restart; written to
        // disk by the reconciler.
        self.store.note(|state| {
            state.realservers.insert(address, name.to_owned());
        });
        self.passes.wake();
        info!(realserver = %name, %address, "registered; waiting for its rule");
        Ok((lease, services))
    }

    /// The agent's REDIRECT rule is in place: the realserver joins the table with this pass.
    pub async fn confirm(&self, lease_id: &str) -> Result<PassOutcome, DirectorError> {
        let name = self
            .leases()
            .confirm(lease_id, Instant::now())?
            .name
            .clone();
        info!(realserver = %name, "rule confirmed: adding to the table");
        Ok(self.pass().await)
    }

    /// The name of the realserver holding a live lease.
    pub fn lease_holder(&self, lease_id: &str) -> Option<String> {
        self.leases()
            .iter()
            .find(|rs| rs.lease_id.as_deref() == Some(lease_id) && rs.state.is_live())
            .map(|rs| rs.name.clone())
    }

    /// Renews a lease and records the agent's self-check verdicts; a verdict that changed
    /// wakes the reconciler (a dead sshd goes to weight 0 at the next pass).
    pub fn heartbeat(
        &self,
        lease_id: &str,
        verdicts: BTreeMap<String, AgentVerdict>,
    ) -> Result<std::time::Duration, DirectorError> {
        let mut leases = self.leases();
        leases.heartbeat(lease_id, Instant::now())?;
        let changed = leases.report_health(lease_id, verdicts)?;
        let ttl = leases.ttl();
        let name = leases
            .iter()
            .find(|rs| rs.lease_id.as_deref() == Some(lease_id))
            .map(|rs| rs.name.clone())
            .unwrap_or_default();
        drop(leases);
        for (service, verdict) in &changed {
            self.metrics.health_transition(verdict.up, "agent");
            if verdict.up {
                info!(realserver = %name, %service, "{name} up: its agent's self-check passes again");
            } else {
                warn!(realserver = %name, %service, "{name} down: its agent reports {}", verdict.reason);
            }
        }
        if !changed.is_empty() {
            self.passes.wake();
        }
        Ok(ttl)
    }

    pub async fn deregister(&self, lease_id: &str) -> Result<PassOutcome, DirectorError> {
        let name = self.leases().deregister(lease_id)?.name.clone();
        info!(realserver = %name, "deregistered: quiescing until its connections end");
        Ok(self.pass().await)
    }

    /// Whether `name` is a realserver this director knows (registered now or remembered).
    pub fn known(&self, name: &str) -> Result<(), DirectorError> {
        let registered = self.leases().named(name).next().is_some();
        if registered
            || self.config().is_static(name)
            || self
                .store
                .read(|s| s.realservers.values().any(|n| n == name))
        {
            Ok(())
        } else {
            Err(DirectorError::UnknownRealServer(name.to_owned()))
        }
    }

    /// An operator's write through this director: stamped with a revision, on disk before it
    /// counts, then a pass. Returns the realserver's record for the peers.
    async fn admin_write(
        &self,
        name: &str,
        change: AdminChange,
    ) -> Result<(AdminRecord, PassOutcome), DirectorError> {
        self.known(name)?;
        let writer = self.config().name.clone();
        let record = self.store.admin_write(name, &writer, change).await?;
        Ok((record, self.pass().await))
    }

    /// `lbctl drain NAME`: weight 0 on every service, on disk before it counts.
    pub async fn drain(&self, name: &str) -> Result<(String, AdminRecord), DirectorError> {
        let (record, outcome) = self.admin_write(name, AdminChange::Drain(true)).await?;
        let message = with_kernel_note(
            format!("{name} drained: weight 0, established sessions continue"),
            &outcome,
        );
        Ok((message, record))
    }

    /// `lbctl undrain NAME`: back to the registered (or overridden) weight. Recorded even when
    /// it was not drained here, so it wins over an older drain held by a peer.
    pub async fn undrain(&self, name: &str) -> Result<(String, AdminRecord), DirectorError> {
        let was = self.store.read(|s| s.drained.contains(name));
        let (record, outcome) = self.admin_write(name, AdminChange::Drain(false)).await?;
        let message = if was {
            format!("{name} undrained")
        } else {
            format!("{name} was not drained")
        };
        Ok((with_kernel_note(message, &outcome), record))
    }

    /// `lbctl weight NAME N`: overrides the registered weight, on disk before it counts.
    pub async fn set_weight(
        &self,
        name: &str,
        weight: u32,
    ) -> Result<(String, AdminRecord), DirectorError> {
        let (record, outcome) = self.admin_write(name, AdminChange::Weight(weight)).await?;
        let message = if self.store.read(|s| s.drained.contains(name)) {
            format!("{name} weight set to {weight} (stays 0 while drained)")
        } else {
            format!("{name} weight set to {weight}")
        };
        Ok((with_kernel_note(message, &outcome), record))
    }

    /// Records from a peer director: each field newer than ours is taken, on disk before it
    /// counts, and the reconciler brings the kernel to it. Returns the realservers that
    /// changed. New names beyond [`crate::peers::MAX_RECORDS`] are left out, logged.
    pub async fn merge_admin(&self, records: &[AdminRecord]) -> Result<Vec<String>, DirectorError> {
        let held = self.store.read(|s| s.admin_records().len());
        let mut room = crate::peers::MAX_RECORDS.saturating_sub(held);
        let mut kept = Vec::with_capacity(records.len());
        for record in records {
            let known = self
                .store
                .read(|s| s.admin_record(&record.realserver).is_some());
            if known {
                kept.push(record.clone());
            } else if room > 0 {
                room -= 1;
                kept.push(record.clone());
            } else {
                warn!(realserver = %record.realserver, "a peer's admin record for {} left out: this director already keeps {} realservers' admin state", record.realserver, crate::peers::MAX_RECORDS);
            }
        }
        let changed = self.store.merge(&kept).await?;
        if !changed.is_empty() {
            for name in &changed {
                let now = self
                    .store
                    .read(|s| (s.drained.contains(name), s.weights.get(name).copied()));
                info!(realserver = %name, drained = now.0, weight_override = ?now.1, "admin state of {name} taken from a peer director");
            }
            self.passes.wake();
        }
        Ok(changed)
    }

    /// Addresses under which `name` is known (registered now, or remembered from before).
    pub fn addresses_of(&self, name: &str) -> Vec<IpAddr> {
        let mut addrs: Vec<IpAddr> = self.leases().named(name).map(|rs| rs.address).collect();
        addrs.extend(
            self.config()
                .static_realservers()
                .filter(|(_, rs)| rs.name == name)
                .map(|(_, rs)| rs.address),
        );
        self.store.read(|s| {
            addrs.extend(
                s.realservers
                    .iter()
                    .filter(|(_, n)| *n == name)
                    .map(|(a, _)| *a),
            )
        });
        addrs.sort();
        addrs.dedup();
        addrs
    }
}

/// An accepted change whose pass failed still holds (it is on disk and the reconciler retries);
/// the operator is told the kernel has not caught up yet.
fn with_kernel_note(message: String, outcome: &PassOutcome) -> String {
    match &outcome.result {
        Ok(report) if report.failed == 0 => message,
        Ok(report) => format!(
            "{message} ({} kernel operation(s) refused; the director retries at every resync)",
            report.failed
        ),
        Err(PassError::Stopped) => {
            format!("{message} (the director is stopping; it applies at the next start)")
        }
        Err(error) => format!(
            "{message} (the kernel table is not updated yet: {error}; the director retries)"
        ),
    }
}
