//! The director loop's steps: register (rules installed before the confirmation), heartbeat,
//! and what the agent tells the log, systemd and its watchers when the director misbehaves.

use std::time::Duration;

use tokio::time::timeout;
use tracing::{debug, error, info, info_span, warn, Instrument};

use super::{heartbeat_period, Agent, AgentState};
use crate::registry::{Lease, RegistryError};
use crate::rules::RuleBackend;

impl<R: RuleBackend> Agent<R> {
    /// One step with the director; answers how long to wait before the next.
    pub(super) async fn talk_to_director(&mut self) -> Duration {
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

    /// Installs the rules a new lease asks for, confirms it, then removes the rules it no
    /// longer asks for; answers how long to wait before the next step.
    pub(super) async fn take_lease(&mut self, lease: Lease) -> Duration {
        // A new lease replaces the one held: the director knows only the new one now.
        self.lease = None;
        // Bounded: each iptables call is, and the check loop holds the keeper for one check at most.
        let installed = self
            .rules
            .install(lease.rules.clone())
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
                &format!("cannot install REDIRECT rules, retrying: {error}"),
            );
            // The director holds a lease that will never be confirmed: let it go at once.
            let bound = self.config.deregister_timeout;
            if let Ok(Err(error)) = timeout(bound, self.registry.deregister(&lease.id)).await {
                debug!(%error, "cannot withdraw the unconfirmed lease; it will expire");
            }
            return self.backoff.next_delay();
        }
        self.rules.fine();
        if let Err(error) = self.registry.confirm(&lease.id).await {
            return self.director_trouble(error);
        }
        self.metrics.renewed();
        info!(lease = %lease.id, ttl = ?lease.ttl, rules = lease.rules.len(), checks = lease.checks.len(), "registered");
        for error in &lease.unchecked {
            warn!(%error, "cannot run this check here; the director's own probes still judge the service");
        }
        // After the confirmation, not before: registering never waits for health, and a
        // check whose config is unchanged keeps its history through a re-registration.
        self.selfchecks.apply(lease.checks.clone());
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
        self.lease_renewed = tokio::time::Instant::now();
        self.registered = self.config.services.clone();
        self.director_answers();
        wait
    }

    async fn heartbeat(&mut self, lease_id: &str) -> Duration {
        let health = self.selfchecks.report();
        match self.registry.heartbeat(lease_id, health).await {
            Ok(ttl) => {
                self.metrics.renewed();
                if let Some(lease) = self.lease.as_mut() {
                    lease.ttl = ttl;
                }
                self.lease_renewed = tokio::time::Instant::now();
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
    pub(super) fn registered_status(&self) -> String {
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
        let mut status = format!(
            "registered with {} as {}, {weights}",
            self.config.director.authority(),
            self.config.name
        );
        for (service, reason) in self.selfchecks.down() {
            status.push_str(&format!(", {service} down: {reason}"));
        }
        status
    }
}
