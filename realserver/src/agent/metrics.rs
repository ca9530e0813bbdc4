//! The agent's Prometheus metrics (issue 11): its REDIRECT rules, whether it is registered, when
//! the director last renewed its lease, and how often talking to the director failed. Served by
//! the same `GET /metrics` code as the director's (`lb_shared::metrics`).

use std::sync::atomic::AtomicU64;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use super::AgentState;
use crate::keeper::RulePresence;
use crate::registry::RegistryError;

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

#[derive(Debug, Clone)]
pub(crate) struct AgentMetrics {
    last_heartbeat: Gauge<f64, AtomicU64>,
    errors: Family<[(&'static str, &'static str); 1], Counter>,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        let metrics = AgentMetrics {
            last_heartbeat: Gauge::default(),
            errors: Family::default(),
        };
        // Shown as 0 before the first one, so alerts on increase() see the series.
        for kind in [
            "unreachable",
            "lease_unknown",
            "refused",
            "bad_answer",
            "tls",
        ] {
            let _ = metrics.errors.get_or_create(&[("kind", kind)]);
        }
        metrics
    }
}

impl AgentMetrics {
    /// The director renewed the lease (a confirmation or a heartbeat it took).
    pub(crate) fn renewed(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.last_heartbeat.set(now.as_secs_f64());
    }

    pub(crate) fn director_error(&self, error: &RegistryError) {
        self.errors.get_or_create(&[("kind", kind(error))]).inc();
    }

    /// What a scrape of the agent encodes.
    pub(crate) fn registry(
        &self,
        state: watch::Receiver<AgentState>,
        rules: RulePresence,
    ) -> Registry {
        let mut registry = Registry::default();
        registry.register(
            "lb_agent_last_heartbeat_timestamp_seconds",
            "Unix time the director last renewed this agent's lease (confirmation or heartbeat); 0 before the first.",
            self.last_heartbeat.clone(),
        );
        registry.register(
            "lb_agent_director_errors",
            "Failed calls to the director, by kind (unreachable, lease_unknown, refused, bad_answer, tls).",
            self.errors.clone(),
        );
        registry.register_collector(Box::new(StateCollector { state, rules }));
        registry
    }
}

/// The gauges read at each scrape from the agent's published state and its rules.
#[derive(Debug)]
struct StateCollector {
    state: watch::Receiver<AgentState>,
    rules: RulePresence,
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let registered = matches!(*self.state.borrow(), AgentState::Registered { .. });
        let family = encoder.encode_descriptor(
            "lb_agent_registered",
            "1 while the registration is confirmed and the director answers, else 0 (starting, director unreachable or refusing, rules failed, stopping).",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::from(registered)).encode(family)?;
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
