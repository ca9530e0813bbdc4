//! Issue 9 over loopback: the director probes each destination (here a listener on 127.0.0.1
//! that speaks SSH, or does not), and the agents' own verdicts come in heartbeats. Down means
//! weight 0; up again restores the weight; a drain always wins.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use lb_ipvs::{IpvsBackend, MemoryIpvs, ServiceKey};
use lb_proto as pb;
use lb_shared::domain::Protocol;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// An sshd stand-in on 127.0.0.1: sends a banner while `speaks`, accepts and says nothing
/// otherwise (a hung sshd). Dropping the task closes the port (a dead sshd).
struct FakeSshd {
    port: u16,
    speaks: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeSshd {
    async fn start(port: u16) -> FakeSshd {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let speaks = Arc::new(AtomicBool::new(true));
        let flag = speaks.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                if flag.load(Ordering::SeqCst) {
                    let _ = conn.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").await;
                } else {
                    held.push(conn);
                }
            }
        });
        FakeSshd { port, speaks, task }
    }

    fn stop(self) -> u16 {
        self.task.abort();
        self.port
    }
}

fn config(dir: &std::path::Path, port: u16) -> String {
    format!(
        r#"{}
[[service]]
name = "local-ssh"
vip = "10.0.0.102"
port = {port}
scheduler = "rr"
interface = "eth0"

[service.check]
type = "ssh"
interval = "200ms"
timeout = "100ms"
fall = 2
rise = 2
"#,
        config_text(dir, "6s")
    )
}

fn key(port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: "10.0.0.102".parse().unwrap(),
        port,
    }
}

async fn weight(ipvs: &MemoryIpvs, port: u16) -> Option<u32> {
    ipvs.destinations(&key(port))
        .await
        .unwrap()
        .first()
        .map(|d| d.destination.weight)
}

async fn wait_weight(ipvs: &MemoryIpvs, port: u16, want: u32, what: &str) {
    for _ in 0..500 {
        if weight(ipvs, port).await == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{what}: weight is {:?}, not {want}",
        weight(ipvs, port).await
    );
}

