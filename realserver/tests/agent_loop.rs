//! The agent's life against a fake director on loopback, with the in-memory rule chain.
//! Real time with short TTLs: the gRPC transport does real socket I/O, which paused tokio time
//! would race.

mod support;

use std::time::Duration;

use lb_realserver::rules::contract::{ssh_rule, Shell, SEED_RULE};
use lb_realserver::rules::{MemoryRules, RuleChange};
use lb_realserver::AgentState;
use support::{agent_config, eventually, registered_agent, spawn_agent, Call, FakeDirector, VIP};
use tonic::Status;

#[tokio::test]
async fn registers_with_the_rule_installed_before_confirming() {
    let chain = MemoryRules::new();
    let director = FakeDirector::start(&chain);
    let mut agent = spawn_agent(agent_config(&director.url()), &chain);

    let state = agent
        .wait_for("registration", |s| {
            matches!(s, AgentState::Registered { .. })
        })
        .await;
    let AgentState::Registered { lease_id, rules } = state else {
        unreachable!()
    };
    assert_eq!(rules, vec![ssh_rule(VIP)]);

    let calls = director.calls();
    let Call::Register(request) = &calls[0] else {
        panic!("first call was not Register: {calls:?}")
    };
    assert_eq!(request.name, "llc5");
    assert_eq!(request.address, "10.0.0.11");
    assert_eq!(request.services.len(), 1);
    assert_eq!(
        (
            request.services[0].service.as_str(),
            request.services[0].weight
        ),
        ("llc-ssh", 1)
    );
    let Call::Confirm {
        lease,
        chain: at_confirm,
    } = &calls[1]
    else {
        panic!("second call was not Confirm: {calls:?}")
    };
    assert_eq!(lease, &lease_id);
    assert_eq!(
        at_confirm,
        &vec![ssh_rule(VIP).listing()],
        "the rule must exist when the director is told to send traffic"
    );
    agent.stop().await.0.unwrap();
}

