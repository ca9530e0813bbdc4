use std::collections::BTreeMap;
use std::net::IpAddr;

use lb_ipvs::{Destination, DestinationEntry, ForwardMethod, IpvsOp, Service, ServiceKey, Stats};
use lb_shared::domain::Protocol;

use crate::plan::plan;
use crate::table::{DesiredService, DesiredTable, ObservedService, ObservedTable};

fn vip() -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: "10.0.0.100".parse().unwrap(),
        port: 22,
    }
}

fn dest(last: u8, weight: u32) -> Destination {
    Destination::new(
        format!("10.0.0.{last}").parse::<IpAddr>().unwrap(),
        22,
        ForwardMethod::Route,
        weight,
    )
}

fn desired(dests: &[Destination]) -> DesiredTable {
    DesiredTable {
        services: BTreeMap::from([(
            vip(),
            DesiredService {
                service: Service::new(vip(), "mh"),
                destinations: dests.iter().map(|d| (d.key(), d.clone())).collect(),
            },
        )]),
        ..DesiredTable::default()
    }
}

/// A kernel list as a dump gives it (head first), with `active` connections on each.
fn listed(dests: &[(Destination, u32)]) -> ObservedTable {
    let entries = dests
        .iter()
        .map(|(d, active)| DestinationEntry {
            destination: d.clone(),
            active_conns: *active,
            inactive_conns: 0,
            persistent_conns: 0,
            stats: Stats::default(),
        })
        .collect();
    let mut table = ObservedTable::default();
    table.services.insert(
        vip(),
        ObservedService::listed(Service::new(vip(), "mh"), Stats::default(), entries),
    );
    table
}

/// Plans, applies the plan as the kernel would, and returns the ops and the list after.
fn converge(want: &DesiredTable, mut have: ObservedTable) -> (Vec<IpvsOp>, ObservedTable) {
    let ops = plan(want, &have);
    for op in &ops {
        have.apply(op);
    }
    assert_eq!(
        plan(want, &have),
        vec![],
        "a second plan has nothing left to do"
    );
    (ops, have)
}

/// The list after, head first: (last octet, weight, active connections).
fn order(table: &ObservedTable) -> Vec<(u8, u32, u32)> {
    let s = &table.services[&vip()];
    s.order
        .iter()
        .map(|k| {
            let e = &s.destinations[k];
            let IpAddr::V4(v4) = e.destination.addr else {
                unreachable!()
            };
            (v4.octets()[3], e.destination.weight, e.active_conns)
        })
        .collect()
}

/// A delete of the destination and an add of it as `now`.
fn readd(now: Destination) -> Vec<IpvsOp> {
    vec![
        IpvsOp::DeleteDestination {
            service: vip(),
            destination: now.key(),
        },
        IpvsOp::AddDestination {
            service: vip(),
            destination: now,
        },
    ]
}

fn weighted(table: &ObservedTable) -> Vec<u8> {
    order(table)
        .into_iter()
        .filter(|(_, w, _)| *w > 0)
        .map(|(last, _, _)| last)
        .collect()
}

#[test]
fn a_new_service_is_added_largest_address_first_so_the_list_is_ascending() {
    let (ops, after) = converge(
        &desired(&[dest(11, 1), dest(12, 1), dest(13, 1)]),
        ObservedTable::default(),
    );
    assert_eq!(ops.len(), 4, "the service and three adds: {ops:?}");
    assert_eq!(weighted(&after), vec![11, 12, 13]);
}

#[test]
fn registrations_in_another_order_end_in_the_same_list() {
    // Director A saw llc5 (11) then llc6 (12): the kernel lists 12 first.
    let a = listed(&[(dest(12, 1), 0), (dest(11, 1), 4)]);
    let (ops, after) = converge(&desired(&[dest(11, 1), dest(12, 1)]), a);
    assert_eq!(ops, readd(dest(11, 1)), "only 11 moves to the head");
    assert_eq!(
        order(&after),
        vec![(11, 1, 4), (12, 1, 0)],
        "connections kept"
    );
    // Director B saw them the other way round: already canonical, nothing to do.
    let b = listed(&[(dest(11, 1), 0), (dest(12, 1), 0)]);
    assert_eq!(plan(&desired(&[dest(11, 1), dest(12, 1)]), &b), vec![]);
}

