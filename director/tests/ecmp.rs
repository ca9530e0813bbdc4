//! Issue 12 part 2, `[ha] mode = "ecmp"` on the in-memory backends: every director is active,
//! owns its VIP, sets `sloppy_tcp`, runs no sync daemon, and two directors that saw the same
//! realservers in another order (and drained one) hold the same mh destination list, so the
//! kernel builds the same Maglev table on each and a flow keeps its realserver when the
//! gateway moves it to the other director.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use lb_ipvs::{IpvsBackend, MemoryIpvs};
use lb_proto as pb;

fn ecmp_config(dir: &std::path::Path) -> String {
    config_text(dir, "6s").replace(
        "scheduler = \"rr\"",
        "scheduler = \"mh\"\nscheduler_flags = [\"mh-port\"]",
    ) + "\n[ha]\nmode = \"ecmp\"\n"
}

/// (address, weight) in the kernel's list order.
async fn listed(director: &TestDirector) -> Vec<(String, u32)> {
    director
        .table()
        .await
        .into_iter()
        .map(|d| (d.destination.addr.to_string(), d.destination.weight))
        .collect()
}

async fn eventually_listed(director: &TestDirector, want: &[(&str, u32)]) {
    let want: Vec<(String, u32)> = want.iter().map(|(a, w)| ((*a).to_owned(), *w)).collect();
    for _ in 0..400 {
        if listed(director).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "timed out waiting for the list {want:?}; it is {:?}",
        listed(director).await
    );
}

async fn drain_llc5(director: &TestDirector) {
    director
        .admin()
        .await
        .drain(pb::DrainRequest {
            name: "llc5".into(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn two_directors_that_saw_registrations_in_another_order_hold_the_same_mh_list() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ipvs_a, ipvs_b) = (Arc::new(MemoryIpvs::new()), Arc::new(MemoryIpvs::new()));
    let a =
        TestDirector::start_with(ipvs_a.clone(), dir_a.path(), &ecmp_config(dir_a.path())).await;
    let b =
        TestDirector::start_with(ipvs_b.clone(), dir_b.path(), &ecmp_config(dir_b.path())).await;

    let mut to_a = a.registry().await;
    join(&mut to_a, "llc5", "10.0.0.11", 1).await;
    eventually_listed(&a, &[("10.0.0.11", 1)]).await;
    join(&mut to_a, "llc6", "10.0.0.12", 1).await;
    let mut to_b = b.registry().await;
    join(&mut to_b, "llc6", "10.0.0.12", 1).await;
    eventually_listed(&b, &[("10.0.0.12", 1)]).await;
    join(&mut to_b, "llc5", "10.0.0.11", 1).await;
    // Without the plan's reordering a would list 12 first (the kernel adds at the head).
    let both = [("10.0.0.11", 1), ("10.0.0.12", 1)];
    eventually_listed(&a, &both).await;
    eventually_listed(&b, &both).await;

    // Traffic on llc5 through a: the drain's delete and add keeps its connections.
    a.connections("10.0.0.11", 2, 1);
    drain_llc5(&a).await;
    drain_llc5(&b).await;
    let drained = [("10.0.0.11", 0), ("10.0.0.12", 1)];
    eventually_listed(&a, &drained).await;
    eventually_listed(&b, &drained).await;
    let llc5 = a.table().await.remove(0);
    assert_eq!((llc5.active_conns, llc5.inactive_conns), (2, 1));

    for (director, ipvs, dir) in [(&a, &ipvs_a, &dir_a), (&b, &ipvs_b, &dir_b)] {
        let status = director.status().await;
        assert_eq!(status.role, pb::DirectorRole::Ecmp as i32);
        let service = ipvs.services().await.unwrap().remove(0).service;
        assert_eq!(service.scheduler, "mh");
        assert_eq!(service.flags.0, lb_ipvs::ServiceFlags::SCHED2, "mh-port");
        assert!(ipvs.daemons().await.unwrap().is_empty(), "no sync daemon");
        let sloppy = dir.path().join("proc-sys/net/ipv4/vs/sloppy_tcp");
        assert_eq!(std::fs::read_to_string(sloppy).unwrap().trim(), "1");
        let samples = director.scrape().await;
        assert_eq!(samples.value("lb_director_active", &[]), Some(1.0));
    }
}
