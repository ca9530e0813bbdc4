//! One director's session: register (rules installed before the confirmation), heartbeat,
//! ride out the director's outages and restarts, deregister at the end. Each director has its
//! own session task with its own lease, backoff and state, so a director that is away or hangs
//! delays nobody's traffic with the others: the sessions share the rules, the self-checks and
//! the board, and none of those is held across a call to a director.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, info_span, warn, Instrument};

use super::board::{Board, Checks, SessionId};
use super::checks::SharedRules;
use super::metrics::DirectorMetrics;
use super::{heartbeat_period, AgentState};
use crate::backoff::Backoff;
use crate::config::{AgentConfig, DirectorUrl, ServiceConfig};
use crate::registry::{Lease, Registry, RegistryError};
use crate::rules::RuleBackend;
use crate::selfcheck::Verdicts;

/// What the agent's reload tells a running session.
pub(super) enum Command {
    /// Register `config` with this director before the reload switches anything. The session
    /// does it itself, between two of its own calls, and then holds its heartbeats until the
    /// reload's next word ([`Command::Switch`], [`Command::Register`] or [`Command::Resume`]):
    /// the new lease replaces the held one on the director at once, so a heartbeat of the old
    /// lease meanwhile would be refused, and the session would register its running config
    /// over the reload's lease.
    Ask(Box<Ask>),
    Switch(Box<Switch>),
    /// A refused reload left this director holding a lease for services the running config
    /// does not have: register again with the running config now.
    Register,
    /// A refused reload asked this director nothing that needs undoing: go on as before.
    Resume,
}

/// The reload's question: the lease `config` gets from this director (through `registry`);
/// None when the session holds no lease (it registers the new config once switched).
pub(super) struct Ask {
    pub(super) config: Arc<AgentConfig>,
    pub(super) registry: Registry,
    pub(super) answer: oneshot::Sender<Result<Option<Lease>, RegistryError>>,
}

/// Switch to `config` (and `url`, `registry`, when they changed); `lease` is one the reload
/// already got from this director for the new services.
pub(super) struct Switch {
    pub(super) config: Arc<AgentConfig>,
    pub(super) url: DirectorUrl,
    pub(super) registry: Registry,
    pub(super) lease: Option<Lease>,
    /// Answered once the switch is done (the lease confirmed), so a reload's answer means
    /// the directors have the new config.
    pub(super) done: oneshot::Sender<()>,
}

pub(super) struct Session<R> {
    pub(super) id: SessionId,
    pub(super) url: DirectorUrl,
    pub(super) config: Arc<AgentConfig>,
    pub(super) registry: Registry,
    pub(super) rules: SharedRules<R>,
    pub(super) checks: Checks,
    pub(super) board: Board,
    pub(super) metrics: DirectorMetrics,
    pub(super) backoff: Backoff,
    /// The confirmed lease, kept through director outages until the director disowns it.
    pub(super) lease: Option<Lease>,
    /// When the director last renewed the lease (Confirm or a heartbeat): while it may still
    /// be alive there, a failed heartbeat is retried within the lease; after, with backoff.
    pub(super) lease_renewed: Instant,
    /// The services and weights the lease was confirmed with.
    pub(super) registered: Vec<ServiceConfig>,
    /// The director trouble last logged, so an outage is one line, not one per attempt.
    pub(super) director_problem: Option<String>,
    /// A reload asked this director and has not said what next: no calls to it meanwhile.
    pub(super) held: bool,
    /// This director confirmed a lease of ours once: from then on it may hold the realserver
    /// in its table, so a lease that cannot be confirmed is never deregistered.
    pub(super) ever_confirmed: bool,
}

impl<R: RuleBackend> Session<R> {
    /// Runs until `end` is cancelled (shutdown, or a reload removed this director), then
    /// deregisters, bounded by `deregister_timeout`. `removed` says the director was removed
    /// while the agent runs on: its rules are then given up unless another director wants them.
    pub(super) async fn run(
        mut self,
        end: CancellationToken,
        removed: CancellationToken,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let span = info_span!("director", url = %self.url);
        async {
            self.serve(&end, &mut commands).await;
            self.deregister().await;
            if removed.is_cancelled() {
                self.checks.want(self.id, None);
                if let Err(error) = self.rules.forget(self.id).await {
                    warn!(%error, "cannot remove the REDIRECT rules only this director wanted; they go at the next registration or stop");
                }
                self.metrics.forget();
            }
        }
        .instrument(span)
        .await;
    }

