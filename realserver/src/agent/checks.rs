//! The REDIRECT rules as the agent's loops share them: each director's session installs them
//! before it confirms a registration, and the check loop puts back what someone deleted.
//!
//! The rules are one local concern however many directors there are: the nat table holds the
//! union of what every director's lease asks for (they answer the same rules when configured
//! alike), a registration whose rules are already in place confirms without touching iptables,
//! and the check loop repairs a rule once, not once per director.
//!
//! The check loop runs apart from the director loop, so a slow iptables never delays a
//! heartbeat (it did: under CPU load with `rule_check_interval = "1s"`, checks queued up in
//! front of heartbeats and leases expired). Every call is bounded ([`Bounded`]), so whoever
//! waits for the keeper waits for one bounded call at most.

use std::collections::BTreeMap;
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
    /// What each director session's last lease asks for; the keeper keeps their union.
    wanted: Arc<StdMutex<BTreeMap<u64, Vec<RedirectRule>>>>,
}

impl<R> Clone for SharedRules<R> {
    fn clone(&self) -> Self {
        SharedRules {
            keeper: Arc::clone(&self.keeper),
            problem: Arc::clone(&self.problem),
            presence: self.presence.clone(),
            wanted: Arc::clone(&self.wanted),
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
            wanted: Arc::default(),
        }
    }

    /// Which kept rules are in place, readable without waiting for an iptables call.
    pub(crate) fn presence(&self) -> RulePresence {
        self.presence.clone()
    }

    /// Makes `rules` what `session`'s director asks for and installs the union of every
    /// session's rules; nothing to do when that union is in place already (another director's
    /// registration put it there). The agent's other rules stay until [`SharedRules::prune`].
    pub(crate) async fn want(
        &self,
        session: u64,
        rules: Vec<RedirectRule>,
    ) -> Result<(), RuleError> {
        let mut keeper = self.keeper.lock().await;
        let union = self.update(|wanted| {
            wanted.insert(session, rules);
        });
        if keeper.desired() == union.as_slice() && self.presence.all_present(&union) {
            return Ok(());
        }
        keeper.install(union).await.map(|_: Applied| ())
    }

    /// `session` ended (its director was removed by a reload): its rules are kept only if
    /// another director asks for them, and the others go.
    pub(crate) async fn forget(&self, session: u64) -> Result<(), RuleError> {
        let mut keeper = self.keeper.lock().await;
        let union = self.update(|wanted| {
            wanted.remove(&session);
        });
        if keeper.desired() != union.as_slice() {
            keeper.install(union).await?;
            keeper.prune().await?;
        }
        Ok(())
    }

    /// Changes the wanted sets and answers their union, in a stable order.
    fn update(
        &self,
        change: impl FnOnce(&mut BTreeMap<u64, Vec<RedirectRule>>),
    ) -> Vec<RedirectRule> {
        let mut wanted = self.wanted.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut wanted);
        let mut union: Vec<RedirectRule> = Vec::new();
        for rule in wanted.values().flatten() {
            if !union.contains(rule) {
                union.push(rule.clone());
            }
        }
        union
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
