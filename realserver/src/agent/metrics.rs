//! The agent's Prometheus metrics (issue 11): its REDIRECT rules, whether it is registered, when
//! the director last renewed its lease, and how often talking to the director failed; the last
//! three per director (label `director`, its URL). Served by the same `GET /metrics` code as
//! the director's (`lb_shared::metrics`).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use super::board::Board;
use super::AgentState;
use crate::keeper::RulePresence;
use crate::registry::RegistryError;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

const KINDS: [&str; 5] = [
    "unreachable",
    "lease_unknown",
    "refused",
    "bad_answer",
    "tls",
];

/// What kind of trouble a director call ran into, as `lb_agent_director_errors_total` says it.
fn kind(error: &RegistryError) -> &'static str {
    match error {
        RegistryError::Unreachable(_) => "unreachable",
        RegistryError::LeaseUnknown { .. } => "lease_unknown",
        RegistryError::Refused(_) => "refused",
        RegistryError::BadAnswer(_) => "bad_answer",
        RegistryError::Tls { .. } | RegistryError::TlsMissing { .. } => "tls",
    }
}

type DirectorLabel = [(&'static str, String); 1];
type ErrorLabels = [(&'static str, String); 2];

#[derive(Debug, Clone, Default)]
pub(crate) struct AgentMetrics {
    last_heartbeat: Family<DirectorLabel, Gauge<f64, AtomicU64>>,
    errors: Family<ErrorLabels, Counter>,
}

impl AgentMetrics {
    /// The series of one director session, shown from now on (errors at 0, so alerts on
    /// increase() see the series; the last heartbeat at 0 before the first).
    pub(crate) fn director(&self, url: String) -> DirectorMetrics {
        let metrics = DirectorMetrics {
            metrics: self.clone(),
            url: Arc::new(Mutex::new(url)),
        };
        metrics.show();
        metrics
    }
    /// What a scrape of the agent encodes.
    pub(crate) fn registry(&self, board: Board, rules: RulePresence) -> Registry {
        let mut registry = Registry::default();
        registry.register(
            "lb_agent_last_heartbeat_timestamp_seconds",
            "Unix time the director (label director, its URL) last renewed this agent's lease (confirmation or heartbeat); 0 before the first.",
            self.last_heartbeat.clone(),
        );
        registry.register(
            "lb_agent_director_errors",
            "Failed calls to the director (label director, its URL), by kind (unreachable, lease_unknown, refused, bad_answer, tls).",
            self.errors.clone(),
        );
        registry.register_collector(Box::new(StateCollector { board, rules }));
        registry
    }
}

/// One director session's series; a reload that edits the session's URL moves them.
#[derive(Debug, Clone)]
pub(crate) struct DirectorMetrics {
    metrics: AgentMetrics,
    url: Arc<Mutex<String>>,
}

impl DirectorMetrics {
    fn url(&self) -> String {
        self.url
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn show(&self) {
        let url = self.url();
        let _ = self
            .metrics
            .last_heartbeat
            .get_or_create(&[("director", url.clone())]);
        for kind in KINDS {
            let _ = self
                .metrics
                .errors
                .get_or_create(&[("director", url.clone()), ("kind", kind.to_owned())]);
        }
    }

    /// The director renewed the lease (a confirmation or a heartbeat it took).
    pub(crate) fn renewed(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.metrics
            .last_heartbeat
            .get_or_create(&[("director", self.url())])
            .set(now.as_secs_f64());
    }

    pub(crate) fn director_error(&self, error: &RegistryError) {
        self.metrics
            .errors
            .get_or_create(&[("director", self.url()), ("kind", kind(error).to_owned())])
            .inc();
    }

    /// The session ended: its series go.
    pub(crate) fn forget(&self) {
        let url = self.url();
        self.metrics
            .last_heartbeat
            .remove(&[("director", url.clone())]);
        for kind in KINDS {
            self.metrics
                .errors
                .remove(&[("director", url.clone()), ("kind", kind.to_owned())]);
        }
    }

    /// The session's URL changed by reload: its series start again under the new one.
    pub(crate) fn rename(&self, url: String) {
        self.forget();
        *self.url.lock().unwrap_or_else(PoisonError::into_inner) = url;
        self.show();
    }
}

/// The gauges read at each scrape from the sessions' posts and the rules.
struct StateCollector {
    board: Board,
    rules: RulePresence,
}

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateCollector").finish_non_exhaustive()
    }
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "lb_agent_registered",
            "1 while the registration with the director (label director, its URL) is confirmed and it answers, else 0 (starting, director unreachable or refusing, rules failed, stopping).",
            None,
            MetricType::Gauge,
        )?;
        let posts = self.board.posts();
        if posts.is_empty() {
            // Stopping: no director counts any more.
            for director in self.board.directors() {
                let labels = [("director", director)];
                ConstGauge::new(0i64).encode(family.encode_family(&labels)?)?;
            }
        }
        for post in posts {
            let registered = matches!(post.state, AgentState::Registered { .. });
            let labels = [("director", post.director)];
            ConstGauge::new(i64::from(registered)).encode(family.encode_family(&labels)?)?;
        }
        let rules = self.rules.snapshot();
        if rules.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "lb_agent_rule_present",
            "1 while the service's iptables REDIRECT rule was in the nat table at the last install or check, else 0 (labels service, vip, port, protocol).",
            None,
            MetricType::Gauge,
        )?;
        for (rule, present) in rules {
            let labels = [
                ("service", rule.service.clone()),
                ("vip", rule.vip.to_string()),
                // Empty for a fwmark service's rule, which takes every port and protocol.
                (
                    "port",
                    rule.port.map_or(String::new(), |p| p.port.to_string()),
                ),
                (
                    "protocol",
                    rule.port.map_or(String::new(), |p| p.protocol.to_string()),
                ),
            ];
            ConstGauge::new(i64::from(present)).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
