//! An in-memory nat PREROUTING chain for tests, behaving like iptables: rules are kept as
//! `iptables -S` prints them, an identical rule is found and not added twice, deleting goes by
//! exact match, foreign rules sit beside the agent's, and a person can delete a rule "by hand".
//! It also keeps a journal of the agent's changes, so tests can assert their order.

use std::sync::{Arc, Mutex, MutexGuard};

use super::listing::{parse_line, Listed};
use super::{Ensured, RedirectRule, Removed, RuleBackend, RuleError, CHAIN};

/// A change the agent made through the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleChange {
    Added(RedirectRule),
    Removed(RedirectRule),
}

/// Cheap to clone: clones share one chain, so a test keeps a handle on what the agent changes.
#[derive(Debug, Clone, Default)]
pub struct MemoryRules {
    inner: Arc<Mutex<Chain>>,
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
        // A test that panicked while holding the lock has failed already; its data is still good.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn checked(&self) -> Result<MutexGuard<'_, Chain>, RuleError> {
        let chain = self.chain();
        match &chain.failure {
            Some(message) => Err(RuleError::Injected(message.clone())),
            None => Ok(chain),
        }
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
}

impl RuleBackend for MemoryRules {
    async fn ensure(&self, rule: &RedirectRule) -> Result<Ensured, RuleError> {
        let mut chain = self.checked()?;
        let line = rule.listing();
        if chain.lines.contains(&line) {
            return Ok(Ensured::AlreadyPresent);
        }
        chain.lines.push(line);
        chain.journal.push(RuleChange::Added(rule.clone()));
        Ok(Ensured::Added)
    }

    async fn remove(&self, rule: &RedirectRule) -> Result<Removed, RuleError> {
        let mut chain = self.checked()?;
        let line = rule.listing();
        let Some(at) = chain.lines.iter().position(|l| *l == line) else {
            return Ok(Removed::WasAbsent);
        };
        chain.lines.remove(at);
        chain.journal.push(RuleChange::Removed(rule.clone()));
        Ok(Removed::Removed)
    }

    async fn is_present(&self, rule: &RedirectRule) -> Result<bool, RuleError> {
        Ok(self.checked()?.lines.contains(&rule.listing()))
    }

    async fn owned(&self) -> Result<Vec<RedirectRule>, RuleError> {
        let chain = self.checked()?;
        Ok(chain
            .lines
            .iter()
            .filter(|line| line.starts_with(&format!("-A {CHAIN} ")))
            .filter_map(|line| match parse_line(line) {
                Listed::Owned(rule) => Some(rule),
                Listed::Foreign | Listed::Unreadable(_) => None,
            })
            .collect())
    }
}
