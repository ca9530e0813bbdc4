//! Registration, leases and deregistration over loopback gRPC, against the in-memory IPVS table.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use lb_ipvs::{ForwardMethod, IpvsBackend, MemoryIpvs};
use lb_proto as pb;
use tonic::Code;

#[tokio::test]
async fn a_realserver_gets_traffic_only_after_it_confirms_its_rule() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    let mut registry = director.registry().await;

    let lease = registry
        .register(register_request("llc5", "10.0.0.11", 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lease.lease_ttl_ms, 6000);
    assert_eq!(lease.bindings.len(), 1);
    let binding = &lease.bindings[0];
    assert_eq!(
        (binding.service.as_str(), binding.vip.as_str(), binding.port),
        ("llc-ssh", VIP, 22)
    );
    assert_eq!(binding.protocol(), pb::Protocol::Tcp);

    // The service exists (the director created it at start) but has no destination yet.
    assert!(
        director.table().await.is_empty(),
        "destination added before the rule was confirmed"
    );

    registry
        .confirm(pb::ConfirmRequest {
            lease_id: lease.lease_id.clone(),
        })
        .await
        .unwrap();
    let table = director.table().await;
    assert_eq!(
        table.len(),
        1,
        "confirm returns once the destination is in the table"
    );
    assert_eq!(table[0].destination.addr.to_string(), "10.0.0.11");
    assert_eq!(table[0].destination.forward, ForwardMethod::Route);
    assert_eq!(table[0].destination.weight, 1);
    assert_eq!(director.ipvs.timeouts().await.unwrap().tcp, 259200);
    director.stop().await.unwrap();
}

#[tokio::test]
async fn heartbeats_keep_the_lease_and_expiry_quiesces_then_removes_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "1s").await;
    let mut registry = director.registry().await;
    let lease_id = join(&mut registry, "llc5", "10.0.0.11", 1).await;

    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let beat = registry
            .heartbeat(pb::HeartbeatRequest {
                lease_id: lease_id.clone(),
                health: Vec::new(),
            })
            .await
            .unwrap();
        assert_eq!(beat.into_inner().lease_ttl_ms, 1000);
    }
    assert_eq!(
        director.weight("10.0.0.11").await,
        Some(1),
        "heartbeats kept the weight"
    );

    // An open session, then the agent goes silent.
    director.connections("10.0.0.11", 1, 0);
    director
        .wait_for("weight 0 after the lease expired", |t| {
            t.len() == 1 && t[0].destination.weight == 0
        })
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        director.table().await.len(),
        1,
        "kept while a connection is open"
    );
    let err = registry
        .heartbeat(pb::HeartbeatRequest {
            lease_id,
            health: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "an expired lease tells the agent to register again"
    );

    director.connections("10.0.0.11", 0, 0);
    director
        .wait_for("removal once idle", |t| t.is_empty())
        .await;
    director.stop().await.unwrap();
}

#[tokio::test]
async fn deregistration_quiesces_like_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    let mut registry = director.registry().await;
    let lease_id = join(&mut registry, "llc5", "10.0.0.11", 1).await;
    director.connections("10.0.0.11", 0, 2);

    registry
        .deregister(pb::DeregisterRequest { lease_id })
        .await
        .unwrap();
    assert_eq!(
        director.weight("10.0.0.11").await,
        Some(0),
        "quiesced at once"
    );
    director.connections("10.0.0.11", 0, 0);
    director
        .wait_for("removal once idle", |t| t.is_empty())
        .await;
    director.stop().await.unwrap();
}

#[tokio::test]
async fn a_live_name_from_another_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    let before = director.table().await;

    let err = registry
        .register(register_request("llc5", "10.0.0.99", 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(
        err.message()
            .contains("llc5 is already registered from 10.0.0.11"),
        "{}",
        err.message()
    );
    assert_eq!(director.table().await, before);
    director.stop().await.unwrap();
}

#[tokio::test]
async fn bad_registrations_name_the_field_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc6", "10.0.0.12", 1).await;
    let before = director.table().await;
    let writes = director.ipvs.writes();

    let cases = [
        (
            register_request("", "10.0.0.11", 1),
            Code::InvalidArgument,
            "name:",
        ),
        (
            register_request("llc 5", "10.0.0.11", 1),
            Code::InvalidArgument,
            "name:",
        ),
        (
            register_request("llc5", "10.0.0.", 1),
            Code::InvalidArgument,
            "address:",
        ),
        (
            register_request("llc5", "0.0.0.0", 1),
            Code::InvalidArgument,
            "address:",
        ),
        (
            register_request("llc5", "10.0.0.11", 70000),
            Code::InvalidArgument,
            "services[0].weight:",
        ),
        (
            pb::RegisterRequest {
                name: "llc5".into(),
                address: "10.0.0.11".into(),
                services: vec![],
            },
            Code::InvalidArgument,
            "services:",
        ),
        (
            pb::RegisterRequest {
                name: "llc5".into(),
                address: "10.0.0.11".into(),
                services: vec![pb::ServiceWeight {
                    service: "nosuchservice".into(),
                    weight: 1,
                }],
            },
            Code::NotFound,
            "unknown service \"nosuchservice\"",
        ),
    ];
    for (request, code, words) in cases {
        let err = registry.register(request.clone()).await.unwrap_err();
        assert_eq!(err.code(), code, "{request:?}: {}", err.message());
        assert!(
            err.message().contains(words),
            "{request:?}: {:?} lacks {words:?}",
            err.message()
        );
    }
    for lease_id in ["", "nope", "0123456789abcdef0123456789abcdef"] {
        let err = registry
            .confirm(pb::ConfirmRequest {
                lease_id: lease_id.into(),
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err.code(), Code::InvalidArgument | Code::NotFound),
            "{lease_id:?}"
        );
    }
    assert_eq!(director.table().await, before);
    assert_eq!(
        director.ipvs.writes(),
        writes,
        "nothing was written to the table"
    );
    director.stop().await.unwrap();
}
