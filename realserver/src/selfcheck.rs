//! The agent's self-check: it probes its own service ports (its address, the binding's port)
//! with the check the director hands out in each binding, counts rise/fall like the director
//! does, and keeps a verdict per service for the heartbeats.
//!
//! Why the agent checks at all when the director probes too: the agent sees its own sshd die
//! at once and tells the director in an early heartbeat, so the destination goes to weight 0
//! even when the director's probes of thousands of destinations come round more slowly.
//!
//! Each checked service has its own task, so a hung sshd holds one probe (bounded by the
//! timeout) and never a heartbeat or a rule check. Verdicts are published on a watch channel
//! that changes only when a service goes up or down: the director loop wakes only then.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use lb_proto::{HealthCheck, ServiceHealth};
use lb_shared::health::HealthState;
use lb_shared::probe::{self, CheckKind, ProbeFailure};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, info_span, warn, Instrument};

/// Below this a probe of one's own port costs more than it tells; a director validates its
/// intervals, but the agent does not let an answer make it spin.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// One service's self-check, as the director's binding asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SelfCheck {
    pub(crate) kind: CheckKind,
    /// This realserver's address and the service's port.
    pub(crate) addr: SocketAddr,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) fall: u32,
    pub(crate) rise: u32,
}

/// Why a binding's check cannot be run. The registration still goes ahead: the director probes
/// the destination itself, and an agent must not refuse service over a check it cannot read
/// (a newer director's check type, say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelfCheckError {
    #[error("service {service:?}: check type {kind:?}: {reason}")]
    UnknownType {
        service: String,
        kind: String,
        reason: String,
    },
    #[error("service {service:?}: check {what} is 0 ms")]
    Zero { service: String, what: &'static str },
    /// A fwmark service's binding has no port; its check must name one.
    #[error("service {service:?}: the check names no port to probe")]
    NoPort { service: String },
}

impl SelfCheck {
    /// The self-check a binding's `check` asks for at `address:port` (the check's own port
    /// when it names one); `None` when it asks for none (absent, or type "none").
    pub(crate) fn from_binding(
        service: &str,
        check: Option<&HealthCheck>,
        address: IpAddr,
        port: u16,
    ) -> Result<Option<SelfCheck>, SelfCheckError> {
        let Some(check) = check else { return Ok(None) };
        let kind =
            check
                .r#type
                .parse::<CheckKind>()
                .map_err(|reason| SelfCheckError::UnknownType {
                    service: service.to_owned(),
                    kind: check.r#type.clone(),
                    reason,
                })?;
        if kind == CheckKind::None {
            return Ok(None);
        }
        let zero = |what| SelfCheckError::Zero {
            service: service.to_owned(),
            what,
        };
        if check.interval_ms == 0 {
            return Err(zero("interval"));
        }
        if check.timeout_ms == 0 {
            return Err(zero("timeout"));
        }
        let port = u16::try_from(check.port)
            .ok()
            .filter(|p| *p != 0)
            .unwrap_or(port);
        if port == 0 {
            return Err(SelfCheckError::NoPort {
                service: service.to_owned(),
            });
        }
        Ok(Some(SelfCheck {
            kind,
            addr: SocketAddr::new(address, port),
            interval: Duration::from_millis(check.interval_ms).max(MIN_INTERVAL),
            timeout: Duration::from_millis(check.timeout_ms),
            fall: check.fall,
            rise: check.rise,
        }))
    }

    /// Whether a change to `new` probes something else, so the history no longer applies.
    fn probes_another_thing(&self, new: &SelfCheck) -> bool {
        self.kind != new.kind || self.addr != new.addr
    }
}

/// The agent's verdict on one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub up: bool,
    /// The sentence of the failure that took it down ("no SSH banner within 1s"); `None` up.
    pub reason: Option<String>,
}

/// Every checked service's verdict, by service name.
pub type Verdicts = BTreeMap<String, Verdict>;

type ProbeFuture = Pin<Box<dyn Future<Output = Result<(), ProbeFailure>> + Send>>;
/// One probe: the network in the daemon, a script in unit tests.
type Prober = Arc<dyn Fn(CheckKind, SocketAddr, Duration) -> ProbeFuture + Send + Sync>;

/// The running self-checks, one task per checked service.
pub(crate) struct SelfChecks {
    running: BTreeMap<String, Running>,
    verdicts: watch::Sender<Verdicts>,
    prober: Prober,
}

/// One service's task and its config, which the task follows.
struct Running {
    check: watch::Sender<SelfCheck>,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // A probe in flight is given up with the task; it holds nothing but its socket.
        self.task.abort();
    }
}

impl SelfChecks {
    pub(crate) fn new() -> SelfChecks {
        SelfChecks::with_prober(Arc::new(|kind, addr, timeout| {
            Box::pin(probe::probe(kind, addr, timeout))
        }))
    }

