//! What the reconciler tells the health monitor (every destination of a checked service) and
//! what it says when a whole service is down.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use lb_shared::notify;
use lb_shared::probe::CheckKind;
use tracing::{error, info};

use crate::config::DirectorConfig;
use crate::health::{HealthMap, Target, TargetKey, Targets};
use crate::registry::Registry;
use crate::state::State;
use crate::table::DesiredTable;
use crate::view::realserver_names;

/// One target per destination of every configured service whose check probes something.
pub fn targets(
    config: &DirectorConfig,
    wanted: &DesiredTable,
    leases: &Registry,
    state: &State,
) -> Targets {
    let mut targets = Targets::new();
    if config
        .services
        .iter()
        .all(|s| s.check.kind == CheckKind::None)
    {
        return targets;
    }
    let names = realserver_names(config, leases.iter(), state);
    for service in &config.services {
        if service.check.kind == CheckKind::None {
            continue;
        }
        let Some(want) = wanted.services.get(&service.key()) else {
            continue;
        };
        for dest in want.destinations.values() {
            let name = names
                .get(&dest.addr)
                .map_or_else(|| dest.addr.to_string(), |n| (*n).to_owned());
            targets.insert(
                TargetKey {
                    service: service.name.clone(),
                    addr: SocketAddr::new(dest.addr, service.check.probe_port(dest.port)),
                },
                Target {
                    realserver_name: name,
                    check: service.check.clone(),
                },
            );
        }
    }
    targets
}

/// When every destination of a service is down the table follows the rule (all weight 0) and
/// the service takes no new sessions: said loudly, once, in the log and in systemd's status.
pub fn say_when_all_down(
    all_down: &mut BTreeSet<String>,
    config: &DirectorConfig,
    wanted: &DesiredTable,
    health: &HealthMap,
    leases: &Registry,
) {
    for service in &config.services {
        let down = wanted.services.get(&service.key()).is_some_and(|want| {
            !want.destinations.is_empty()
                && want.destinations.values().all(|d| {
                    let key = TargetKey {
                        service: service.name.clone(),
                        addr: SocketAddr::new(d.addr, service.check.probe_port(d.port)),
                    };
                    let probe_down = health.get(&key).is_some_and(|h| !h.up);
                    let agent_down = leases.get(&d.addr).is_some_and(|rs| {
                        rs.agent_health.get(&service.name).is_some_and(|v| !v.up)
                    });
                    probe_down || agent_down
                })
        });
        if down && all_down.insert(service.name.clone()) {
            error!(service = %service.name, "every realserver of {} is down: it takes no new sessions", service.name);
            notify::status(&format!(
                "degraded: every realserver of {} is down",
                service.name
            ));
        } else if !down && all_down.remove(&service.name) {
            info!(service = %service.name, "{} has a realserver up again", service.name);
            notify::status(&format!(
                "serving; {} has a realserver up again",
                service.name
            ));
        }
    }
}
