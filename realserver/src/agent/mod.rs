//! The agent's life: register with the director, install the REDIRECT rules its answer asks
//! for, confirm, renew the lease; ride out director outages and restarts with the rules in
//! place; put back rules someone deleted; and on shutdown deregister and remove the rules.
//!
//! The binary and the tests run this same code; only the rule backend differs.

mod checks;
mod director;
mod metrics;
mod reload;

use std::time::Duration;

use lb_shared::notify;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument};

use crate::backoff::Backoff;
use crate::config::{AgentConfig, ServiceConfig};
use crate::registry::{Lease, Registry, RegistryError};
use crate::rules::{RedirectRule, RuleBackend, RuleError};
use crate::selfcheck::{SelfChecks, Verdicts};
use checks::SharedRules;
use metrics::AgentMetrics;
pub use reload::ReloadSource;
use tokio::net::TcpListener;

/// Each iptables call is bounded already; this bounds the whole removal of several rules.
const RULE_REMOVAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Heartbeats are never closer together than this, whatever TTL the director answers.
const MIN_HEARTBEAT: Duration = Duration::from_millis(10);

/// Where the agent stands, published on a watch channel so tests (and anything else that
/// embeds the agent) can wait for a state instead of sleeping and hoping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    /// Running, no answer from the director yet.
    Starting,
    /// Rules installed and the registration confirmed.
    Registered {
        lease_id: String,
        rules: Vec<RedirectRule>,
    },
    /// The director does not answer; the rules stay in place and the agent keeps trying.
    DirectorUnreachable {
        error: String,
    },
    /// The director answered with an error (or an answer the agent cannot use); retrying.
    Refused {
        error: String,
    },
    /// The rules could not be installed, so the registration was not confirmed; retrying.
    RulesFailed {
        error: String,
    },
    /// Shutdown began: deregistering and removing the rules.
    Stopping,
    Stopped,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Setup(#[from] RegistryError),
    #[error("stopped, but REDIRECT rules may be left in the nat table: {0}")]
    RulesLeft(#[source] RuleError),
    #[error("stopped, but removing the REDIRECT rules did not finish within {0:?}")]
    RuleRemovalTimedOut(Duration),
}

/// Runs the agent until `shutdown` is cancelled, then deregisters and removes its rules;
/// meanwhile each request from `reloads` switches to a new config if all of it is good, and
/// `metrics` (the bound `metrics_listen`, None when it is "") serves `GET /metrics`.
/// Returns an error when the director's TLS cannot be set up (before anything is touched) or
/// when rules may have been left behind.
pub async fn run(
    config: AgentConfig,
    rules: impl RuleBackend,
    shutdown: CancellationToken,
    reloads: ReloadSource,
    metrics: Option<TcpListener>,
) -> Result<(), AgentError> {
    let (state, _) = watch::channel(AgentState::Starting);
    run_with(config, rules, shutdown, reloads, state, metrics).await
}

/// [`run`], publishing each change of [`AgentState`] on `state`.
pub async fn run_with(
    config: AgentConfig,
    rules: impl RuleBackend,
    shutdown: CancellationToken,
    mut reloads: ReloadSource,
    state: watch::Sender<AgentState>,
    metrics_listener: Option<TcpListener>,
) -> Result<(), AgentError> {
    let span = info_span!("agent", realserver = %config.name, director = %config.director);
    async move {
        let registry = Registry::new(&config)?;
        let alive = CancellationToken::new();
        let _watchdog_stops_with_us = alive.clone().drop_guard();
        notify::spawn_watchdog(alive);
        state.send_replace(AgentState::Starting);
        let rules = SharedRules::new(rules, config.iptables_timeout, config.address);
        let (check_period, periods) = watch::channel(config.rule_check_interval);
        let checks = rules.spawn_checks(periods);
        let selfchecks = SelfChecks::new();
        let verdicts = selfchecks.subscribe();
        let metrics = AgentMetrics::default();
        // Served until the agent has stopped, so a scrape can see it deregister.
        let serving = CancellationToken::new();
        let _serving_ends_with_us = serving.clone().drop_guard();
        let server = metrics_listener.map(|listener| {
            let registry = metrics.registry(state.subscribe(), rules.presence());
            tokio::spawn(
                lb_shared::metrics::serve(listener, std::sync::Arc::new(registry), serving.clone())
                    .instrument(info_span!("metrics")),
            )
        });
        let mut agent = Agent {
            registry,
            backoff: Backoff::new(config.retry),
            rules,
            checks,
            check_period,
            selfchecks,
            config,
            state,
            lease: None,
            lease_renewed: tokio::time::Instant::now(),
            registered: Vec::new(),
            director_problem: None,
            metrics,
        };
        // Ready before the director answers: a realserver must boot while its director is away.
        notify::ready();
        notify::status(&format!(
            "registering with {}",
            agent.config.director.authority()
        ));
        info!("started");
        agent.serve(&shutdown, &mut reloads, verdicts).await;
        let stopped = agent.stop().instrument(info_span!("shutdown")).await;
        serving.cancel();
        if let Some(server) = server {
            let _ = server.await;
        }
        stopped
    }
    .instrument(span)
    .await
}

struct Agent<R> {
    config: AgentConfig,
    registry: Registry,
    rules: SharedRules<R>,
    /// The rule check loop, apart from this one so that heartbeats never wait for iptables.
    checks: JoinHandle<()>,
    /// The check loop's period; it ends when this is dropped.
    check_period: watch::Sender<Duration>,
    /// The self-checks of the services the lease's bindings ask to check.
    selfchecks: SelfChecks,
    backoff: Backoff,
    state: watch::Sender<AgentState>,
    /// The confirmed lease, kept through director outages until the director disowns it.
    lease: Option<Lease>,
    /// When the director last renewed the lease (Confirm or a heartbeat): while it may still
    /// be alive there, a failed heartbeat is retried within the lease; after, with backoff.
    lease_renewed: tokio::time::Instant,
    /// The services and weights the lease was confirmed with.
    registered: Vec<ServiceConfig>,
    /// The director trouble last logged, so an outage is one line, not one per attempt.
    director_problem: Option<String>,
    metrics: AgentMetrics,
}

impl<R: RuleBackend> Agent<R> {
    /// The director loop: registration and heartbeats, nothing that waits for iptables except
    /// the installation of the rules a registration asks for, nothing that waits for a probe.
    async fn serve(
        &mut self,
        shutdown: &CancellationToken,
        reloads: &mut ReloadSource,
        mut verdicts: watch::Receiver<Verdicts>,
    ) {
        let mut next_call = Instant::now();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                // A service went up or down: tell the director now, not at the next period,
                // so a dead sshd leaves the table within about fall x interval.
                Ok(()) = verdicts.changed() => {
                    if self.lease.is_some() {
                        next_call = Instant::now();
                        if self.director_problem.is_none() {
                            notify::status(&self.registered_status());
                        }
                    }
                }
                Some(request) = reloads.next() => {
                    let span = info_span!("reload");
                    let reloaded = tokio::select! {
                        biased;
                        () = shutdown.cancelled() => return,
                        reloaded = self.reload(request, reloads).instrument(span) => reloaded,
                    };
                    if let Some(wait) = reloaded {
                        next_call = Instant::now() + wait;
                    }
                }
                () = tokio::time::sleep_until(next_call) => {
                    let span = info_span!("registry");
                    let wait = tokio::select! {
                        biased;
                        () = shutdown.cancelled() => return,
                        wait = self.talk_to_director().instrument(span) => wait,
                    };
                    next_call = Instant::now() + wait;
                }
            }
        }
    }

    fn publish(&self, state: AgentState, status: &str) {
        notify::status(status);
        self.state.send_replace(state);
    }

    /// Deregisters (bounded), then removes the rules (bounded). Never hangs, never panics.
    async fn stop(mut self) -> Result<(), AgentError> {
        notify::stopping();
        self.publish(
            AgentState::Stopping,
            "stopping: deregistering and removing REDIRECT rules",
        );
        self.selfchecks.apply(Default::default());
        // Dropping the check's future gives up its iptables call and frees the keeper.
        self.checks.abort();
        let _ = (&mut self.checks).await;
        if let Some(lease) = self.lease.take() {
            let bound = self.config.deregister_timeout;
            match timeout(bound, self.registry.deregister(&lease.id)).await {
                Ok(Ok(())) => info!(lease = %lease.id, "deregistered"),
                Ok(Err(error)) => {
                    warn!(%error, "deregistration failed; the director will let the lease expire")
                }
                Err(_) => warn!(
                    timeout = ?bound,
                    "the director did not take the deregistration in time; stopping anyway (the lease will expire)"
                ),
            }
        }
        let removal = timeout(RULE_REMOVAL_TIMEOUT, self.rules.remove_all())
            .instrument(info_span!("rules"))
            .await;
        let result = match removal {
            Ok(Ok(removed)) => {
                info!(removed = removed.len(), "stopped");
                Ok(())
            }
            Ok(Err(error)) => Err(AgentError::RulesLeft(error)),
            Err(_) => Err(AgentError::RuleRemovalTimedOut(RULE_REMOVAL_TIMEOUT)),
        };
        self.state.send_replace(AgentState::Stopped);
        result
    }
}

/// About a third of the lease: two heartbeats may be lost before it expires.
fn heartbeat_period(ttl: Duration) -> Duration {
    (ttl / 3).max(MIN_HEARTBEAT)
}
