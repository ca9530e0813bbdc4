//! The monitor task: probes every target on its own schedule and publishes who is up.
//!
//! Each target has a small task that sleeps until its next probe, takes a permit (so at most
//! `max_in_flight` probes are open at once, whatever the number of destinations), probes and
//! sends the result here. This task alone owns the rise/fall states, so results are judged in
//! order, and it publishes a new [`HealthMap`] only when a target goes up or down or the set of
//! targets changes: a watcher (the reconciler) wakes only when there is something to do. A slow
//! or hung probe holds its own target's task and one permit, nothing else.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lb_shared::probe::{self, CheckKind, ProbeFailure};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use crate::metrics::DirectorMetrics;
use tokio_util::sync::CancellationToken;

use super::schedule::{ProbeResult, Schedule};
use super::{CheckConfig, HealthState, HealthStatus, Transition};

/// One destination of one service, as probed: the destination's RIP and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetKey {
    pub service: String,
    pub addr: SocketAddr,
}

/// What to probe at a [`TargetKey`], and the name its log lines use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub realserver_name: String,
    pub check: CheckConfig,
}

/// Every destination to probe, as the reconciler maps them from its desired table.
pub type Targets = BTreeMap<TargetKey, Target>;

/// The health of every target (those with check `none` are always up).
pub type HealthMap = BTreeMap<TargetKey, HealthStatus>;

/// Probes at most this many destinations at once by default: 10,000 destinations at a 2s
/// interval and a 1s timeout need about 5,000 only when every one of them hangs.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;

/// Runs one probe; the network in the daemon, a script in tests. A probe returns within its
/// timeout.
pub trait Prober: Send + Sync + 'static {
    fn probe(
        &self,
        kind: CheckKind,
        addr: SocketAddr,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), ProbeFailure>> + Send;
}

/// Probes over the network with [`lb_shared::probe::probe`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NetworkProber;

impl Prober for NetworkProber {
    fn probe(
        &self,
        kind: CheckKind,
        addr: SocketAddr,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), ProbeFailure>> + Send {
        probe::probe(kind, addr, timeout)
    }
}

pub struct HealthMonitor<P = NetworkProber> {
    targets: watch::Receiver<Targets>,
    health: watch::Sender<Arc<HealthMap>>,
    prober: Arc<P>,
    permits: Arc<Semaphore>,
    /// Where transitions are counted (`lb_health_transitions_total`).
    metrics: DirectorMetrics,
}

impl HealthMonitor<NetworkProber> {
    /// A monitor of the targets sent on `targets`, probing over the network.
    pub fn new(targets: watch::Receiver<Targets>) -> Self {
        HealthMonitor::with_prober(targets, NetworkProber, DEFAULT_MAX_IN_FLIGHT)
    }
}

impl<P: Prober> HealthMonitor<P> {
    pub fn with_prober(targets: watch::Receiver<Targets>, prober: P, max_in_flight: usize) -> Self {
        HealthMonitor {
            targets,
            health: watch::Sender::new(Arc::new(HealthMap::new())),
            prober: Arc::new(prober),
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
            metrics: DirectorMetrics::default(),
        }
    }

    /// Counts transitions in `metrics` (the director's) instead of a private set.
    pub fn counting(mut self, metrics: DirectorMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The health of every target, changed only when one goes up or down or targets change.
    pub fn health(&self) -> watch::Receiver<Arc<HealthMap>> {
        self.health.subscribe()
    }

    /// Probes until `shutdown` is cancelled. Probes still open then are dropped, which closes
    /// their connections. If the targets' sender goes away, the last targets are kept.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let (results_tx, mut results) = mpsc::channel(1024);
        let mut running = Running {
            entries: HashMap::new(),
            tasks: JoinSet::new(),
            next_id: 0,
            results: results_tx,
            prober: self.prober.clone(),
            permits: self.permits.clone(),
            metrics: self.metrics.clone(),
        };
        let mut targets_open = true;
        running.set_targets(&self.targets.borrow_and_update(), &self.health);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                changed = self.targets.changed(), if targets_open => match changed {
                    Ok(()) => running.set_targets(&self.targets.borrow_and_update(), &self.health),
                    Err(_) => targets_open = false,
                },
                Some(first) = results.recv() => {
                    let mut changed = running.judge(first);
                    // Results that arrived together are published together.
                    while let Ok(more) = results.try_recv() {
                        changed |= running.judge(more);
                    }
                    if changed {
                        running.publish(&self.health);
                    }
                }
                Some(_) = running.tasks.join_next(), if !running.tasks.is_empty() => {}
            }
        }
        running.tasks.shutdown().await;
    }
}