#[tokio::test]
async fn heartbeats_come_at_about_a_third_of_the_ttl() {
    let chain = MemoryRules::new();
    let director = FakeDirector::start(&chain); // TTL 600 ms: a heartbeat every ~200 ms
    let mut agent = spawn_agent(agent_config(&director.url()), &chain);
    agent.registered().await;
    // They keep coming: a deadline generous enough for a loaded machine.
    eventually("six heartbeats", Duration::from_secs(30), || {
        director.heartbeats().len() >= 6
    })
    .await;

    // Never more often than the period asks (load can only delay them, so this cannot
    // flake); that the period is a third of the TTL is the unit test of heartbeat_period.
    let beats = director.heartbeats();
    let mut gaps: Vec<Duration> = beats.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    assert!(
        median >= Duration::from_millis(150),
        "median gap {median:?}, all {gaps:?}: more often than a third of the 600 ms TTL"
    );
    agent.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_director_that_forgot_the_lease_gets_a_new_registration() {
    let (chain, director, mut agent, first) = registered_agent().await;

    director.forget_leases();
    let second = agent
        .wait_for(
            "a second registration",
            |s| matches!(s, AgentState::Registered { lease_id, .. } if *lease_id != first),
        )
        .await;
    assert_eq!(director.registrations(), 2, "{second:?}");
    assert_eq!(
        chain.journal(),
        vec![RuleChange::Added(ssh_rule(VIP))],
        "the rule stays in place through a re-registration"
    );
    agent.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_director_down_at_start_is_retried_until_it_answers() {
    let chain = MemoryRules::new();
    // Find a free port, then leave it closed while the agent starts.
    let port_holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = port_holder.local_addr().unwrap();
    drop(port_holder);
    let mut agent = spawn_agent(agent_config(&format!("http://{addr}")), &chain);

    let state = agent
        .wait_for("the unreachable state", |s| {
            matches!(s, AgentState::DirectorUnreachable { .. })
        })
        .await;
    assert!(format!("{state:?}").contains("unreachable"), "{state:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        chain.lines().is_empty(),
        "no rule before the director answers"
    );

    let director = FakeDirector::start_on(addr, &chain, Duration::from_millis(600));
    agent.registered().await;
    assert!(chain.contains(&ssh_rule(VIP)));
    assert_eq!(director.registrations(), 1);
    agent.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_director_outage_keeps_the_rule_and_ends_in_a_new_registration() {
    let (chain, director, mut agent, _) = registered_agent().await;
    let addr = director.addr;

    director.stop();
    agent
        .wait_for("the unreachable state", |s| {
            matches!(s, AgentState::DirectorUnreachable { .. })
        })
        .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        chain.contains(&ssh_rule(VIP)),
        "the rule must stay while the director is away"
    );

    // A restarted director knows no lease: the agent's heartbeat gets NOT_FOUND.
    let restarted = FakeDirector::start_on(addr, &chain, Duration::from_millis(600));
    agent.registered().await;
    assert_eq!(restarted.registrations(), 1);
    assert_eq!(chain.journal(), vec![RuleChange::Added(ssh_rule(VIP))]);
    agent.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_moved_vip_replaces_the_old_rule() {
    let (chain, director, mut agent, first) = registered_agent().await;

    director.change(|b| b.vip = "198.18.1.99".into());
    director.forget_leases();
    agent
        .wait_for(
            "a registration on the new VIP",
            |s| matches!(s, AgentState::Registered { lease_id, .. } if *lease_id != first),
        )
        .await;
    assert_eq!(chain.lines(), vec![ssh_rule("198.18.1.99").listing()]);
    assert_eq!(
        chain.journal(),
        vec![
            RuleChange::Added(ssh_rule(VIP)),
            RuleChange::Added(ssh_rule("198.18.1.99")),
            RuleChange::Removed(ssh_rule(VIP)),
        ]
    );
    agent.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_refusal_is_reported_with_the_directors_words_and_retried() {
    let chain = MemoryRules::new();
    let director = FakeDirector::start(&chain);
    director
        .change(|b| b.refuse_register = Some(Status::not_found("no service named \"llc-ssh\"")));
    let mut agent = spawn_agent(agent_config(&director.url()), &chain);

    let state = agent
        .wait_for("the refusal", |s| matches!(s, AgentState::Refused { .. }))
        .await;
    assert!(
        format!("{state:?}").contains(r#"no service named \"llc-ssh\""#),
        "{state:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(director.registrations() >= 2, "the agent gave up");
    assert!(chain.lines().is_empty());

    director.change(|b| b.refuse_register = None);
    agent.registered().await;
    agent.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_rule_deleted_by_hand_comes_back() {
    let (chain, _director, agent, _) = registered_agent().await;

    chain.iptables(&ssh_rule(VIP).listing().replacen("-A", "-D", 1));
    assert!(!chain.contains(&ssh_rule(VIP)));
    eventually(
        "the rule put back (checks every 100 ms)",
        Duration::from_secs(5),
        || chain.contains(&ssh_rule(VIP)),
    )
    .await;
    assert_eq!(chain.lines().len(), 1);
    agent.stop().await.0.unwrap();
}

#[tokio::test]
async fn rules_that_cannot_be_installed_are_never_confirmed() {
    let chain = MemoryRules::new();
    chain.fail_with(Some("Permission denied (you must be root)"));
    let director = FakeDirector::start(&chain);
    let mut agent = spawn_agent(agent_config(&director.url()), &chain);

    let state = agent
        .wait_for("the rule failure", |s| {
            matches!(s, AgentState::RulesFailed { .. })
        })
        .await;
    assert!(
        format!("{state:?}").contains("Permission denied"),
        "{state:?}"
    );
    let confirmed = |calls: &[Call]| calls.iter().any(|c| matches!(c, Call::Confirm { .. }));
    assert!(!confirmed(&director.calls()), "confirmed without a rule");
    eventually(
        "the unconfirmed lease withdrawn",
        Duration::from_secs(2),
        || {
            director
                .calls()
                .iter()
                .any(|c| matches!(c, Call::Deregister { .. }))
        },
    )
    .await;

    chain.fail_with(None);
    agent.registered().await;
    assert!(confirmed(&director.calls()));
    agent.stop().await.0.unwrap();
}

#[tokio::test]
async fn shutdown_deregisters_then_removes_only_the_agents_rules() {
    let (chain, director, agent, lease_id) = registered_agent().await;
    chain.iptables(SEED_RULE);
    let mut state = agent.state.clone();

    let (result, _) = agent.stop().await;
    result.unwrap();
    assert_eq!(*state.borrow_and_update(), AgentState::Stopped);
    let calls = director.calls();
    let Some(Call::Deregister {
        lease,
        chain: at_deregister,
    }) = calls.last()
    else {
        panic!("the last call was not Deregister: {calls:?}")
    };
    assert_eq!(lease, &lease_id);
    assert!(
        at_deregister.contains(&ssh_rule(VIP).listing()),
        "the rule went before the deregistration"
    );
    assert_eq!(chain.lines(), vec![SEED_RULE.to_string()]);
}

#[tokio::test]
async fn a_director_that_hangs_on_deregistration_does_not_hang_the_stop() {
    let (chain, director, agent, _) = registered_agent().await; // bound: 1 s
    director.change(|b| b.hang_deregister = true);

    let (result, took) = agent.stop().await;
    result.unwrap();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "stop took {took:?} with a 1 s deregistration bound"
    );
    assert!(chain.lines().is_empty(), "rules left: {:?}", chain.lines());
}

#[tokio::test]
async fn a_director_that_is_gone_does_not_hang_the_stop() {
    let (chain, director, agent, _) = registered_agent().await;
    director.stop();

    let (result, took) = agent.stop().await;
    result.unwrap();
    assert!(took < Duration::from_millis(2500), "stop took {took:?}");
    assert!(chain.lines().is_empty(), "rules left: {:?}", chain.lines());
}

#[tokio::test]
async fn a_rule_that_cannot_be_removed_is_reported_at_stop() {
    let (chain, _director, agent, _) = registered_agent().await;
    chain.fail_with(Some("Permission denied (you must be root)"));

    let (result, _) = agent.stop().await;
    let error = result.unwrap_err();
    assert!(
        error.to_string().contains("REDIRECT rules may be left"),
        "{error}"
    );
}
