//! Contract cases for the table as a whole: info, timeouts, batches, sync daemons.

use std::net::IpAddr;

use super::helpers::*;
use super::Failure;
use crate::backend::{IpvsBackend, IpvsOp};
use crate::types::*;

/// `ipvsadm --version`: IPVS 1.2.1 and a connection table whose size is a power of two.
pub async fn info_reports_version<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let info = ipvs.info().await.map_err(backend("read info"))?;
    same("version", &0x010201, &info.version)?;
    same(
        "connection table size is a power of two",
        &true,
        &info.conn_table_size.is_power_of_two(),
    )
}

/// `ipvsadm --set`: a fresh kernel has 900/120/300 seconds; 0 leaves a value unchanged.
pub async fn timeouts_get_set<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let read = || async { ipvs.timeouts().await.map_err(backend("read timeouts")) };
    let fresh = Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    };
    same("fresh timeouts", &fresh, &read().await?)?;
    let tcp_only = Timeouts {
        tcp: 259200,
        tcp_fin: 0,
        udp: 0,
    };
    apply_ok(ipvs, &[IpvsOp::SetTimeouts(tcp_only)]).await?;
    let after_tcp = Timeouts {
        tcp: 259200,
        ..fresh
    };
    same("after --set 259200 0 0", &after_tcp, &read().await?)?;
    let others = Timeouts {
        tcp: 0,
        tcp_fin: 30,
        udp: 60,
    };
    apply_ok(ipvs, &[IpvsOp::SetTimeouts(others)]).await?;
    let expected = Timeouts {
        tcp: 259200,
        tcp_fin: 30,
        udp: 60,
    };
    same("after --set 0 30 60", &expected, &read().await?)?;
    // Above INT_MAX / HZ seconds every kernel refuses (HZ is at least 100), all three kept.
    let too_long = Timeouts {
        tcp: 1,
        tcp_fin: 100_000_000,
        udp: 1,
    };
    apply_refused(ipvs, IpvsOp::SetTimeouts(too_long), libc::EINVAL).await?;
    same("after a refused --set", &expected, &read().await?)
}

/// In one batch, the ops the kernel refuses fail alone: the others apply, and every op gets
/// its own result, in order.
pub async fn batch_with_a_failure_in_the_middle<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let service = tcp(22);
    let first = dest(11, 22, ForwardMethod::Route, 1);
    let second = dest(12, 22, ForwardMethod::Route, 1);
    let second_heavier = Destination {
        weight: 4,
        ..second.clone()
    };
    let ops = [
        IpvsOp::AddService(Service::new(service, "rr")),
        add_dest(service, first.clone()),
        add_dest(service, first.clone()),
        add_dest(service, second),
        IpvsOp::DeleteService(tcp(8080)),
        edit_dest(service, second_heavier.clone()),
    ];
    let results = ipvs.apply(&ops).await.map_err(backend("apply batch"))?;
    same("one result per op", &ops.len(), &results.len())?;
    let mut results = results.into_iter();
    let mut next = |step: &str| {
        results.next().ok_or_else(|| Failure::Mismatch {
            step: step.to_owned(),
            expected: "a result".into(),
            actual: "none".into(),
        })
    };
    next("op 1")?.map_err(backend("op 1: add service"))?;
    next("op 2")?.map_err(backend("op 2: add destination"))?;
    refused(
        "op 3: add the same destination again",
        libc::EEXIST,
        next("op 3")?,
    )?;
    next("op 4")?.map_err(backend("op 4: add another destination"))?;
    refused("op 5: delete a missing service", libc::ESRCH, next("op 5")?)?;
    next("op 6")?.map_err(backend("op 6: edit a destination"))?;
    destinations_are(
        ipvs,
        &service,
        "list after the batch",
        &[first, second_heavier],
    )
    .await
}

/// 1000 destinations in one batch, all applied and listed; then 1000 deletes in one batch.
pub async fn batch_of_1000_destinations<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let service = tcp(22);
    apply_ok(ipvs, &[IpvsOp::AddService(Service::new(service, "wrr"))]).await?;
    // 200 addresses of the lab subnet times 5 ports.
    let many: Vec<Destination> = (0..1000u32)
        .map(|i| {
            let host = 11 + (i % 200) as u8;
            let port = 1000 + (i / 200) as u16;
            Destination::new(
                IpAddr::from([10, 0, 0, host]),
                port,
                ForwardMethod::Route,
                1 + i % 7,
            )
        })
        .collect();
    let adds: Vec<IpvsOp> = many.iter().map(|d| add_dest(service, d.clone())).collect();
    apply_ok(ipvs, &adds).await?;
    let mut expected = many.clone();
    expected.sort_by_key(Destination::key);
    let listed = destination_settings(ipvs, &service).await?;
    same("number listed", &1000, &listed.len())?;
    same("list after 1000 adds", &expected, &listed)?;
    let deletes: Vec<IpvsOp> = many
        .iter()
        .map(|d| IpvsOp::DeleteDestination {
            service,
            destination: d.key(),
        })
        .collect();
    apply_ok(ipvs, &deletes).await?;
    destinations_are(ipvs, &service, "list after 1000 deletes", &[]).await
}

/// `ipvsadm --start-daemon master|backup`, `-L --daemon`, `--stop-daemon`: one daemon per
/// role (a second is EEXIST), stopping one that does not run is ESRCH.
pub async fn daemons_start_list_stop<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let list = || async {
        let mut daemons = ipvs.daemons().await.map_err(backend("list daemons"))?;
        daemons.sort_by_key(|d| d.role == SyncRole::Backup);
        Ok::<_, Failure>(daemons)
    };
    same(
        "no daemon on a fresh table",
        &Vec::<SyncDaemon>::new(),
        &list().await?,
    )?;
    // Loopback exists in every network namespace, the lab's and a test's.
    let master = SyncDaemon {
        role: SyncRole::Master,
        interface: "lo".into(),
        sync_id: 1,
    };
    let backup = SyncDaemon {
        role: SyncRole::Backup,
        interface: "lo".into(),
        sync_id: 2,
    };
    ipvs.start_daemon(&master)
        .await
        .map_err(backend("start master"))?;
    refused(
        "start a second master",
        libc::EEXIST,
        ipvs.start_daemon(&master).await,
    )?;
    ipvs.start_daemon(&backup)
        .await
        .map_err(backend("start backup"))?;
    same("list both", &vec![master, backup.clone()], &list().await?)?;
    ipvs.stop_daemon(SyncRole::Master)
        .await
        .map_err(backend("stop master"))?;
    refused(
        "stop a stopped master",
        libc::ESRCH,
        ipvs.stop_daemon(SyncRole::Master).await,
    )?;
    same(
        "list after stopping master",
        &vec![backup.clone()],
        &list().await?,
    )?;
    ipvs.stop_daemon(SyncRole::Backup)
        .await
        .map_err(backend("stop backup"))?;
    let nowhere = SyncDaemon {
        interface: "nosuch0".into(),
        ..backup
    };
    refused(
        "start on a missing interface",
        libc::ENODEV,
        ipvs.start_daemon(&nowhere).await,
    )?;
    same(
        "list after stopping both",
        &Vec::<SyncDaemon>::new(),
        &list().await?,
    )
}
