//! `ipvs-bench`: times lb-ipvs against the kernel's IPVS table, for the lab's benchmarks
//! (`deploy/bench.sh`). It writes and deletes services on the lab's VIP, so it runs only
//! inside the lab VM (LB_LAB_VM=1).
//!
//! ```text
//! ipvs-bench rules SERVICES DESTS   print the table as `ipvsadm -R` input
//! ipvs-bench apply SERVICES DESTS   write that table in pipelined requests
//! ipvs-bench read                   read every service and its destinations, many at once
//! ipvs-bench read-serial            the same, one service after the other
//! ipvs-bench wait-table SERVICES DESTS [--background] LOG -- CMD...
//!                                   start CMD (output to LOG), time until the kernel holds
//!                                   that table (keepalived loading it)
//! ipvs-bench wait-weight VIP:PORT RIP:PORT up|down [--background] LOG -- CMD...
//!                                   start CMD, time until RIP:PORT's weight in the TCP
//!                                   service VIP:PORT is above 0 (up) or 0 (down), read every
//!                                   millisecond (an agent's start, `lbctl drain`)
//! ipvs-bench run FILE               run FILE's commands, one a line, and time them all
//!                                   (the agent's iptables calls)
//! ```
//! Each timed mode prints one line `BENCH <mode> [pid=P] [entries=N] seconds=S` (seconds
//! last). `--background` is for a daemon: it is left running once the kernel shows the result
//! (its PID is printed); without it the command must also exit 0.

mod spawned;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Instant;

use lb_ipvs::{Destination, ForwardMethod, IpvsBackend, IpvsOp, NetlinkIpvs, Protocol};
use lb_ipvs::{Service, ServiceKey};
use spawned::{Spawn, Weight};

const USAGE: &str = "usage: ipvs-bench rules|apply SERVICES DESTS | read | read-serial
       ipvs-bench wait-table SERVICES DESTS [--background] LOG -- CMD...
       ipvs-bench wait-weight VIP:PORT RIP:PORT up|down [--background] LOG -- CMD...
       ipvs-bench run FILE";
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const FIRST_PORT: u16 = 10_000;

enum Mode {
    Rules(u16, u8),
    Apply(u16, u8),
    Read { parallel: bool },
    WaitTable(u16, u8, Spawn),
    WaitWeight(SocketAddr, SocketAddr, Weight, Spawn),
    Run(String),
}

fn mode(args: &[String]) -> Option<Mode> {
    let size = |s: &str, d: &str| Some((s.parse().ok()?, d.parse().ok()?));
    match args {
        [m, s, d] if m == "rules" => size(s, d).map(|(s, d)| Mode::Rules(s, d)),
        [m, s, d] if m == "apply" => size(s, d).map(|(s, d)| Mode::Apply(s, d)),
        [m] if m == "read" => Some(Mode::Read { parallel: true }),
        [m] if m == "read-serial" => Some(Mode::Read { parallel: false }),
        [m, f] if m == "run" => Some(Mode::Run(f.clone())),
        [m, s, d, rest @ ..] if m == "wait-table" => {
            let (s, d) = size(s, d)?;
            Some(Mode::WaitTable(s, d, Spawn::parse(rest)?))
        }
        [m, service, dest, want, rest @ ..] if m == "wait-weight" => {
            let want = match want.as_str() {
                "up" => Weight::Up,
                "down" => Weight::Down,
                _ => return None,
            };
            let (service, dest) = (service.parse().ok()?, dest.parse().ok()?);
            Some(Mode::WaitWeight(service, dest, want, Spawn::parse(rest)?))
        }
        _ => None,
    }
}

/// Service `i` of the benchmark table: TCP on the VIP, one port each.
fn service(i: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: IpAddr::V4(VIP),
        port: FIRST_PORT + i,
    }
}

/// Destination `d` of every service: the lab's subnet from 10.0.0.11 on, port 22, routed.
fn destination(d: u8) -> Destination {
    let addr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11 + d));
    Destination::new(addr, 22, ForwardMethod::Route, 1)
}

