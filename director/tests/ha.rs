//! Issue 12, HA mode on the in-memory backends: keepalived (played by the test, adding and
//! removing the VIP) owns the VIP and the director follows: it never adds or removes one,
//! reports ACTIVE or STANDBY from the addresses, keeps the whole table either way, and keeps
//! both connection sync daemons running as `[ha]` says.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use lb_director::host::AddressBackend;
use lb_ipvs::{IpvsBackend, MemoryIpvs, SyncDaemon, SyncRole};
use lb_proto as pb;

/// `[ha]` on loopback, which every network namespace has (the fake checks that the sync
/// interface exists, as the kernel does).
fn ha_config(dir: &std::path::Path, sync_id: u8) -> String {
    format!(
        "{}\n[ha]\nsync_interface = \"lo\"\nsync_id = {sync_id}\n",
        config_text(dir, "6s")
    )
}

fn vip() -> IpAddr {
    VIP.parse().unwrap()
}

async fn role(director: &TestDirector) -> pb::DirectorRole {
    pb::DirectorRole::try_from(director.status().await.role).unwrap()
}

/// A director in HA mode with `sync_id`, once both its daemons run.
async fn start_ha(dir: &std::path::Path, sync_id: u8) -> (TestDirector, Arc<MemoryIpvs>) {
    let ipvs = Arc::new(MemoryIpvs::new());
    let director = TestDirector::start_with(ipvs.clone(), dir, &ha_config(dir, sync_id)).await;
    eventually("both daemons running", || async {
        daemons(&ipvs).await == wanted(u32::from(sync_id))
    })
    .await;
    (director, ipvs)
}

/// Polls `check` for up to 20 s (a loaded machine), panicking with `what`.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, check: impl Fn() -> F) {
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

async fn daemons(ipvs: &MemoryIpvs) -> Vec<SyncDaemon> {
    let mut d = ipvs.daemons().await.unwrap();
    d.sort_by_key(|d| d.role == SyncRole::Backup);
    d
}

fn wanted(sync_id: u32) -> Vec<SyncDaemon> {
    [SyncRole::Master, SyncRole::Backup]
        .map(|role| SyncDaemon {
            role,
            interface: "lo".into(),
            sync_id,
        })
        .to_vec()
}

#[tokio::test]
async fn standby_keeps_the_table_and_never_adds_the_vip() {
    let dir = tempfile::tempdir().unwrap();
    let (director, _ipvs) = start_ha(dir.path(), 54).await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    join(&mut registry, "llc6", "10.0.0.12", 2).await;
    director
        .wait_for("both realservers in the standby's table", |t| t.len() == 2)
        .await;
    assert_eq!(role(&director).await, pb::DirectorRole::Standby);
    assert_eq!(
        director.addresses.vips("eth0").unwrap(),
        Vec::<IpAddr>::new()
    );
    assert_eq!(director.weight("10.0.0.12").await, Some(2));
    let samples = director.scrape().await;
    assert_eq!(samples.value("lb_director_active", &[]), Some(0.0));
    director.stop().await.unwrap();
}

#[tokio::test]
async fn the_role_follows_the_vip_keepalived_moves() {
    let dir = tempfile::tempdir().unwrap();
    let (director, _ipvs) = start_ha(dir.path(), 54).await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    // keepalived becomes MASTER here.
    director.addresses.ensure_vip("eth0", vip()).await.unwrap();
    eventually("ACTIVE once the VIP is here", || async {
        role(&director).await == pb::DirectorRole::Active
    })
    .await;
    assert_eq!(
        director.scrape().await.value("lb_director_active", &[]),
        Some(1.0)
    );
    let writes = director.addresses.writes();
    // keepalived gives the VIP up (the peer preempts, or a failback).
    director.addresses.remove_vip("eth0", vip()).await.unwrap();
    eventually("STANDBY once the VIP is gone", || async {
        role(&director).await == pb::DirectorRole::Standby
    })
    .await;
    // Passes over a standby never put it back: several resyncs (200 ms each) go by.
    let mut registry = director.registry().await;
    join(&mut registry, "llc6", "10.0.0.12", 1).await;
    director.wait_for("llc6 added", |t| t.len() == 2).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        director.addresses.vips("eth0").unwrap(),
        Vec::<IpAddr>::new()
    );
    assert_eq!(
        director.addresses.writes(),
        writes + 1,
        "only the test's removal wrote"
    );
    assert_eq!(director.weight("10.0.0.11").await, Some(1));
    director.stop().await.unwrap();
}

#[tokio::test]
async fn sync_daemons_start_and_come_back_after_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let (director, ipvs) = start_ha(dir.path(), 54).await;
    // `ipvsadm --stop-daemon backup` by hand: the next resync starts it again.
    ipvs.stop_daemon(SyncRole::Backup).await.unwrap();
    eventually("the backup daemon restarted", || async {
        daemons(&ipvs).await == wanted(54)
    })
    .await;
    // A master daemon with another sync id (keepalived's lvs_sync_daemon, a hand): replaced.
    ipvs.stop_daemon(SyncRole::Master).await.unwrap();
    ipvs.start_daemon(&SyncDaemon {
        role: SyncRole::Master,
        interface: "lo".into(),
        sync_id: 9,
    })
    .await
    .unwrap();
    eventually("the stray master replaced", || async {
        daemons(&ipvs).await == wanted(54)
    })
    .await;
    director.stop().await.unwrap();
    // A stop leaves them running: connections keep syncing while the director restarts.
    assert_eq!(daemons(&ipvs).await, wanted(54));
}

#[tokio::test]
async fn without_ha_the_director_is_single_and_starts_no_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let ipvs = Arc::new(MemoryIpvs::new());
    let director = TestDirector::start(ipvs.clone(), dir.path(), "6s").await;
    assert_eq!(role(&director).await, pb::DirectorRole::Single);
    assert_eq!(director.addresses.vips("eth0").unwrap(), vec![vip()]);
    assert!(daemons(&ipvs).await.is_empty());
    director.stop().await.unwrap();
}

#[tokio::test]
async fn reload_changes_the_sync_id_but_never_turns_ha_on_or_off() {
    let dir = tempfile::tempdir().unwrap();
    let (director, ipvs) = start_ha(dir.path(), 54).await;
    let summary = director
        .reload_with(&ha_config(dir.path(), 55))
        .await
        .unwrap();
    assert!(summary.contains("sync_id 54 -> 55"), "{summary}");
    eventually("daemons on the new sync id", || async {
        daemons(&ipvs).await == wanted(55)
    })
    .await;
    let refused = director
        .reload_with(&config_text(dir.path(), "6s"))
        .await
        .unwrap_err();
    assert!(refused.contains("[ha]"), "{refused}");
    // Still in HA mode: no VIP added by the refused reload's config.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        director.addresses.vips("eth0").unwrap(),
        Vec::<IpAddr>::new()
    );
    director.stop().await.unwrap();

    // And the other way: a single director refuses a reload that adds [ha].
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    let refused = director
        .reload_with(&ha_config(dir.path(), 54))
        .await
        .unwrap_err();
    assert!(
        refused.contains("[ha] (turning HA mode on or off)"),
        "{refused}"
    );
    director.stop().await.unwrap();
}
