//! Reloads against a fake director on loopback, with the in-memory rule chain: what a good
//! file changes, and that a bad one (or one the director refuses) changes nothing. Real time
//! with short TTLs, as in `agent_loop.rs`.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use lb_realserver::config::{AgentConfig, ConfigError};
use lb_realserver::rules::contract::{rule, ssh_rule, Shell};
use lb_realserver::rules::{MemoryRules, RuleChange};
use lb_realserver::{AgentState, ReloadSource};
use lb_shared::domain::Protocol;
use lb_shared::reload::{self, ReloadHandle};
use support::{agent_config, eventually, spawn_reloadable, Call, FakeDirector, RunningAgent, VIP};
use tonic::Status;

const SSH: &str = "[[service]]\nname = \"llc-ssh\"\n";
const WEB: &str = "[[service]]\nname = \"web\"\n";

/// An agent.toml for the fake director, with quick checks.
fn write_config(path: &Path, director: &FakeDirector, rest: &str) {
    let text = format!(
        "director = \"{}\"\nname = \"llc5\"\naddress = \"10.0.0.11\"\n\
         rule_check_interval = \"100ms\"\nderegister_timeout = \"1s\"\n{rest}",
        director.url()
    );
    std::fs::write(path, text).expect("config written");
}

/// Loads like the binary does, then shortens what the file cannot say, as the tests' config.
fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
    let quick = agent_config("http://127.0.0.1:1");
    AgentConfig::load(path).map(|config| AgentConfig {
        retry: quick.retry,
        iptables_timeout: quick.iptables_timeout,
        ..config
    })
}

struct Setup {
    _dir: tempfile::TempDir,
    path: PathBuf,
    chain: MemoryRules,
    director: FakeDirector,
    agent: RunningAgent,
    reloads: ReloadHandle,
    lease: String,
}

/// A registered agent that reloads from its config file, which starts as `services`.
async fn reloadable(services: &str) -> Setup {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("agent.toml");
    let chain = MemoryRules::new();
    let director = FakeDirector::start(&chain);
    write_config(&path, &director, services);
    let (reloads, requests) = reload::channel();
    let source = {
        let path = path.clone();
        ReloadSource::new(requests, move || load(&path))
    };
    let config = load(&path).expect("a good config");
    let mut agent = spawn_reloadable(config, &chain, source);
    let lease = agent.registered().await;
    Setup {
        _dir: dir,
        path,
        chain,
        director,
        agent,
        reloads,
        lease,
    }
}

fn web_rule() -> lb_realserver::rules::RedirectRule {
    rule("web", VIP, 22, Protocol::Tcp)
}

fn registrations(director: &FakeDirector) -> Vec<Vec<(String, u32)>> {
    director
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Register(r) => Some(
                r.services
                    .into_iter()
                    .map(|s| (s.service, s.weight))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn confirms(director: &FakeDirector) -> Vec<Vec<String>> {
    director
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Confirm { chain, .. } => Some(chain),
            _ => None,
        })
        .collect()
}

/// Heartbeats keep coming for a while (TTL 600 ms: one every ~200 ms).
async fn still_heartbeats(director: &FakeDirector) {
    let before = director.heartbeats().len();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        director.heartbeats().len() >= before + 2,
        "no heartbeats after the reload"
    );
}

#[tokio::test]
async fn an_added_service_gets_its_rule_and_a_registration_with_both() {
    let mut s = reloadable(SSH).await;
    write_config(&s.path, &s.director, &format!("{SSH}{WEB}"));

    let summary = s.reloads.reload().await.expect("reloaded");
    assert_eq!(summary, "service web added");
    assert_eq!(
        registrations(&s.director).last(),
        Some(&vec![("llc-ssh".to_owned(), 1), ("web".to_owned(), 1)])
    );
    let at_confirm = confirms(&s.director).pop().expect("a confirmation");
    assert!(
        at_confirm.contains(&web_rule().listing()),
        "confirmed before the new rule existed: {at_confirm:?}"
    );
    assert_eq!(
        s.chain.lines(),
        vec![ssh_rule(VIP).listing(), web_rule().listing()]
    );
    let second = s
        .agent
        .wait_for("the new lease", |st| {
            matches!(st, AgentState::Registered { lease_id, rules } if *lease_id != s.lease && rules.len() == 2)
        })
        .await;
    assert!(matches!(second, AgentState::Registered { .. }));
    still_heartbeats(&s.director).await;
    s.agent.stop().await.0.expect("a clean stop");
    assert!(s.chain.lines().is_empty(), "{:?}", s.chain.lines());
}

