//! The rule backend contract against the in-memory chain, and the keeper's reconciling on it.
//! (`iptables_netns.rs` runs the same contract against real iptables.)

use lb_realserver::keeper::RuleKeeper;
use lb_realserver::rules::contract::{self, rule, ssh_rule, Shell, SEED_RULE};
use lb_realserver::rules::{MemoryRules, RuleBackend, RuleChange};
use lb_shared::domain::Protocol;

#[tokio::test]
async fn memory_rules_keep_the_backend_contract() {
    let rules = MemoryRules::new();
    contract::all(&rules, &rules).await;
    assert!(rules.lines().is_empty(), "the contract left rules behind");
}

#[tokio::test]
async fn apply_installs_then_adopts_without_duplicates() {
    let chain = MemoryRules::new();
    let mut keeper = RuleKeeper::new(chain.clone());
    let wanted = vec![ssh_rule("198.18.1.54")];

    let first = keeper.apply(wanted.clone()).await.unwrap();
    assert_eq!(first.added, wanted);
    let second = keeper.apply(wanted.clone()).await.unwrap();
    assert!(second.added.is_empty() && second.removed.is_empty());
    assert_eq!(second.adopted, wanted);
    assert_eq!(chain.lines(), vec![wanted[0].listing()]);
}

#[tokio::test]
async fn a_moved_vip_is_replaced_new_rule_first() {
    let chain = MemoryRules::new();
    let mut keeper = RuleKeeper::new(chain.clone());
    let old = ssh_rule("198.18.1.54");
    let new = ssh_rule("198.18.1.99");
    keeper.apply(vec![old.clone()]).await.unwrap();

    let applied = keeper.apply(vec![new.clone()]).await.unwrap();
    assert_eq!(applied.added, vec![new.clone()]);
    assert_eq!(applied.removed, vec![old.clone()]);
    assert_eq!(chain.lines(), vec![new.listing()]);
    assert_eq!(
        chain.journal(),
        vec![
            RuleChange::Added(old.clone()),
            RuleChange::Added(new),
            RuleChange::Removed(old)
        ]
    );
}

#[tokio::test]
async fn leftovers_of_an_earlier_run_are_adopted_or_cleared() {
    let chain = MemoryRules::new();
    let kept = ssh_rule("198.18.1.54");
    let stale = rule("retired", "198.18.1.60", 80, Protocol::Tcp);
    chain.iptables(&kept.listing());
    chain.iptables(&stale.listing());
    chain.iptables(SEED_RULE);

    let mut keeper = RuleKeeper::new(chain.clone());
    let applied = keeper.apply(vec![kept.clone()]).await.unwrap();
    assert_eq!(applied.adopted, vec![kept.clone()]);
    assert_eq!(applied.removed, vec![stale]);
    assert_eq!(
        chain.lines(),
        vec![kept.listing(), SEED_RULE.to_string()],
        "the seed's own rule must stay"
    );
}

#[tokio::test]
async fn heal_puts_back_only_what_is_missing() {
    let chain = MemoryRules::new();
    let mut keeper = RuleKeeper::new(chain.clone());
    let ssh = ssh_rule("198.18.1.54");
    let dns = rule("dns", "198.18.1.55", 53, Protocol::Udp);
    keeper.apply(vec![ssh.clone(), dns.clone()]).await.unwrap();
    assert!(keeper.heal().await.unwrap().is_empty());

    chain.iptables(&dns.listing().replacen("-A", "-D", 1));
    assert_eq!(keeper.heal().await.unwrap(), vec![dns.clone()]);
    assert!(chain.contains(&dns) && chain.contains(&ssh));
    assert_eq!(chain.lines().len(), 2);
}

#[tokio::test]
async fn remove_all_takes_every_agent_rule_and_nothing_else() {
    let chain = MemoryRules::new();
    chain.iptables(SEED_RULE);
    let leftover = rule("retired", "198.18.1.60", 80, Protocol::Tcp);
    chain.iptables(&leftover.listing());
    let mut keeper = RuleKeeper::new(chain.clone());
    keeper.apply(vec![ssh_rule("198.18.1.54")]).await.unwrap();
    // Someone puts a stale agent rule back by hand after the keeper cleared it.
    chain.iptables(&leftover.listing());

    let removed = keeper.remove_all().await.unwrap();
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert_eq!(chain.lines(), vec![SEED_RULE.to_string()]);
    assert!(keeper.desired().is_empty());
    assert!(chain.owned().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failing_backend_is_reported_not_hidden() {
    let chain = MemoryRules::new();
    let mut keeper = RuleKeeper::new(chain.clone());
    chain.fail_with(Some("Permission denied (you must be root)"));
    let err = keeper
        .apply(vec![ssh_rule("198.18.1.54")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Permission denied"), "{err}");
    // The wanted rule is remembered, so the periodic check installs it once iptables works.
    chain.fail_with(None);
    assert_eq!(keeper.heal().await.unwrap(), vec![ssh_rule("198.18.1.54")]);
}