#[test]
fn a_drain_is_a_delete_and_an_add_with_weight_zero_keeping_connections() {
    let have = listed(&[(dest(11, 1), 3), (dest(12, 1), 0)]);
    let (ops, after) = converge(&desired(&[dest(11, 0), dest(12, 1)]), have);
    assert_eq!(ops, readd(dest(11, 0)));
    assert_eq!(order(&after), vec![(11, 0, 3), (12, 1, 0)]);
}

#[test]
fn an_undrain_puts_the_destination_back_in_its_place() {
    // 11 was drained by a re-add, so it sits at the head already: an edit is enough.
    let have = listed(&[(dest(11, 0), 0), (dest(12, 1), 0)]);
    let (ops, after) = converge(&desired(&[dest(11, 1), dest(12, 1)]), have);
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(weighted(&after), vec![11, 12]);
    // 13 was drained while 12 came later: 13 now sits before 12 and must move.
    let have = listed(&[(dest(12, 1), 0), (dest(13, 0), 0), (dest(11, 1), 0)]);
    let (_, after) = converge(&desired(&[dest(11, 1), dest(12, 1), dest(13, 1)]), have);
    assert_eq!(weighted(&after), vec![11, 12, 13]);
}

#[test]
fn a_leftover_with_connections_is_quiesced_by_a_readd_and_deleted_when_idle() {
    let have = listed(&[(dest(11, 1), 2), (dest(12, 1), 0), (dest(13, 1), 0)]);
    let want = desired(&[dest(11, 1)]);
    let ops = plan(&want, &have);
    assert!(
        ops.contains(&IpvsOp::AddDestination {
            service: vip(),
            destination: dest(12, 0)
        }) || ops.contains(&IpvsOp::DeleteDestination {
            service: vip(),
            destination: dest(12, 1).key()
        })
    );
    let (_, after) = converge(&want, have);
    assert_eq!(order(&after), vec![(11, 1, 2)], "idle leftovers deleted");
    let have = listed(&[(dest(11, 1), 0), (dest(12, 1), 5)]);
    let (_, after) = converge(&want, have);
    assert_eq!(
        order(&after),
        vec![(12, 0, 5), (11, 1, 0)],
        "busy one quiesced"
    );
}

/// Whatever the history, every director ends with the same weighted list.
#[test]
fn any_kernel_order_converges_to_the_ascending_list() {
    let lasts = [11u8, 12, 13, 14, 15];
    for seed in 0u32..500 {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        let mut next = |n: u32| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x % n
        };
        let mut kernel = Vec::new();
        let mut want = Vec::new();
        for last in lasts {
            match next(4) {
                0 => {}
                1 => kernel.push((dest(last, next(3)), next(2) * 3)),
                2 => want.push(dest(last, next(3))),
                _ => {
                    kernel.push((dest(last, next(3)), next(2) * 3));
                    want.push(dest(last, next(3)));
                }
            }
        }
        for i in (1..kernel.len()).rev() {
            kernel.swap(i, next(i as u32 + 1) as usize);
        }
        let want_table = desired(&want);
        let (_, after) = converge(&want_table, listed(&kernel));
        let mut expected: Vec<u8> = want
            .iter()
            .filter(|d| d.weight > 0)
            .map(|d| match d.addr {
                IpAddr::V4(v4) => v4.octets()[3],
                IpAddr::V6(_) => unreachable!(),
            })
            .collect();
        expected.sort_unstable();
        assert_eq!(
            weighted(&after),
            expected,
            "seed {seed}: {kernel:?} -> {want:?}"
        );
    }
}
