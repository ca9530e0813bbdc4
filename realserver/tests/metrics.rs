//! Issue 11's agent metrics over real HTTP on 127.0.0.1, against the fake director and the
//! in-memory rule chain: registered, the rule's presence through an iptables failure, the
//! last renewal, and the director errors of an outage; the text through promtool when
//! installed (required under deploy/test.sh).
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use lb_realserver::rules::MemoryRules;
use lb_realserver::{AgentState, ReloadSource};
use lb_shared::metrics::{promtool_check, scrape, Samples};
use support::{agent_config, spawn_serving, FakeDirector, VIP};

async fn samples(addr: SocketAddr) -> (Samples, String) {
    let (status, body) = scrape(addr, "GET", "/metrics").await.unwrap();
    assert_eq!(status, 200, "{body}");
    (Samples::parse(&body).unwrap(), body)
}

async fn scrape_until(addr: SocketAddr, what: &str, check: impl Fn(&Samples) -> bool) -> Samples {
    for _ in 0..500 {
        let (s, _) = samples(addr).await;
        if check(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{what}: not within 10 s; last scrape {}",
        samples(addr).await.1
    );
}

const RULE: [(&str, &str); 4] = [
    ("service", "llc-ssh"),
    ("vip", VIP),
    ("port", "22"),
    ("protocol", "tcp"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_metrics_follow_its_rules_and_its_director() {
    let chain = MemoryRules::new();
    let director = FakeDirector::start(&chain);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut agent = spawn_serving(
        agent_config(&director.url()),
        &chain,
        ReloadSource::none(),
        Some(listener),
    );
    agent.registered().await;

    let s = scrape_until(addr, "registered", |s| {
        s.value("lb_agent_registered", &[]) == Some(1.0)
    })
    .await;
    // Labelled with the director's URL as configured, one series per director.
    let url = format!("{}/", director.url());
    assert_eq!(
        s.value("lb_agent_registered", &[("director", &url)]),
        Some(1.0)
    );
    assert_eq!(s.count("lb_agent_registered"), 1);
    assert_eq!(s.value("lb_agent_rule_present", &RULE), Some(1.0));
    assert!(
        s.value("lb_agent_last_heartbeat_timestamp_seconds", &[])
            .unwrap()
            > 1.7e9
    );
    assert_eq!(
        s.value("lb_agent_director_errors_total", &[("kind", "unreachable")]),
        Some(0.0)
    );
    assert_eq!(scrape(addr, "GET", "/").await.unwrap().0, 404);
    assert_eq!(scrape(addr, "PUT", "/metrics").await.unwrap().0, 405);

    // iptables fails: the next check cannot see the rule.
    chain.fail_with(Some("iptables: Resource temporarily unavailable"));
    scrape_until(addr, "rule absent while iptables fails", |s| {
        s.value("lb_agent_rule_present", &RULE) == Some(0.0)
    })
    .await;
    chain.fail_with(None);
    scrape_until(addr, "rule present again", |s| {
        s.value("lb_agent_rule_present", &RULE) == Some(1.0)
    })
    .await;

    // The director goes away: errors are counted and the agent is no longer registered.
    director.stop();
    agent
        .wait_for("director unreachable", |s| {
            matches!(s, AgentState::DirectorUnreachable { .. })
        })
        .await;
    let s = scrape_until(addr, "unreachable counted", |s| {
        s.value("lb_agent_director_errors_total", &[("kind", "unreachable")])
            .is_some_and(|v| v >= 1.0)
    })
    .await;
    assert_eq!(s.value("lb_agent_registered", &[]), Some(0.0));
    let (_, body) = samples(addr).await;
    match promtool_check(&body) {
        Ok(true) => {}
        Ok(false) => eprintln!("promtool not installed: check skipped"),
        Err(problem) => panic!("{problem}\n{body}"),
    }

    agent.stop().await.0.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
