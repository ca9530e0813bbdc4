//! Exponential backoff with jitter, so a fleet of agents that lost their director together do
//! not knock on its door in lockstep when it comes back.

use std::time::Duration;

use crate::config::RetryPolicy;

#[derive(Debug)]
pub(crate) struct Backoff {
    policy: RetryPolicy,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(policy: RetryPolicy) -> Backoff {
        Backoff { policy, attempt: 0 }
    }

    /// The wait before the next attempt: `initial * 2^n` capped at `max`, of which a random
    /// part up to one half is taken off.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .policy
            .initial
            .saturating_mul(2u32.saturating_pow(self.attempt))
            .min(self.policy.max);
        self.attempt = self.attempt.saturating_add(1);
        let jitter = rand::random_range(0.0..=0.5);
        ceiling.mul_f64(1.0 - jitter)
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let mut backoff = Backoff::new(policy);
        let ceilings = [100, 200, 400, 800, 1000, 1000, 1000];
        for ceiling in ceilings.iter().chain(std::iter::repeat_n(&1000, 60)) {
            let delay = backoff.next_delay();
            let ceiling = Duration::from_millis(*ceiling);
            assert!(
                delay <= ceiling && delay >= ceiling / 2,
                "{delay:?} outside {:?}..={ceiling:?}",
                ceiling / 2
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let mut delays: Vec<Duration> = (0..20)
            .map(|_| Backoff::new(RetryPolicy::default()).next_delay())
            .collect();
        delays.dedup();
        assert!(delays.len() > 1, "twenty agents would retry in lockstep");
    }
}