struct Entry {
    target: Target,
    state: HealthState,
    /// The probe task's id (results of a task stopped since are ignored) and its handle; none
    /// for check `none`.
    task: Option<(u64, AbortHandle)>,
}

/// The monitor's state while it runs.
struct Running<P> {
    entries: HashMap<TargetKey, Entry>,
    tasks: JoinSet<()>,
    next_id: u64,
    results: mpsc::Sender<ProbeResult>,
    prober: Arc<P>,
    permits: Arc<Semaphore>,
    metrics: DirectorMetrics,
}

impl<P: Prober> Running<P> {
    fn set_targets(&mut self, targets: &Targets, health: &watch::Sender<Arc<HealthMap>>) {
        let now = Instant::now();
        let before = self.entries.len();
        let mut changed = false;
        self.entries.retain(|key, entry| {
            let keep = targets.contains_key(key);
            if !keep {
                if let Some((_, task)) = &entry.task {
                    task.abort();
                }
            }
            keep
        });
        changed |= self.entries.len() != before;
        for (key, target) in targets {
            let fresh = || {
                HealthState::new(
                    &target.realserver_name,
                    target.check.rise,
                    target.check.fall,
                    now,
                )
            };
            match self.entries.get_mut(key) {
                Some(entry) if entry.target == *target => continue,
                Some(entry) => {
                    if let Some((_, task)) = entry.task.take() {
                        task.abort();
                    }
                    // A new name or no check at all starts over (up); new thresholds keep the
                    // history, so a reload does not bring a dead destination back.
                    if entry.target.realserver_name != target.realserver_name
                        || target.check.kind == CheckKind::None
                    {
                        changed |= !entry.state.is_up();
                        entry.state = fresh();
                    } else {
                        entry
                            .state
                            .set_thresholds(target.check.rise, target.check.fall);
                    }
                    entry.target = target.clone();
                }
                None => {
                    let entry = Entry {
                        target: target.clone(),
                        state: fresh(),
                        task: None,
                    };
                    self.entries.insert(key.clone(), entry);
                    changed = true;
                }
            }
            let task = self.spawn(key, target);
            if let Some(entry) = self.entries.get_mut(key) {
                entry.task = task;
            }
        }
        if changed {
            self.publish(health);
        }
    }

    /// Starts probing `target`, its first probe at a random point of its first interval.
    fn spawn(&mut self, key: &TargetKey, target: &Target) -> Option<(u64, AbortHandle)> {
        if target.check.kind == CheckKind::None {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        let schedule = Schedule {
            key: key.clone(),
            id,
            check: target.check.clone(),
        };
        let first = Schedule::first_probe_after(target.check.interval);
        let task = schedule.run(
            first,
            self.prober.clone(),
            self.permits.clone(),
            self.results.clone(),
        );
        Some((id, self.tasks.spawn(task)))
    }

    /// Records a result; true when it was a transition.
    fn judge(&mut self, probe: ProbeResult) -> bool {
        let Some(entry) = self.entries.get_mut(&probe.key) else {
            return false;
        };
        if entry.task.as_ref().map(|(id, _)| *id) != Some(probe.id) {
            return false;
        }
        let Some(transition) = entry.state.record(probe.result, probe.at) else {
            return false;
        };
        self.log(&probe.key, &transition);
        self.metrics.health_transition(transition.up, "probe");
        true
    }

    fn log(&self, key: &TargetKey, transition: &Transition) {
        let (service, addr) = (&key.service, key.addr);
        if transition.up {
            tracing::info!(service = %service, %addr, "{transition}");
        } else {
            tracing::warn!(service = %service, %addr, "{transition}");
        }
        let of_service = self.entries.iter().filter(|(k, _)| k.service == *service);
        let up = of_service.clone().filter(|(_, e)| e.state.is_up()).count();
        if up == 0 {
            let down = of_service.count();
            tracing::error!(service = %service, "every destination of {service} is down ({down}): no new sessions");
        } else if transition.up && up == 1 {
            tracing::info!(service = %service, "{service} has a healthy destination again");
        }
    }

    fn publish(&self, health: &watch::Sender<Arc<HealthMap>>) {
        let map = self
            .entries
            .iter()
            .map(|(k, e)| (k.clone(), e.state.status()))
            .collect();
        health.send_replace(Arc::new(map));
    }
}

#[cfg(test)]
#[path = "monitor_tests.rs"]
mod tests;
