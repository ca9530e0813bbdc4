//! What a restart of the director costs before its first pass is done (issue 13's benchmark 2),
//! on the host, over the in-memory IPVS table: SERVICES `[[service]]`s of DESTS
//! `[[service.realserver]]`s each (the config `deploy/lab/scenarios/bench/lib.sh` writes), the
//! table already holding all of them (as after a restart), then the config read, the director
//! made and its first pass, which must apply nothing. Prints the time of each step.
//!
//!   cargo run --release -p lb-director --features testing --example restart_load -- [SERVICES] [DESTS] [CHECK]
//!
//! Defaults: 1000 services of 10 realservers, `[service.check] type = "none"` (the bench's;
//! "tcp" makes the pass list every destination for the health monitor, which is not started
//! here). Instruction counts are repeatable on a busy host; the first pass alone:
//!
//!   valgrind --tool=callgrind --toggle-collect='lb_director::reconciler::Reconciler*pass_inner*' \
//!     target/release/examples/restart_load
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is its report

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use lb_director::config::DirectorConfig;
use lb_director::director::Director;
use lb_director::host::{HostSetup, MemoryAddresses, SysctlTree};
use lb_director::reconciler::Reconciler;
use lb_director::testing::fake_proc_sys;
use lb_ipvs::{IpvsBackend, IpvsOp, MemoryIpvs};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let (services, dests) = (number(0, 1000), number(1, 10));
    let check = args.get(2).map_or("none", String::as_str);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("director.toml");
    std::fs::write(&path, config_text(dir.path(), services, dests, check)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ipvs = Arc::new(MemoryIpvs::new());
    runtime.block_on(fill(&ipvs, &DirectorConfig::load(&path).unwrap()));
    runtime.block_on(restart(&path, dir.path(), ipvs, services * (dests + 1)));
}

/// The bench's config (its interface is the fake host's eth0).
fn config_text(dir: &Path, services: usize, dests: usize, check: &str) -> String {
    let mut text = format!(
        "listen = \"127.0.0.1:7700\"\nstate_dir = \"{}/state\"\nadmin_socket = \"\"\n",
        dir.display()
    );
    for i in 0..services {
        write!(
            text,
            "\n[[service]]\nname = \"s{i}\"\nvip = \"10.0.0.100\"\nport = {}\nscheduler = \"wlc\"\ninterface = \"eth0\"\n[service.check]\ntype = \"{check}\"\n",
            10000 + i
        )
        .unwrap();
        for j in 0..dests {
            write!(
                text,
                "[[service.realserver]]\naddress = \"10.0.0.{}\"\n",
                11 + j
            )
            .unwrap();
        }
    }
    text
}

/// The table a previous director left: every service and destination of `config`.
async fn fill(ipvs: &MemoryIpvs, config: &DirectorConfig) {
    let mut ops = Vec::new();
    for service in &config.services {
        ops.push(IpvsOp::AddService(service.ipvs_service()));
        for rs in &service.realservers {
            ops.push(IpvsOp::AddDestination {
                service: service.key(),
                destination: service.static_destination(rs, rs.weight),
            });
        }
    }
    let results = ipvs.apply(&ops).await.unwrap();
    assert!(results.iter().all(Result::is_ok), "the fake refused an add");
}

/// The restart: the config read, the director (its state file), the first pass.
async fn restart(path: &Path, dir: &Path, ipvs: Arc<MemoryIpvs>, entries: usize) {
    let started = Instant::now();
    let config = Arc::new(DirectorConfig::load(path).unwrap());
    let loaded = started.elapsed();
    let director = Arc::new(Director::new(config).unwrap());
    let addresses = Arc::new(MemoryAddresses::with_interfaces(&["eth0"]));
    let host = HostSetup::new(addresses, SysctlTree::new(fake_proc_sys(dir)));
    let made = started.elapsed();
    let (mut reconciler, _monitor) = Reconciler::new(director, ipvs.clone(), host);
    let writes = ipvs.writes();
    let report = reconciler.first_pass().await.unwrap();
    let passed = started.elapsed();
    assert_eq!(report.applied + report.failed, 0, "{report:?}");
    assert_eq!(ipvs.writes(), writes, "the first pass wrote to the table");
    println!(
        "restart over {entries} entries: config {:.1} ms, director {:.1} ms, first pass {:.1} ms (0 operations), total {:.1} ms",
        ms(loaded),
        ms(made - loaded),
        ms(passed - made),
        ms(passed),
    );
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
