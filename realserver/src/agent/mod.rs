//! The agent's life: register with every configured director, install the REDIRECT rules
//! their answers ask for, confirm, renew the leases; ride out director outages and restarts
//! with the rules in place; put back rules someone deleted; and on shutdown deregister from
//! every director and remove the rules. Each director has a session of its own (director.rs).
//!
//! The binary and the tests run this same code; only the rule backend differs.

mod board;
mod checks;
mod director;
mod metrics;
mod reload;

use std::sync::Arc;
use std::time::Duration;

use lb_shared::notify;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, Instrument};

use crate::backoff::Backoff;
use crate::config::{AgentConfig, DirectorUrl};
use crate::registry::{Registry, RegistryError};
use crate::rules::{RedirectRule, RuleBackend, RuleError};
use board::{Board, Checks, SessionId};
use checks::SharedRules;
use director::{Command, Session};
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

/// [`run`], publishing each change of [`AgentState`] on `state`. With several directors the
/// state is the first registered director session's (the first session's while none is).
pub async fn run_with(
    config: AgentConfig,
    rules: impl RuleBackend,
    shutdown: CancellationToken,
    mut reloads: ReloadSource,
    state: watch::Sender<AgentState>,
    metrics_listener: Option<TcpListener>,
) -> Result<(), AgentError> {
    let span = info_span!("agent", realserver = %config.name);
    async move {
        // Every director's TLS is set up before anything is touched.
        let mut registries = Vec::new();
        for url in &config.directors {
            registries.push(Registry::new(url, config.tls.as_ref())?);
        }
        let alive = CancellationToken::new();
        let _watchdog_stops_with_us = alive.clone().drop_guard();
        notify::spawn_watchdog(alive);
        state.send_replace(AgentState::Starting);
        let rules = SharedRules::new(rules, config.iptables_timeout, config.address);
        let (check_period, periods) = watch::channel(config.rule_check_interval);
        let checks = rules.spawn_checks(periods);
        let selfchecks = Checks::new();
        let board = Board::new(state, selfchecks.clone());
        let metrics = AgentMetrics::default();
        // Served until the agent has stopped, so a scrape can see it deregister.
        let serving = CancellationToken::new();
        let _serving_ends_with_us = serving.clone().drop_guard();
        let server = metrics_listener.map(|listener| {
            let registry = metrics.registry(board.clone(), rules.presence());
            tokio::spawn(
                lb_shared::metrics::serve(listener, std::sync::Arc::new(registry), serving.clone())
                    .instrument(info_span!("metrics")),
            )
        });
        let mut agent = Agent {
            config: Arc::new(config),
            rules,
            checks,
            check_period,
            selfchecks,
            board,
            metrics,
            sessions: Vec::new(),
            next_id: 0,
            shutdown: shutdown.clone(),
            leaving: Vec::new(),
        };
        for (url, registry) in agent.config.directors.clone().into_iter().zip(registries) {
            agent.start_session(url, registry);
        }
        agent.board.show();
        // Ready before a director answers: a realserver must boot while its directors are away.
        notify::ready();
        info!(directors = agent.config.directors.len(), "started");
        agent.serve(&shutdown, &mut reloads).await;
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

/// The agent: the director sessions, each a task of its own, and what they share.
struct Agent<R> {
    config: Arc<AgentConfig>,
    rules: SharedRules<R>,
    /// The rule check loop, apart from the sessions so that heartbeats never wait for iptables.
    checks: JoinHandle<()>,
    /// The check loop's period; it ends when this is dropped.
    check_period: watch::Sender<Duration>,
    /// The self-checks of the services the leases' bindings ask to check.
    selfchecks: Checks,
    board: Board,
    metrics: AgentMetrics,
    /// In config order.
    sessions: Vec<SessionHandle>,
    next_id: SessionId,
    shutdown: CancellationToken,
    /// Sessions a reload ended, still deregistering: awaited before the rules go at stop.
    leaving: Vec<JoinHandle<()>>,
}

/// A running director session as the agent steers it.
struct SessionHandle {
    id: SessionId,
    url: DirectorUrl,
    /// A clone of the session's: a reload asks the director with it before switching.
    registry: Registry,
    commands: mpsc::UnboundedSender<Command>,
    /// Ends the session (a child of the agent's shutdown).
    end: CancellationToken,
    /// Cancelled with `end` when a reload removed the director.
    removed: CancellationToken,
    task: JoinHandle<()>,
}

impl<R: RuleBackend> Agent<R> {
    fn start_session(&mut self, url: DirectorUrl, registry: Registry) {
        let id = self.next_id;
        self.next_id += 1;
        self.board.join(id, url.to_string(), url.authority());
        let (commands, receiver) = mpsc::unbounded_channel();
        let end = self.shutdown.child_token();
        let removed = CancellationToken::new();
        let session = Session {
            id,
            url: url.clone(),
            config: Arc::clone(&self.config),
            registry: registry.clone(),
            rules: self.rules.clone(),
            checks: self.selfchecks.clone(),
            board: self.board.clone(),
            metrics: self.metrics.director(url.to_string()),
            backoff: Backoff::new(self.config.retry),
            lease: None,
            lease_renewed: Instant::now(),
            registered: Vec::new(),
            director_problem: None,
            held: false,
            ever_confirmed: false,
        };
        let task = tokio::spawn(
            session
                .run(end.clone(), removed.clone(), receiver)
                .in_current_span(),
        );
        self.sessions.push(SessionHandle {
            id,
            url,
            registry,
            commands,
            end,
            removed,
            task,
        });
    }

    /// Answers reloads until `shutdown`; the sessions talk to their directors meanwhile.
    async fn serve(&mut self, shutdown: &CancellationToken, reloads: &mut ReloadSource) {
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                Some(request) = reloads.next() => {
                    let span = info_span!("reload");
                    tokio::select! {
                        biased;
                        () = shutdown.cancelled() => return,
                        () = self.reload(request, reloads).instrument(span) => {}
                    }
                }
            }
        }
    }

    /// Deregisters from every director at once (each bounded), then removes the rules
    /// (bounded). Never hangs, never panics.
    async fn stop(mut self) -> Result<(), AgentError> {
        notify::stopping();
        self.board.stopping(
            AgentState::Stopping,
            "stopping: deregistering and removing REDIRECT rules",
        );
        self.selfchecks.clear();
        // Dropping the check's future gives up its iptables call and frees the keeper.
        self.checks.abort();
        let _ = (&mut self.checks).await;
        // The sessions saw the shutdown too and deregister side by side.
        let sessions = std::mem::take(&mut self.sessions);
        for session in &sessions {
            session.end.cancel();
        }
        for task in sessions
            .into_iter()
            .map(|s| s.task)
            .chain(self.leaving.drain(..))
        {
            let _ = task.await;
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
        self.board.stopping(AgentState::Stopped, "stopped");
        drop(self.check_period);
        result
    }
}

/// About a third of the lease: two heartbeats may be lost before it expires.
fn heartbeat_period(ttl: Duration) -> Duration {
    (ttl / 3).max(MIN_HEARTBEAT)
}

#[cfg(test)]
mod heartbeat_tests {
    use super::*;

    #[test]
    fn a_heartbeat_every_third_of_the_lease_so_two_may_be_lost() {
        assert_eq!(
            heartbeat_period(Duration::from_secs(6)),
            Duration::from_secs(2)
        );
        assert_eq!(
            heartbeat_period(Duration::from_millis(600)),
            Duration::from_millis(200)
        );
        // A lease too short to divide still gets a bounded rate, never a busy loop.
        assert_eq!(heartbeat_period(Duration::from_millis(3)), MIN_HEARTBEAT);
    }
}