    async fn serve(
        &mut self,
        end: &CancellationToken,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) {
        let mut verdicts: watch::Receiver<Verdicts> = self.checks.subscribe();
        let mut next_call = Instant::now();
        loop {
            tokio::select! {
                biased;
                () = end.cancelled() => return,
                // A service went up or down: tell the director now, not at the next period,
                // so a dead sshd leaves the table within about fall x interval.
                Ok(()) = verdicts.changed() => {
                    if self.lease.is_some() {
                        next_call = Instant::now();
                        if self.director_problem.is_none() {
                            self.board.show();
                        }
                    }
                }
                Some(command) = commands.recv() => {
                    let wait = tokio::select! {
                        biased;
                        () = end.cancelled() => return,
                        wait = self.command(command) => wait,
                    };
                    if let Some(wait) = wait {
                        next_call = Instant::now() + wait;
                    }
                }
                () = tokio::time::sleep_until(next_call), if !self.held => {
                    let span = info_span!("registry");
                    let wait = tokio::select! {
                        biased;
                        () = end.cancelled() => return,
                        wait = self.talk_to_director().instrument(span) => wait,
                    };
                    next_call = Instant::now() + wait;
                }
            }
        }
    }

    /// Answers when to talk to the director next, if that changed.
    async fn command(&mut self, command: Command) -> Option<Duration> {
        self.held = false;
        match command {
            Command::Ask(ask) => {
                let Ask {
                    config,
                    registry,
                    answer,
                } = *ask;
                let asked = match self.lease {
                    Some(_) => registry.register(&config).await.map(Some),
                    None => Ok(None),
                };
                // Held only if the director may have replaced our lease: otherwise the old
                // lease is still the one it knows and heartbeats go on.
                self.held = matches!(asked, Ok(Some(_)));
                let _ = answer.send(asked);
                None
            }
            Command::Resume => None,
            Command::Switch(switch) => {
                let Switch {
                    config,
                    url,
                    registry,
                    lease,
                    done,
                } = *switch;
                if config.retry != self.config.retry {
                    self.backoff = Backoff::new(config.retry);
                }
                if url != self.url {
                    self.board.rename(self.id, url.to_string());
                    self.metrics.rename(url.to_string());
                    self.url = url;
                }
                self.registry = registry;
                self.config = config;
                let wait = match lease {
                    Some(lease) => Some(self.take_lease(lease).await),
                    // Not registered yet: try the new config at once.
                    None if self.lease.is_none() => Some(Duration::ZERO),
                    None => None,
                };
                let _ = done.send(());
                wait
            }
            Command::Register => {
                self.registered.clear();
                Some(Duration::ZERO)
            }
        }
    }

    fn publish(&self, state: AgentState, status: String) {
        self.board.post(self.id, state, status);
    }

    /// One step with the director; answers how long to wait before the next.
    async fn talk_to_director(&mut self) -> Duration {
        match self.lease.as_ref().map(|lease| lease.id.clone()) {
            // A reload changed the services or weights and the director has not seen them yet
            // (it was unreachable then): register again from the same address, which replaces
            // the lease on the director.
            Some(_) if self.registered != self.config.services => self.register().await,
            Some(lease_id) => self.heartbeat(&lease_id).await,
            None => self.register().await,
        }
    }

    async fn register(&mut self) -> Duration {
        match self.registry.register(&self.config).await {
            Ok(lease) => self.take_lease(lease).await,
            Err(error) => self.director_trouble(error),
        }
    }

    /// Installs the rules a new lease asks for, confirms it, then removes the rules no
    /// director asks for any more; answers how long to wait before the next step.
    async fn take_lease(&mut self, lease: Lease) -> Duration {
        // A new lease replaces the one held: the director knows only the new one now.
        self.lease = None;
        // Bounded: each iptables call is, and the keeper is held for one check at most.
        let installed = self
            .rules
            .want(self.id, lease.rules.clone())
            .instrument(info_span!("rules"))
            .await;
        if let Err(error) = installed {
            self.rules.trouble(
                &error,
                "cannot install the REDIRECT rules; not confirming the registration",
            );
            self.publish(
                AgentState::RulesFailed {
                    error: error.to_string(),
                },
                format!("cannot install REDIRECT rules, retrying: {error}"),
            );
            // The director holds a lease that will never be confirmed. Once this director has
            // confirmed one of ours, the realserver may be in its table with its rules still in
            // place (a reload's registration, or the retry after one whose rules failed too):
            // a pending lease keeps it there as it is until the next registration replaces
            // it, where a deregistration would take it out of every service, so it is left to
            // expire. Under load in the lab iptables failed twice in a row after a reload,
            // and the retry deregistered, taking llc6 out of llc-ssh. A realserver this
            // director never had is let go at once.
            if !self.ever_confirmed {
                let bound = self.config.deregister_timeout;
                if let Ok(Err(error)) = timeout(bound, self.registry.deregister(&lease.id)).await {
                    debug!(%error, "cannot withdraw the unconfirmed lease; it will expire");
                }
            }
            return self.backoff.next_delay();
        }
        self.rules.fine();
        if let Err(error) = self.registry.confirm(&lease.id).await {
            return self.director_trouble(error);
        }
        self.ever_confirmed = true;
        self.metrics.renewed();
        info!(lease = %lease.id, ttl = ?lease.ttl, rules = lease.rules.len(), checks = lease.checks.len(), "registered");
        for error in &lease.unchecked {
            warn!(%error, "cannot run this check here; the director's own probes still judge the service");
        }
        // After the confirmation, not before: registering never waits for health, and a
        // check whose config is unchanged keeps its history through a re-registration.
        self.checks.want(self.id, Some(lease.checks.clone()));
        // Only now: a service this registration left keeps its rule until the director has
        // taken the registration without it, so no session is sent to a realserver without one.
        // In the background: on a loaded host each iptables call may take seconds, and the
        // first heartbeat waiting behind them let a 6 s lease expire in the lab. The keeper's
        // lock orders it with any later install; it prunes against the rules wanted then.
        let rules = self.rules.clone();
        tokio::spawn(
            async move {
                if let Err(error) = rules.prune().await {
                    warn!(%error, "cannot remove REDIRECT rules no longer wanted; they go at the next registration or stop");
                }
            }
            .instrument(info_span!("rules")),
        );
        let wait = heartbeat_period(lease.ttl);
        self.lease = Some(lease);
        self.lease_renewed = Instant::now();
        self.registered = self.config.services.clone();
        self.director_answers();
        wait
    }

