//! The contract every [`RuleBackend`] keeps, as checks that run against the in-memory backend
//! (`cargo test`) and against real iptables in a network namespace (root tests), so the fake
//! cannot drift from the kernel. Each check panics with a message a person can act on, starts
//! with none of the agent's rules in the chain, and leaves none behind.

use std::net::IpAddr;

use lb_shared::domain::Protocol;

use super::{Ensured, MemoryRules, RedirectRule, Removed, RuleBackend, ServicePort, CHAIN};

/// What a person does at the shell beside the agent.
pub trait Shell {
    /// The IPv4 chain's rules as `iptables -t nat -S PREROUTING` prints them, policy left out.
    fn chain(&self) -> Vec<String>;
    /// Runs `iptables -t nat <command>`, e.g. `-D PREROUTING -d 10.0.0.100/32 -j REDIRECT`.
    fn iptables(&self, command: &str);
}

impl Shell for MemoryRules {
    fn chain(&self) -> Vec<String> {
        // The shell's `iptables` shows IPv4 only; IPv6 rules are ip6tables' business.
        self.lines()
            .into_iter()
            .filter(|line| {
                !line
                    .split_whitespace()
                    .skip_while(|token| *token != "-d")
                    .nth(1)
                    .is_some_and(|address| address.contains(':'))
            })
            .collect()
    }

    fn iptables(&self, command: &str) {
        if let Err(message) = self.by_hand(command) {
            panic!("iptables -t nat {command}: {message}");
        }
    }
}

/// A rule in the shape the seed's realservers need: ssh on a VIP from a test range.
pub fn ssh_rule(vip: &str) -> RedirectRule {
    rule("llc-ssh", vip, 22, Protocol::Tcp)
}

pub fn rule(service: &str, vip: &str, port: u16, protocol: Protocol) -> RedirectRule {
    RedirectRule {
        port: Some(ServicePort { protocol, port }),
        ..fwmark_rule(service, vip)
    }
}

/// A firewall-mark service's rule: every packet for the VIP.
pub fn fwmark_rule(service: &str, vip: &str) -> RedirectRule {
    RedirectRule {
        service: service.to_owned(),
        vip: vip
            .parse::<IpAddr>()
            .unwrap_or_else(|e| panic!("{vip}: {e}")),
        port: None,
    }
}

/// The seed's own realserver rule, written by hand: the agent must never touch it.
pub const SEED_RULE: &str = "-A PREROUTING -d 198.18.1.54/32 -j REDIRECT";

/// Runs every check in turn.
pub async fn all(backend: &impl RuleBackend, shell: &impl Shell) {
    adds_once_then_adopts(backend, shell).await;
    removal_restores_the_chain(backend, shell).await;
    finds_a_rule_deleted_by_hand(backend, shell).await;
    leaves_foreign_rules_alone(backend, shell).await;
    lists_its_own_rules_of_every_family(backend, shell).await;
}

/// Exactly one rule after any number of `ensure`s.
pub async fn adds_once_then_adopts(backend: &impl RuleBackend, shell: &impl Shell) {
    let rule = ssh_rule("198.18.1.54");
    assert_eq!(ensure(backend, &rule).await, Ensured::Added, "first ensure");
    assert_eq!(
        ensure(backend, &rule).await,
        Ensured::AlreadyPresent,
        "second ensure"
    );
    let ours: Vec<String> = shell
        .chain()
        .into_iter()
        .filter(|line| line.contains("lb-agent:llc-ssh"))
        .collect();
    assert_eq!(ours, vec![rule.listing()], "the chain holds the rule once");
    assert!(present(backend, &rule).await);
    assert_eq!(remove(backend, &rule).await, Removed::Removed);
}

/// Ensure then remove leaves the chain exactly as it was, and removing twice is harmless.
pub async fn removal_restores_the_chain(backend: &impl RuleBackend, shell: &impl Shell) {
    shell.iptables(SEED_RULE);
    let before = shell.chain();
    let rule = ssh_rule("198.18.1.54");
    ensure(backend, &rule).await;
    assert_ne!(shell.chain(), before, "ensure changed nothing");
    assert_eq!(remove(backend, &rule).await, Removed::Removed);
    assert_eq!(shell.chain(), before, "removal left the chain changed");
    assert_eq!(remove(backend, &rule).await, Removed::WasAbsent);
    assert!(!present(backend, &rule).await);
    shell.iptables(&SEED_RULE.replacen("-A", "-D", 1));
}

