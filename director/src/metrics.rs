//! The director's Prometheus metrics: the table as the last pass saw it (gauges and the
//! kernel's counters, built at each scrape from the published [`Snapshot`], so a destination
//! that leaves the table leaves the metrics and no scrape reads the kernel), and the events
//! counted as they happen (passes, kernel operations, registrations, heartbeats, refusals,
//! health transitions). README's "Metrics" section lists every family.
//!
//! [`Snapshot`]: crate::reconciler::Snapshot

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tonic::{Code, Status};

use crate::access::Refused;
use crate::director::Director;

mod table;
pub use table::{table_rows, TableRows};

type Labels1 = [(&'static str, &'static str); 1];
type Labels2 = [(&'static str, &'static str); 2];

/// Seconds a pass may take, from a no-op over a small table to a slow kernel.
const PASS_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The counted events; the handles are shared with the registry a scrape encodes.
#[derive(Debug, Clone)]
pub struct DirectorMetrics {
    reconcile_duration: Histogram,
    last_success: Gauge<f64, AtomicU64>,
    ipvs_ops: Family<Labels2, Counter>,
    registrations: Family<Labels1, Counter>,
    heartbeats: Family<Labels1, Counter>,
    refusals: Family<Labels1, Counter>,
    health_transitions: Family<Labels2, Counter>,
    /// 1 while clients reach this director (single, or the active one of a pair).
    active: Gauge,
    peers: PeerMetrics,
}

type PeerLabels = Vec<(&'static str, String)>;

/// Per peer director (label `peer`, its `[[peer]] name`): admin state exchanges.
#[derive(Debug, Clone, Default)]
struct PeerMetrics {
    reachable: Family<PeerLabels, Gauge>,
    last_exchange: Family<PeerLabels, Gauge<f64, AtomicU64>>,
    exchanges: Family<PeerLabels, Counter>,
}

/// The `result` of a registration or a heartbeat, from the status it answered.
fn result_of<T>(outcome: &Result<T, Status>) -> &'static str {
    match outcome {
        Ok(_) => "ok",
        Err(status) => match status.code() {
            Code::InvalidArgument => "invalid",
            Code::PermissionDenied | Code::AlreadyExists => "refused",
            Code::NotFound => "unknown",
            _ => "error",
        },
    }
}

impl Default for DirectorMetrics {
    fn default() -> Self {
        let metrics = DirectorMetrics {
            reconcile_duration: Histogram::new(PASS_BUCKETS),
            last_success: Gauge::default(),
            ipvs_ops: Family::default(),
            registrations: Family::default(),
            heartbeats: Family::default(),
            refusals: Family::default(),
            health_transitions: Family::default(),
            active: Gauge::default(),
            peers: PeerMetrics::default(),
        };
        metrics.active.set(1);
        // The usual outcomes show as 0 before they first happen, so rate() and alerts see them.
        for result in ["ok", "invalid", "refused", "unknown", "error"] {
            let _ = metrics.registrations.get_or_create(&[("result", result)]);
            let _ = metrics.heartbeats.get_or_create(&[("result", result)]);
        }
        for direction in ["up", "down"] {
            for source in ["probe", "agent"] {
                let _ = metrics
                    .health_transitions
                    .get_or_create(&[("direction", direction), ("source", source)]);
            }
        }
        metrics
    }
}

impl DirectorMetrics {
    /// One pass took `took`; a pass that read the table and applied its plan succeeded.
    pub fn pass(&self, took: Duration, succeeded: bool) {
        self.reconcile_duration.observe(took.as_secs_f64());
        if succeeded {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            self.last_success.set(now.as_secs_f64());
        }
    }

    /// The kernel accepted or refused one operation.
    pub fn ipvs_op(&self, op: &lb_ipvs::IpvsOp, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.ipvs_ops
            .get_or_create(&[("op", op.kind()), ("result", result)])
            .inc();
    }

    pub fn registration<T>(&self, outcome: &Result<T, Status>) {
        self.registrations
            .get_or_create(&[("result", result_of(outcome))])
            .inc();
    }

    pub fn heartbeat<T>(&self, outcome: &Result<T, Status>) {
        self.heartbeats
            .get_or_create(&[("result", result_of(outcome))])
            .inc();
    }

