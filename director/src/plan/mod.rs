//! `plan(desired, observed)`: the operations that turn the observed table into the desired one.
//!
//! Pure, so every case is a table test. The order is the order of application: timeouts, then
//! services, then destinations, then deletions. A destination that should go is first quiesced
//! (weight 0) and deleted only once it has neither active nor inactive connections: the director
//! never cuts an established session on its own. An unchanged table plans nothing. The
//! destinations of an mh service are planned by [`hashed`], which keeps their kernel order
//! canonical.

use lb_ipvs::{Destination, DestinationEntry, IpvsOp, Service, Timeouts};

use crate::table::{DesiredTable, ObservedTable};

mod hashed;

pub fn plan(desired: &DesiredTable, observed: &ObservedTable) -> Vec<IpvsOp> {
    let mut ops = Vec::new();
    if let Some(timeouts) = timeouts_to_set(&desired.timeouts, &observed.timeouts) {
        ops.push(IpvsOp::SetTimeouts(timeouts));
    }
    for (key, want) in &desired.services {
        match observed.services.get(key) {
            None => ops.push(IpvsOp::AddService(want.service.clone())),
            Some(have) if !same_service(&want.service, &have.service) => {
                ops.push(IpvsOp::EditService(want.service.clone()))
            }
            Some(_) => {}
        }
    }
    let mut deletions = Vec::new();
    for (key, want) in &desired.services {
        if hashed::is_hashed(&want.service.scheduler) {
            let have = observed.services.get(key);
            hashed::plan_destinations(*key, want, have, &mut ops, &mut deletions);
            continue;
        }
        let have = observed.services.get(key).map(|s| &s.destinations);
        for (dkey, dest) in &want.destinations {
            match have.and_then(|h| h.get(dkey)) {
                None => ops.push(IpvsOp::AddDestination {
                    service: *key,
                    destination: dest.clone(),
                }),
                Some(entry) if entry.destination != *dest => ops.push(IpvsOp::EditDestination {
                    service: *key,
                    destination: dest.clone(),
                }),
                Some(_) => {}
            }
        }
        for (dkey, entry) in have.into_iter().flatten() {
            if want.destinations.contains_key(dkey) {
                continue;
            }
            if is_idle(entry) {
                deletions.push(IpvsOp::DeleteDestination {
                    service: *key,
                    destination: *dkey,
                });
            } else if entry.destination.weight != 0 {
                ops.push(IpvsOp::EditDestination {
                    service: *key,
                    destination: Destination {
                        weight: 0,
                        ..entry.destination.clone()
                    },
                });
            }
        }
    }
    ops.extend(deletions);
    for key in &desired.retired {
        if observed.services.contains_key(key) && !desired.services.contains_key(key) {
            ops.push(IpvsOp::DeleteService(*key));
        }
    }
    ops
}

fn is_idle(entry: &DestinationEntry) -> bool {
    entry.active_conns == 0 && entry.inactive_conns == 0
}

fn same_service(want: &Service, have: &Service) -> bool {
    want.scheduler == have.scheduler
        && want.flags == have.flags
        && want.timeout == have.timeout
        && want.netmask == have.netmask
}

/// The timeouts to set, with 0 for each value that already matches or is not configured.
fn timeouts_to_set(want: &Timeouts, have: &Timeouts) -> Option<Timeouts> {
    let field = |w: u32, h: u32| if w != 0 && w != h { w } else { 0 };
    let set = Timeouts {
        tcp: field(want.tcp, have.tcp),
        tcp_fin: field(want.tcp_fin, have.tcp_fin),
        udp: field(want.udp, have.udp),
    };
    (set != Timeouts::default()).then_some(set)
}

#[cfg(test)]
mod tests;