/// A rule deleted at the shell is seen as missing and comes back with `ensure`.
pub async fn finds_a_rule_deleted_by_hand(backend: &impl RuleBackend, shell: &impl Shell) {
    let rule = ssh_rule("198.18.1.54");
    ensure(backend, &rule).await;
    shell.iptables(&rule.listing().replacen("-A", "-D", 1));
    assert!(
        !present(backend, &rule).await,
        "a deleted rule is reported present"
    );
    assert_eq!(ensure(backend, &rule).await, Ensured::Added);
    assert!(present(backend, &rule).await);
    remove(backend, &rule).await;
}

/// The seed's untagged rule and another tool's tagged rule survive everything the agent does.
pub async fn leaves_foreign_rules_alone(backend: &impl RuleBackend, shell: &impl Shell) {
    let other_tool = format!(
        "-A {CHAIN} -d 198.18.1.54/32 -p tcp -m tcp --dport 22 -m comment --comment \"kube:x\" -j REDIRECT"
    );
    shell.iptables(SEED_RULE);
    shell.iptables(&other_tool);
    let rule = ssh_rule("198.18.1.54");
    ensure(backend, &rule).await;
    assert_eq!(
        owned(backend).await,
        vec![rule.clone()],
        "foreign rules counted as ours"
    );
    remove(backend, &rule).await;
    let chain = shell.chain();
    for foreign in [SEED_RULE, other_tool.as_str()] {
        assert!(
            chain.iter().any(|l| l == foreign),
            "{foreign} is gone: {chain:?}"
        );
    }
    shell.iptables(&SEED_RULE.replacen("-A", "-D", 1));
    shell.iptables(&other_tool.replacen("-A", "-D", 1));
}

/// `owned` reads back every protocol and IPv6, in the agent's own terms.
pub async fn lists_its_own_rules_of_every_family(backend: &impl RuleBackend, _shell: &impl Shell) {
    let rules = vec![
        ssh_rule("198.18.1.54"),
        rule("dns", "198.18.1.55", 53, Protocol::Udp),
        rule("signalling", "198.18.1.56", 2905, Protocol::Sctp),
        rule("llc-ssh6", "2001:db8::54", 22, Protocol::Tcp),
        fwmark_rule("llc-fwm", "198.18.1.57"),
        fwmark_rule("llc-fwm6", "2001:db8::57"),
    ];
    assert!(
        owned(backend).await.is_empty(),
        "the chain already has agent rules"
    );
    for rule in &rules {
        assert_eq!(ensure(backend, rule).await, Ensured::Added, "{rule}");
    }
    let mut listed = owned(backend).await;
    listed.sort();
    let mut expected = rules.clone();
    expected.sort();
    assert_eq!(listed, expected);
    for rule in &rules {
        assert_eq!(remove(backend, rule).await, Removed::Removed, "{rule}");
    }
    assert!(owned(backend).await.is_empty());
}

async fn ensure(backend: &impl RuleBackend, rule: &RedirectRule) -> Ensured {
    backend
        .ensure(rule)
        .await
        .unwrap_or_else(|e| panic!("ensure {rule}: {e}"))
}

async fn remove(backend: &impl RuleBackend, rule: &RedirectRule) -> Removed {
    backend
        .remove(rule)
        .await
        .unwrap_or_else(|e| panic!("remove {rule}: {e}"))
}

async fn present(backend: &impl RuleBackend, rule: &RedirectRule) -> bool {
    backend
        .is_present(rule)
        .await
        .unwrap_or_else(|e| panic!("is_present {rule}: {e}"))
}

async fn owned(backend: &impl RuleBackend) -> Vec<RedirectRule> {
    backend
        .owned()
        .await
        .unwrap_or_else(|e| panic!("owned: {e}"))
}
