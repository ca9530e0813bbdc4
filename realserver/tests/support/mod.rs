//! A fake director for agent tests: a real tonic `Registry` server on loopback that records
//! every call (with the agent's rules as they stood at that moment) and can be told to forget
//! leases, move a VIP, refuse, hang, or die.
//!
//! It runs on its own thread and runtime, so stopping it really closes every connection, the
//! way a director process that exits does.

#![allow(dead_code)] // each test file uses its own part of this
#![allow(clippy::unwrap_used)] // test support: a panic is the failure report

pub mod netns;
pub mod selfcheck;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lb_proto::registry_server::{Registry, RegistryServer};
use lb_proto::{
    ConfirmRequest, ConfirmResponse, DeregisterRequest, DeregisterResponse, HealthCheck,
    HeartbeatRequest, HeartbeatResponse, Protocol, RegisterRequest, RegisterResponse,
    ServiceBinding, ServiceHealth,
};
use lb_realserver::config::{AgentConfig, DirectorUrl, RetryPolicy, ServiceConfig};
use lb_realserver::rules::contract::Shell;
use lb_realserver::rules::MemoryRules;
use lb_realserver::{AgentError, AgentState, ReloadSource};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

#[derive(Debug, Clone)]
pub enum Call {
    Register(RegisterRequest),
    /// With the agent's chain as it was when the confirmation arrived.
    Confirm {
        lease: String,
        chain: Vec<String>,
    },
    Heartbeat {
        lease: String,
        at: Instant,
        /// The agent's verdicts, as the heartbeat carried them.
        health: Vec<ServiceHealth>,
    },
    Deregister {
        lease: String,
        chain: Vec<String>,
    },
}

pub struct Behaviour {
    pub ttl: Duration,
    pub vip: String,
    pub refuse_register: Option<Status>,
    pub hang_deregister: bool,
    /// The port every binding names (the agent's rules and self-checks use it).
    pub port: u16,
    /// The check every binding hands out.
    pub check: Option<HealthCheck>,
}

struct Shared {
    calls: Mutex<Vec<Call>>,
    behaviour: Mutex<Behaviour>,
    leases: Mutex<HashSet<String>>,
    /// The agent's chain, looked at when calls arrive (the fake can; a real director could not).
    chain: Arc<dyn Shell + Send + Sync>,
}

#[derive(Clone)]
struct Service(Arc<Shared>);

pub struct FakeDirector {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub const VIP: &str = "198.18.1.54";

pub struct Options {
    pub addr: SocketAddr,
    pub ttl: Duration,
    /// A network namespace to serve in (its name), instead of the test's own.
    pub netns: Option<String>,
    pub tls: Option<tonic::transport::ServerTlsConfig>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            addr: "127.0.0.1:0".parse().unwrap(),
            ttl: Duration::from_millis(600),
            netns: None,
            tls: None,
        }
    }
}

impl FakeDirector {
    /// Starts on a free loopback port.
    pub fn start(chain: &MemoryRules) -> FakeDirector {
        Self::start_with(Arc::new(chain.clone()), Options::default())
    }

    /// Starts on `addr`, answering leases of `ttl`.
    pub fn start_on(addr: SocketAddr, chain: &MemoryRules, ttl: Duration) -> FakeDirector {
        let options = Options {
            addr,
            ttl,
            ..Options::default()
        };
        Self::start_with(Arc::new(chain.clone()), options)
    }

