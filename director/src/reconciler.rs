//! The one task that changes the kernel: every pass reads the owned part of the IPVS table,
//! computes the desired table from the configuration, the leases and the overrides, applies
//! the difference, keeps the VIPs and sysctls in place, and publishes what it saw.
//!
//! Everything else changes state and asks for a pass ([`Passes::request`]); a request is a
//! ticket, and the caller gets the outcome of the first pass that started after it. A caller
//! that goes away (a client that hangs up) cancels nothing: the pass belongs to this task.
//! Passes wake on requests, on the earliest lease expiry or retirement deadline, and every
//! `resync_interval` for drift repair (as kube-runtime keeps a periodic resync even with events).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use lb_ipvs::{IpvsBackend, IpvsError};
use lb_shared::notify;

use crate::director::Director;
use crate::health::{HealthMap, HealthMonitor, Targets};
use crate::host::{AddressBackend, HostSetup};
use crate::plan::plan;
use crate::table::{DesiredTable, ObservedTable};

mod bookkeeping;
use bookkeeping::{adopt, forget_gone, host_services, next_retire_deadline, track_retiring};

mod ha;
mod health;
pub use bookkeeping::{retire_due, unix_now};

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Operations the kernel accepted.
    pub applied: usize,
    /// Operations the kernel refused (logged; the next pass tries again).
    pub failed: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PassError {
    #[error("reading the IPVS table: {0}")]
    Read(String),
    #[error("the director is stopping")]
    Stopped,
}

impl From<IpvsError> for PassError {
    fn from(error: IpvsError) -> PassError {
        PassError::Read(error.to_string())
    }
}

/// The kernel table as the last pass left it: read at its start, with the operations the
/// kernel accepted applied. Connection counts are as of the read.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub observed: ObservedTable,
    /// The probes' verdicts this pass used.
    pub health: Arc<HealthMap>,
    /// The table this pass aimed at (the metrics' desired weights).
    pub desired: DesiredTable,
    /// None until the first pass.
    pub taken: Option<Instant>,
}

#[derive(Debug, Clone)]
pub struct PassOutcome {
    /// Every request with a ticket up to this one is included.
    pub covers: u64,
    pub result: Result<PassReport, PassError>,
    pub snapshot: Arc<Snapshot>,
}

/// Requests for passes, and their outcomes.
pub struct Passes {
    requested: AtomicU64,
    kick: Notify,
    outcome: watch::Sender<PassOutcome>,
    /// When the pass under way started, for the watchdog.
    busy_since: Mutex<Option<Instant>>,
}

impl Default for Passes {
    fn default() -> Self {
        Self::new()
    }
}

impl Passes {
    pub fn new() -> Passes {
        let (outcome, _) = watch::channel(PassOutcome {
            covers: 0,
            result: Ok(PassReport::default()),
            snapshot: Arc::new(Snapshot::default()),
        });
        Passes {
            requested: AtomicU64::new(0),
            kick: Notify::new(),
            outcome,
            busy_since: Mutex::new(None),
        }
    }

    /// Asks for a pass without waiting for it.
    pub fn wake(&self) {
        self.requested.fetch_add(1, Ordering::SeqCst);
        self.kick.notify_one();
    }

    /// Asks for a pass and waits for the outcome of one that includes every change made
    /// before this call.
    pub async fn request(&self) -> PassOutcome {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut outcomes = self.outcome.subscribe();
        self.kick.notify_one();
        let result = outcomes.wait_for(|o| o.covers >= ticket).await;
        match result {
            Ok(outcome) => outcome.clone(),
            // The sender lives as long as the director: not reached, but never a hang.
            Err(_) => self.stopped_outcome(),
        }
    }

    pub fn latest(&self) -> PassOutcome {
        self.outcome.borrow().clone()
    }

    /// Resolves when a pass has published a new outcome.
    pub fn subscribe(&self) -> watch::Receiver<PassOutcome> {
        self.outcome.subscribe()
    }