#[tokio::test]
async fn a_removed_service_loses_its_rule_only_after_the_director_took_the_registration() {
    let s = reloadable(&format!("{SSH}{WEB}")).await;
    write_config(&s.path, &s.director, SSH);

    let summary = s.reloads.reload().await.expect("reloaded");
    assert_eq!(summary, "service web removed");
    assert_eq!(
        registrations(&s.director).last(),
        Some(&vec![("llc-ssh".to_owned(), 1)])
    );
    assert!(
        confirms(&s.director)
            .pop()
            .expect("a confirmation")
            .contains(&web_rule().listing()),
        "the rule went before the director quiesced the service"
    );
    assert_eq!(s.chain.lines(), vec![ssh_rule(VIP).listing()]);
    assert_eq!(
        s.chain.journal().last(),
        Some(&RuleChange::Removed(web_rule()))
    );
    s.agent.stop().await.0.expect("a clean stop");
}

#[tokio::test]
async fn a_weight_change_registers_again_without_touching_the_rules() {
    let s = reloadable(SSH).await;
    write_config(
        &s.path,
        &s.director,
        "[[service]]\nname = \"llc-ssh\"\nweight = 3\n",
    );

    let summary = s.reloads.reload().await.expect("reloaded");
    assert_eq!(summary, "service llc-ssh weight 1 -> 3");
    assert_eq!(
        registrations(&s.director).last(),
        Some(&vec![("llc-ssh".to_owned(), 3)])
    );
    assert_eq!(s.chain.journal(), vec![RuleChange::Added(ssh_rule(VIP))]);
    still_heartbeats(&s.director).await;
    s.agent.stop().await.0.expect("a clean stop");
}

#[tokio::test]
async fn a_bad_file_is_refused_with_every_problem_and_changes_nothing() {
    let s = reloadable(SSH).await;
    std::fs::write(
        &s.path,
        "director = \"udp://x\"\naddress = \"10.0.0.11\"\n[[service]]\nweight = 70000\n",
    )
    .expect("config written");

    let problems = s.reloads.reload().await.expect_err("refused");
    for expected in [
        "has 3 problem(s)",
        "director = \"udp://x\": must start with http:// or https://",
        "service[0].name: is required",
        "service[0].weight = 70000: must be between 0 and 65535",
    ] {
        assert!(
            problems.contains(expected),
            "{expected:?} missing from {problems}"
        );
    }
    assert_eq!(s.director.registrations(), 1);
    assert_eq!(s.chain.journal(), vec![RuleChange::Added(ssh_rule(VIP))]);
    still_heartbeats(&s.director).await;
    assert!(s
        .director
        .calls()
        .iter()
        .rev()
        .take(2)
        .all(|c| matches!(c, Call::Heartbeat { lease, .. } if *lease == s.lease)));
    s.agent.stop().await.0.expect("a clean stop");
}

#[tokio::test]
async fn a_new_name_or_address_is_refused_naming_the_key() {
    let s = reloadable(SSH).await;
    let text = std::fs::read_to_string(&s.path).expect("config read");
    std::fs::write(
        &s.path,
        text.replace("name = \"llc5\"", "name = \"llc7\"")
            .replace("10.0.0.11", "10.0.0.17"),
    )
    .expect("config written");

    let problems = s.reloads.reload().await.expect_err("refused");
    assert!(
        problems.contains("name = \"llc7\": cannot change by reload")
            && problems.contains("address = \"10.0.0.17\": cannot change by reload")
            && problems.contains("restart lb-agent to change it"),
        "{problems}"
    );
    assert_eq!(s.director.registrations(), 1);
    still_heartbeats(&s.director).await;
    s.agent.stop().await.0.expect("a clean stop");
}

