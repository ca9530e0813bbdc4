//! The desired table: configured services + live registrations + the operator's overrides,
//! and the services being retired.

use lb_ipvs::Destination;

use crate::config::{DirectorConfig, ServiceConfig};
use crate::health::{HealthMap, TargetKey};
use crate::reconciler::retire_due;
use crate::registry::{LeaseState, RealServer, Registry};
use crate::state::State;
use crate::table::{DesiredService, DesiredTable, ObservedTable};

/// Builds the table the kernel should hold. `observed` is consulted only to leave a pending
/// realserver's existing destination exactly as it is: a re-registering agent neither gains
/// traffic before it confirms its rule nor loses the sessions it already has. A destination
/// that is down (the director's probe or its agent's self-check) gets weight 0, like
/// keepalived's `inhibit_on_failure`: its open sessions go on, it gets no new ones.
pub fn desired(
    config: &DirectorConfig,
    registry: &Registry,
    state: &State,
    observed: &ObservedTable,
    now: u64,
    health: &HealthMap,
) -> DesiredTable {
    let mut table = DesiredTable {
        timeouts: config.timeouts,
        ..DesiredTable::default()
    };
    for service in &config.services {
        let key = service.key();
        let mut destinations = std::collections::BTreeMap::new();
        for rs in registry.iter() {
            let Some(&registered) = rs.weights.get(&service.name) else {
                continue;
            };
            let weight = if is_healthy(health, service, rs) {
                state.effective_weight(&rs.name, registered)
            } else {
                0
            };
            let dest = service.destination(rs.address, weight);
            match rs.state {
                LeaseState::Alive | LeaseState::Adopted => {
                    destinations.insert(dest.key(), dest);
                }
                LeaseState::Pending => {
                    if let Some(existing) = observed.destination(&key, &dest.key()) {
                        destinations.insert(dest.key(), existing.destination.clone());
                    }
                }
                // Left out: plan() quiesces them and deletes them once idle.
                LeaseState::Expired | LeaseState::Deregistered => {}
            }
        }
        for rs in &service.realservers {
            let weight = if is_up(
                health,
                service,
                rs.address,
                service.check.probe_port(rs.port),
            ) {
                state.effective_weight(&rs.name, rs.weight)
            } else {
                0
            };
            let dest = service.static_destination(rs, weight);
            destinations.insert(dest.key(), dest);
        }
        table.services.insert(
            key,
            DesiredService {
                service: service.ipvs_service(),
                destinations,
            },
        );
    }
    retire(&mut table, config, state, observed, now);
    table
}

/// Up unless the director's probe or the agent's own check says down (no verdict is up).
pub fn is_healthy(health: &HealthMap, service: &ServiceConfig, rs: &RealServer) -> bool {
    is_up(
        health,
        service,
        rs.address,
        service.check.probe_port(service.port()),
    ) && rs.agent_health.get(&service.name).is_none_or(|v| v.up)
}

/// Whether the director's probe of `addr:port` in `service` has not said down.
fn is_up(health: &HealthMap, service: &ServiceConfig, addr: std::net::IpAddr, port: u16) -> bool {
    if health.is_empty() {
        // No verdict at all (nothing probed yet, or nothing to probe): no key to make.
        return true;
    }
    let key = TargetKey {
        service: service.name.clone(),
        addr: std::net::SocketAddr::new(addr, port),
    };
    health.get(&key).is_none_or(|h| h.up)
}

/// A retiring service keeps its entry with every destination at weight 0 (open sessions go on,
/// no new ones) until it is idle or its `retire_timeout` is up; then it is deleted.
fn retire(
    table: &mut DesiredTable,
    config: &DirectorConfig,
    state: &State,
    observed: &ObservedTable,
    now: u64,
) {
    for retiring in &state.retiring {
        let Some(key) = retiring.service.key() else {
            continue;
        };
        let Some(have) = observed.services.get(&key) else {
            continue;
        };
        if table.services.contains_key(&key) {
            continue;
        }
        let idle = have
            .destinations
            .values()
            .all(|d| d.active_conns == 0 && d.inactive_conns == 0);
        if retire_due(retiring, idle, config.retire_timeout, now) {
            table.retired.push(key);
            continue;
        }
        let destinations = have
            .destinations
            .iter()
            .map(|(k, entry)| {
                let quiesced = Destination {
                    weight: 0,
                    ..entry.destination.clone()
                };
                (*k, quiesced)
            })
            .collect();
        table.services.insert(
            key,
            DesiredService {
                service: have.service.clone(),
                destinations,
            },
        );
    }
}