    fn stopped_outcome(&self) -> PassOutcome {
        PassOutcome {
            covers: u64::MAX,
            result: Err(PassError::Stopped),
            snapshot: self.latest().snapshot,
        }
    }

    /// Releases every waiter, now and later: the reconciler is gone.
    fn close(&self) {
        self.outcome.send_replace(self.stopped_outcome());
    }

    /// How long the pass under way has been running; None when the reconciler waits.
    pub fn busy_for(&self) -> Option<Duration> {
        let since = *self.busy_since.lock().unwrap_or_else(|e| e.into_inner());
        since.map(|s| s.elapsed())
    }

    fn set_busy(&self, busy: bool) {
        *self.busy_since.lock().unwrap_or_else(|e| e.into_inner()) = busy.then(Instant::now);
    }
}

/// Closes the passes when the reconciler ends, even by a panic, so no handler waits forever.
struct CloseOnDrop(Arc<Director>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.passes().close();
    }
}

pub struct Reconciler<I, A> {
    director: Arc<Director>,
    ipvs: I,
    host: HostSetup<A>,
    /// Destinations found in the kernel are adopted once, on the first pass.
    adopted: bool,
    /// The VIPs and sysctls are checked on the first pass, after a reload, at every resync,
    /// after a retirement, and after a failure.
    host_due: bool,
    config_seen: Option<Arc<crate::config::DirectorConfig>>,
    /// Consecutive failed reads, for the backoff.
    failures: u32,
    /// A failing state write is logged once until it works again.
    state_problem: Option<String>,
    host_problem: Option<String>,
    /// What the health monitor should probe: every destination of a checked service.
    targets: watch::Sender<Targets>,
    /// The monitor's verdicts; a change wakes a pass.
    health: watch::Receiver<Arc<HealthMap>>,
    /// Services whose every destination is down, so that is said once, not every pass.
    all_down: BTreeSet<String>,
    ha_problems: ha::HaProblems,
}

/// How often a director in HA mode looks whether keepalived moved a VIP to or from it: the
/// role is only reported (the table is the same on both sides), so a second is plenty.
const ROLE_POLL: Duration = Duration::from_secs(1);

impl<I: IpvsBackend, A: AddressBackend> Reconciler<I, A> {
    /// The reconciler, and the health monitor it feeds (the daemon runs it beside).
    pub fn new(director: Arc<Director>, ipvs: I, host: HostSetup<A>) -> (Self, HealthMonitor) {
        let (targets, wanted) = watch::channel(Targets::new());
        let monitor = HealthMonitor::new(wanted).counting(director.metrics().clone());
        let health = monitor.health();
        let reconciler = Reconciler {
            director,
            ipvs,
            host,
            adopted: false,
            host_due: true,
            config_seen: None,
            failures: 0,
            state_problem: None,
            host_problem: None,
            targets,
            health,
            all_down: BTreeSet::new(),
            ha_problems: ha::HaProblems::default(),
        };
        (reconciler, monitor)
    }

    pub fn ipvs(&self) -> &I {
        &self.ipvs
    }

    /// The first pass, before the director serves: a failed read stops the start with
    /// nothing changed.
    pub async fn first_pass(&mut self) -> Result<PassReport, PassError> {
        let covers = self.director.passes().requested.load(Ordering::SeqCst);
        let result = self.pass().await;
        self.finish(covers, &result).await;
        result
    }

