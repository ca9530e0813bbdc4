//! The rise/fall state of one destination, shared by the director's probes and the agent's
//! self-check: one failed probe is noise, `fall` in a row are a
//! dead service; one good probe after that is luck, `rise` in a row are a recovery.

use std::fmt;

use crate::probe::ProbeFailure;
use tokio::time::Instant;

/// The probe history of one destination.
///
/// A new destination starts **up**: a director that restarts over a live IPVS table must not
/// change a single weight before its probes have had their say, and a realserver that has just
/// registered was already confirmed by its agent. A dead one goes down after `fall` probes.
#[derive(Debug, Clone)]
pub struct HealthState {
    /// The realserver's name, for the log text.
    name: String,
    rise: u32,
    fall: u32,
    up: bool,
    since: Instant,
    failures: u32,
    successes: u32,
    /// The failure that took it down: what status shows until it is up again.
    down_reason: Option<ProbeFailure>,
    last_failure: Option<ProbeFailure>,
}

/// A change between up and down, with the line to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub up: bool,
    /// `llc5 down: no SSH banner within 1s (3 of 3 failed)`, `llc5 up after 2 successes`.
    pub message: String,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What the rest of the director sees of a destination's health.
#[derive(Debug, Clone)]
pub struct HealthStatus {
    pub up: bool,
    /// Since when it is up or down (the director's start, for a destination never down).
    pub since: Instant,
    /// Why it went down; `None` while up. Kept from the transition, so the published status
    /// changes only when the destination goes up or down.
    pub reason: Option<ProbeFailure>,
}

impl HealthStatus {
    /// The few words for a status column: `no banner`; `None` while up.
    pub fn short_reason(&self) -> Option<&'static str> {
        self.reason.as_ref().map(ProbeFailure::reason)
    }
}

impl HealthState {
    /// A destination seen for the first time at `now`: up (see the type's comment). `rise` and
    /// `fall` below 1 count as 1.
    pub fn new(name: impl Into<String>, rise: u32, fall: u32, now: Instant) -> Self {
        HealthState {
            name: name.into(),
            rise: rise.max(1),
            fall: fall.max(1),
            up: true,
            since: now,
            failures: 0,
            successes: 0,
            down_reason: None,
            last_failure: None,
        }
    }

    /// New thresholds (a config reload) without forgetting the history: the next probe is judged
    /// by them.
    pub fn set_thresholds(&mut self, rise: u32, fall: u32) {
        self.rise = rise.max(1);
        self.fall = fall.max(1);
    }

    /// Records one probe's result at `now`; returns the transition it caused, if any.
    pub fn record(&mut self, result: Result<(), ProbeFailure>, now: Instant) -> Option<Transition> {
        match result {
            Ok(()) => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                if self.up || self.successes < self.rise {
                    return None;
                }
                self.up = true;
                self.since = now;
                self.down_reason = None;
                let plural = if self.successes == 1 { "" } else { "es" };
                Some(Transition {
                    up: true,
                    message: format!("{} up after {} success{plural}", self.name, self.successes),
                })
            }
            Err(failure) => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                self.last_failure = Some(failure.clone());
                if !self.up || self.failures < self.fall {
                    return None;
                }
                self.up = false;
                self.since = now;
                let message = format!(
                    "{} down: {failure} ({} of {} failed)",
                    self.name, self.failures, self.fall
                );
                self.down_reason = Some(failure);
                Some(Transition { up: false, message })
            }
        }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The most recent failed probe, even one that did not (yet) take the destination down.
    pub fn last_failure(&self) -> Option<&ProbeFailure> {
        self.last_failure.as_ref()
    }

    pub fn status(&self) -> HealthStatus {
        HealthStatus {
            up: self.up,
            since: self.since,
            reason: self.down_reason.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
