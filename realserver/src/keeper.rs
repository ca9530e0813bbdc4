//! Keeps the nat table holding the REDIRECT rules the director's answer asks for: installs and
//! adopts them, replaces the agent's rules that no longer match (a VIP that moved), puts back a
//! rule someone deleted, and removes them all on the way out.
//!
//! Like a reconciler, it compares what is wanted with what is there and acts on the difference,
//! so running any step twice changes nothing the second time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::{info, warn};

use crate::rules::{Ensured, RedirectRule, Removed, RuleBackend, RuleError};

pub struct RuleKeeper<R> {
    backend: R,
    /// The rules of the last registration; kept while the director is away, because an
    /// established setup must keep serving through a director restart.
    desired: Vec<RedirectRule>,
    /// Whether each kept rule was in place at its last install or check, for the metrics;
    /// shared so a scrape never waits for an iptables call.
    presence: RulePresence,
    /// Some(is IPv6): prune and removal touch only the agent's rules of this family. An
    /// agent registers one address, so a realserver in services of both families runs one
    /// agent per family; neither may take the other's rules for stale ones.
    family: Option<bool>,
}

/// Each kept rule, and whether it was in the nat table at the last look.
#[derive(Debug, Clone, Default)]
pub struct RulePresence(Arc<Mutex<BTreeMap<RedirectRule, bool>>>);

impl RulePresence {
    pub fn snapshot(&self) -> BTreeMap<RedirectRule, bool> {
        self.lock().clone()
    }

    /// Whether each of `rules` was in place at its last install or check.
    pub fn all_present(&self, rules: &[RedirectRule]) -> bool {
        let map = self.lock();
        rules.iter().all(|rule| map.get(rule) == Some(&true))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<RedirectRule, bool>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Only `kept` are shown; one not looked at yet counts as absent.
    fn keep(&self, kept: &[RedirectRule]) {
        let mut map = self.lock();
        map.retain(|rule, _| kept.contains(rule));
        for rule in kept {
            map.entry(rule.clone()).or_insert(false);
        }
    }

    fn set(&self, rule: &RedirectRule, present: bool) {
        self.lock().insert(rule.clone(), present);
    }
}

/// What [`RuleKeeper::apply`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub added: Vec<RedirectRule>,
    pub adopted: Vec<RedirectRule>,
    /// The agent's rules that no longer matched what the director answered.
    pub removed: Vec<RedirectRule>,
}

impl<R: RuleBackend> RuleKeeper<R> {
    pub fn new(backend: R) -> RuleKeeper<R> {
        RuleKeeper {
            backend,
            desired: Vec::new(),
            presence: RulePresence::default(),
            family: None,
        }
    }

    /// Keeps to the rules of `address`'s family (the agent's own address: every VIP it is
    /// bound to is of that family).
    pub fn of_family(mut self, address: std::net::IpAddr) -> RuleKeeper<R> {
        self.family = Some(address.is_ipv6());
        self
    }

    /// The agent's rules now in the chain that this keeper may remove.
    async fn owned(&self) -> Result<Vec<RedirectRule>, RuleError> {
        let mut owned = self.backend.owned().await?;
        if let Some(ipv6) = self.family {
            owned.retain(|rule| rule.is_ipv6() == ipv6);
        }
        Ok(owned)
    }

    pub fn presence(&self) -> RulePresence {
        self.presence.clone()
    }

    /// `ensure` of one kept rule, its outcome noted for the metrics.
    async fn ensure(&self, rule: &RedirectRule) -> Result<Ensured, RuleError> {
        let ensured = self.backend.ensure(rule).await;
        self.presence.set(rule, ensured.is_ok());
        ensured
    }

    pub fn backend(&self) -> &R {
        &self.backend
    }

    pub fn desired(&self) -> &[RedirectRule] {
        &self.desired
    }

    /// Makes `desired` the rules to keep: installs each (adopting an identical one already
    /// there), then removes the agent's other rules. New rules go in before old ones go out,
    /// so a service whose VIP moved is never without a rule.
    ///
    /// On error the new rules are still the ones [`RuleKeeper::heal`] keeps trying to install.
    pub async fn apply(&mut self, desired: Vec<RedirectRule>) -> Result<Applied, RuleError> {
        let mut applied = self.install(desired).await?;
        applied.removed = self.prune().await?;
        Ok(applied)
    }

    /// The first half of [`RuleKeeper::apply`]: makes `desired` the rules to keep and installs
    /// each, leaving the agent's other rules in place. The agent confirms a registration
    /// between the halves, so a service it leaves keeps its rule until the director has taken
    /// the registration without it.
    pub async fn install(&mut self, desired: Vec<RedirectRule>) -> Result<Applied, RuleError> {
        self.desired = desired;
        self.presence.keep(&self.desired);
        let mut applied = Applied::default();
        for rule in &self.desired {
            match self.ensure(rule).await? {
                Ensured::Added => {
                    info!(%rule, "REDIRECT rule added");
                    applied.added.push(rule.clone());
                }
                Ensured::AlreadyPresent => {
                    info!(%rule, "REDIRECT rule already present: adopted");
                    applied.adopted.push(rule.clone());
                }
            }
        }
        Ok(applied)
    }

    /// The second half of [`RuleKeeper::apply`]: removes the agent's rules that are not kept.
    pub async fn prune(&self) -> Result<Vec<RedirectRule>, RuleError> {
        let mut removed = Vec::new();
        for stale in self.owned().await? {
            if self.desired.contains(&stale) {
                continue;
            }
            if self.backend.remove(&stale).await? == Removed::Removed {
                info!(rule = %stale, "REDIRECT rule no longer wanted: removed");
                removed.push(stale);
            }
        }
        Ok(removed)
    }

    /// Puts back every kept rule that is missing, with a warning; returns those put back.
    pub async fn heal(&self) -> Result<Vec<RedirectRule>, RuleError> {
        let mut restored = Vec::new();
        for rule in &self.desired {
            if self.ensure(rule).await? == Ensured::Added {
                warn!(%rule, "REDIRECT rule was missing (deleted by hand?): put back");
                restored.push(rule.clone());
            }
        }
        Ok(restored)
    }

    /// Removes the kept rules and any other rule tagged as the agent's. Goes on past failures
    /// so one stuck rule does not keep the others in place; returns the first error.
    pub async fn remove_all(&mut self) -> Result<Vec<RedirectRule>, RuleError> {
        let mut targets = std::mem::take(&mut self.desired);
        self.presence.keep(&[]);
        let mut first_error = None;
        match self.owned().await {
            Ok(owned) => {
                let others: Vec<_> = owned.into_iter().filter(|r| !targets.contains(r)).collect();
                targets.extend(others);
            }
            Err(error) => first_error = Some(error),
        }
        let mut removed = Vec::new();
        for rule in targets {
            match self.backend.remove(&rule).await {
                Ok(Removed::Removed) => {
                    info!(%rule, "REDIRECT rule removed");
                    removed.push(rule);
                }
                Ok(Removed::WasAbsent) => {}
                Err(error) => {
                    warn!(%rule, %error, "cannot remove REDIRECT rule");
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(removed),
        }
    }
}
