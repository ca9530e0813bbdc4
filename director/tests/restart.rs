//! Director restarts: never a flush, adoption of what the kernel holds, overrides that survive,
//! and agents that come back.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use lb_ipvs::{Destination, ForwardMethod, IpvsBackend, IpvsOp, MemoryIpvs, Service, ServiceKey};
use lb_proto as pb;
use lb_shared::domain::Protocol;
use tonic::Code;

#[tokio::test]
async fn a_restart_over_an_unchanged_table_writes_nothing_and_keeps_every_destination() {
    let dir = tempfile::tempdir().unwrap();
    let ipvs = Arc::new(MemoryIpvs::new());
    let director = TestDirector::start(ipvs.clone(), dir.path(), "6s").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    join(&mut registry, "llc6", "10.0.0.12", 3).await;
    let before = director.table().await;
    director.stop().await.unwrap();
    assert_eq!(
        ipvs.destinations(&ssh_key()).await.unwrap(),
        before,
        "stopping changed nothing"
    );

    let writes = ipvs.writes();
    let director = TestDirector::start(ipvs.clone(), dir.path(), "6s").await;
    let mut admin = director.admin().await;
    let status = admin
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ipvs.writes(), writes, "the second start wrote to the table");
    assert_eq!(director.table().await, before);
    let rows = &status.services[0].realservers;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].name.as_str(), rows[0].lease()),
        ("llc5", pb::LeaseState::Adopted)
    );
    assert_eq!((rows[1].name.as_str(), rows[1].weight), ("llc6", Some(3)));

    // The agents come back (their heartbeats got NOT_FOUND) and nothing flaps.
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    join(&mut registry, "llc6", "10.0.0.12", 3).await;
    assert_eq!(director.table().await, before);
    assert_eq!(ipvs.writes(), writes);
    director.stop().await.unwrap();
}

#[tokio::test]
async fn an_adopted_destination_whose_agent_never_returns_is_quiesced_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let ipvs = Arc::new(MemoryIpvs::new());
    let director = TestDirector::start(ipvs.clone(), dir.path(), "1s").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    director.stop().await.unwrap();

    let text =
        config_text(dir.path(), "1s").replace("lease_ttl", "adoption_grace = \"2s\"\nlease_ttl");
    let director = TestDirector::start_with(ipvs.clone(), dir.path(), &text).await;
    let _ = director.channel().await;
    assert_eq!(
        director.weight("10.0.0.11").await,
        Some(1),
        "kept during the grace period"
    );
    director
        .wait_for("removed after the grace period", |t| t.is_empty())
        .await;
    director.stop().await.unwrap();
}

#[tokio::test]
async fn after_a_reboot_the_table_timeouts_come_back_from_config() {
    let dir = tempfile::tempdir().unwrap();
    // "After rebooting no lvs rules are set": an empty kernel table.
    let ipvs = Arc::new(MemoryIpvs::new());
    let director = TestDirector::start(ipvs.clone(), dir.path(), "6s").await;
    let _ = director.channel().await;
    let services = ipvs.services().await.unwrap();
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].service, Service::new(ssh_key(), "rr"));
    assert_eq!(ipvs.timeouts().await.unwrap().tcp, 259200);
    // The seed's sysctls: no forwarding for a DR-only director, ICMP redirects on.
    let sys = dir.path().join("proc-sys/net/ipv4");
    let read = |f: &str| {
        std::fs::read_to_string(sys.join(f))
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(read("ip_forward"), "0");
    for iface in ["all", "default", "eth0"] {
        assert_eq!(
            read(&format!("conf/{iface}/send_redirects")),
            "1",
            "{iface}"
        );
    }
    director.stop().await.unwrap();
}