async fn join_local(director: &TestDirector, weight: u32) -> String {
    let mut registry = director.registry().await;
    let lease = registry
        .register(pb::RegisterRequest {
            name: "local".into(),
            address: "127.0.0.1".into(),
            services: vec![pb::ServiceWeight {
                service: "local-ssh".into(),
                weight,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let check = lease.bindings[0].check.clone().unwrap();
    assert_eq!(
        (check.r#type.as_str(), check.fall, check.rise),
        ("ssh", 2, 2)
    );
    registry
        .confirm(pb::ConfirmRequest {
            lease_id: lease.lease_id.clone(),
        })
        .await
        .unwrap();
    lease.lease_id
}

async fn health_of(director: &TestDirector) -> (String, String) {
    let status = director
        .admin()
        .await
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let service = status
        .services
        .iter()
        .find(|s| s.name == "local-ssh")
        .unwrap();
    let rs = &service.realservers[0];
    (rs.health.clone(), rs.health_reason.clone())
}

async fn wait_health(director: &TestDirector, want: &str) {
    for _ in 0..500 {
        if health_of(director).await.0 == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "health never became {want}: {:?}",
        health_of(director).await
    );
}

#[tokio::test]
async fn a_dead_or_hung_sshd_goes_to_weight_0_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = FakeSshd::start(0).await;
    let port = sshd.port;
    let ipvs = Arc::new(MemoryIpvs::new());
    let director =
        TestDirector::start_with(ipvs.clone(), dir.path(), &config(dir.path(), port)).await;
    join_local(&director, 3).await;
    assert_eq!(weight(&ipvs, port).await, Some(3));
    assert_eq!(health_of(&director).await.0, "up");

    // Hung: accepts, never speaks.
    sshd.speaks.store(false, Ordering::SeqCst);
    wait_weight(&ipvs, port, 0, "a hung sshd").await;
    assert_eq!(
        health_of(&director).await,
        ("down".into(), "no banner".into())
    );
    sshd.speaks.store(true, Ordering::SeqCst);
    wait_weight(&ipvs, port, 3, "the sshd speaks again").await;

    // Dead: the port is closed.
    let port = sshd.stop();
    wait_weight(&ipvs, port, 0, "a dead sshd").await;
    assert_eq!(
        health_of(&director).await,
        ("down".into(), "refused".into())
    );
    let sshd = FakeSshd::start(port).await;
    wait_weight(&ipvs, port, 3, "sshd started again").await;
    sshd.stop();
    director.stop().await.unwrap();
}

#[tokio::test]
async fn a_drained_realserver_that_recovers_stays_drained() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = FakeSshd::start(0).await;
    let port = sshd.port;
    let ipvs = Arc::new(MemoryIpvs::new());
    let director =
        TestDirector::start_with(ipvs.clone(), dir.path(), &config(dir.path(), port)).await;
    join_local(&director, 1).await;
    director
        .admin()
        .await
        .drain(pb::DrainRequest {
            name: "local".into(),
        })
        .await
        .unwrap();
    let port = sshd.stop();
    wait_health(&director, "down").await;
    let sshd = FakeSshd::start(port).await;
    wait_health(&director, "up").await;
    // The pass that saw it up has run (status reads its snapshot): still drained.
    assert_eq!(weight(&ipvs, port).await, Some(0), "health undid a drain");
    director
        .admin()
        .await
        .undrain(pb::UndrainRequest {
            name: "local".into(),
        })
        .await
        .unwrap();
    wait_weight(&ipvs, port, 1, "undrained").await;
    sshd.stop();
    director.stop().await.unwrap();
}

/// The agent's self-check arrives in heartbeats: a destination is up only if both say up.
#[tokio::test]
async fn an_agent_reporting_its_service_down_quiesces_it() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = FakeSshd::start(0).await;
    let port = sshd.port;
    let ipvs = Arc::new(MemoryIpvs::new());
    let director =
        TestDirector::start_with(ipvs.clone(), dir.path(), &config(dir.path(), port)).await;
    let lease_id = join_local(&director, 2).await;
    let mut registry = director.registry().await;
    let beat = |up: bool| pb::HeartbeatRequest {
        lease_id: lease_id.clone(),
        health: vec![pb::ServiceHealth {
            service: "local-ssh".into(),
            up,
            reason: if up {
                String::new()
            } else {
                "no SSH banner within 1s".into()
            },
        }],
    };
    registry.heartbeat(beat(false)).await.unwrap();
    wait_weight(&ipvs, port, 0, "the agent says down").await;
    assert_eq!(
        health_of(&director).await,
        ("down".into(), "agent: no SSH banner within 1s".into())
    );
    registry.heartbeat(beat(true)).await.unwrap();
    wait_weight(&ipvs, port, 2, "the agent says up").await;
    sshd.stop();
    director.stop().await.unwrap();
}

#[tokio::test]
async fn a_configured_realserver_is_checked_like_a_registered_one() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = FakeSshd::start(0).await;
    let port = sshd.port;
    let text = format!(
        "{}\n[[service.realserver]]\nname = \"local\"\naddress = \"127.0.0.1\"\nweight = 4\n",
        config(dir.path(), port)
    );
    let ipvs = Arc::new(MemoryIpvs::new());
    let director = TestDirector::start_with(ipvs.clone(), dir.path(), &text).await;
    wait_health(&director, "up").await;
    assert_eq!(weight(&ipvs, port).await, Some(4));
    let port = sshd.stop();
    wait_weight(&ipvs, port, 0, "the configured realserver's sshd died").await;
    assert_eq!(
        health_of(&director).await,
        ("down".into(), "refused".into())
    );
    let sshd = FakeSshd::start(port).await;
    wait_weight(&ipvs, port, 4, "its sshd started again").await;
    sshd.stop();
    director.stop().await.unwrap();
}
