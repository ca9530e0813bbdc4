//! Self-check support: service listeners on 127.0.0.1 whose answer a test switches (an SSH
//! banner, silence), closed ports, and an agent whose director hands out a check.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lb_proto::{HealthCheck, ServiceHealth};
use lb_realserver::rules::MemoryRules;
use lb_realserver::AgentState;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::{agent_config, eventually, spawn_agent, FakeDirector, RunningAgent};

pub const INTERVAL_MS: u64 = 100;
pub const FALL: u32 = 3;
pub const RISE: u32 = 2;
/// Far beyond fall x interval plus a heartbeat, even on a loaded machine.
pub const LIMIT: Duration = Duration::from_secs(5);

pub fn check(kind: &str) -> HealthCheck {
    HealthCheck {
        r#type: kind.into(),
        interval_ms: INTERVAL_MS,
        timeout_ms: 80,
        fall: FALL,
        rise: RISE,
        port: 0,
    }
}

/// How the service listener answers a connection.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Answer {
    Banner = 0,
    /// Accepts and never sends a byte: a hung sshd.
    Silent = 1,
}

/// A service port on 127.0.0.1 whose answer the test switches; closed when dropped.
pub struct Service {
    pub addr: SocketAddr,
    answer: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl Service {
    pub async fn start(answer: Answer) -> Service {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(answer as u8));
        let answer = Arc::clone(&mode);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let mode = mode.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    if mode == Answer::Banner as u8 {
                        let _ = stream
                            .write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
                            .await;
                    }
                    // Held open until the prober goes, as sshd would.
                    tokio::time::sleep(Duration::from_secs(5)).await;
                });
            }
        });
        Service { addr, answer, task }
    }

    pub fn answer(&self, answer: Answer) {
        self.answer.store(answer as u8, Ordering::SeqCst);
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A port on 127.0.0.1 that nothing listens on.
pub fn closed_port() -> u16 {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    holder.local_addr().unwrap().port()
}

/// A fake director that binds llc-ssh to `port` with `check`, leases of `ttl`, and an agent at
/// 127.0.0.1 that has registered.
pub async fn agent_checking(
    port: u16,
    check: Option<HealthCheck>,
    ttl: Duration,
) -> (FakeDirector, RunningAgent) {
    let chain = MemoryRules::new();
    let director = FakeDirector::start_on("127.0.0.1:0".parse().unwrap(), &chain, ttl);
    director.change(|b| {
        b.port = port;
        b.check = check;
    });
    let mut config = agent_config(&director.url());
    config.address = "127.0.0.1".parse().unwrap();
    let mut agent = spawn_agent(config, &chain);
    agent.registered().await;
    (director, agent)
}

/// Makes the director forget the agent's lease, as a restart does, and waits for the agent
/// to register again.
pub async fn reregistered(director: &FakeDirector, agent: &mut RunningAgent) {
    let old = match agent.state.borrow().clone() {
        AgentState::Registered { lease_id, .. } => lease_id,
        other => panic!("not registered: {other:?}"),
    };
    director.forget_leases();
    agent
        .wait_for(
            "a new registration",
            |s| matches!(s, AgentState::Registered { lease_id, .. } if *lease_id != old),
        )
        .await;
}

/// The first heartbeat after `since` whose verdict on llc-ssh is `up`; waits up to [`LIMIT`].
pub async fn verdict_after(
    director: &FakeDirector,
    since: Instant,
    up: bool,
) -> (Instant, ServiceHealth) {
    let found = || {
        director
            .health_reports()
            .into_iter()
            .filter(|(at, _)| *at >= since)
            .find_map(|(at, health)| {
                let verdict = health.into_iter().find(|h| h.service == "llc-ssh")?;
                (verdict.up == up).then_some((at, verdict))
            })
    };
    let what = format!(
        "a heartbeat with llc-ssh {}",
        if up { "up" } else { "down" }
    );
    eventually(&what, LIMIT, || found().is_some()).await;
    found().unwrap()
}