#[tokio::test]
async fn drain_undrain_and_weight_are_persisted_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ipvs = Arc::new(MemoryIpvs::new());
    let director = TestDirector::start(ipvs.clone(), dir.path(), "6s").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    join(&mut registry, "llc6", "10.0.0.12", 1).await;
    let mut admin = director.admin().await;

    let reply = admin
        .drain(pb::DrainRequest {
            name: "llc5".into(),
        })
        .await
        .unwrap();
    assert!(reply.into_inner().message.contains("llc5 drained"));
    assert_eq!(director.weight("10.0.0.11").await, Some(0));
    admin
        .set_weight(pb::SetWeightRequest {
            name: "llc6".into(),
            weight: 5,
        })
        .await
        .unwrap();
    assert_eq!(director.weight("10.0.0.12").await, Some(5));
    director.stop().await.unwrap();

    let director = TestDirector::start(ipvs.clone(), dir.path(), "6s").await;
    let mut registry = director.registry().await;
    // The agents re-register with their configured weight 1; the overrides stay in force.
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    join(&mut registry, "llc6", "10.0.0.12", 1).await;
    assert_eq!(
        director.weight("10.0.0.11").await,
        Some(0),
        "drain survived the restart"
    );
    assert_eq!(
        director.weight("10.0.0.12").await,
        Some(5),
        "weight survived the restart"
    );

    let mut admin = director.admin().await;
    admin
        .undrain(pb::UndrainRequest {
            name: "llc5".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        director.weight("10.0.0.11").await,
        Some(1),
        "back to the registered weight"
    );
    director.stop().await.unwrap();
}

#[tokio::test]
async fn admin_calls_on_unknown_names_or_bad_weights_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    let before = director.table().await;
    let mut admin = director.admin().await;

    let err = admin
        .drain(pb::DrainRequest {
            name: "nosuchhost".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::NotFound, "no realserver named nosuchhost")
    );
    let err = admin
        .set_weight(pb::SetWeightRequest {
            name: "llc5".into(),
            weight: 65536,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("weight:"), "{}", err.message());
    assert_eq!(director.table().await, before);
    assert!(
        !dir.path().join("state.json").exists() || {
            let text = std::fs::read_to_string(dir.path().join("state.json")).unwrap();
            !text.contains("nosuchhost") && !text.contains("65536")
        }
    );
    director.stop().await.unwrap();
}

#[tokio::test]
async fn services_on_vips_the_director_does_not_own_are_never_touched() {
    let dir = tempfile::tempdir().unwrap();
    let ipvs = Arc::new(MemoryIpvs::new());
    let foreign = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: "10.0.0.200".parse().unwrap(),
        port: 80,
    };
    let foreign_dest = Destination::new("10.0.0.50".parse().unwrap(), 80, ForwardMethod::Masq, 9);
    let results = ipvs
        .apply(&[
            IpvsOp::AddService(Service::new(foreign, "wlc")),
            IpvsOp::AddDestination {
                service: foreign,
                destination: foreign_dest.clone(),
            },
        ])
        .await
        .unwrap();
    assert!(results.iter().all(Result::is_ok));

    let director = TestDirector::start(ipvs.clone(), dir.path(), "1s").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    // Let leases expire and several resyncs run.
    director
        .wait_for("llc5 removed after expiry", |t| t.is_empty())
        .await;
    director.stop().await.unwrap();

    let services = ipvs.services().await.unwrap();
    assert!(services
        .iter()
        .any(|s| s.service == Service::new(foreign, "wlc")));
    let dests = ipvs.destinations(&foreign).await.unwrap();
    assert_eq!(dests.len(), 1);
    assert_eq!(dests[0].destination, foreign_dest);
}

#[tokio::test]
async fn a_corrupt_state_file_stops_the_director_before_it_touches_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("state.json"),
        "{\"version\": 1, \"drained\": [\"llc",
    )
    .unwrap();
    let ipvs = Arc::new(MemoryIpvs::new());
    let director = TestDirector::start(ipvs.clone(), dir.path(), "6s").await;
    let err = director.stop().await.unwrap_err();
    assert!(err.to_string().contains("state.json"), "{err}");
    assert_eq!(ipvs.writes(), 0);
    assert!(ipvs.services().await.unwrap().is_empty());
}

/// Issue 10: after an outage the agents come back at their backoff ceiling (10 s), long after a
/// lease TTL. The adopted weight must hold until they do, and never pass through 0.
#[tokio::test]
async fn a_restart_after_an_outage_keeps_weights_until_the_agents_return() {
    let dir = tempfile::tempdir().unwrap();
    let ipvs = Arc::new(MemoryIpvs::new());
    let director = TestDirector::start(ipvs.clone(), dir.path(), "500ms").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    director.stop().await.unwrap();

    let director = TestDirector::start(ipvs.clone(), dir.path(), "500ms").await;
    let _ = director.channel().await;
    // Six lease TTLs without any agent: the default adoption grace (30 s) holds the weight.
    for _ in 0..30 {
        assert_eq!(
            director.weight("10.0.0.11").await,
            Some(1),
            "weight changed during the grace"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    assert_eq!(director.weight("10.0.0.11").await, Some(1));
    director.stop().await.unwrap();
}