    /// Starts as `options` say; `chain` shows the agent's rules when calls arrive.
    pub fn start_with(chain: Arc<dyn Shell + Send + Sync>, options: Options) -> FakeDirector {
        let Options {
            addr,
            ttl,
            netns,
            tls,
        } = options;
        let shared = Arc::new(Shared {
            calls: Mutex::new(Vec::new()),
            behaviour: Mutex::new(Behaviour {
                ttl,
                vip: VIP.into(),
                refuse_register: None,
                hang_deregister: false,
                port: 22,
                check: None,
            }),
            leases: Mutex::new(HashSet::new()),
            chain,
        });
        let service = Service(shared.clone());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Some(name) = netns {
                netns::enter(&name);
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let mut server = tonic::transport::Server::builder();
                if let Some(tls) = tls {
                    server = server.tls_config(tls).unwrap();
                }
                let serve = server
                    .add_service(RegistryServer::new(service))
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
                tokio::select! {
                    result = serve => result.unwrap(),
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every connection task: the agent sees the
            // connection close, as when a director process exits.
            drop(runtime);
        });
        FakeDirector {
            addr: addr_rx.recv().unwrap(),
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The https URL by the name in the test certificate.
    pub fn https_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    pub fn registrations(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| matches!(c, Call::Register(_)))
            .count()
    }

    pub fn heartbeats(&self) -> Vec<Instant> {
        self.calls()
            .iter()
            .filter_map(|c| match c {
                Call::Heartbeat { at, .. } => Some(*at),
                _ => None,
            })
            .collect()
    }

    /// Each heartbeat's arrival and the health it carried, in order.
    pub fn health_reports(&self) -> Vec<(Instant, Vec<ServiceHealth>)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Heartbeat { at, health, .. } => Some((at, health)),
                _ => None,
            })
            .collect()
    }

    pub fn change(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.shared.behaviour.lock().unwrap());
    }

    /// What a restarted director knows: no leases; heartbeats get NOT_FOUND.
    pub fn forget_leases(&self) {
        self.shared.leases.lock().unwrap().clear();
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for FakeDirector {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Service {
    fn record(&self, call: Call) {
        self.0.calls.lock().unwrap().push(call);
    }

    fn known(&self, lease: &str) -> Result<(), Status> {
        if self.0.leases.lock().unwrap().contains(lease) {
            Ok(())
        } else {
            Err(Status::not_found(format!("no lease {lease}")))
        }
    }
}

#[tonic::async_trait]
impl Registry for Service {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let request = request.into_inner();
        self.record(Call::Register(request.clone()));
        let (ttl, vip, refusal, port, check) = {
            let b = self.0.behaviour.lock().unwrap();
            (
                b.ttl,
                b.vip.clone(),
                b.refuse_register.clone(),
                b.port,
                b.check.clone(),
            )
        };
        if let Some(status) = refusal {
            return Err(status);
        }
        let lease_id = {
            let mut leases = self.0.leases.lock().unwrap();
            let id = format!(
                "lease-{}-{}",
                request.name,
                self.0.calls.lock().unwrap().len()
            );
            leases.insert(id.clone());
            id
        };
        Ok(Response::new(RegisterResponse {
            lease_id,
            lease_ttl_ms: ttl.as_millis() as u64,
            bindings: request
                .services
                .iter()
                .map(|s| ServiceBinding {
                    service: s.service.clone(),
                    vip: vip.clone(),
                    port: port.into(),
                    protocol: Protocol::Tcp.into(),
                    check: check.clone(),
                    fwmark: 0,
                })
                .collect(),
        }))
    }

    async fn confirm(
        &self,
        request: Request<ConfirmRequest>,
    ) -> Result<Response<ConfirmResponse>, Status> {
        let lease = request.into_inner().lease_id;
        self.record(Call::Confirm {
            lease: lease.clone(),
            chain: self.0.chain.chain(),
        });
        self.known(&lease)?;
        Ok(Response::new(ConfirmResponse {}))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let HeartbeatRequest {
            lease_id: lease,
            health,
        } = request.into_inner();
        self.record(Call::Heartbeat {
            lease: lease.clone(),
            at: Instant::now(),
            health,
        });
        self.known(&lease)?;
        let ttl = self.0.behaviour.lock().unwrap().ttl;
        Ok(Response::new(HeartbeatResponse {
            lease_ttl_ms: ttl.as_millis() as u64,
        }))
    }

    async fn deregister(
        &self,
        request: Request<DeregisterRequest>,
    ) -> Result<Response<DeregisterResponse>, Status> {
        let lease = request.into_inner().lease_id;
        self.record(Call::Deregister {
            lease: lease.clone(),
            chain: self.0.chain.chain(),
        });
        if self.0.behaviour.lock().unwrap().hang_deregister {
            std::future::pending::<()>().await;
        }
        self.known(&lease)?;
        self.0.leases.lock().unwrap().remove(&lease);
        Ok(Response::new(DeregisterResponse {}))
    }
}

/// The agent config the tests use: llc5 serving llc-ssh, with quick checks and retries.
pub fn agent_config(director_url: &str) -> AgentConfig {
    AgentConfig {
        directors: vec![DirectorUrl::parse(director_url).unwrap()],
        tls: None,
        name: "llc5".into(),
        address: "10.0.0.11".parse().unwrap(),
        services: vec![ServiceConfig {
            name: "llc-ssh".into(),
            weight: 1,
        }],
        rule_check_interval: Duration::from_millis(100),
        deregister_timeout: Duration::from_secs(1),
        metrics_listen: None,
        retry: RetryPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(400),
        },
        iptables_timeout: Duration::from_millis(300),
    }
}

