//! Issue 11's director metrics over real HTTP on 127.0.0.1: each family's value after scripted
//! changes (registrations, a drain, connections and the kernel's counters, an agent's health
//! verdict and a probe's, a lease expiry, a refused caller, a destination leaving the table),
//! and the text through `promtool check metrics` when it is installed (required under
//! deploy/test.sh, which sets LB_REQUIRE_PROMTOOL=1).
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use lb_ipvs::{MemoryIpvs, Stats};
use lb_proto as pb;
use lb_shared::metrics::Samples;

const SSH: [(&str, &str); 4] = [
    ("service", "llc-ssh"),
    ("vip", VIP),
    ("port", "22"),
    ("protocol", "tcp"),
];

fn at(address: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut labels = SSH.to_vec();
    labels.push(("address", address));
    labels
}

/// Scrapes until `check` holds, for up to 10 s; answers the scrape that held.
async fn scrape_until(
    director: &TestDirector,
    what: &str,
    check: impl Fn(&Samples) -> bool,
) -> Samples {
    for _ in 0..500 {
        let samples = director.scrape().await;
        if check(&samples) {
            return samples;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{what}: not within 10 s; last scrape {:#?}",
        director.scrape().await
    );
}

fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples.value(name, labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_metrics_follow_registrations_drains_and_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "30s").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    join(&mut registry, "llc6", "10.0.0.12", 3).await;

    let s = director.scrape().await;
    assert_eq!(
        value(&s, "lb_destination_weight", &at("10.0.0.11")),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "lb_destination_weight", &at("10.0.0.12")),
        Some(3.0)
    );
    assert_eq!(
        value(&s, "lb_destination_desired_weight", &at("10.0.0.12")),
        Some(3.0)
    );
    assert_eq!(
        s.matching("lb_destination_weight", &at("10.0.0.11"))
            .next()
            .unwrap()
            .labels
            .get("realserver")
            .map(String::as_str),
        Some("llc5")
    );
    assert_eq!(
        value(&s, "lb_destination_drained", &at("10.0.0.11")),
        Some(0.0)
    );
    // The service has no health check: no health series at all.
    assert_eq!(s.count("lb_destination_healthy"), 0);
    assert_eq!(
        value(
            &s,
            "lb_realserver_lease_alive",
            &[("realserver", "llc5"), ("address", "10.0.0.11")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "lb_registrations_total", &[("result", "ok")]),
        Some(2.0)
    );
    assert_eq!(
        value(
            &s,
            "lb_ipvs_ops_total",
            &[("op", "add_destination"), ("result", "ok")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &s,
            "lb_ipvs_ops_total",
            &[("op", "add_service"), ("result", "ok")]
        ),
        Some(1.0)
    );
    assert!(value(&s, "lb_reconcile_duration_seconds_count", &[]).unwrap() >= 3.0);
    assert!(value(&s, "lb_reconcile_last_success_timestamp_seconds", &[]).unwrap() > 1.7e9);
    assert_eq!(
        s.types
            .get("lb_service_connections_total")
            .map(String::as_str),
        Some("counter")
    );

    // Traffic: connections on llc5 and the service's counters, seen by the next pass.
    director.connections("10.0.0.11", 3, 2);
    director
        .ipvs
        .set_service_stats(
            &ssh_key(),
            Stats {
                conns: 41,
                in_packets: 1000,
                out_packets: 0,
                in_bytes: 64000,
                out_bytes: 0,
                ..Stats::default()
            },
        )
        .unwrap();
    let mut admin = director.admin().await;
    admin
        .drain(pb::DrainRequest {
            name: "llc5".into(),
        })
        .await
        .unwrap();
    let s = director.scrape().await;
    assert_eq!(
        value(&s, "lb_destination_weight", &at("10.0.0.11")),
        Some(0.0)
    );
    assert_eq!(
        value(&s, "lb_destination_desired_weight", &at("10.0.0.11")),
        Some(0.0)
    );
    assert_eq!(
        value(&s, "lb_destination_drained", &at("10.0.0.11")),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "lb_destination_drained", &at("10.0.0.12")),
        Some(0.0)
    );
    assert_eq!(
        value(&s, "lb_destination_connections_active", &at("10.0.0.11")),
        Some(3.0)
    );
    assert_eq!(
        value(&s, "lb_destination_connections_inactive", &at("10.0.0.11")),
        Some(2.0)
    );
    assert_eq!(value(&s, "lb_service_connections_total", &SSH), Some(41.0));
    let mut inbound = SSH.to_vec();
    inbound.push(("direction", "in"));
    assert_eq!(
        value(&s, "lb_service_packets_total", &inbound),
        Some(1000.0)
    );
    assert_eq!(value(&s, "lb_service_bytes_total", &inbound), Some(64000.0));
    assert_eq!(
        value(
            &s,
            "lb_ipvs_ops_total",
            &[("op", "edit_destination"), ("result", "ok")]
        ),
        Some(1.0)
    );

    // llc6 leaves: with no connections its destination goes, and so do its series.
    let s = director.scrape().await;
    assert_eq!(
        s.matching("lb_destination_weight", &at("10.0.0.12"))
            .count(),
        1
    );
    let lease = registry
        .register(register_request("llc6", "10.0.0.12", 3))
        .await
        .unwrap()
        .into_inner()
        .lease_id;
    registry
        .deregister(pb::DeregisterRequest { lease_id: lease })
        .await
        .unwrap();
    let s = scrape_until(&director, "llc6's series gone", |s| {
        s.samples
            .iter()
            .filter(|x| x.name.starts_with("lb_destination_"))
            .all(|x| x.labels.get("address").map(String::as_str) != Some("10.0.0.12"))
    })
    .await;
    assert_eq!(
        value(&s, "lb_destination_weight", &at("10.0.0.11")),
        Some(0.0)
    );
    assert_eq!(
        value(
            &s,
            "lb_ipvs_ops_total",
            &[("op", "delete_destination"), ("result", "ok")]
        ),
        Some(1.0)
    );
    promtool_check(&director).await;
    director.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_expires_shows_dead_and_quiesced() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "1s").await;
    let mut registry = director.registry().await;
    let lease = join(&mut registry, "llc5", "10.0.0.11", 2).await;
    registry
        .heartbeat(pb::HeartbeatRequest {
            lease_id: lease,
            health: vec![],
        })
        .await
        .unwrap();
    let s = director.scrape().await;
    assert_eq!(
        value(&s, "lb_heartbeats_total", &[("result", "ok")]),
        Some(1.0)
    );
    // No more heartbeats: the agent has crashed. An open session keeps the destination,
    // quiesced, in the table.
    director.connections("10.0.0.11", 1, 0);
    let llc5 = [("realserver", "llc5"), ("address", "10.0.0.11")];
    let s = scrape_until(&director, "lease expired", |s| {
        value(s, "lb_realserver_lease_alive", &llc5) == Some(0.0)
    })
    .await;
    assert_eq!(
        value(&s, "lb_destination_weight", &at("10.0.0.11")),
        Some(0.0)
    );
    assert_eq!(
        value(&s, "lb_destination_desired_weight", &at("10.0.0.11")),
        Some(0.0)
    );
    // A heartbeat on the dead lease is counted as unknown.
    let _ = registry
        .heartbeat(pb::HeartbeatRequest {
            lease_id: "0123456789abcdef0123456789abcdef".into(),
            health: vec![],
        })
        .await
        .unwrap_err();
    let s = director.scrape().await;
    assert_eq!(
        value(&s, "lb_heartbeats_total", &[("result", "unknown")]),
        Some(1.0)
    );
    director.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_verdicts_and_refusals_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    // A checked service on 127.0.0.1 whose probe fails at once (nothing listens on port 1),
    // and a listed realserver, so that others are refused.
    let text = format!(
        r#"{}
[[service]]
name = "local"
vip = "10.0.0.102"
port = 1
scheduler = "rr"
interface = "eth0"

[service.check]
type = "tcp"
interval = "200ms"
timeout = "100ms"
fall = 1
rise = 1

[[realserver]]
name = "llc5"
address = "10.0.0.11"

[[realserver]]
name = "local"
address = "127.0.0.1"
"#,
        config_text(dir.path(), "30s")
    );
    let director = TestDirector::start_with(Arc::new(MemoryIpvs::new()), dir.path(), &text).await;
    let mut registry = director.registry().await;
    let local = [
        ("service", "local"),
        ("vip", "10.0.0.102"),
        ("port", "1"),
        ("address", "127.0.0.1"),
    ];
    let lease = registry
        .register(pb::RegisterRequest {
            name: "local".into(),
            address: "127.0.0.1".into(),
            services: vec![pb::ServiceWeight {
                service: "local".into(),
                weight: 5,
            }],
        })
        .await
        .unwrap()
        .into_inner()
        .lease_id;
    registry
        .confirm(pb::ConfirmRequest {
            lease_id: lease.clone(),
        })
        .await
        .unwrap();
    let s = scrape_until(&director, "the probe finds port 1 closed", |s| {
        value(s, "lb_destination_healthy", &local) == Some(0.0)
    })
    .await;
    assert_eq!(value(&s, "lb_destination_weight", &local), Some(0.0));
    assert_eq!(
        value(&s, "lb_destination_desired_weight", &local),
        Some(0.0)
    );
    assert!(
        value(
            &s,
            "lb_health_transitions_total",
            &[("direction", "down"), ("source", "probe")]
        )
        .unwrap()
            >= 1.0
    );
    // llc5's agent says its sshd is down: counted as the agent's transition.
    let llc5 = join(&mut registry, "llc5", "10.0.0.11", 1).await;
    registry
        .heartbeat(pb::HeartbeatRequest {
            lease_id: llc5,
            health: vec![pb::ServiceHealth {
                service: "llc-ssh".into(),
                up: false,
                reason: "no SSH banner within 1s".into(),
            }],
        })
        .await
        .unwrap();
    let s = director.scrape().await;
    assert_eq!(
        value(
            &s,
            "lb_health_transitions_total",
            &[("direction", "down"), ("source", "agent")]
        ),
        Some(1.0)
    );
    // Unlisted, and from the wrong address: two refusals, by reason.
    let unlisted = registry
        .register(register_request("llc7", "10.0.0.17", 1))
        .await
        .unwrap_err();
    assert_eq!(unlisted.code(), tonic::Code::PermissionDenied);
    let moved = registry
        .register(register_request("llc5", "10.0.0.99", 1))
        .await
        .unwrap_err();
    assert_eq!(moved.code(), tonic::Code::PermissionDenied);
    let bad = registry
        .register(register_request("", "10.0.0.99", 1))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let s = director.scrape().await;
    assert_eq!(
        value(
            &s,
            "lb_refusals_total",
            &[("reason", "unlisted_realserver")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "lb_refusals_total", &[("reason", "wrong_address")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "lb_registrations_total", &[("result", "refused")]),
        Some(2.0)
    );
    assert_eq!(
        value(&s, "lb_registrations_total", &[("result", "invalid")]),
        Some(1.0)
    );
    promtool_check(&director).await;
    director.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_get_metrics_is_served_and_the_address_is_fixed_until_restart() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    let addr = director.metrics_addr.unwrap();
    let get = |method: &'static str, path: &'static str| async move {
        lb_shared::metrics::scrape(addr, method, path)
            .await
            .unwrap()
            .0
    };
    assert_eq!(get("GET", "/metrics").await, 200);
    assert_eq!(get("GET", "/").await, 404);
    assert_eq!(get("GET", "/status").await, 404);
    assert_eq!(get("DELETE", "/metrics").await, 405);

    let text = std::fs::read_to_string(&director.config_path).unwrap();
    let moved = format!("metrics_listen = \"127.0.0.1:9999\"\n{text}");
    let refused = director.reload_with(&moved).await.unwrap_err();
    assert!(refused.contains("metrics_listen"), "{refused}");
    assert!(refused.contains("restart"), "{refused}");
    // Still served where it was.
    assert_eq!(get("GET", "/metrics").await, 200);
    director.stop().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());

    // "" serves no metrics at all.
    let dir = tempfile::tempdir().unwrap();
    let off = format!("metrics_listen = \"\"\n{}", config_text(dir.path(), "6s"));
    let director = TestDirector::start_with(Arc::new(MemoryIpvs::new()), dir.path(), &off).await;
    assert!(director.metrics_addr.is_none());
    director.stop().await.unwrap();
}

/// Pipes a real scrape through `promtool check metrics` (skipped without promtool, except
/// under deploy/test.sh).
async fn promtool_check(director: &TestDirector) {
    let addr = director.metrics_addr.unwrap();
    let (status, body) = lb_shared::metrics::scrape(addr, "GET", "/metrics")
        .await
        .unwrap();
    assert_eq!(status, 200);
    match lb_shared::metrics::promtool_check(&body) {
        Ok(true) => {}
        Ok(false) => eprintln!("promtool not installed: check skipped"),
        Err(problem) => panic!("{problem}\n{body}"),
    }
}
