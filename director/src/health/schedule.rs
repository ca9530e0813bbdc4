//! One target's probe schedule: a task that sleeps until the next probe, waits for a permit,
//! probes and reports. The first probe falls at a random point of the first interval and each
//! later one a jittered interval after the one before, so that targets added together (a
//! director start over 10,000 destinations) do not probe in lockstep.

use std::sync::Arc;
use std::time::Duration;

use lb_shared::probe::ProbeFailure;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use super::monitor::{Prober, TargetKey};
use super::CheckConfig;

/// Later probes stray from the interval by up to this part of it either way (a tenth), so that
/// targets that started together drift apart instead of firing in lockstep.
const JITTER_PART: u64 = 10;

/// One probe's outcome, from the task with `id`.
pub(super) struct ProbeResult {
    pub key: TargetKey,
    pub id: u64,
    pub result: Result<(), ProbeFailure>,
    pub at: Instant,
}

/// When one target is probed.
pub(super) struct Schedule {
    pub key: TargetKey,
    pub id: u64,
    pub check: CheckConfig,
}

impl Schedule {
    /// Probes until the monitor stops it; the first probe after `first`.
    pub async fn run<P: Prober>(
        self,
        first: Duration,
        prober: Arc<P>,
        permits: Arc<Semaphore>,
        results: mpsc::Sender<ProbeResult>,
    ) {
        let mut next = Instant::now() + first;
        loop {
            tokio::time::sleep_until(next).await;
            let result = {
                // Closed only when the monitor is gone.
                let Ok(_permit) = permits.acquire().await else {
                    return;
                };
                prober
                    .probe(self.check.kind, self.key.addr, self.check.timeout)
                    .await
            };
            let at = Instant::now();
            let sent = ProbeResult {
                key: self.key.clone(),
                id: self.id,
                result,
                at,
            };
            if results.send(sent).await.is_err() {
                return;
            }
            next += self.jittered();
            // Behind (waiting for permits): skip the missed turns rather than probe in a burst.
            if next <= at {
                next = at + self.jittered();
            }
        }
    }

    /// When a new target is first probed: a random point of its first interval, in whole
    /// milliseconds (tokio's timers round up to the next one, which could reach the interval).
    pub fn first_probe_after(interval: Duration) -> Duration {
        Duration::from_millis(rand::random_range(0..whole_millis(interval)))
    }

    /// An interval with its jitter, in whole milliseconds like the first phase.
    fn jittered(&self) -> Duration {
        let millis = whole_millis(self.check.interval);
        let spread = millis / JITTER_PART;
        Duration::from_millis(rand::random_range(millis - spread..=millis + spread))
    }
}

/// At least 1, so that a random range within it is never empty.
fn whole_millis(interval: Duration) -> u64 {
    u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX / 2)
        .max(1)
}