/// An agent running on the test's runtime with the in-memory chain.
pub struct RunningAgent {
    pub state: watch::Receiver<AgentState>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), AgentError>>,
}

pub fn spawn_agent(config: AgentConfig, chain: &MemoryRules) -> RunningAgent {
    spawn_reloadable(config, chain, ReloadSource::none())
}

/// An agent that reloads from `reloads`.
pub fn spawn_reloadable(
    config: AgentConfig,
    chain: &MemoryRules,
    reloads: ReloadSource,
) -> RunningAgent {
    spawn_serving(config, chain, reloads, None)
}

/// An agent that reloads from `reloads` and serves `GET /metrics` on `metrics`.
pub fn spawn_serving(
    config: AgentConfig,
    chain: &MemoryRules,
    reloads: ReloadSource,
    metrics: Option<tokio::net::TcpListener>,
) -> RunningAgent {
    let (state_tx, state) = watch::channel(AgentState::Starting);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(lb_realserver::run_with(
        config,
        chain.clone(),
        shutdown.clone(),
        reloads,
        state_tx,
        metrics,
    ));
    RunningAgent {
        state,
        shutdown,
        task,
    }
}

impl RunningAgent {
    /// Waits (at most 10 s) for a state that `wanted` accepts, and returns it.
    pub async fn wait_for(
        &mut self,
        what: &str,
        wanted: impl Fn(&AgentState) -> bool,
    ) -> AgentState {
        let waited =
            tokio::time::timeout(Duration::from_secs(10), self.state.wait_for(|s| wanted(s)))
                .await
                .map(|found| found.map(|state| state.clone()));
        match waited {
            Ok(Ok(state)) => state,
            Ok(Err(_)) => panic!("the agent ended before {what}"),
            Err(_) => panic!(
                "no {what} within 10 s; last state {:?}",
                *self.state.borrow()
            ),
        }
    }

    pub async fn registered(&mut self) -> String {
        match self
            .wait_for("registration", |s| {
                matches!(s, AgentState::Registered { .. })
            })
            .await
        {
            AgentState::Registered { lease_id, .. } => lease_id,
            _ => unreachable!(),
        }
    }

    /// Cancels the agent and waits for `run` to return; answers its result and how long it took.
    pub async fn stop(self) -> (Result<(), AgentError>, Duration) {
        let started = Instant::now();
        self.shutdown.cancel();
        let result = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the agent did not stop within 20 s")
            .expect("the agent task panicked");
        (result, started.elapsed())
    }
}

/// Polls `condition` every 20 ms for up to `limit`; panics naming `what` if it never holds.
pub async fn eventually(what: &str, limit: Duration, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The common start: a fake director, and an agent with an empty chain that has registered.
pub async fn registered_agent() -> (MemoryRules, FakeDirector, RunningAgent, String) {
    let chain = MemoryRules::new();
    let director = FakeDirector::start(&chain);
    let mut agent = spawn_agent(agent_config(&director.url()), &chain);
    let lease = agent.registered().await;
    (chain, director, agent, lease)
}
