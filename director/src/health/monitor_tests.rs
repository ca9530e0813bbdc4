#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::*;

/// A prober whose targets are healthy unless marked failing; it records every call and how many
/// probes were open at once. Each probe takes `delay`.
#[derive(Default)]
struct Script {
    failing: Mutex<HashSet<SocketAddr>>,
    calls: Mutex<Vec<(Instant, SocketAddr)>>,
    open: AtomicUsize,
    most_open: AtomicUsize,
    delay: Duration,
}

impl Prober for Arc<Script> {
    async fn probe(
        &self,
        _kind: CheckKind,
        addr: SocketAddr,
        _timeout: Duration,
    ) -> Result<(), ProbeFailure> {
        self.calls.lock().unwrap().push((Instant::now(), addr));
        let open = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_open.fetch_max(open, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.open.fetch_sub(1, Ordering::SeqCst);
        if self.failing.lock().unwrap().contains(&addr) {
            Err(ProbeFailure::NoBanner(Duration::from_secs(1)))
        } else {
            Ok(())
        }
    }
}

impl Script {
    fn calls_to(&self, addr: SocketAddr) -> Vec<Instant> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(_, a)| *a == addr)
            .map(|(t, _)| *t)
            .collect()
    }
    fn set_failing(&self, addr: SocketAddr, failing: bool) {
        let mut set = self.failing.lock().unwrap();
        if failing {
            set.insert(addr);
        } else {
            set.remove(&addr);
        }
    }
}

fn check(kind: CheckKind) -> CheckConfig {
    CheckConfig {
        kind,
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        fall: 3,
        rise: 2,
        port: None,
    }
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250 + 1) as u8], 22))
}

fn key(i: usize) -> TargetKey {
    TargetKey {
        service: "llc-ssh".into(),
        addr: addr(i),
    }
}

fn targets(n: usize, kind: CheckKind) -> Targets {
    (0..n)
        .map(|i| {
            let target = Target {
                realserver_name: format!("llc{i}"),
                check: check(kind),
            };
            (key(i), target)
        })
        .collect()
}

