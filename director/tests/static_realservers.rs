//! `[[service.realserver]]`: realservers without an agent, in several services of different
//! protocols, drained and weighted by name, and the table writes a pass makes at scale.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use std::fmt::Write;
use std::sync::Arc;

use common::*;
use lb_ipvs::{DestinationEntry, IpvsBackend, MemoryIpvs, ServiceKey};
use lb_proto as pb;
use lb_shared::domain::Protocol;
use tonic::Code;

/// The test config plus three services of different protocols on the same VIP, each with
/// configured realservers: web (tcp, llc7 on port 8080), dns (udp, llc7 and llc8), sctp-app.
fn three_protocols(dir: &std::path::Path) -> String {
    let mut text = config_text(dir, "6s");
    for (name, port, protocol, statics) in [
        ("web", 80, "tcp", vec![("llc7", "10.0.0.17", Some(8080), 2)]),
        (
            "dns",
            53,
            "udp",
            vec![
                ("llc7", "10.0.0.17", None, 1),
                ("llc8", "10.0.0.18", None, 5),
            ],
        ),
        ("app", 3868, "sctp", vec![("llc8", "10.0.0.18", None, 1)]),
    ] {
        write!(
            text,
            "\n[[service]]\nname = \"{name}\"\nvip = \"{VIP}\"\nport = {port}\nprotocol = \"{protocol}\"\ninterface = \"eth0\"\n[service.check]\ntype = \"none\"\n"
        )
        .unwrap();
        for (rs, addr, rs_port, weight) in statics {
            write!(text, "[[service.realserver]]\nname = \"{rs}\"\naddress = \"{addr}\"\nweight = {weight}\n").unwrap();
            if let Some(p) = rs_port {
                writeln!(text, "port = {p}").unwrap();
            }
        }
    }
    text
}

fn key(protocol: Protocol, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol,
        addr: VIP.parse().unwrap(),
        port,
    }
}

/// (address:port, weight) of each destination of `service`.
async fn weights(ipvs: &MemoryIpvs, service: ServiceKey) -> Vec<(String, u32)> {
    let mut all: Vec<(String, u32)> = ipvs
        .destinations(&service)
        .await
        .unwrap()
        .iter()
        .map(|d: &DestinationEntry| {
            let dest = &d.destination;
            (format!("{}:{}", dest.addr, dest.port), dest.weight)
        })
        .collect();
    all.sort();
    all
}

