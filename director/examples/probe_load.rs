//! What health checks cost the director (issue 9's benchmark): the real `HealthMonitor` probing
//! SERVICES x DESTINATIONS targets with `ssh` checks at the default interval, against sshd
//! stand-ins (a banner, then close) in a child process, so only the monitor is measured.
//! Prints the CPU the monitor used (% of one core, from /proc/self/stat) and its peak RSS.
//!
//!   cargo run --release -p lb-director --example probe_load -- [SERVICES] [DESTINATIONS] [SECONDS]
//!
//! Defaults: 1000 services x 10 destinations for 30 s. The stand-ins listen on 127.0.0.2 to
//! 127.0.0.101 (one address per 100 targets), so loopback's ephemeral ports are never the limit.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is its report

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use lb_director::health::{CheckConfig, HealthMonitor, Target, TargetKey};
use lb_shared::domain::Protocol;
use lb_shared::probe::CheckKind;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

mod measure;

const PORT: u16 = 2222;
const ADDRESSES: u8 = 100;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if args.first().map(String::as_str) == Some("--serve") {
        runtime.block_on(serve());
        return;
    }
    let number = |i: usize, default: usize| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let (services, destinations, seconds) = (number(0, 1000), number(1, 10), number(2, 30));
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--serve")
        .spawn()
        .unwrap();
    runtime.block_on(measure(services, destinations, seconds));
    // Our own child, by its handle.
    let _ = child.kill();
    let _ = child.wait();
}

fn address(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        0,
        2 + (i % usize::from(ADDRESSES)) as u8,
    ))
}

/// The sshd stand-ins: each connection gets a banner and is closed.
async fn serve() {
    for i in 0..usize::from(ADDRESSES) {
        let listener = tokio::net::TcpListener::bind((address(i), PORT))
            .await
            .unwrap();
        tokio::spawn(async move {
            loop {
                if let Ok((mut conn, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        let _ = conn.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").await;
                    });
                }
            }
        });
    }
    std::future::pending::<()>().await;
}

async fn measure(services: usize, destinations: usize, seconds: usize) {
    // Wait for the stand-ins.
    for _ in 0..500 {
        if tokio::net::TcpStream::connect((address(usize::from(ADDRESSES) - 1), PORT))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let check = CheckConfig {
        kind: CheckKind::Ssh,
        ..CheckConfig::default_for(Protocol::Tcp)
    };
    let mut targets = BTreeMap::new();
    for s in 0..services {
        for d in 0..destinations {
            targets.insert(
                TargetKey {
                    service: format!("svc{s}"),
                    addr: SocketAddr::new(address(s * destinations + d), PORT),
                },
                Target {
                    realserver_name: format!("rs{d}"),
                    check: check.clone(),
                },
            );
        }
    }
    let count = targets.len();
    let (_keep, wanted) = tokio::sync::watch::channel(targets);
    let monitor = HealthMonitor::new(wanted);
    let health = monitor.health();
    let stop = CancellationToken::new();
    let task = tokio::spawn(monitor.run(stop.clone()));
    // One interval to settle (every target's first probe), then the measured window.
    tokio::time::sleep(check.interval).await;
    let (cpu0, t0) = (measure::cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds as u64)).await;
    let (cpu1, t1) = (measure::cpu_seconds(), Instant::now());
    stop.cancel();
    let _ = task.await;
    let down = health.borrow().values().filter(|h| !h.up).count();
    let wall = (t1 - t0).as_secs_f64();
    println!(
        "targets {count} ({services} services x {destinations}), ssh every {:?}: cpu {:.1}% of one core over {wall:.0} s, peak RSS {} MiB, {down} down at the end",
        check.interval,
        100.0 * (cpu1 - cpu0) / wall,
        measure::status_kib("VmHWM") / 1024,
    );
}
