//! An in-memory nat PREROUTING chain for tests, behaving like iptables: rules are kept as
//! `iptables -S` prints them, an identical rule is found and not added twice, deleting goes by
//! exact match, foreign rules sit beside the agent's, and a person can delete a rule "by hand".
//! It also keeps a journal of the agent's changes, so tests can assert their order.
//!
//! [`MemoryRules::hold`] makes calls wait the way iptables waits for a busy xtables lock: a call
//! made meanwhile takes effect only once the hold ends, even when its caller stopped waiting,
//! as the child process of a timed-out iptables call still runs to its end.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{oneshot, watch};

use super::listing::{parse_line, Listed};
use super::{Ensured, RedirectRule, Removed, RuleBackend, RuleError, CHAIN};

/// A change the agent made through the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleChange {
    Added(RedirectRule),
    Removed(RedirectRule),
}

/// Cheap to clone: clones share one chain, so a test keeps a handle on what the agent changes.
#[derive(Debug, Clone)]
pub struct MemoryRules {
    inner: Arc<Mutex<Chain>>,
    /// True while calls wait (see [`MemoryRules::hold`]).
    held: Arc<watch::Sender<bool>>,
}

impl Default for MemoryRules {
    fn default() -> MemoryRules {
        MemoryRules {
            inner: Arc::default(),
            held: Arc::new(watch::Sender::new(false)),
        }
    }
}

#[derive(Debug, Default)]
struct Chain {
    /// `-A PREROUTING ...` lines, IPv4 and IPv6 in one list (the family is in the address).
    lines: Vec<String>,
    journal: Vec<RuleChange>,
    /// When set, every backend call fails with this message, like iptables without privileges.
    failure: Option<String>,
}

impl MemoryRules {
    pub fn new() -> MemoryRules {
        MemoryRules::default()
    }

    fn chain(&self) -> MutexGuard<'_, Chain> {
        lock(&self.inner)
    }

    /// Runs `call` on the chain now, or once the hold ends; fails like iptables when a
    /// failure is injected.
    async fn call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&mut Chain) -> T + Send + 'static,
    ) -> Result<T, RuleError> {
        if !*self.held.borrow() {
            return checked(&self.inner).map(|mut chain| call(&mut chain));
        }
        let inner = Arc::clone(&self.inner);
        let mut held = self.held.subscribe();
        let (done, answer) = oneshot::channel();
        // A task of its own, like iptables' child process: it goes on if the caller gives up.
        tokio::spawn(async move {
            let _ = held.wait_for(|held| !*held).await;
            let _ = done.send(checked(&inner).map(|mut chain| call(&mut chain)));
        });
        answer
            .await
            .map_err(|_| RuleError::Injected("the in-memory chain's runtime stopped".into()))?
    }

    /// The chain's rules as `iptables -t nat -S PREROUTING` prints them (without the policy).
    pub fn lines(&self) -> Vec<String> {
        self.chain().lines.clone()
    }

    /// The agent's changes so far, oldest first.
    pub fn journal(&self) -> Vec<RuleChange> {
        self.chain().journal.clone()
    }

    /// Whether `rule` is in the chain now, without going through the backend.
    pub fn contains(&self, rule: &RedirectRule) -> bool {
        self.chain().lines.contains(&rule.listing())
    }

    /// What a person types: `-A PREROUTING ...` appends, `-D PREROUTING ...` deletes the first
    /// identical line. Lines must be written the way `iptables -S` prints them.
    pub fn by_hand(&self, command: &str) -> Result<(), String> {
        let mut chain = self.chain();
        if let Some(rest) = command.strip_prefix("-A ") {
            chain.lines.push(format!("-A {rest}"));
            Ok(())
        } else if let Some(rest) = command.strip_prefix("-D ") {
            let line = format!("-A {rest}");
            let at = chain
                .lines
                .iter()
                .position(|l| *l == line)
                .ok_or("Bad rule (does a matching rule exist in that chain?)")?;
            chain.lines.remove(at);
            Ok(())
        } else {
            Err(format!("unsupported command {command:?}"))
        }
    }

    /// Makes every later backend call fail with `message` (`None` heals it).
    pub fn fail_with(&self, message: Option<&str>) {
        self.chain().failure = message.map(str::to_owned);
    }

    /// `true`: every backend call from now on waits, like iptables behind a busy xtables lock;
    /// `false` lets the waiting calls go on, in the order they came.
    pub fn hold(&self, held: bool) {
        self.held.send_replace(held);
    }
}

fn lock(inner: &Mutex<Chain>) -> MutexGuard<'_, Chain> {
    // A test that panicked while holding the lock has failed already; its data is still good.
    inner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn checked(inner: &Mutex<Chain>) -> Result<MutexGuard<'_, Chain>, RuleError> {
    let chain = lock(inner);
    match &chain.failure {
        Some(message) => Err(RuleError::Injected(message.clone())),
        None => Ok(chain),
    }
}

impl RuleBackend for MemoryRules {
    // Two calls each, `-C` then `-A` or `-D`, as iptables makes them: a caller that gives up
    // between them never makes the second.
    async fn ensure(&self, rule: &RedirectRule) -> Result<Ensured, RuleError> {
        if self.is_present(rule).await? {
            return Ok(Ensured::AlreadyPresent);
        }
        let rule = rule.clone();
        self.call(move |chain| {
            // `-A` appends whatever is there already.
            chain.lines.push(rule.listing());
            chain.journal.push(RuleChange::Added(rule));
        })
        .await?;
        Ok(Ensured::Added)
    }

    async fn remove(&self, rule: &RedirectRule) -> Result<Removed, RuleError> {
        if !self.is_present(rule).await? {
            return Ok(Removed::WasAbsent);
        }
        let rule = rule.clone();
        self.call(move |chain| {
            let line = rule.listing();
            let at = chain.lines.iter().position(|l| *l == line).ok_or_else(|| {
                RuleError::Injected("Bad rule (does a matching rule exist in that chain?)".into())
            })?;
            chain.lines.remove(at);
            chain.journal.push(RuleChange::Removed(rule));
            Ok(())
        })
        .await??;
        Ok(Removed::Removed)
    }

    async fn is_present(&self, rule: &RedirectRule) -> Result<bool, RuleError> {
        let line = rule.listing();
        self.call(move |chain| chain.lines.contains(&line)).await
    }

    async fn owned(&self) -> Result<Vec<RedirectRule>, RuleError> {
        self.call(|chain| {
            chain
                .lines
                .iter()
                .filter(|line| line.starts_with(&format!("-A {CHAIN} ")))
                .filter_map(|line| match parse_line(line) {
                    Listed::Owned(rule) => Some(rule),
                    Listed::Foreign | Listed::Unreadable(_) => None,
                })
                .collect()
        })
        .await
    }
}