fn rules(services: u16, dests: u8) -> String {
    let mut text = String::new();
    for i in 0..services {
        text.push_str(&format!("-A -t {VIP}:{} -s wlc\n", FIRST_PORT + i));
        for d in 0..dests {
            let dest = destination(d);
            text.push_str(&format!(
                "-a -t {VIP}:{} -r {}:22 -g -w 1\n",
                FIRST_PORT + i,
                dest.addr
            ));
        }
    }
    text
}

async fn apply(ipvs: &NetlinkIpvs, services: u16, dests: u8) -> Result<usize, String> {
    let mut ops = Vec::new();
    for i in 0..services {
        ops.push(IpvsOp::AddService(Service::new(service(i), "wlc")));
        for d in 0..dests {
            ops.push(IpvsOp::AddDestination {
                service: service(i),
                destination: destination(d),
            });
        }
    }
    let results = ipvs.apply(&ops).await.map_err(|e| e.to_string())?;
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        return Err(e.to_string());
    }
    Ok(ops.len())
}

async fn read(ipvs: &NetlinkIpvs, parallel: bool) -> Result<usize, String> {
    let services = ipvs.services().await.map_err(|e| e.to_string())?;
    let keys: Vec<ServiceKey> = services.iter().map(|s| s.service.key).collect();
    let lists = if parallel {
        ipvs.destinations_of(&keys).await
    } else {
        let mut lists = Vec::new();
        for key in &keys {
            lists.push(ipvs.destinations(key).await.map_err(|e| e.to_string())?);
        }
        Ok(lists)
    }
    .map_err(|e| e.to_string())?;
    Ok(keys.len() + lists.iter().map(Vec::len).sum::<usize>())
}

/// Times `work`, which answers the entries it wrote or read.
async fn timed(
    work: impl std::future::Future<Output = Result<usize, String>>,
) -> Result<String, String> {
    let started = Instant::now();
    let entries = work.await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(format!("entries={entries} seconds={seconds:.3}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = mode(&args) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if let Mode::Rules(services, dests) = mode {
        print!("{}", rules(services, dests));
        return ExitCode::SUCCESS;
    }
    if let Mode::Run(file) = mode {
        return match spawned::run_commands(&file) {
            Ok((commands, seconds)) => {
                println!("BENCH run commands={commands} seconds={seconds:.4}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ipvs-bench run: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if std::env::var("LB_LAB_VM").as_deref() != Ok("1") {
        eprintln!("ipvs-bench: refusing to run outside the lab VM (LB_LAB_VM=1): it writes the kernel's IPVS table");
        return ExitCode::from(2);
    }
    // The director's runtime: one worker per core.
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ipvs-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let ipvs = match NetlinkIpvs::connect().await {
            Ok(ipvs) => ipvs,
            Err(e) => {
                eprintln!("ipvs-bench: {e}");
                return ExitCode::FAILURE;
            }
        };
        let (name, outcome) = match mode {
            Mode::Apply(services, dests) => ("apply", timed(apply(&ipvs, services, dests)).await),
            Mode::Read { parallel: true } => ("read", timed(read(&ipvs, true)).await),
            Mode::Read { parallel: false } => ("read-serial", timed(read(&ipvs, false)).await),
            Mode::WaitTable(services, dests, spawn) => {
                let last = service(services.saturating_sub(1));
                let waited = spawned::wait_table(&ipvs, services, dests, last, &spawn).await;
                let line = waited.map(|(t, entries)| {
                    format!("pid={} entries={entries} seconds={:.3}", t.pid, t.seconds)
                });
                ("wait-table", line)
            }
            Mode::WaitWeight(service, dest, want, spawn) => {
                let waited = spawned::wait_weight(&ipvs, service, dest, want, &spawn).await;
                let line = waited.map(|t| format!("pid={} seconds={:.4}", t.pid, t.seconds));
                ("wait-weight", line)
            }
            Mode::Rules(..) | Mode::Run(..) => unreachable!("done above"),
        };
        match outcome {
            Ok(line) => {
                println!("BENCH {name} {line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ipvs-bench {name}: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
