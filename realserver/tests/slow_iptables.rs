//! An iptables that hangs (a busy xtables lock) must not cost the lease: heartbeats go on at
//! their pace, rule checks give up after `iptables_timeout` and try again, and a stop still
//! deregisters at once and ends within its bounds. Real time with short TTLs, as in
//! `agent_loop.rs`: the gRPC transport does real socket I/O, which paused tokio time would race.

mod support;

use std::time::Duration;

use lb_realserver::rules::contract::{ssh_rule, Shell};
use lb_realserver::rules::{Bounded, MemoryRules, RuleBackend, RuleError};
use lb_realserver::AgentError;
use support::{eventually, registered_agent, Call, VIP};

#[tokio::test]
async fn heartbeats_keep_their_pace_while_iptables_hangs() {
    let (chain, director, agent, _) = registered_agent().await; // checks every 100 ms, TTL 600 ms
    chain.hold(true);
    let before = director.heartbeats().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let beats = director.heartbeats();
    assert!(
        beats.len() - before >= 5,
        "{} heartbeats in 1.5 s with a hung iptables (a heartbeat is due every 200 ms)",
        beats.len() - before
    );
    let longest = beats[before..]
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(
        longest < Duration::from_millis(400),
        "a heartbeat waited {longest:?} behind iptables"
    );
    assert_eq!(director.registrations(), 1, "the lease was lost");
    chain.hold(false);
    agent.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_stop_deregisters_and_ends_in_bounds_while_iptables_hangs() {
    let (chain, director, agent, lease_id) = registered_agent().await;
    chain.hold(true);
    tokio::time::sleep(Duration::from_millis(250)).await; // a check is stuck by now

    let (result, took) = agent.stop().await;
    assert!(
        director
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Deregister { lease, .. } if *lease == lease_id)),
        "no deregistration"
    );
    // Two bounded calls (list, then remove) of 300 ms each, not forever.
    assert!(took < Duration::from_millis(1500), "stop took {took:?}");
    match result {
        Err(AgentError::RulesLeft(RuleError::TimedOut { .. })) => {}
        other => panic!("expected the rules reported as left behind, got {other:?}"),
    }
    // The given-up checks (`-C`) still run once the lock is free, and change nothing: the
    // rule stays, as the error said.
    chain.hold(false);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(chain.lines(), vec![ssh_rule(VIP).listing()]);
}

#[tokio::test]
async fn a_rule_check_that_times_out_is_retried_at_the_next_check() {
    let (chain, _director, agent, _) = registered_agent().await;
    chain.hold(true);
    chain.iptables(&ssh_rule(VIP).listing().replacen("-A", "-D", 1));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !chain.contains(&ssh_rule(VIP)),
        "healed through a hung iptables"
    );

    chain.hold(false);
    eventually("the rule put back", Duration::from_secs(3), || {
        chain.contains(&ssh_rule(VIP))
    })
    .await;
    assert_eq!(chain.lines().len(), 1, "{:?}", chain.lines());
    agent.stop().await.0.unwrap();
}

#[tokio::test(start_paused = true)]
async fn each_call_is_given_up_after_the_limit() {
    let chain = MemoryRules::new();
    let bounded = Bounded::new(chain.clone(), Duration::from_secs(3));
    chain.hold(true);
    let started = tokio::time::Instant::now();
    let error = bounded.ensure(&ssh_rule(VIP)).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert!(
        error.to_string().contains("did not finish within 3s"),
        "{error}"
    );
    chain.hold(false);
    assert_eq!(
        bounded.ensure(&ssh_rule(VIP)).await.unwrap(),
        lb_realserver::rules::Ensured::Added,
        "the given-up call was a check, which adds nothing"
    );
    assert_eq!(chain.lines(), vec![ssh_rule(VIP).listing()]);
}
