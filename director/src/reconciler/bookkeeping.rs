//! The reconciler's bookkeeping around a pass: which services this director owns and which it
//! is retiring, destinations adopted from the kernel at start, realservers that are gone, and
//! what the host should hold. Pure functions of their arguments, so each is tested alone.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::info;

use lb_shared::domain::Forward;

use crate::config::{DirectorConfig, ServiceConfig};
use crate::host::ServiceVip;
use crate::registry::{LeaseState, Registry};
use crate::state::{OwnedService, RetiringService, State};
use crate::table::ObservedTable;

/// Seconds since the Unix epoch: retirement deadlines must hold across restarts.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn owned_service(s: &ServiceConfig) -> OwnedService {
    OwnedService {
        name: s.name.clone(),
        protocol: s.protocol.to_string(),
        vip: s.vip,
        port: s.port,
        interface: s.interface.clone(),
    }
}

/// Services the state says this director owned and the configuration no longer has begin to
/// retire (a reload or a restart removed them, or moved their VIP, port or protocol); a
/// retiring service configured again is simply owned again. Idempotent.
pub fn track_retiring(state: &mut State, config: &DirectorConfig, now: u64) {
    let configured: BTreeSet<_> = config.services.iter().map(|s| s.key()).collect();
    for owned in &state.owned {
        let Some(key) = owned.key() else { continue };
        if configured.contains(&key) || state.retiring.iter().any(|r| r.service.key() == Some(key))
        {
            continue;
        }
        info!(service = %owned.name, %key, retire_timeout = ?config.retire_timeout,
            "service left the configuration: retiring (weight 0 until its connections end)");
        state.retiring.insert(RetiringService {
            service: owned.clone(),
            since: now,
        });
    }
    state
        .retiring
        .retain(|r| r.service.key().is_some_and(|k| !configured.contains(&k)));
    state.owned = config.services.iter().map(owned_service).collect();
}

/// Whether a retiring service may go now: no connections left, or its time is up.
pub fn retire_due(retiring: &RetiringService, idle: bool, timeout: Duration, now: u64) -> bool {
    idle || now >= retiring.since.saturating_add(timeout.as_secs())
}

/// When the first retiring service runs out of time, so the reconciler wakes for it.
pub fn next_retire_deadline(state: &State, config: &DirectorConfig) -> Option<Instant> {
    let first = state.retiring.iter().map(|r| r.since).min()?;
    let deadline = first.saturating_add(config.retire_timeout.as_secs());
    let left = deadline.saturating_sub(unix_now());
    // A second late at most: deadlines are kept in whole seconds.
    Some(Instant::now() + Duration::from_secs(left) + Duration::from_millis(100))
}

/// What the host should hold: each configured service's VIP, and the VIPs of services still
/// retiring (their sessions go on through them). A retiring service's forward method is not
/// remembered; its VIP is what matters, so it counts as direct routing for the sysctls.
pub fn host_services(config: &DirectorConfig, state: &State) -> Vec<ServiceVip> {
    let mut services = config.service_vips();
    services.extend(state.retiring.iter().map(|r| ServiceVip {
        interface: r.service.interface.clone(),
        vip: r.service.vip,
        forward: Forward::Dr,
    }));
    services
}

/// On the first pass after start, every destination of a configured service that no agent has
/// claimed yet is kept as it is until `until`: its agent gets the time to come back (its
/// retries back off to 10 s while the director was away) before anything changes.
pub fn adopt(
    registry: &mut Registry,
    state: &State,
    services: &[ServiceConfig],
    observed: &ObservedTable,
    until: Instant,
) {
    for service in services {
        let Some(have) = observed.services.get(&service.key()) else {
            continue;
        };
        for entry in have.destinations.values() {
            let addr = entry.destination.addr;
            if registry
                .get(&addr)
                .is_some_and(|rs| rs.state != LeaseState::Adopted)
            {
                continue;
            }
            let name = state
                .realservers
                .get(&addr)
                .cloned()
                .unwrap_or_else(|| addr.to_string());
            info!(realserver = %name, %addr, service = %service.name, weight = entry.destination.weight,
                "adopted from the kernel table; kept as it is while its agent comes back");
            registry.adopt(addr, name, &service.name, entry.destination.weight, until);
        }
    }
}

/// Drops expired or deregistered realservers that have left every configured service.
pub fn forget_gone(registry: &mut Registry, services: &[ServiceConfig], observed: &ObservedTable) {
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
