//! What many agents cost the director (issue 13's benchmark 4): AGENTS simulated agents, in a
//! child process, register, confirm and heartbeat at the pace `lb-agent` keeps (a third of the
//! lease) against a director over the in-memory IPVS table, each agent on its own connection.
//! Prints the director's CPU (% of one core, its own process only) and RSS once every agent is
//! in the table.
//!
//!   cargo run --release -p lb-director --features testing --example agent_load -- [AGENTS] [SECONDS]
//!
//! Defaults: 1000 agents for 30 s at the default lease TTL (6 s).
//!
//! Against a running lb-director instead (the lab's `bench/agents.sh`, with the kernel's table),
//! whose process PID is measured the same way, with service `llc-ssh` and a lease TTL of 6 s:
//!
//!   agent_load --external URL PID [AGENTS] [SECONDS]
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is its report

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lb_director::testing::{config_text, join, TestDirector};
use lb_ipvs::MemoryIpvs;
use lb_proto as pb;

mod measure;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if args.first().map(String::as_str) == Some("--agents") {
        let agents = args[1].parse().expect("a number");
        runtime.block_on(simulate(agents, args[2].clone()));
        return;
    }
    let number = |i: usize, default: usize| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    if args.first().map(String::as_str) == Some("--external") {
        let (url, pid) = (args[1].clone(), args[2].clone());
        runtime.block_on(measure_external(url, pid, number(3, 1000), number(4, 30)));
        return;
    }
    runtime.block_on(measure_director(number(0, 1000), number(1, 30)));
}

/// The agents in a child process against the director at `url` whose process is `pid`: its
/// CPU and RSS once every agent has joined (the child says so), over `seconds`.
async fn measure_external(url: String, pid: String, agents: usize, seconds: usize) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--agents", &agents.to_string(), &url])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let joined = lines.next().expect("the agents' child exited").unwrap();
    assert_eq!(joined, format!("joined {agents}"), "the agents' child said");
    let joined = started.elapsed();
    let (cpu0, t0) = (measure::cpu_seconds_of(&pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds as u64)).await;
    let (cpu1, t1) = (measure::cpu_seconds_of(&pid), Instant::now());
    let wall = (t1 - t0).as_secs_f64();
    println!(
        "agents={agents} joined_seconds={:.1} cpu_percent={:.1} rss_kib={} peak_kib={} over_seconds={wall:.0}",
        joined.as_secs_f64(),
        100.0 * (cpu1 - cpu0) / wall,
        measure::status_kib_of(&pid, "VmRSS"),
        measure::status_kib_of(&pid, "VmHWM"),
    );
    // Our own child, by its handle.
    let _ = child.kill();
    let _ = child.wait();
}

/// The director, and the agents in a child process so that only the director is measured.
async fn measure_director(agents: usize, seconds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let ipvs = Arc::new(MemoryIpvs::new());
    // The tests' config at the daemon's default resync (theirs is quicker, for the tests).
    let text = config_text(dir.path(), "6s")
        .replace("resync_interval = \"200ms\"", "resync_interval = \"5s\"");
    assert!(
        text.contains("resync_interval = \"5s\""),
        "the test config changed"
    );
    let director = TestDirector::start_with(ipvs.clone(), dir.path(), &text).await;
    // Serving once the first pass is done.
    let _ = director.channel().await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--agents", &agents.to_string(), &director.url()])
        .spawn()
        .unwrap();
    let started = Instant::now();
    while director.table().await.len() < agents {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {} of {agents} agents joined in 10 minutes",
            director.table().await.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let joined = started.elapsed();
    let (cpu0, t0) = (measure::cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds as u64)).await;
    let (cpu1, t1) = (measure::cpu_seconds(), Instant::now());
    let in_table = director.table().await;
    let weighted = in_table.iter().filter(|d| d.destination.weight > 0).count();
    let wall = (t1 - t0).as_secs_f64();
    println!(
        "agents {agents}, lease 6s, heartbeat every 2s, resync 5s: all joined in {:.1} s; director cpu {:.1}% of one core over {wall:.0} s, RSS {} MiB (peak {} MiB), {weighted} of {agents} destinations with weight > 0 at the end",
        joined.as_secs_f64(),
        100.0 * (cpu1 - cpu0) / wall,
        measure::status_kib("VmRSS") / 1024,
        measure::status_kib("VmHWM") / 1024,
    );
    // Our own child, by its handle.
    let _ = child.kill();
    let _ = child.wait();
    director.stop().await.unwrap();
}

/// `agents` agents against `url`: register, confirm, then heartbeat every third of the lease.
async fn simulate(agents: usize, url: String) {
    let mut tasks = Vec::new();
    let (joined, mut each_joined) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..agents {
        let url = url.clone();
        let joined = joined.clone();
        tasks.push(tokio::spawn(async move {
            let channel = tonic::transport::Endpoint::from_shared(url)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut registry = pb::registry_client::RegistryClient::new(channel);
            let address = Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250 + 1) as u8);
            let lease_id = join(&mut registry, &format!("sim{i}"), &address.to_string(), 1).await;
            let _ = joined.send(());
            // A third of the config's 6 s lease, as lb-agent paces it.
            let every = Duration::from_secs(2);
            loop {
                tokio::time::sleep(every).await;
                let _ = registry
                    .heartbeat(pb::HeartbeatRequest {
                        lease_id: lease_id.clone(),
                        ..Default::default()
                    })
                    .await;
            }
        }));
    }
    // One line for --external, once every agent holds a confirmed lease.
    for _ in 0..agents {
        each_joined.recv().await.expect("an agent task died");
    }
    println!("joined {agents}");
    for task in tasks {
        let _ = task.await;
    }
}