#[tokio::test]
async fn a_registration_the_director_refuses_keeps_the_running_config() {
    let s = reloadable(SSH).await;
    s.director
        .change(|b| b.refuse_register = Some(Status::not_found("no service named \"web\"")));
    write_config(&s.path, &s.director, &format!("{SSH}{WEB}"));

    let problems = s.reloads.reload().await.expect_err("refused");
    assert!(
        problems.contains("the director refused the new registration")
            && problems.contains("no service named \"web\""),
        "{problems}"
    );
    s.director.change(|b| b.refuse_register = None);
    assert_eq!(s.chain.lines(), vec![ssh_rule(VIP).listing()]);
    // The old lease is still good: heartbeats on it, and no new registration.
    still_heartbeats(&s.director).await;
    assert_eq!(
        s.director.registrations(),
        2,
        "the refused one and the first"
    );
    assert!(matches!(
        s.director.calls().last(),
        Some(Call::Heartbeat { lease, .. }) if *lease == s.lease
    ));
    s.agent.stop().await.0.expect("a clean stop");
}

#[tokio::test]
async fn a_shorter_rule_check_interval_applies_at_once() {
    let s = reloadable(SSH).await;
    let slow = std::fs::read_to_string(&s.path)
        .expect("config read")
        .replace("\"100ms\"", "\"1h\"");
    std::fs::write(&s.path, &slow).expect("config written");
    assert_eq!(
        s.reloads.reload().await.expect("reloaded"),
        "rule_check_interval 100ms -> 1h"
    );
    s.chain
        .iptables(&ssh_rule(VIP).listing().replacen("-A", "-D", 1));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!s.chain.contains(&ssh_rule(VIP)), "checked within the hour");

    write_config(&s.path, &s.director, SSH);
    s.reloads.reload().await.expect("reloaded");
    eventually("the rule put back", Duration::from_secs(2), || {
        s.chain.contains(&ssh_rule(VIP))
    })
    .await;
    s.agent.stop().await.0.expect("a clean stop");
}

/// The e2e-reload lab failure: a reload that adds a service while iptables cannot install its
/// rule must leave the director's table as it is. The new lease replaced the confirmed one;
/// deregistering it took the realserver out of every service, the kept ones included.
#[tokio::test]
async fn a_new_rule_that_cannot_go_in_never_deregisters_the_kept_services() {
    let mut s = reloadable(SSH).await;
    s.chain
        .fail_with(Some("iptables: the xtables lock is held"));
    write_config(&s.path, &s.director, &format!("{SSH}{WEB}"));
    let _ = s.reloads.reload().await;
    s.agent
        .wait_for("the rules failing", |st| {
            matches!(st, AgentState::RulesFailed { .. })
        })
        .await;
    // Not only the reload's registration: the retries after it fail too (iptables stays
    // slow for a while on a loaded host), and none of them may take the realserver out.
    let registrations = || {
        s.director
            .calls()
            .into_iter()
            .filter(|c| matches!(c, Call::Register(_)))
            .count()
    };
    let after_reload = registrations();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while registrations() < after_reload + 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent did not retry its registration"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deregistered = s
        .director
        .calls()
        .into_iter()
        .any(|c| matches!(c, Call::Deregister { .. }));
    assert!(!deregistered, "a replacing lease was deregistered");
    // iptables works again: the next registration takes both services.
    s.chain.fail_with(None);
    s.agent
        .wait_for(
            "registered with both services",
            |st| matches!(st, AgentState::Registered { rules, .. } if rules.len() == 2),
        )
        .await;
    s.agent.stop().await.0.expect("a clean stop");
}
