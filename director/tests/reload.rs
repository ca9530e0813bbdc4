//! Issue 10 over loopback gRPC on the in-memory backends: reloads (a service added, a service
//! retired while it has sessions, a refused file), retiring across a restart, and the faults a
//! restart or an outage got wrong (a failing kernel read, a broken state_dir, a drain watch
//! during a stop, a second agent under a live name).
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use lb_ipvs::{IpvsBackend, MemoryIpvs, ServiceKey};
use lb_proto as pb;
use lb_shared::domain::Protocol;
use tonic::Code;

const SFTP: &str = r#"
[[service]]
name = "llc-sftp"
vip = "10.0.0.101"
port = 2222
scheduler = "wlc"
interface = "eth0"

[service.check]
type = "none"
"#;

fn sftp_key() -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: "10.0.0.101".parse().unwrap(),
        port: 2222,
    }
}

fn with_sftp(dir: &std::path::Path) -> String {
    format!("{}{SFTP}", config_text(dir, "6s"))
}

fn vips(director: &TestDirector) -> Vec<String> {
    let mut v: Vec<String> = director
        .addresses
        .vips("eth0")
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    v.sort();
    v
}

/// llc5 registered and confirmed on llc-sftp only; answers its destination's key.
async fn join_sftp(director: &TestDirector, weight: u32) -> lb_ipvs::DestinationKey {
    let mut registry = director.registry().await;
    let lease = registry
        .register(pb::RegisterRequest {
            name: "llc5".into(),
            address: "10.0.0.11".into(),
            services: vec![pb::ServiceWeight {
                service: "llc-sftp".into(),
                weight,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    registry
        .confirm(pb::ConfirmRequest {
            lease_id: lease.lease_id,
        })
        .await
        .unwrap();
    lb_ipvs::DestinationKey {
        addr: "10.0.0.11".parse().unwrap(),
        port: 2222,
    }
}

async fn status(director: &TestDirector) -> pb::StatusResponse {
    director
        .admin()
        .await
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_reload_adds_a_service_and_touches_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    let writes = director.ipvs.writes();

    let summary = director.reload_with(&with_sftp(dir.path())).await.unwrap();
    assert!(summary.contains("services added: llc-sftp"), "{summary}");
    let services = director.ipvs.services().await.unwrap();
    assert_eq!(services.len(), 2, "{services:?}");
    assert_eq!(
        director.ipvs.writes(),
        writes + 1,
        "only the new service was written"
    );
    assert_eq!(director.weight("10.0.0.11").await, Some(1));
    assert_eq!(vips(&director), ["10.0.0.100", "10.0.0.101"]);
    // Agents may join the new service at once.
    let lease = registry
        .register(pb::RegisterRequest {
            name: "llc5".into(),
            address: "10.0.0.11".into(),
            services: vec![
                pb::ServiceWeight {
                    service: "llc-ssh".into(),
                    weight: 1,
                },
                pb::ServiceWeight {
                    service: "llc-sftp".into(),
                    weight: 1,
                },
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lease.bindings.len(), 2);
    director.stop().await.unwrap();
}

#[tokio::test]
async fn a_retired_service_keeps_its_sessions_then_goes_with_its_vip() {
    let dir = tempfile::tempdir().unwrap();
    let ipvs = Arc::new(MemoryIpvs::new());
    let director = TestDirector::start_with(ipvs.clone(), dir.path(), &with_sftp(dir.path())).await;
    let dest = join_sftp(&director, 3).await;
    ipvs.set_connections(&sftp_key(), &dest, 1, 0).unwrap();

    let summary = director
        .reload_with(&config_text(dir.path(), "6s"))
        .await
        .unwrap();
    assert!(summary.contains("services retiring: llc-sftp"), "{summary}");
    let dests = ipvs.destinations(&sftp_key()).await.unwrap();
    assert_eq!(dests.len(), 1, "the destination stays for its session");
    assert_eq!(dests[0].destination.weight, 0, "no new sessions");
    assert_eq!(vips(&director), ["10.0.0.100", "10.0.0.101"]);
    let s = status(&director).await;
    let retiring = s.services.iter().find(|s| s.name == "llc-sftp").unwrap();
    assert!(retiring.retiring.is_some(), "status shows it retiring");
    assert_eq!(retiring.realservers[0].active_conn, 1);

    // A restart meanwhile remembers it (state_dir), and keeps waiting.
    director.stop().await.unwrap();
    let director =
        TestDirector::start_with(ipvs.clone(), dir.path(), &config_text(dir.path(), "6s")).await;
    let _ = director.channel().await;
    assert_eq!(ipvs.destinations(&sftp_key()).await.unwrap().len(), 1);

    // The session ends: the service and its VIP go.
    ipvs.set_connections(&sftp_key(), &dest, 0, 0).unwrap();
    // The state file is written after the pass that removed them: wait for it too.
    let forgotten = || {
        std::fs::read_to_string(dir.path().join("state.json"))
            .is_ok_and(|state| !state.contains("llc-sftp"))
    };
    for _ in 0..1500 {
        if ipvs.services().await.unwrap().len() == 1
            && vips(&director) == ["10.0.0.100"]
            && forgotten()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ipvs.services().await.unwrap().len(), 1);
    assert_eq!(vips(&director), ["10.0.0.100"]);
    let state = std::fs::read_to_string(dir.path().join("state.json")).unwrap();
    assert!(!state.contains("llc-sftp"), "forgotten once gone: {state}");
    director.stop().await.unwrap();
}

#[tokio::test]
async fn a_retiring_service_goes_at_its_timeout_even_with_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let ipvs = Arc::new(MemoryIpvs::new());
    let text = format!("retire_timeout = \"1s\"\n{}", with_sftp(dir.path()));
    let director = TestDirector::start_with(ipvs.clone(), dir.path(), &text).await;
    let dest = join_sftp(&director, 1).await;
    ipvs.set_connections(&sftp_key(), &dest, 5, 0).unwrap();
    let text = format!("retire_timeout = \"1s\"\n{}", config_text(dir.path(), "6s"));
    director.reload_with(&text).await.unwrap();
    assert_eq!(ipvs.services().await.unwrap().len(), 2, "kept at first");
    for _ in 0..200 {
        if ipvs.services().await.unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        ipvs.services().await.unwrap().len(),
        1,
        "removed at its timeout"
    );
    director.stop().await.unwrap();
}

#[tokio::test]
async fn a_refused_reload_changes_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    let writes = director.ipvs.writes();

    let bad = with_sftp(dir.path()).replace("port = 2222", "port = 0");
    let error = director.reload_with(&bad).await.unwrap_err();
    assert!(error.contains("service[1].port"), "{error}");
    let moved = with_sftp(dir.path()).replace("127.0.0.1:0", "127.0.0.1:7799");
    let error = director.reload_with(&moved).await.unwrap_err();
    assert!(
        error.contains("listen") && error.contains("restart lb-director"),
        "{error}"
    );
    assert_eq!(director.ipvs.writes(), writes, "nothing half-applied");
    assert_eq!(director.ipvs.services().await.unwrap().len(), 1);
    // Still serving, and a good reload still works.
    let mut registry = director.registry().await;
    join(&mut registry, "llc6", "10.0.0.12", 1).await;
    director.reload_with(&with_sftp(dir.path())).await.unwrap();
    assert_eq!(director.ipvs.services().await.unwrap().len(), 2);
    director.stop().await.unwrap();
}

#[tokio::test]
async fn a_reload_changes_the_lease_ttl_of_the_next_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    let mut registry = director.registry().await;
    let lease_id = join(&mut registry, "llc5", "10.0.0.11", 1).await;
    director
        .reload_with(&config_text(dir.path(), "3s"))
        .await
        .unwrap();
    let answer = registry
        .heartbeat(pb::HeartbeatRequest {
            lease_id,
            health: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.lease_ttl_ms, 3000);
    director.stop().await.unwrap();
}

/// A failing kernel read must not spin the reconciler: with an overdue lease it backed off
/// nowhere and re-ran passes at full speed.
#[tokio::test]
async fn a_failing_kernel_read_backs_off_and_the_director_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let ipvs = Arc::new(MemoryIpvs::new());
    let director = TestDirector::start(ipvs.clone(), dir.path(), "500ms").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    ipvs.fail_reads(Some(libc::ENOBUFS));
    let before = ipvs.reads();
    // The lease runs out while reads fail: the expiry is overdue at every wake.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reads = ipvs.reads() - before;
    assert!(reads <= 25, "{reads} reads in 2 s: the reconciler spins");
    // Still serving: status answers from the last snapshot.
    let s = status(&director).await;
    assert_eq!(s.services.len(), 1);
    ipvs.fail_reads(None);
    director
        .wait_for("the expired lease quiesced once reads work", |t| {
            t.iter().all(|d| d.destination.weight == 0)
        })
        .await;
    director.stop().await.unwrap();
}

/// A full or read-only state_dir may fail a drain (nothing changed, a clear error), never a
/// registration or a heartbeat.
#[tokio::test]
async fn a_broken_state_dir_fails_a_drain_but_never_a_registration() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    // The state file's name taken by a directory: every atomic replace fails (root ignores
    // permissions, so a read-only directory would not do).
    let state = dir.path().join("state.json");
    let _ = std::fs::remove_file(&state);
    std::fs::create_dir(&state).unwrap();

    let lease = join(&mut registry, "llc6", "10.0.0.12", 1).await;
    registry
        .heartbeat(pb::HeartbeatRequest {
            lease_id: lease,
            health: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(director.weight("10.0.0.12").await, Some(1));
    let err = director
        .admin()
        .await
        .drain(pb::DrainRequest {
            name: "llc5".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(
        err.message().contains("cannot write state file")
            && err.message().contains("nothing was changed"),
        "{}",
        err.message()
    );
    assert_eq!(director.weight("10.0.0.11").await, Some(1), "not drained");
    director.stop().await.unwrap();
}

/// `lbctl drain --wait` open during a stop held the stop until systemd's SIGKILL.
#[tokio::test]
async fn a_drain_watch_ends_when_the_director_stops() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    director.connections("10.0.0.11", 2, 0);
    let mut admin = director.admin().await;
    let mut watch = admin
        .watch_drain(pb::WatchDrainRequest {
            name: "llc5".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.active_conn, 2);
    let stopped = tokio::time::timeout(Duration::from_secs(5), director.stop()).await;
    assert!(stopped.is_ok(), "the stop waited for the drain watch");
    // The stream ends (with Unavailable, or closed) instead of hanging.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(item) = watch.next().await {
            if let Err(status) = item {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the drain watch outlived the director");
}

/// Two live agents under one name (a cloned realserver): the first keeps its lease, the second
/// is refused, and status shows it.
#[tokio::test]
async fn a_second_agent_under_a_live_name_is_refused_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    let err = registry
        .register(register_request("llc5", "10.0.0.99", 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(
        err.message().contains("already registered from 10.0.0.11"),
        "{}",
        err.message()
    );
    let s = status(&director).await;
    assert_eq!(s.refused.len(), 1);
    assert_eq!(
        (
            s.refused[0].name.as_str(),
            s.refused[0].address.as_str(),
            s.refused[0].holder.as_str()
        ),
        ("llc5", "10.0.0.99", "10.0.0.11")
    );
    assert_eq!(director.weight("10.0.0.11").await, Some(1));
    assert_eq!(director.weight("10.0.0.99").await, None);
    director.stop().await.unwrap();
}