/// A running monitor over `targets`, with its targets' sender, its health and its stop.
struct Running {
    targets: watch::Sender<Targets>,
    health: watch::Receiver<Arc<HealthMap>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(script: &Arc<Script>, targets: Targets, max_in_flight: usize) -> Running {
    let (tx, rx) = watch::channel(targets);
    let monitor = HealthMonitor::with_prober(rx, script.clone(), max_in_flight);
    let health = monitor.health();
    let stop = CancellationToken::new();
    let task = tokio::spawn(monitor.run(stop.clone()));
    Running {
        targets: tx,
        health,
        stop,
        task,
    }
}

async fn wait_for_up(health: &mut watch::Receiver<Arc<HealthMap>>, key: &TargetKey, up: bool) {
    health
        .wait_for(|m| m.get(key).is_some_and(|s| s.up == up))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn down_after_exactly_fall_failures_and_up_after_rise_successes() {
    let script = Arc::new(Script::default());
    script.set_failing(addr(0), true);
    let started = Instant::now();
    let mut run = start(&script, targets(1, CheckKind::Ssh), 8);

    wait_for_up(&mut run.health, &key(0), false).await;
    assert_eq!(script.calls_to(addr(0)).len(), 3);
    // The first probe within one interval, two more each within the jitter of one.
    assert!(started.elapsed() < Duration::from_secs(2) + 2 * Duration::from_millis(2200));
    let status = run.health.borrow()[&key(0)].clone();
    assert_eq!(status.short_reason(), Some("no banner"));
    assert_eq!(status.since, *script.calls_to(addr(0)).last().unwrap());

    script.set_failing(addr(0), false);
    wait_for_up(&mut run.health, &key(0), true).await;
    assert_eq!(script.calls_to(addr(0)).len(), 5);
    assert!(run.health.borrow()[&key(0)].reason.is_none());

    run.stop.cancel();
    run.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn first_probes_are_spread_over_one_interval_and_later_ones_jittered() {
    let script = Arc::new(Script::default());
    let started = Instant::now();
    let n = 200;
    let run = start(&script, targets(n, CheckKind::Tcp), DEFAULT_MAX_IN_FLIGHT);
    tokio::time::sleep(Duration::from_secs(20)).await;

    let mut buckets = HashSet::new();
    for i in 0..n {
        let calls = script.calls_to(addr(i));
        let first = calls[0] - started;
        assert!(
            first < Duration::from_secs(2),
            "first probe of {i} after {first:?}"
        );
        buckets.insert(first.as_millis() / 100);
        for pair in calls.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= Duration::from_millis(1800) && gap <= Duration::from_millis(2200),
                "{gap:?}"
            );
        }
        assert!(calls.len() >= 9, "{i} probed {} times in 20s", calls.len());
    }
    // 200 phases in 20 slices of 100ms: lockstep would fill one.
    assert!(
        buckets.len() >= 15,
        "first probes in only {} slices of 100ms",
        buckets.len()
    );
    run.stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn no_more_probes_in_flight_than_permits() {
    let script = Arc::new(Script {
        delay: Duration::from_millis(900),
        ..Script::default()
    });
    let run = start(&script, targets(50, CheckKind::Ssh), 4);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(script.most_open.load(Ordering::SeqCst), 4);
    // Slow probes mean late probes, not failures: everyone is still up.
    assert!(run.health.borrow().values().all(|s| s.up));
    run.stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn health_changes_only_on_transitions_and_target_changes() {
    let script = Arc::new(Script::default());
    let mut run = start(&script, targets(3, CheckKind::Tcp), 8);
    run.health.wait_for(|m| m.len() == 3).await.unwrap();
    assert!(run.health.borrow_and_update().values().all(|s| s.up));

    // Good probes, and failures below fall, publish nothing.
    tokio::time::sleep(Duration::from_secs(10)).await;
    script.set_failing(addr(1), true);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    script.set_failing(addr(1), false);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!run.health.has_changed().unwrap());
    run.stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn targets_that_go_are_forgotten_and_new_ones_start_up() {
    let script = Arc::new(Script::default());
    script.set_failing(addr(0), true);
    let mut run = start(&script, targets(1, CheckKind::Ssh), 8);
    wait_for_up(&mut run.health, &key(0), false).await;

    let mut next = targets(2, CheckKind::Ssh);
    next.remove(&key(0));
    run.targets.send_replace(next);
    run.health
        .wait_for(|m| !m.contains_key(&key(0)))
        .await
        .unwrap();
    assert!(run.health.borrow()[&key(1)].up);
    let probes = script.calls_to(addr(0)).len();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        script.calls_to(addr(0)).len(),
        probes,
        "a forgotten target is still probed"
    );

    // Back again: a new destination, up until its own probes say otherwise.
    run.targets.send_replace(targets(2, CheckKind::Ssh));
    run.health
        .wait_for(|m| m.contains_key(&key(0)))
        .await
        .unwrap();
    assert!(run.health.borrow()[&key(0)].up);
    run.stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_new_check_keeps_the_history_and_none_is_always_up() {
    let script = Arc::new(Script::default());
    script.set_failing(addr(0), true);
    let mut run = start(&script, targets(1, CheckKind::Ssh), 8);
    wait_for_up(&mut run.health, &key(0), false).await;

    // A reload with a longer interval: still down, probed on the new schedule.
    let mut slower = targets(1, CheckKind::Ssh);
    slower.get_mut(&key(0)).unwrap().check.interval = Duration::from_secs(5);
    run.targets.send_replace(slower);
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert!(!run.health.borrow()[&key(0)].up);

    // No check: up at once and never probed again.
    run.targets.send_replace(targets(1, CheckKind::None));
    wait_for_up(&mut run.health, &key(0), true).await;
    let probes = script.calls_to(addr(0)).len();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(script.calls_to(addr(0)).len(), probes);
    run.stop.cancel();
    run.task.await.unwrap();
}
