//! The REDIRECT rule that makes a direct-routed packet for the VIP local to this realserver, and
//! the trait through which the agent reaches the kernel's nat table.
//!
//! In LVS-DR the director hands the client's packet to the realserver unchanged, addressed to the
//! VIP, which this host does not own. The seed's `/etc/init.d/lvs` answered with
//! `iptables -t nat -A PREROUTING -d $VIP -j REDIRECT`; the agent narrows that to the service's
//! protocol and port and tags the rule with a comment, so it can tell its own rules from anybody
//! else's and never touch the latter. A firewall-mark service has no port of its own (the
//! director's mangle rule decides which packets it takes), so its rule keeps the seed's shape,
//! every packet for the VIP, tagged the same way.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;

use lb_shared::domain::Protocol;

mod bounded;
mod iptables;
mod listing;
pub use bounded::Bounded;
pub use iptables::IptablesRules;

#[cfg(feature = "testing")]
pub mod contract;
#[cfg(feature = "testing")]
mod memory;
#[cfg(feature = "testing")]
pub use memory::{MemoryRules, RuleChange};

/// The table and chain every agent rule lives in.
pub const TABLE: &str = "nat";
pub const CHAIN: &str = "PREROUTING";
/// The comment prefix that marks a rule as the agent's: `lb-agent:<service>`.
pub const COMMENT_PREFIX: &str = "lb-agent:";

/// One service's REDIRECT rule: packets for `vip` (on `port`, when given) are delivered
/// locally.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RedirectRule {
    /// The director's service name; it goes into the rule's comment.
    pub service: String,
    pub vip: IpAddr,
    /// The service's protocol and port; None for a firewall-mark service: every packet for
    /// the VIP (only what the director's mark covers is sent here).
    pub port: Option<ServicePort>,
}

/// `-p PROTOCOL --dport PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServicePort {
    pub protocol: Protocol,
    pub port: u16,
}

impl RedirectRule {
    /// The rule as iptables takes it after `-A PREROUTING`:
    /// `-d VIP/32 -p tcp --dport 22 -m comment --comment "lb-agent:llc-ssh" -j REDIRECT`
    /// (a fwmark service's without `-p` and `--dport`).
    pub fn spec(&self) -> String {
        let port = self.port.map_or(String::new(), |p| {
            format!(" -p {} --dport {}", p.protocol, p.port)
        });
        format!(
            "-d {}/{}{port} -m comment --comment \"{}\" -j REDIRECT",
            self.vip,
            self.prefix_len(),
            self.comment()
        )
    }

    /// The rule as `iptables -S PREROUTING` prints it back (iptables adds the protocol's match
    /// module, `-m tcp`).
    pub fn listing(&self) -> String {
        let port = self.port.map_or(String::new(), |p| {
            format!(" -p {} -m {} --dport {}", p.protocol, p.protocol, p.port)
        });
        format!(
            "-A {CHAIN} -d {}/{}{port} -m comment --comment \"{}\" -j REDIRECT",
            self.vip,
            self.prefix_len(),
            self.comment()
        )
    }

    /// `lb-agent:<service>`.
    pub fn comment(&self) -> String {
        format!("{COMMENT_PREFIX}{}", self.service)
    }

    /// IPv6 VIPs go to ip6tables, IPv4 ones to iptables.
    pub fn is_ipv6(&self) -> bool {
        self.vip.is_ipv6()
    }

    /// The command that matches this rule, for messages an operator can paste.
    pub fn command(&self) -> &'static str {
        if self.is_ipv6() {
            "ip6tables"
        } else {
            "iptables"
        }
    }

    fn prefix_len(&self) -> u8 {
        if self.is_ipv6() {
            128
        } else {
            32
        }
    }
}

impl fmt::Display for RedirectRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -t {TABLE} -A {CHAIN} {}",
            self.command(),
            self.spec()
        )
    }
}

/// What [`RuleBackend::ensure`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Added,
    /// An identical rule was there already and is adopted, not duplicated.
    AlreadyPresent,
}

/// What [`RuleBackend::remove`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    Removed,
    WasAbsent,
}

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("cannot use {command}: {message}")]
    Unavailable {
        command: &'static str,
        message: String,
    },
    #[error("`{command} -t {TABLE} {args}` failed (exit status {status}): {stderr}")]
    Command {
        command: &'static str,
        args: String,
        status: i32,
        stderr: String,
    },
    #[error("the {command} call did not finish")]
    Task {
        command: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    /// iptables waits without limit for the xtables lock (and nft for a busy netlink socket);
    /// the agent gives up on the call and tries again at the next check.
    #[error("{what} did not finish within {limit:?} (is iptables waiting for the xtables lock?)")]
    TimedOut {
        what: String,
        limit: std::time::Duration,
    },
    /// Only the in-memory backend's injected failures.
    #[error("{0}")]
    Injected(String),
}

/// The agent's hands on the nat table. Every method touches only the rules it is given or, for
/// [`RuleBackend::owned`], the rules tagged `lb-agent:`.
pub trait RuleBackend: Send + Sync + 'static {
    /// Adds the rule unless an identical one is there (`iptables -C`, then `-A`).
    fn ensure(
        &self,
        rule: &RedirectRule,
    ) -> impl Future<Output = Result<Ensured, RuleError>> + Send;

    /// Deletes the rule if it is there (`iptables -C`, then `-D`).
    fn remove(
        &self,
        rule: &RedirectRule,
    ) -> impl Future<Output = Result<Removed, RuleError>> + Send;

    /// Whether the rule is there (`iptables -C`).
    fn is_present(
        &self,
        rule: &RedirectRule,
    ) -> impl Future<Output = Result<bool, RuleError>> + Send;

    /// The agent's rules now in the chain, IPv4 and IPv6 (`iptables -S PREROUTING`).
    fn owned(&self) -> impl Future<Output = Result<Vec<RedirectRule>, RuleError>> + Send;
}

#[cfg(test)]
mod tests;
