use std::collections::BTreeMap;
use std::net::IpAddr;

use lb_ipvs::{DestinationKey, ForwardMethod, ServiceKey, Stats};
use lb_shared::domain::Protocol;

use super::*;
use crate::table::{DesiredService, ObservedService};

fn vip() -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: "10.0.0.100".parse().unwrap(),
        port: 22,
    }
}

fn dest(addr: &str, weight: u32) -> Destination {
    Destination::new(
        addr.parse::<IpAddr>().unwrap(),
        22,
        ForwardMethod::Route,
        weight,
    )
}

fn entry(d: Destination, active: u32, inactive: u32) -> DestinationEntry {
    DestinationEntry {
        destination: d,
        active_conns: active,
        inactive_conns: inactive,
        persistent_conns: 0,
        stats: Stats::default(),
    }
}

fn desired(dests: &[Destination]) -> DesiredTable {
    DesiredTable {
        services: BTreeMap::from([(
            vip(),
            DesiredService {
                service: Service::new(vip(), "rr"),
                destinations: dests.iter().map(|d| (d.key(), d.clone())).collect(),
            },
        )]),
        ..DesiredTable::default()
    }
}

fn observed(entries: &[DestinationEntry]) -> ObservedTable {
    ObservedTable {
        services: BTreeMap::from([(
            vip(),
            ObservedService::listed(
                Service::new(vip(), "rr"),
                Default::default(),
                entries.to_vec(),
            ),
        )]),
        ..ObservedTable::default()
    }
}

fn key(addr: &str) -> DestinationKey {
    dest(addr, 0).key()
}

#[test]
fn an_empty_kernel_gets_the_service_then_its_destinations() {
    let want = desired(&[dest("10.0.0.11", 1), dest("10.0.0.12", 1)]);
    assert_eq!(
        plan(&want, &ObservedTable::default()),
        vec![
            IpvsOp::AddService(Service::new(vip(), "rr")),
            IpvsOp::AddDestination {
                service: vip(),
                destination: dest("10.0.0.11", 1)
            },
            IpvsOp::AddDestination {
                service: vip(),
                destination: dest("10.0.0.12", 1)
            },
        ]
    );
}

#[test]
fn an_unchanged_table_plans_nothing() {
    let want = desired(&[dest("10.0.0.11", 1), dest("10.0.0.12", 3)]);
    let have = observed(&[
        entry(dest("10.0.0.11", 1), 5, 2),
        entry(dest("10.0.0.12", 3), 0, 0),
    ]);
    assert_eq!(plan(&want, &have), vec![]);
}

#[test]
fn weight_and_forward_drift_are_edited_back() {
    let want = desired(&[dest("10.0.0.11", 1), dest("10.0.0.12", 1)]);
    let mut masq = dest("10.0.0.12", 1);
    masq.forward = ForwardMethod::Masq;
    let have = observed(&[entry(dest("10.0.0.11", 7), 0, 0), entry(masq, 0, 0)]);
    assert_eq!(
        plan(&want, &have),
        vec![
            IpvsOp::EditDestination {
                service: vip(),
                destination: dest("10.0.0.11", 1)
            },
            IpvsOp::EditDestination {
                service: vip(),
                destination: dest("10.0.0.12", 1)
            },
        ]
    );
}

#[test]
fn a_scheduler_change_edits_the_service_in_place() {
    let mut want = desired(&[]);
    want.services.get_mut(&vip()).unwrap().service.scheduler = "wlc".into();
    assert_eq!(
        plan(&want, &observed(&[])),
        vec![IpvsOp::EditService(Service::new(vip(), "wlc"))]
    );
}

#[test]
fn a_destination_that_should_go_is_quiesced_while_busy_and_deleted_when_idle() {
    let want = desired(&[dest("10.0.0.12", 1)]);
    let busy = observed(&[
        entry(dest("10.0.0.11", 1), 1, 0),
        entry(dest("10.0.0.12", 1), 0, 0),
    ]);
    assert_eq!(
        plan(&want, &busy),
        vec![IpvsOp::EditDestination {
            service: vip(),
            destination: dest("10.0.0.11", 0)
        }]
    );
    let quiesced_busy = observed(&[
        entry(dest("10.0.0.11", 0), 0, 4),
        entry(dest("10.0.0.12", 1), 0, 0),
    ]);
    assert_eq!(
        plan(&want, &quiesced_busy),
        vec![],
        "waits for InActConn too"
    );
    let idle = observed(&[
        entry(dest("10.0.0.11", 0), 0, 0),
        entry(dest("10.0.0.12", 1), 0, 0),
    ]);
    assert_eq!(
        plan(&want, &idle),
        vec![IpvsOp::DeleteDestination {
            service: vip(),
            destination: key("10.0.0.11")
        }]
    );
}

#[test]
fn deletions_come_after_additions() {
    let want = desired(&[dest("10.0.0.12", 1)]);
    let have = observed(&[entry(dest("10.0.0.11", 1), 0, 0)]);
    assert_eq!(
        plan(&want, &have),
        vec![
            IpvsOp::AddDestination {
                service: vip(),
                destination: dest("10.0.0.12", 1)
            },
            IpvsOp::DeleteDestination {
                service: vip(),
                destination: key("10.0.0.11")
            },
        ]
    );
}

#[test]
fn only_configured_timeouts_that_differ_are_set() {
    let mut want = desired(&[]);
    want.timeouts = Timeouts {
        tcp: 259200,
        tcp_fin: 0,
        udp: 0,
    };
    let mut have = observed(&[]);
    have.timeouts = Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    };
    assert_eq!(
        plan(&want, &have),
        vec![IpvsOp::SetTimeouts(Timeouts {
            tcp: 259200,
            tcp_fin: 0,
            udp: 0
        })]
    );
    have.timeouts.tcp = 259200;
    assert_eq!(plan(&want, &have), vec![]);
}

#[test]
fn retired_services_are_deleted_only_if_present() {
    let mut want = DesiredTable::default();
    want.retired.push(vip());
    assert_eq!(
        plan(&want, &observed(&[])),
        vec![IpvsOp::DeleteService(vip())]
    );
    assert_eq!(plan(&want, &ObservedTable::default()), vec![]);
}
