//! The agent's life: register with the director, install the REDIRECT rules its answer asks
//! for, confirm, renew the lease; ride out director outages and restarts with the rules in
//! place; put back rules someone deleted; and on shutdown deregister and remove the rules.
//!
//! The binary and the tests run this same code; only the rule backend differs.

use std::time::Duration;

use lb_shared::notify;
use tokio::sync::watch;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, info_span, warn, Instrument};

use crate::backoff::Backoff;
use crate::config::AgentConfig;
use crate::keeper::RuleKeeper;
use crate::registry::{Lease, Registry, RegistryError};
use crate::rules::{RedirectRule, RuleBackend, RuleError};

/// iptables waits for the xtables lock without limit; a stop must not.
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

/// Runs the agent until `shutdown` is cancelled, then deregisters and removes its rules.
/// Returns an error when the director's TLS cannot be set up (before anything is touched) or
/// when rules may have been left behind.
pub async fn run(
    config: AgentConfig,
    rules: impl RuleBackend,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    let (state, _) = watch::channel(AgentState::Starting);
    run_with(config, rules, shutdown, state).await
}

/// [`run`], publishing each change of [`AgentState`] on `state`.
pub async fn run_with(
    config: AgentConfig,
    rules: impl RuleBackend,
    shutdown: CancellationToken,
    state: watch::Sender<AgentState>,
) -> Result<(), AgentError> {
    let span = info_span!("agent", realserver = %config.name, director = %config.director);
    async move {
        let registry = Registry::new(&config)?;
        let alive = CancellationToken::new();
        let _watchdog_stops_with_us = alive.clone().drop_guard();
        notify::spawn_watchdog(alive);
        state.send_replace(AgentState::Starting);
        let mut agent = Agent {
            registry,
            backoff: Backoff::new(config.retry),
            keeper: RuleKeeper::new(rules),
            config,
            state,
            lease: None,
            director_problem: None,
            rules_problem: None,
        };
        // Ready before the director answers: a realserver must boot while its director is away.
        notify::ready();
        notify::status(&format!(
            "registering with {}",
            agent.config.director.authority()
        ));
        info!("started");
        agent.serve(&shutdown).await;
        agent.stop().instrument(info_span!("shutdown")).await
    }
    .instrument(span)
    .await
}

struct Agent<R> {
    config: AgentConfig,
    registry: Registry,
    keeper: RuleKeeper<R>,
    backoff: Backoff,
    state: watch::Sender<AgentState>,
    /// The confirmed lease, kept through director outages until the director disowns it.
    lease: Option<Lease>,
    /// The director trouble last logged, so an outage is one line, not one per attempt.
    director_problem: Option<String>,
    /// Likewise for failing rule checks.
    rules_problem: Option<String>,
}

enum Event {
    Stop,
    CheckRules,
    TalkToDirector,
}

impl<R: RuleBackend> Agent<R> {
    async fn serve(&mut self, shutdown: &CancellationToken) {
        let period = self.config.rule_check_interval;
        let mut rule_check = tokio::time::interval_at(Instant::now() + period, period);
        rule_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_call = Instant::now();
        loop {
            let event = tokio::select! {
                biased;
                () = shutdown.cancelled() => Event::Stop,
                _ = rule_check.tick() => Event::CheckRules,
                () = tokio::time::sleep_until(next_call) => Event::TalkToDirector,
            };
            match event {
                Event::Stop => return,
                Event::CheckRules => self.check_rules().instrument(info_span!("rules")).await,
                Event::TalkToDirector => {
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

    /// One step with the director; answers how long to wait before the next.
    async fn talk_to_director(&mut self) -> Duration {
        match self.lease.as_ref().map(|lease| lease.id.clone()) {
            None => self.register().await,
            Some(lease_id) => self.heartbeat(&lease_id).await,
        }
    }

    async fn register(&mut self) -> Duration {
        let lease = match self.registry.register(&self.config).await {
            Ok(lease) => lease,
            Err(error) => return self.director_trouble(error),
        };
        let applied = self
            .keeper
            .apply(lease.rules.clone())
            .instrument(info_span!("rules"))
            .await;
        if let Err(error) = applied {
            self.rules_trouble(
                &error,
                "cannot install the REDIRECT rules; not confirming the registration",
            );
            self.publish(
                AgentState::RulesFailed {
                    error: error.to_string(),
                },
                &format!("cannot install REDIRECT rules, retrying: {error}"),
            );
            // The director holds a lease that will never be confirmed: let it go at once.
            let bound = self.config.deregister_timeout;
            if let Ok(Err(error)) = timeout(bound, self.registry.deregister(&lease.id)).await {
                debug!(%error, "cannot withdraw the unconfirmed lease; it will expire");
            }
            return self.backoff.next_delay();
        }
        self.rules_fine();
        if let Err(error) = self.registry.confirm(&lease.id).await {
            return self.director_trouble(error);
        }
        info!(lease = %lease.id, ttl = ?lease.ttl, rules = lease.rules.len(), "registered");
        let wait = heartbeat_period(lease.ttl);
        self.lease = Some(lease);
        self.director_answers();
        wait
    }

    async fn heartbeat(&mut self, lease_id: &str) -> Duration {
        match self.registry.heartbeat(lease_id).await {
            Ok(ttl) => {
                if let Some(lease) = self.lease.as_mut() {
                    lease.ttl = ttl;
                }
                if self.director_problem.is_some() {
                    self.director_answers();
                }
                self.backoff.reset();
                heartbeat_period(ttl)
            }
            Err(RegistryError::LeaseUnknown { .. }) => {
                info!(
                    lease = lease_id,
                    "the director does not know our lease (it restarted or the lease expired): registering again"
                );
                self.lease = None;
                Duration::ZERO
            }
            Err(error) => {
                let ttl = self.lease.as_ref().map_or(Duration::MAX, |l| l.ttl);
                // Keep trying within the lease, so a short outage never lets it expire.
                self.director_trouble(error).min(heartbeat_period(ttl))
            }
        }
    }

    /// Logs a director problem once per kind, publishes it, and answers the backoff delay.
    fn director_trouble(&mut self, error: RegistryError) -> Duration {
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
            self.publish(state, &status);
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
        let status = self.registered_status();
        self.publish(state, &status);
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
            self.config.director.authority(),
            self.config.name
        )
    }

    fn publish(&self, state: AgentState, status: &str) {
        notify::status(status);
        self.state.send_replace(state);
    }

    async fn check_rules(&mut self) {
        match self.keeper.heal().await {
            Ok(_) => self.rules_fine(),
            Err(error) => self.rules_trouble(&error, "cannot check the REDIRECT rules"),
        }
    }

    /// Logs a rule problem once, not on every check while it lasts.
    fn rules_trouble(&mut self, error: &RuleError, what: &str) {
        let text = error.to_string();
        if self.rules_problem.as_deref() == Some(text.as_str()) {
            debug!(%error, "still failing");
        } else {
            error!(%error, "{what}");
            self.rules_problem = Some(text);
        }
    }

    fn rules_fine(&mut self) {
        if let Some(problem) = self.rules_problem.take() {
            info!(previous = %problem, "REDIRECT rules work again");
        }
    }

    /// Deregisters (bounded), then removes the rules (bounded). Never hangs, never panics.
    async fn stop(mut self) -> Result<(), AgentError> {
        notify::stopping();
        self.publish(
            AgentState::Stopping,
            "stopping: deregistering and removing REDIRECT rules",
        );
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
        let removal = timeout(RULE_REMOVAL_TIMEOUT, self.keeper.remove_all())
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