    fn with_prober(prober: Prober) -> SelfChecks {
        SelfChecks {
            running: BTreeMap::new(),
            verdicts: watch::channel(Verdicts::new()).0,
            prober,
        }
    }

    /// A receiver that wakes when a service goes up or down.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Verdicts> {
        self.verdicts.subscribe()
    }

    /// Runs exactly `wanted`: starts the new checks, stops those no longer wanted, hands a
    /// changed config to its task. A check whose config is unchanged keeps running untouched.
    pub(crate) fn apply(&mut self, wanted: BTreeMap<String, SelfCheck>) {
        self.running
            .retain(|service, _| wanted.contains_key(service));
        self.verdicts.send_if_modified(|verdicts| {
            // The service is gone from the lease; the director no longer asks about it.
            verdicts.retain(|service, _| wanted.contains_key(service));
            false
        });
        for (service, check) in wanted {
            match self.running.get(&service) {
                Some(running) => {
                    running.check.send_if_modified(|old| {
                        let changed = *old != check;
                        *old = check;
                        changed
                    });
                }
                None => {
                    let running = self.start(&service, check);
                    self.running.insert(service, running);
                }
            }
        }
    }

    fn start(&self, service: &str, check: SelfCheck) -> Running {
        let (check_tx, check_rx) = watch::channel(check);
        let task = Task {
            service: service.to_owned(),
            check: check_rx,
            verdicts: self.verdicts.clone(),
            prober: Arc::clone(&self.prober),
        };
        let span = info_span!("selfcheck", service);
        Running {
            check: check_tx,
            task: tokio::spawn(task.run().instrument(span)),
        }
    }

    /// Every checked service's verdict, as a heartbeat carries it.
    pub(crate) fn report(&self) -> Vec<ServiceHealth> {
        self.verdicts
            .borrow()
            .iter()
            .map(|(service, verdict)| ServiceHealth {
                service: service.clone(),
                up: verdict.up,
                reason: verdict.reason.clone().unwrap_or_default(),
            })
            .collect()
    }

    /// The services that are down, each with its reason, for the status line.
    pub(crate) fn down(&self) -> Vec<(String, String)> {
        self.verdicts
            .borrow()
            .iter()
            .filter(|(_, verdict)| !verdict.up)
            .map(|(service, verdict)| (service.clone(), verdict.reason.clone().unwrap_or_default()))
            .collect()
    }
}

/// One service's probe loop. It alone owns the service's rise/fall state.
struct Task {
    service: String,
    check: watch::Receiver<SelfCheck>,
    verdicts: watch::Sender<Verdicts>,
    prober: Prober,
}

impl Task {
    async fn run(mut self) {
        let mut check = self.check.borrow_and_update().clone();
        let mut state =
            HealthState::new(self.service.clone(), check.rise, check.fall, Instant::now());
        self.publish(&state);
        // The first probe at once: a realserver that registers with its sshd dead is down
        // after fall - 1 intervals, not fall.
        let mut next = Instant::now();
        loop {
            tokio::select! {
                changed = self.check.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let new = self.check.borrow_and_update().clone();
                    if check.probes_another_thing(&new) {
                        state = HealthState::new(self.service.clone(), new.rise, new.fall, Instant::now());
                        self.publish(&state);
                    } else {
                        state.set_thresholds(new.rise, new.fall);
                    }
                    // A shorter interval applies from now, not after the old one ran out.
                    next = next.min(Instant::now() + new.interval);
                    check = new;
                }
                () = tokio::time::sleep_until(next) => {
                    let result = (self.prober)(check.kind, check.addr, check.timeout).await;
                    let now = Instant::now();
                    // A probe that took longer than the interval (timeout >= interval) is
                    // followed by the next at once, never by a burst to catch up.
                    next = (next + check.interval).max(now);
                    if let Some(transition) = state.record(result, now) {
                        if transition.up {
                            info!(addr = %check.addr, "{transition}");
                        } else {
                            warn!(addr = %check.addr, "{transition}");
                        }
                        self.publish(&state);
                    }
                }
            }
        }
    }

    /// Publishes the service's verdict; receivers wake only if it went up or down.
    fn publish(&self, state: &HealthState) {
        let status = state.status();
        let verdict = Verdict {
            up: status.up,
            reason: status.reason.map(|failure| failure.to_string()),
        };
        self.verdicts.send_if_modified(|verdicts| {
            let before = verdicts.insert(self.service.clone(), verdict.clone());
            // A new service starts up, which is what the director assumes without a verdict.
            before.map_or(!verdict.up, |before| before.up != verdict.up)
        });
    }
}

#[cfg(test)]
mod tests;
