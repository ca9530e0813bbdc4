//! The agent's self-check against real loopback listeners: a service that answers with an SSH
//! banner, one that accepts and stays silent (a hung sshd), a closed port. The fake director
//! hands out the check in its bindings and records the health each heartbeat carries.
//!
//! Real sockets, so real time: 100 ms probe intervals, and every wait is a condition with a
//! generous limit, so the tests hold on a loaded machine.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod support;

use std::time::{Duration, Instant};

use lb_realserver::AgentState;
use support::eventually;
use support::selfcheck::{
    agent_checking, check, closed_port, reregistered, verdict_after, Answer, Service, FALL,
    INTERVAL_MS, LIMIT, RISE,
};

#[tokio::test]
async fn a_hung_sshd_is_reported_down_at_once_and_up_again_after_rise() {
    let service = Service::start(Answer::Banner).await;
    // Heartbeats every 10 s: a verdict that arrives sooner came in an early heartbeat.
    let (director, agent) = agent_checking(
        service.addr.port(),
        Some(check("ssh")),
        Duration::from_secs(30),
    )
    .await;
    // The banner answers: no transition, so no heartbeat before the period.
    tokio::time::sleep(Duration::from_millis(5 * INTERVAL_MS)).await;
    let reports = director.health_reports();
    assert!(reports.is_empty(), "{reports:?}");

    service.answer(Answer::Silent);
    let hung = Instant::now();
    let (at, verdict) = verdict_after(&director, hung, false).await;
    assert_eq!(verdict.reason, "no SSH banner within 80ms");
    let took = at - hung;
    assert!(
        took >= Duration::from_millis(u64::from(FALL - 1) * INTERVAL_MS),
        "down after {took:?}: before {FALL} probes could fail"
    );

    service.answer(Answer::Banner);
    let back = Instant::now();
    let (at, verdict) = verdict_after(&director, back, true).await;
    assert_eq!(verdict.reason, "");
    let took = at - back;
    assert!(
        took >= Duration::from_millis(u64::from(RISE - 1) * INTERVAL_MS),
        "up after {took:?}: before {RISE} probes could succeed"
    );
    agent.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_stopped_service_is_down_within_fall_intervals_and_a_heartbeat() {
    let service = Service::start(Answer::Banner).await;
    let (director, agent) = agent_checking(
        service.addr.port(),
        Some(check("ssh")),
        Duration::from_millis(600),
    )
    .await;
    verdict_after(&director, Instant::now(), true).await;

    drop(service);
    let stopped = Instant::now();
    let (at, verdict) = verdict_after(&director, stopped, false).await;
    assert_eq!(verdict.reason, "connection refused");
    // FALL probes 100 ms apart, then a heartbeat at most 200 ms later; the rest is slack.
    assert!(at - stopped < Duration::from_secs(3), "{:?}", at - stopped);
    // And it stays down in every later heartbeat.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later: Vec<_> = director
        .health_reports()
        .into_iter()
        .filter(|(t, _)| *t > at)
        .collect();
    assert!(!later.is_empty());
    assert!(
        later.iter().all(|(_, h)| h.len() == 1 && !h[0].up),
        "{later:?}"
    );
    agent.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_realserver_whose_service_is_dead_still_registers_and_reports_it() {
    let (director, mut agent) = agent_checking(
        closed_port(),
        Some(check("tcp")),
        Duration::from_millis(600),
    )
    .await;
    assert!(matches!(
        *agent.state.borrow(),
        AgentState::Registered { .. }
    ));
    let (_, verdict) = verdict_after(&director, Instant::now(), false).await;
    assert_eq!(verdict.reason, "connection refused");

    // A re-registration with the same check keeps the history: no heartbeat says up.
    let down_since = Instant::now();
    reregistered(&director, &mut agent).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let since: Vec<_> = director
        .health_reports()
        .into_iter()
        .filter(|(at, _)| *at > down_since)
        .collect();
    assert!(!since.is_empty());
    assert!(
        since.iter().all(|(_, h)| h.len() == 1 && !h[0].up),
        "{since:?}"
    );

    // The director drops the check: the next registration stops it, and the health goes.
    director.change(|b| b.check = None);
    reregistered(&director, &mut agent).await;
    let unchecked = Instant::now();
    eventually("two heartbeats without a check", LIMIT, || {
        director
            .heartbeats()
            .iter()
            .filter(|at| **at > unchecked)
            .count()
            >= 2
    })
    .await;
    let after = director
        .health_reports()
        .into_iter()
        .filter(|(at, _)| *at > unchecked);
    assert!(
        after.clone().all(|(_, h)| h.is_empty()),
        "{:?}",
        after.collect::<Vec<_>>()
    );
    agent.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_tcp_check_takes_a_silent_listener_as_up() {
    let service = Service::start(Answer::Silent).await;
    let (director, agent) = agent_checking(
        service.addr.port(),
        Some(check("tcp")),
        Duration::from_millis(600),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(8 * INTERVAL_MS)).await;
    let reports = director.health_reports();
    assert!(reports.len() >= 2, "{reports:?}");
    assert!(
        reports.iter().all(|(_, h)| h.len() == 1 && h[0].up),
        "{reports:?}"
    );
    agent.stop().await.0.unwrap();
}

#[tokio::test]
async fn without_a_check_heartbeats_carry_no_health() {
    for check in [None, Some(check("none"))] {
        let (director, agent) =
            agent_checking(closed_port(), check.clone(), Duration::from_millis(300)).await;
        eventually("three heartbeats", LIMIT, || {
            director.heartbeats().len() >= 3
        })
        .await;
        let reports = director.health_reports();
        assert!(
            reports.iter().all(|(_, h)| h.is_empty()),
            "{check:?}: {reports:?}"
        );
        agent.stop().await.0.unwrap();
    }
}
