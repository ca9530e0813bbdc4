//! A time limit on every call of a [`RuleBackend`].
//!
//! An iptables command can wait without limit (for the xtables lock, held by a firewall reload
//! or a stuck iptables elsewhere on the host). The agent must keep heartbeating and must stop
//! when told, so each call is given up after a limit and counts as a failed call; the check
//! that made it tries again next time. The command itself is not killed: it may still finish
//! later, which is harmless, because every step the agent takes checks what is there first.

use std::future::Future;
use std::time::Duration;

use super::{Ensured, RedirectRule, Removed, RuleBackend, RuleError};

pub struct Bounded<R> {
    inner: R,
    limit: Duration,
}

impl<R: RuleBackend> Bounded<R> {
    pub fn new(inner: R, limit: Duration) -> Bounded<R> {
        Bounded { inner, limit }
    }

    pub fn inner(&self) -> &R {
        &self.inner
    }

    async fn bounded<T>(
        &self,
        what: impl FnOnce() -> String,
        call: impl Future<Output = Result<T, RuleError>>,
    ) -> Result<T, RuleError> {
        match tokio::time::timeout(self.limit, call).await {
            Ok(result) => result,
            Err(_) => Err(RuleError::TimedOut {
                what: what(),
                limit: self.limit,
            }),
        }
    }
}

impl<R: RuleBackend> RuleBackend for Bounded<R> {
    async fn ensure(&self, rule: &RedirectRule) -> Result<Ensured, RuleError> {
        self.bounded(|| format!("adding `{rule}`"), self.inner.ensure(rule))
            .await
    }

    async fn remove(&self, rule: &RedirectRule) -> Result<Removed, RuleError> {
        self.bounded(|| format!("removing `{rule}`"), self.inner.remove(rule))
            .await
    }

    async fn is_present(&self, rule: &RedirectRule) -> Result<bool, RuleError> {
        self.bounded(|| format!("checking `{rule}`"), self.inner.is_present(rule))
            .await
    }

    async fn owned(&self) -> Result<Vec<RedirectRule>, RuleError> {
        self.bounded(
            || "listing the agent's rules (`iptables -t nat -S PREROUTING`)".to_owned(),
            self.inner.owned(),
        )
        .await
    }
}