    /// A security refusal: counted by its reason, answered as the caller's Status.
    pub fn refused(&self, refused: Refused) -> Status {
        self.count_refusal(refused.reason);
        refused.into()
    }

    pub fn count_refusal(&self, reason: &'static str) {
        self.refusals.get_or_create(&[("reason", reason)]).inc();
    }

    /// The director's role changed (HA mode).
    pub fn role(&self, role: crate::ha::Role) {
        self.active.set(i64::from(role.serves()));
    }

    /// A call to peer director `peer` worked (None) or failed, by the kind of failure.
    pub fn peer_exchange(&self, peer: &str, failed: Option<&'static str>) {
        let labels = vec![("peer", peer.to_owned())];
        self.peers
            .reachable
            .get_or_create(&labels)
            .set(i64::from(failed.is_none()));
        if failed.is_none() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            self.peers
                .last_exchange
                .get_or_create(&labels)
                .set(now.as_secs_f64());
        }
        let mut counted = labels;
        counted.push(("result", failed.unwrap_or("ok").to_owned()));
        self.peers.exchanges.get_or_create(&counted).inc();
    }

    /// A configured peer shows (reachable 0) before the first call to it, so alerts see it.
    pub fn peer_configured(&self, peer: &str) {
        let _ = self
            .peers
            .reachable
            .get_or_create(&vec![("peer", peer.to_owned())]);
    }

    /// A reload removed peer `peer`: its series go.
    pub fn forget_peer(&self, peer: &str) {
        let labels = vec![("peer", peer.to_owned())];
        self.peers.reachable.remove(&labels);
        self.peers.last_exchange.remove(&labels);
    }

    /// A destination went up or down, by the director's probe or its agent's self-check.
    pub fn health_transition(&self, up: bool, source: &'static str) {
        let direction = if up { "up" } else { "down" };
        self.health_transitions
            .get_or_create(&[("direction", direction), ("source", source)])
            .inc();
    }
}

/// What a scrape of the director encodes.
pub fn registry(director: Arc<Director>) -> Registry {
    let metrics = director.metrics().clone();
    let mut registry = Registry::default();
    registry.register(
        "lb_reconcile_duration_seconds",
        "How long reconcile passes took (read, plan, apply, host setup).",
        metrics.reconcile_duration,
    );
    registry.register(
        "lb_reconcile_last_success_timestamp_seconds",
        "Unix time of the end of the last pass that read the IPVS table and applied its plan (0: none yet).",
        metrics.last_success,
    );
    registry.register(
        "lb_ipvs_ops",
        "IPVS operations sent to the kernel, by op (add_service, edit_destination, ...) and result (ok, error).",
        metrics.ipvs_ops,
    );
    registry.register(
        "lb_registrations",
        "Agent registrations, by result (ok, invalid, refused, unknown service, error).",
        metrics.registrations,
    );
    registry.register(
        "lb_heartbeats",
        "Agent heartbeats, by result (ok, invalid, refused, unknown lease, error).",
        metrics.heartbeats,
    );
    registry.register(
        "lb_refusals",
        "Security refusals of agents and admins (wrong or missing certificate, unlisted realserver, wrong address or source, not an admin, name taken), by reason.",
        metrics.refusals,
    );
    registry.register(
        "lb_health_transitions",
        "Destinations going up or down, by direction and source (probe: the director's health check; agent: the agent's self-check).",
        metrics.health_transitions,
    );
    registry.register(
        "lb_director_active",
        "1 while clients reach this director: always without [ha]; with [ha] while a service VIP is on its interface (keepalived's MASTER), 0 on the standby.",
        metrics.active,
    );
    registry.register(
        "lb_peer_reachable",
        "1 while the last call to this peer director (admin state exchange or push) worked, 0 after a failure.",
        metrics.peers.reachable,
    );
    registry.register(
        "lb_peer_last_exchange_timestamp_seconds",
        "Unix time of the last call to this peer director that worked.",
        metrics.peers.last_exchange,
    );
    registry.register(
        "lb_peer_exchanges",
        "Calls to peer directors (exchanges, pushes, the pull at start), by peer and result (ok, unreachable, refused, bad_answer, state).",
        metrics.peers.exchanges,
    );
    registry.register_collector(Box::new(table::TableCollector::new(director)));
    registry
}
