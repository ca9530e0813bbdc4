//! A firewall-mark service, an IPv6 service and a UDP service through the director over loopback
//! gRPC, against the in-memory IPVS table: what the agents are told, what the table holds,
//! status, and the registrations of the wrong address family refused.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use std::sync::Arc;

use common::*;
use lb_ipvs::{Family, IpvsBackend, MemoryIpvs, ServiceKey};
use lb_proto as pb;
use lb_shared::domain::Protocol;
use tonic::Code;

fn families(dir: &std::path::Path) -> String {
    let mut text = config_text(dir, "6s");
    text.push_str(
        r#"
[[service]]
name = "ssh-fwm"
fwmark = 7
vips = ["10.0.0.101", "10.0.0.102"]
scheduler = "rr"
interface = "eth0"
[service.check]
type = "none"

[[service]]
name = "ssh6"
vip = "fd00::100"
port = 22
interface = "eth0"
[service.check]
type = "none"

[[service]]
name = "dns"
vip = "10.0.0.100"
port = 53
protocol = "udp"
interface = "eth0"
"#,
    );
    text
}

fn request(name: &str, address: &str, services: &[&str]) -> pb::RegisterRequest {
    pb::RegisterRequest {
        name: name.into(),
        address: address.into(),
        services: services
            .iter()
            .map(|s| pb::ServiceWeight {
                service: (*s).into(),
                weight: 1,
            })
            .collect(),
    }
}

/// (address:port, weight) of each destination of `service`.
async fn weights(ipvs: &MemoryIpvs, service: ServiceKey) -> Vec<(String, u32)> {
    let mut all: Vec<(String, u32)> = ipvs
        .destinations(&service)
        .await
        .unwrap()
        .iter()
        .map(|d| (d.destination.key().to_string(), d.destination.weight))
        .collect();
    all.sort();
    all
}

#[tokio::test]
async fn fwmark_ipv6_and_udp_services_take_their_agents() {
    let dir = tempfile::tempdir().unwrap();
    let ipvs = Arc::new(MemoryIpvs::new());
    let director = TestDirector::start_with(ipvs.clone(), dir.path(), &families(dir.path())).await;
    let mut registry = director.registry().await;

    let lease = registry
        .register(request("llc5", "10.0.0.11", &["ssh-fwm", "dns"]))
        .await
        .unwrap()
        .into_inner();
    // One binding per VIP of the fwmark service, with its mark and neither port nor protocol.
    let mut bindings: Vec<_> = lease
        .bindings
        .iter()
        .map(|b| {
            (
                b.service.as_str(),
                b.vip.as_str(),
                b.port,
                b.protocol(),
                b.fwmark,
            )
        })
        .collect();
    bindings.sort();
    assert_eq!(
        bindings,
        vec![
            ("dns", "10.0.0.100", 53, pb::Protocol::Udp, 0),
            ("ssh-fwm", "10.0.0.101", 0, pb::Protocol::Unspecified, 7),
            ("ssh-fwm", "10.0.0.102", 0, pb::Protocol::Unspecified, 7),
        ]
    );
    registry
        .confirm(pb::ConfirmRequest {
            lease_id: lease.lease_id,
        })
        .await
        .unwrap();
    let fwm = ServiceKey::FwMark {
        family: Family::Inet,
        mark: 7,
    };
    assert_eq!(
        weights(&ipvs, fwm).await,
        vec![("10.0.0.11:0".into(), 1)],
        "ipvsadm -a -f 7 -r 10.0.0.11 -g: the packet keeps its port"
    );
    let dns = ServiceKey::Addr {
        protocol: Protocol::Udp,
        addr: VIP.parse().unwrap(),
        port: 53,
    };
    assert_eq!(weights(&ipvs, dns).await, vec![("10.0.0.11:53".into(), 1)]);

    // An IPv4 address cannot join an IPv6 service, nor an IPv6 one an IPv4 service.
    for (name, address, service) in [
        ("llc6", "10.0.0.12", "ssh6"),
        ("llc6-v6", "fd00::12", "dns"),
    ] {
        let refused = registry
            .register(request(name, address, &[service]))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(
            refused
                .message()
                .contains("run one agent per address family"),
            "{}",
            refused.message()
        );
    }
    join_services(&mut registry, "llc5-v6", "fd00::11", &["ssh6"]).await;
    let ssh6 = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: "fd00::100".parse().unwrap(),
        port: 22,
    };
    assert_eq!(
        weights(&ipvs, ssh6).await,
        vec![("[fd00::11]:22".into(), 1)]
    );

    // Status names the mark where a VIP:port would be, with every VIP.
    let mut admin = director.admin().await;
    let status = admin
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let shown = lb_director::lbctl::render_table(&status);
    assert!(
        shown.contains("FWM  7 rr ssh-fwm  (vips 10.0.0.101 10.0.0.102)\n"),
        "{shown}"
    );
    assert!(shown.contains("  -> 10.0.0.11:0 "), "{shown}");
    assert!(shown.contains("TCP  [fd00::100]:22 wlc ssh6\n"), "{shown}");
    assert!(shown.contains("UDP  10.0.0.100:53 wlc dns\n"), "{shown}");

    // A drain by name reaches the fwmark service like any other.
    admin
        .drain(pb::DrainRequest {
            name: "llc5".into(),
        })
        .await
        .unwrap();
    assert_eq!(weights(&ipvs, fwm).await, vec![("10.0.0.11:0".into(), 0)]);
    director.stop().await.unwrap();
}

/// Registers and confirms for `services`; returns the lease id.
async fn join_services(
    registry: &mut pb::registry_client::RegistryClient<tonic::transport::Channel>,
    name: &str,
    address: &str,
    services: &[&str],
) -> String {
    lb_director::testing::join_with(registry, request(name, address, services)).await
}
