//! The destinations of an `mh` (Maglev hashing) service, planned so that every director with
//! the same realservers, weights and health builds the same Maglev table, and so picks the same
//! realserver for a flow: what lets a flow move between directors behind an ECMP route.
//!
//! The kernel's table is not a function of the destination set alone (`ip_vs_mh.c`):
//! - it is filled walking the destination list, whose order is the order of the adds (the
//!   newest at the head), so two directors that saw registrations in another order differ;
//! - each destination takes turns by its `last_weight`, the last weight it had that was not 0,
//!   so a realserver drained or down by an edit to weight 0 keeps its slots (its flows then find
//!   no destination without `mh-fallback`), while one added with weight 0 has none.
//!
//! So here: the destinations with weight > 0 are kept in ascending address order in the list,
//! and a destination goes to weight 0 by a delete and an add with weight 0. A delete and add
//! cuts nothing: the kernel keeps a destination its connections use in its trash and an add
//! of the same destination brings it back with them.

use std::collections::{BTreeMap, BTreeSet};

use lb_ipvs::{Destination, DestinationKey, IpvsOp, ServiceKey};

use crate::table::{DesiredService, ObservedService};

/// Schedulers whose table this module keeps canonical.
pub fn is_hashed(scheduler: &str) -> bool {
    scheduler == "mh"
}

/// Appends the operations for one mh service's destinations to `ops`, and the deletions of
/// idle leftovers to `deletions` (applied after everything else, as for other services).
pub fn plan_destinations(
    service: ServiceKey,
    want: &DesiredService,
    have: Option<&ObservedService>,
    ops: &mut Vec<IpvsOp>,
    deletions: &mut Vec<IpvsOp>,
) {
    // What each destination should be after this plan: the desired ones, and leftovers that
    // still carry connections (quiesced until idle, then deleted).
    let mut after: BTreeMap<DestinationKey, Destination> = want.destinations.clone();
    let mut readd: BTreeSet<DestinationKey> = BTreeSet::new();
    let mut edited = Vec::new();
    if let Some(have) = have {
        for (key, entry) in &have.destinations {
            let Some(dest) = want.destinations.get(key) else {
                if super::is_idle(entry) {
                    deletions.push(IpvsOp::DeleteDestination {
                        service,
                        destination: *key,
                    });
                } else {
                    let quiet = Destination {
                        weight: 0,
                        ..entry.destination.clone()
                    };
                    if entry.destination.weight != 0 {
                        readd.insert(*key);
                    }
                    after.insert(*key, quiet);
                }
                continue;
            };
            if entry.destination == *dest {
                continue;
            }
            if dest.weight == 0 && entry.destination.weight != 0 {
                // An edit to 0 would leave its slots (last_weight) behind.
                readd.insert(*key);
            } else {
                edited.push(*key);
            }
        }
    }
    let observed_order: &[DestinationKey] = have.map_or(&[], |h| &h.order);
    let is_new = |key: &DestinationKey| have.is_none_or(|h| !h.destinations.contains_key(key));

    // The list after the plan is the adds (the last one first) followed by the destinations
    // left in place, in their order. The weighted ones of those must be the tail of the
    // ascending list, in order: find the longest such tail, re-add what is before it.
    let weighted: Vec<DestinationKey> = after
        .iter()
        .filter(|(_, d)| d.weight > 0)
        .map(|(k, _)| *k)
        .collect();
    let in_place: Vec<DestinationKey> = observed_order
        .iter()
        .filter(|k| after.get(k).is_some_and(|d| d.weight > 0) && !readd.contains(k))
        .copied()
        .collect();
    let mut tail = weighted.len();
    let mut cursor = in_place.len();
    while tail > 0 {
        let key = weighted[tail - 1];
        match in_place[..cursor].iter().rposition(|k| *k == key) {
            Some(at) => {
                cursor = at;
                tail -= 1;
            }
            None => break,
        }
    }
    for key in &weighted[..tail] {
        if !is_new(key) {
            readd.insert(*key);
        }
    }

    // A destination added again gets its settings with the add.
    ops.extend(
        edited
            .iter()
            .filter(|k| !readd.contains(k))
            .map(|k| IpvsOp::EditDestination {
                service,
                destination: after[k].clone(),
            }),
    );
    for key in &readd {
        ops.push(IpvsOp::DeleteDestination {
            service,
            destination: *key,
        });
    }
    let add = |key: &DestinationKey| IpvsOp::AddDestination {
        service,
        destination: after[key].clone(),
    };
    // Weight 0 first (their place does not matter), then the weighted head of the list from
    // its largest address down, so that the smallest ends up first.
    let unweighted = after
        .iter()
        .filter(|(k, d)| d.weight == 0 && (readd.contains(k) || is_new(k)))
        .map(|(k, _)| add(k));
    ops.extend(unweighted.collect::<Vec<_>>());
    ops.extend(weighted[..tail].iter().rev().map(add));
}

#[cfg(test)]
mod tests;