    async fn heartbeat(&mut self, lease_id: &str) -> Duration {
        let health = self.checks.report();
        match self.registry.heartbeat(lease_id, health).await {
            Ok(ttl) => {
                self.metrics.renewed();
                if let Some(lease) = self.lease.as_mut() {
                    lease.ttl = ttl;
                }
                self.lease_renewed = Instant::now();
                if self.director_problem.is_some() {
                    self.director_answers();
                }
                self.backoff.reset();
                heartbeat_period(ttl)
            }
            Err(error @ RegistryError::LeaseUnknown { .. }) => {
                self.metrics.director_error(&error);
                info!(
                    lease = lease_id,
                    "the director does not know our lease (it restarted or the lease expired): registering again"
                );
                self.lease = None;
                Duration::ZERO
            }
            Err(error) => {
                let ttl = self.lease.as_ref().map_or(Duration::MAX, |l| l.ttl);
                let delay = self.director_trouble(error);
                if self.lease_renewed.elapsed() < ttl {
                    // Keep trying within the lease, so a short outage never lets it expire.
                    delay.min(heartbeat_period(ttl))
                } else {
                    // The lease has run out on the director by now: back off like any retry,
                    // so a fleet of agents does not hammer a director that is away (it adopts
                    // their destinations for adoption_grace when it returns).
                    delay
                }
            }
        }
    }

    /// Logs a director problem once per kind, publishes it, and answers the backoff delay.
    fn director_trouble(&mut self, error: RegistryError) -> Duration {
        self.metrics.director_error(&error);
        let (kind, state, status) = match &error {
            RegistryError::Unreachable(_) => (
                "unreachable".to_owned(),
                AgentState::DirectorUnreachable {
                    error: error.to_string(),
                },
                "director unreachable, retrying".to_owned(),
            ),
            RegistryError::LeaseUnknown { .. }
            | RegistryError::Refused(_)
            | RegistryError::BadAnswer(_)
            | RegistryError::Tls { .. }
            | RegistryError::TlsMissing { .. } => (
                error.to_string(),
                AgentState::Refused {
                    error: error.to_string(),
                },
                format!("{error}; retrying"),
            ),
        };
        if self.director_problem.as_deref() != Some(kind.as_str()) {
            match &error {
                RegistryError::Unreachable(_) => {
                    warn!(%error, "director unreachable; retrying with backoff, rules stay in place")
                }
                _ => {
                    error!(%error, "the director answered with an error; retrying with backoff")
                }
            }
            self.director_problem = Some(kind);
            self.publish(state, status);
        } else {
            debug!(%error, "still failing");
        }
        self.backoff.next_delay()
    }

    /// Back to normal after a registration or a heartbeat that got through.
    fn director_answers(&mut self) {
        if let Some(problem) = self.director_problem.take() {
            info!(previous = %problem, "director answers again");
        }
        self.backoff.reset();
        let Some(lease) = &self.lease else { return };
        let state = AgentState::Registered {
            lease_id: lease.id.clone(),
            rules: lease.rules.clone(),
        };
        self.publish(state, self.registered_status());
    }

    /// "registered with 10.0.0.2:7700 as llc5, weight 1".
    fn registered_status(&self) -> String {
        let services = &self.config.services;
        let weights = match services.first() {
            Some(first) if services.iter().all(|s| s.weight == first.weight) => {
                format!("weight {}", first.weight)
            }
            _ => {
                let each: Vec<String> = services
                    .iter()
                    .map(|s| format!("{} {}", s.name, s.weight))
                    .collect();
                format!("weights {}", each.join(", "))
            }
        };
        format!(
            "registered with {} as {}, {weights}",
            self.url.authority(),
            self.config.name
        )
    }

    /// Gives the lease back, bounded: the director removes (or drains) the destination now
    /// instead of at the lease's expiry.
    async fn deregister(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
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
}