#[tokio::test]
async fn configured_realservers_are_in_every_service_that_lists_them_and_drain_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let ipvs = Arc::new(MemoryIpvs::new());
    let director =
        TestDirector::start_with(ipvs.clone(), dir.path(), &three_protocols(dir.path())).await;
    // Serving once the first pass is done.
    let mut admin = director.admin().await;
    let web = key(Protocol::Tcp, 80);
    let dns = key(Protocol::Udp, 53);
    let app = key(Protocol::Sctp, 3868);
    assert_eq!(
        weights(&ipvs, web).await,
        vec![("10.0.0.17:8080".into(), 2)]
    );
    assert_eq!(
        weights(&ipvs, dns).await,
        vec![("10.0.0.17:53".into(), 1), ("10.0.0.18:53".into(), 5)]
    );
    assert_eq!(
        weights(&ipvs, app).await,
        vec![("10.0.0.18:3868".into(), 1)]
    );

    // A registered realserver beside them, in the ssh service.
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;

    let status = admin
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let dns_rows = &status
        .services
        .iter()
        .find(|s| s.name == "dns")
        .unwrap()
        .realservers;
    let rows: Vec<_> = dns_rows
        .iter()
        .map(|r| (r.name.as_str(), r.lease(), r.weight))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("llc7", pb::LeaseState::Static, Some(1)),
            ("llc8", pb::LeaseState::Static, Some(5))
        ]
    );

    let web_row = &status
        .services
        .iter()
        .find(|s| s.name == "web")
        .unwrap()
        .realservers[0];
    assert_eq!((web_row.name.as_str(), web_row.port), ("llc7", 8080));

    // A drain of llc7 reaches both services it is in, and nothing else.
    admin
        .drain(pb::DrainRequest {
            name: "llc7".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        weights(&ipvs, web).await,
        vec![("10.0.0.17:8080".into(), 0)]
    );
    assert_eq!(
        weights(&ipvs, dns).await,
        vec![("10.0.0.17:53".into(), 0), ("10.0.0.18:53".into(), 5)]
    );
    assert_eq!(director.weight("10.0.0.11").await, Some(1));
    admin
        .set_weight(pb::SetWeightRequest {
            name: "llc8".into(),
            weight: 9,
        })
        .await
        .unwrap();
    assert_eq!(
        weights(&ipvs, app).await,
        vec![("10.0.0.18:3868".into(), 9)]
    );
    admin
        .undrain(pb::UndrainRequest {
            name: "llc7".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        weights(&ipvs, web).await,
        vec![("10.0.0.17:8080".into(), 2)]
    );

    // The overrides survive a restart, and the restart writes nothing.
    director.stop().await.unwrap();
    let writes = ipvs.writes();
    let director =
        TestDirector::start_with(ipvs.clone(), dir.path(), &three_protocols(dir.path())).await;
    director.status().await;
    assert_eq!(
        ipvs.writes(),
        writes,
        "a restart over the same table wrote to it"
    );
    assert_eq!(
        weights(&ipvs, app).await,
        vec![("10.0.0.18:3868".into(), 9)]
    );
    director.stop().await.unwrap();
}

#[tokio::test]
async fn an_agent_cannot_register_a_configured_realserver() {
    let dir = tempfile::tempdir().unwrap();
    let ipvs = Arc::new(MemoryIpvs::new());
    let director =
        TestDirector::start_with(ipvs.clone(), dir.path(), &three_protocols(dir.path())).await;
    let mut registry = director.registry().await;
    for (name, address) in [("llc7", "10.0.0.99"), ("other", "10.0.0.18")] {
        let refused = registry
            .register(register_request(name, address, 1))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::AlreadyExists, "{name} at {address}");
        assert!(
            refused.message().contains("[[service.realserver]]")
                && refused
                    .message()
                    .contains("remove it from the director's config"),
            "{}",
            refused.message()
        );
    }
    assert!(director.table().await.is_empty());
    director.stop().await.unwrap();
}

/// The test config with `services` tcp services (ports 1000..) each listing llc7 and llc8.
fn many_services(dir: &std::path::Path, services: u16) -> String {
    let mut text = config_text(dir, "6s");
    for i in 0..services {
        write!(
            text,
            "\n[[service]]\nname = \"s{i}\"\nvip = \"{VIP}\"\nport = {}\ninterface = \"eth0\"\n[service.check]\ntype = \"none\"\n[[service.realserver]]\nname = \"llc7\"\naddress = \"10.0.0.17\"\n[[service.realserver]]\nname = \"llc8\"\naddress = \"10.0.0.18\"\n",
            1000 + i
        )
        .unwrap();
    }
    text
}

#[tokio::test]
async fn at_scale_a_pass_over_an_unchanged_table_writes_nothing_and_a_drain_writes_one_edit_per_service(
) {
    const SERVICES: u16 = 1000;
    let dir = tempfile::tempdir().unwrap();
    let ipvs = Arc::new(MemoryIpvs::new());
    let text = many_services(dir.path(), SERVICES);
    let director = TestDirector::start_with(ipvs.clone(), dir.path(), &text).await;
    let mut admin = director.admin().await;
    let entries: usize = {
        let services = ipvs.services().await.unwrap();
        let mut n = services.len();
        for s in &services {
            n += ipvs.destinations(&s.service.key).await.unwrap().len();
        }
        n
    };
    assert_eq!(
        entries,
        1 + 3 * usize::from(SERVICES),
        "services and destinations"
    );

    // A reload of the same file is a pass over the unchanged table.
    let writes = ipvs.writes();
    director.reload_with(&text).await.unwrap();
    assert_eq!(
        ipvs.writes(),
        writes,
        "a pass over an unchanged table wrote to it"
    );

    admin
        .drain(pb::DrainRequest {
            name: "llc7".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        ipvs.writes() - writes,
        usize::from(SERVICES),
        "a drain of a realserver in {SERVICES} services"
    );
    assert_eq!(
        weights(&ipvs, key(Protocol::Tcp, 1999)).await,
        vec![("10.0.0.17:1999".into(), 0), ("10.0.0.18:1999".into(), 1)]
    );
    director.stop().await.unwrap();
}
