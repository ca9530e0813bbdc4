//! The desired table: configured services + live registrations + the operator's overrides.

use lb_ipvs::ServiceKey;

use crate::config::DirectorConfig;
use crate::registry::{LeaseState, Registry};
use crate::state::State;
use crate::table::{DesiredService, DesiredTable, ObservedTable};

/// Builds the table the kernel should hold. `observed` is consulted only to leave a pending
/// realserver's existing destination exactly as it is: a re-registering agent neither gains
/// traffic before it confirms its rule nor loses the sessions it already has.
pub fn desired(
    config: &DirectorConfig,
    registry: &Registry,
    state: &State,
    observed: &ObservedTable,
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
            let dest =
                service.destination(rs.address, state.effective_weight(&rs.name, registered));
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
        table.services.insert(
            key,
            DesiredService {
                service: service.ipvs_service(),
                destinations,
            },
        );
    }
    table.retired = retired(config, state);
    table
}

/// Services the state file says this director owned that the configuration no longer has.
pub fn retired(config: &DirectorConfig, state: &State) -> Vec<ServiceKey> {
    state
        .owned
        .iter()
        .filter_map(|owned| {
            let key = ServiceKey::Addr {
                protocol: owned.protocol()?,
                addr: owned.vip,
                port: owned.port,
            };
            (!config.services.iter().any(|s| s.key() == key)).then_some(key)
        })
        .collect()
}
