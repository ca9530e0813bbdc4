use std::time::Duration;

use crate::probe::ProbeFailure;
use tokio::time::Instant;

use super::*;

const NO_BANNER: fn() -> ProbeFailure = || ProbeFailure::NoBanner(Duration::from_secs(1));

/// Feeds `probes` (`+` a success, `-` a failure) to a fresh state and returns, per probe, the
/// transition's message or "".
fn run(rise: u32, fall: u32, probes: &str) -> Vec<String> {
    let start = Instant::now();
    let mut state = HealthState::new("llc5", rise, fall, start);
    probes
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let result = if c == '+' { Ok(()) } else { Err(NO_BANNER()) };
            let now = start + Duration::from_secs(i as u64);
            state
                .record(result, now)
                .map(|t| t.message)
                .unwrap_or_default()
        })
        .collect()
}

const DOWN: &str = "llc5 down: no SSH banner within 1s (3 of 3 failed)";
const UP: &str = "llc5 up after 2 successes";

#[test]
fn rise_and_fall_table() {
    let cases: &[(u32, u32, &str, &[&str])] = &[
        // Starts up: successes change nothing.
        (2, 3, "+++", &["", "", ""]),
        // Down after exactly fall failures in a row, once.
        (2, 3, "-----", &["", "", DOWN, "", ""]),
        // A success in between starts the count again.
        (2, 3, "--+--+", &["", "", "", "", "", ""]),
        // Up after exactly rise successes in a row.
        (2, 3, "---+++", &["", "", DOWN, "", UP, ""]),
        // A failure while down and rising starts the rise again.
        (2, 3, "---+-++", &["", "", DOWN, "", "", "", UP]),
        // fall 1 and rise 1: every change of result is a transition.
        (
            1,
            1,
            "-+-",
            &[
                "llc5 down: no SSH banner within 1s (1 of 1 failed)",
                "llc5 up after 1 success",
                "llc5 down: no SSH banner within 1s (1 of 1 failed)",
            ],
        ),
    ];
    for (rise, fall, probes, expected) in cases {
        assert_eq!(
            run(*rise, *fall, probes),
            *expected,
            "rise {rise} fall {fall} {probes}"
        );
    }
}

#[test]
fn a_new_destination_is_up_since_it_was_seen() {
    let start = Instant::now();
    let state = HealthState::new("llc5", 2, 3, start);
    let status = state.status();
    assert!(status.up);
    assert_eq!(status.since, start);
    assert!(status.reason.is_none());
}

#[test]
fn status_keeps_the_reason_it_went_down_and_the_time() {
    let start = Instant::now();
    let mut state = HealthState::new("llc5", 2, 2, start);
    state.record(Err(ProbeFailure::Refused), start);
    let down_at = start + Duration::from_secs(2);
    assert!(state.record(Err(ProbeFailure::Refused), down_at).is_some());
    // Later failures of another kind are remembered but do not change what status says.
    state.record(Err(NO_BANNER()), start + Duration::from_secs(4));
    let status = state.status();
    assert!(!status.up);
    assert_eq!(status.since, down_at);
    assert_eq!(status.short_reason(), Some("refused"));
    assert!(matches!(
        state.last_failure(),
        Some(ProbeFailure::NoBanner(_))
    ));

    let up_at = start + Duration::from_secs(8);
    state.record(Ok(()), start + Duration::from_secs(6));
    state.record(Ok(()), up_at);
    let status = state.status();
    assert!(status.up);
    assert_eq!(status.since, up_at);
    assert_eq!(status.short_reason(), None);
}

#[test]
fn a_failure_below_fall_is_remembered_while_up() {
    let start = Instant::now();
    let mut state = HealthState::new("llc5", 2, 3, start);
    assert!(state.record(Err(ProbeFailure::Refused), start).is_none());
    assert!(state.is_up());
    assert!(matches!(state.last_failure(), Some(ProbeFailure::Refused)));
}

#[test]
fn new_thresholds_judge_the_next_probe() {
    let start = Instant::now();
    let mut state = HealthState::new("llc5", 2, 5, start);
    state.record(Err(ProbeFailure::Refused), start);
    state.record(Err(ProbeFailure::Refused), start);
    state.set_thresholds(2, 3);
    let t = state.record(Err(ProbeFailure::Refused), start);
    assert_eq!(
        t.map(|t| t.message).as_deref(),
        Some("llc5 down: connection refused (3 of 3 failed)")
    );
}