    /// Runs passes until `shutdown`. Returns only then; a panic inside ends the task, which
    /// the daemon treats as fatal.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let _close = CloseOnDrop(self.director.clone());
        let mut next_resync = Instant::now() + self.director.config().resync_interval;
        let mut role_poll = tokio::time::interval(ROLE_POLL);
        role_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wake = self.next_wake(next_resync);
            let ha = self.director.config().ha.is_some();
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                () = self.director.passes().kick.notified() => {}
                () = tokio::time::sleep_until(wake) => {}
                _ = role_poll.tick(), if ha => {
                    let director = self.director.clone();
                    self.check_role(&director, &director.config()).await;
                    continue;
                }
                changed = self.health.changed() => {
                    if changed.is_err() {
                        // The monitor is gone; the daemon sees its task end and stops.
                        return;
                    }
                }
            }
            if self.failures > 0 {
                // A failing kernel read must not spin: wait out the backoff, kicks or not.
                let backoff = self.backoff();
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
            }
            if Instant::now() >= next_resync {
                self.host_due = true;
                next_resync = Instant::now() + self.director.config().resync_interval;
            }
            let covers = self.director.passes().requested.load(Ordering::SeqCst);
            let result = self
                .pass()
                .instrument(tracing::info_span!("reconcile"))
                .await;
            self.finish(covers, &result).await;
        }
    }

    fn next_wake(&self, next_resync: Instant) -> Instant {
        let expiry = self.director.leases().next_expiry();
        let config = self.director.config();
        let retire = self
            .director
            .store()
            .read(|s| next_retire_deadline(s, &config));
        [Some(next_resync), expiry, retire]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_resync)
    }

    fn backoff(&self) -> Duration {
        let ceiling = self.director.config().resync_interval;
        Duration::from_millis(100)
            .saturating_mul(2u32.saturating_pow(self.failures.min(16)))
            .min(ceiling)
    }

    /// Publishes a pass's outcome and writes what the pass noted to the state file.
    async fn finish(&mut self, covers: u64, result: &Result<PassReport, PassError>) {
        match result {
            Ok(_) => {
                if self.failures > 0 {
                    info!(after = self.failures, "the IPVS table can be read again");
                    notify::status("serving; the IPVS table can be read again");
                }
                self.failures = 0;
            }
            Err(error) => {
                self.failures = self.failures.saturating_add(1);
                if self.failures == 1 {
                    warn!(%error, "reconcile failed; retrying with backoff");
                }
                notify::status(&format!("degraded: {error}; retrying"));
            }
        }
        self.flush_state().await;
        self.director.passes().outcome.send_modify(|o| {
            o.covers = o.covers.max(covers);
            o.result = result.clone();
        });
    }

    async fn flush_state(&mut self) {
        match self.director.store().flush().await {
            Ok(_) => {
                if let Some(problem) = self.state_problem.take() {
                    info!(previous = %problem, "state file written again");
                }
            }
            Err(error) => {
                let text = error.to_string();
                if self.state_problem.as_deref() != Some(&text) {
                    warn!(%error, "cannot write the state file; registrations go on, the next pass tries again");
                    self.state_problem = Some(text);
                }
            }
        }
    }

    /// One pass: bookkeeping of owned and retiring services, read, plan, apply, host setup.
    async fn pass(&mut self) -> Result<PassReport, PassError> {
        let director = self.director.clone();
        let passes = director.passes();
        passes.set_busy(true);
        let started = std::time::Instant::now();
        let result = self.pass_inner(&director).await;
        director.metrics().pass(started.elapsed(), result.is_ok());
        passes.set_busy(false);
        result
    }

    async fn pass_inner(&mut self, director: &Director) -> Result<PassReport, PassError> {
        let config = director.config();
        if !self
            .config_seen
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, &config))
        {
            self.host_due = true;
            self.config_seen = Some(config.clone());
        }
        let wall = unix_now();
        director
            .store()
            .note(|state| track_retiring(state, &config, wall));
        let state = director.state();
        // What this director reads of the kernel's table: its configured and retiring services,
        // as a set (a search of the configuration for each service read is quadratic).
        let owned: BTreeSet<_> = config
            .services
            .iter()
            .map(|s| s.key())
            .chain(state.retiring.iter().filter_map(|r| r.service.key()))
            .collect();
        let observed = ObservedTable::read(&self.ipvs, |k| owned.contains(k)).await?;
        let health = self.health.borrow_and_update().clone();
        let wanted = {
            let mut leases = director.leases();
            let now = Instant::now();
            if !self.adopted {
                adopt(
                    &mut leases,
                    &state,
                    &config.services,
                    &observed,
                    now + config.adoption_window(),
                );
                self.adopted = true;
            }
            for name in leases.expire(now) {
                warn!(realserver = %name, "lease expired: quiescing (weight 0) until its connections end");
            }
            forget_gone(&mut leases, &config.services, &observed);
            let wanted =
                crate::desired::desired(&config, &leases, &state, &observed, wall, &health);
            let targets = health::targets(&config, &wanted, &leases, &state);
            self.targets.send_if_modified(|t| {
                let changed = *t != targets;
                *t = targets;
                changed
            });
            health::say_when_all_down(&mut self.all_down, &config, &wanted, &health, &leases);
            wanted
        };
        let ops = plan(&wanted, &observed);
        let mut report = PassReport::default();
        let mut after = observed;
        if !ops.is_empty() {
            let results = self.ipvs.apply(&ops).await?;
            for (op, result) in ops.iter().zip(results) {
                director.metrics().ipvs_op(op, result.is_ok());
                match result {
                    Ok(()) => {
                        report.applied += 1;
                        info!(op = %op, "applied");
                        after.apply(op);
                    }
                    Err(error) => {
                        report.failed += 1;
                        warn!(op = %op, %error, "kernel refused an operation; the next pass retries");
                    }
                }
            }
        }
        // A retired service the kernel no longer holds is done; its VIP goes with the host step.
        let before = state.retiring.len();
        director.store().note(|s| {
            s.retiring.retain(|r| {
                r.service
                    .key()
                    .is_some_and(|k| after.services.contains_key(&k))
            })
        });
        if director.store().read(|s| s.retiring.len()) != before {
            self.host_due = true;
        }
        if self.host_due {
            self.set_up_host(director).await;
        }
        if let Some(ha) = &config.ha {
            self.sync_daemons(ha).await;
            self.check_role(director, &config).await;
        }
        publish_snapshot(director, after, health, wanted);
        Ok(report)
    }

    /// VIPs of configured and still-retiring services present, every other VIP this director
    /// put somewhere removed, sysctls set. A failure is logged once and retried next pass.
    async fn set_up_host(&mut self, director: &Director) {
        let config = director.config();
        let state = director.state();
        let services = host_services(&config, &state);
        let previous = state.known_vips();
        let applied = if config.owns_vips() {
            self.host.apply(&services, &previous).await
        } else {
            // keepalived's: the state file keeps what a single director once owned, untouched.
            self.host.apply_without_vips(&services).await
        };
        let (changes, failed) = match applied {
            Ok(changes) => (changes, None),
            Err(error) => (error.changes.clone(), Some(error.to_string())),
        };
        if config.owns_vips() {
            let wanted = crate::host::owned_vips(&services);
            director.store().note(|s| {
                let mut vips: BTreeSet<_> = previous
                    .iter()
                    .filter(|v| !changes.removed.contains(v))
                    .cloned()
                    .collect();
                vips.extend(wanted);
                s.vips = vips;
            });
        }
        if !changes.is_empty() {
            info!(?changes, "host set up");
        }
        match failed {
            None => {
                self.host_due = false;
                if let Some(problem) = self.host_problem.take() {
                    info!(previous = %problem, "host setup complete again");
                }
            }
            Some(text) => {
                if self.host_problem.as_deref() != Some(&text) {
                    tracing::error!(error = %text, "host setup incomplete; retrying at every pass");
                    notify::status(&format!("degraded: {text}"));
                    self.host_problem = Some(text);
                }
            }
        }
    }
}

fn publish_snapshot(
    director: &Director,
    observed: ObservedTable,
    health: Arc<HealthMap>,
    desired: DesiredTable,
) {
    let snapshot = Arc::new(Snapshot {
        observed,
        health,
        desired,
        taken: Some(Instant::now()),
    });
    director
        .passes()
        .outcome
        .send_modify(|o| o.snapshot = snapshot);
}
