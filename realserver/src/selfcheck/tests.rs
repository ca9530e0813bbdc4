//! The self-check's logic on the paused clock, with a scripted prober: timing is exact and no
//! socket is involved (the component tests probe real loopback listeners).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::*;

/// What every probe answers until the test changes it, and how many probes ran.
#[derive(Clone, Default)]
struct Script {
    fail: Arc<Mutex<Option<ProbeFailure>>>,
    probes: Arc<AtomicUsize>,
}

impl Script {
    fn checks(&self) -> SelfChecks {
        let script = self.clone();
        SelfChecks::with_prober(Arc::new(move |_, _, _| {
            script.probes.fetch_add(1, Ordering::SeqCst);
            let answer = script.fail.lock().unwrap().clone();
            Box::pin(async move { answer.map_or(Ok(()), Err) })
        }))
    }

    fn fail(&self, failure: Option<ProbeFailure>) {
        *self.fail.lock().unwrap() = failure;
    }

    fn probes(&self) -> usize {
        self.probes.load(Ordering::SeqCst)
    }
}

fn ssh(port: u16) -> SelfCheck {
    SelfCheck {
        kind: CheckKind::Ssh,
        addr: SocketAddr::new([127, 0, 0, 1].into(), port),
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(50),
        fall: 3,
        rise: 2,
    }
}

fn one(check: SelfCheck) -> BTreeMap<String, SelfCheck> {
    BTreeMap::from([("llc-ssh".to_owned(), check)])
}

fn no_banner() -> Option<ProbeFailure> {
    Some(ProbeFailure::NoBanner(Duration::from_secs(1)))
}

/// Waits (paused clock: exactly) for the next published change; answers how long it took.
async fn next_change(verdicts: &mut watch::Receiver<Verdicts>) -> Duration {
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(60), verdicts.changed())
        .await
        .expect("a change within 60 s")
        .unwrap();
    started.elapsed()
}

/// A check of port 22 that has gone down (no banner), with its script and receiver.
async fn down_on_port_22() -> (Script, SelfChecks, watch::Receiver<Verdicts>) {
    let script = Script::default();
    script.fail(no_banner());
    let mut checks = script.checks();
    let mut verdicts = checks.subscribe();
    checks.apply(one(ssh(22)));
    next_change(&mut verdicts).await;
    assert!(!checks.report()[0].up);
    (script, checks, verdicts)
}

#[tokio::test(start_paused = true)]
async fn down_after_fall_failures_and_up_after_rise_successes() {
    let script = Script::default();
    let mut checks = script.checks();
    let mut verdicts = checks.subscribe();
    checks.apply(one(ssh(22)));
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(checks.report().len(), 1);
    assert!(checks.report()[0].up, "{:?}", checks.report());
    assert!(checks.down().is_empty());

    // Probes at 300, 400, 500 ms fail: down at the third.
    script.fail(no_banner());
    assert_eq!(next_change(&mut verdicts).await, Duration::from_millis(250));
    let report = checks.report();
    assert!(!report[0].up);
    assert_eq!(report[0].reason, "no SSH banner within 1s");
    assert_eq!(
        checks.down(),
        vec![("llc-ssh".to_owned(), "no SSH banner within 1s".to_owned())]
    );

    // 600, 700 ms succeed: up at the second.
    script.fail(None);
    assert_eq!(next_change(&mut verdicts).await, Duration::from_millis(200));
    assert!(checks.report()[0].up);
    assert_eq!(checks.report()[0].reason, "");
}

#[tokio::test(start_paused = true)]
async fn a_service_dead_at_start_is_down_after_fall_minus_one_intervals() {
    let script = Script::default();
    script.fail(Some(ProbeFailure::Refused));
    let mut checks = script.checks();
    let mut verdicts = checks.subscribe();
    checks.apply(one(ssh(22)));
    // Probes at 0, 100, 200 ms.
    assert_eq!(next_change(&mut verdicts).await, Duration::from_millis(200));
    assert_eq!(checks.report()[0].reason, "connection refused");
}

#[tokio::test(start_paused = true)]
async fn the_same_config_again_keeps_the_history() {
    let (script, mut checks, mut verdicts) = down_on_port_22().await;

    // A re-registration hands out the same check; new thresholds alone keep the state too.
    checks.apply(one(ssh(22)));
    checks.apply(one(SelfCheck { rise: 5, ..ssh(22) }));
    script.fail(None);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(!checks.report()[0].up, "up before 5 successes");
    assert!(!verdicts.has_changed().unwrap());
    next_change(&mut verdicts).await;
    assert!(checks.report()[0].up);
}

#[tokio::test(start_paused = true)]
async fn another_port_starts_afresh() {
    let (_script, mut checks, mut verdicts) = down_on_port_22().await;

    checks.apply(one(ssh(2222)));
    next_change(&mut verdicts).await;
    assert!(checks.report()[0].up, "a new target starts up");
}

#[tokio::test(start_paused = true)]
async fn a_service_no_longer_bound_is_no_longer_probed_or_reported() {
    let script = Script::default();
    let mut checks = script.checks();
    checks.apply(one(ssh(22)));
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(script.probes(), 3);

    checks.apply(BTreeMap::new());
    assert!(checks.report().is_empty());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(script.probes(), 3);
}

#[test]
fn bindings_ask_for_a_check_or_none() {
    let rip: IpAddr = [10, 0, 0, 11].into();
    let check = |kind: &str, interval_ms, timeout_ms| HealthCheck {
        r#type: kind.into(),
        interval_ms,
        timeout_ms,
        fall: 3,
        rise: 2,
        port: 0,
    };
    let from =
        |check: Option<HealthCheck>| SelfCheck::from_binding("llc-ssh", check.as_ref(), rip, 22);

    assert_eq!(from(None), Ok(None));
    assert_eq!(from(Some(check("none", 2000, 1000))), Ok(None));
    let ssh = from(Some(check("ssh", 2000, 1000))).unwrap().unwrap();
    assert_eq!(ssh.addr.to_string(), "10.0.0.11:22");
    assert_eq!(
        (ssh.kind, ssh.interval, ssh.timeout, ssh.fall, ssh.rise),
        (
            CheckKind::Ssh,
            Duration::from_secs(2),
            Duration::from_secs(1),
            3,
            2
        )
    );
    let fast = from(Some(check("tcp", 1, 1))).unwrap().unwrap();
    assert_eq!(fast.interval, MIN_INTERVAL);

    let unknown = from(Some(check("http", 2000, 1000))).unwrap_err();
    assert!(
        unknown
            .to_string()
            .starts_with("service \"llc-ssh\": check type \"http\""),
        "{unknown}"
    );
    let zero = from(Some(check("tcp", 0, 1000))).unwrap_err();
    assert_eq!(
        zero.to_string(),
        "service \"llc-ssh\": check interval is 0 ms"
    );
    assert!(from(Some(check("tcp", 2000, 0))).is_err());
}
