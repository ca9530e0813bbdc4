//! The REDIRECT rules as the agent's two loops share them: the director loop installs them
//! before it confirms a registration, and the check loop puts back what someone deleted.
//!
//! The check loop runs apart from the director loop, so a slow iptables never delays a
//! heartbeat (it did: under CPU load with `rule_check_interval = "1s"`, checks queued up in
//! front of heartbeats and leases expired). Every call is bounded ([`Bounded`]), so whoever
//! waits for the keeper waits for one bounded call at most.

use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tracing::{debug, error, info, info_span, Instrument};

use crate::keeper::{Applied, RuleKeeper, RulePresence};
use crate::rules::{Bounded, RedirectRule, RuleBackend, RuleError};

pub(crate) struct SharedRules<R> {
    keeper: Arc<Mutex<RuleKeeper<Bounded<R>>>>,
    /// The rule problem last logged, so a problem that lasts is one line, not one per check.
    problem: Arc<StdMutex<Option<String>>>,
    presence: RulePresence,
}

impl<R> Clone for SharedRules<R> {
    fn clone(&self) -> Self {
        SharedRules {
            keeper: Arc::clone(&self.keeper),
            problem: Arc::clone(&self.problem),
            presence: self.presence.clone(),
        }
    }
}

impl<R: RuleBackend> SharedRules<R> {
    /// Rules of `address`'s family only (see [`RuleKeeper::of_family`]).
    pub(crate) fn new(backend: R, limit: Duration, address: std::net::IpAddr) -> SharedRules<R> {
        let keeper = RuleKeeper::new(Bounded::new(backend, limit)).of_family(address);
        SharedRules {
            presence: keeper.presence(),
            keeper: Arc::new(Mutex::new(keeper)),
            problem: Arc::default(),
        }
    }

    /// Which kept rules are in place, readable without waiting for an iptables call.
    pub(crate) fn presence(&self) -> RulePresence {
        self.presence.clone()
    }

    pub(crate) async fn install(&self, rules: Vec<RedirectRule>) -> Result<Applied, RuleError> {
        self.keeper.lock().await.install(rules).await
    }

    pub(crate) async fn prune(&self) -> Result<Vec<RedirectRule>, RuleError> {
        self.keeper.lock().await.prune().await
    }

    pub(crate) async fn remove_all(&self) -> Result<Vec<RedirectRule>, RuleError> {
        self.keeper.lock().await.remove_all().await
    }

    async fn check(&self) {
        let healed = self.keeper.lock().await.heal().await;
        match healed {
            Ok(_) => self.fine(),
            Err(error) => self.trouble(&error, "cannot check the REDIRECT rules"),
        }
    }

    /// Logs a rule problem once, not on every check while it lasts.
    pub(crate) fn trouble(&self, error: &RuleError, what: &str) {
        let text = error.to_string();
        let mut problem = self.problem.lock().unwrap_or_else(PoisonError::into_inner);
        if problem.as_deref() == Some(text.as_str()) {
            debug!(%error, "still failing");
        } else {
            error!(%error, "{what}");
            *problem = Some(text);
        }
    }

    pub(crate) fn fine(&self) {
        let previous = self
            .problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(previous) = previous {
            info!(%previous, "REDIRECT rules work again");
        }
    }

    /// Checks the rules every `period` (which a reload may change) until the task is aborted.
    pub(crate) fn spawn_checks(&self, mut period: watch::Receiver<Duration>) -> JoinHandle<()> {
        let rules = self.clone();
        tokio::spawn(async move {
            loop {
                let every = *period.borrow_and_update();
                let mut tick = interval_at(Instant::now() + every, every);
                tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        changed = period.changed() => match changed {
                            Ok(()) => break,
                            Err(_) => return,
                        },
                        _ = tick.tick() => rules.check().instrument(info_span!("rules")).await,
                    }
                }
            }
        })
    }
}
