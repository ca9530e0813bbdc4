//! The table's metrics, rebuilt at every scrape from the last pass's snapshot joined with the
//! leases, the overrides and the configuration: only what the table holds now is shown, so
//! the number of series is bounded by the table and nothing lingers after a destination or a
//! service has gone.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use lb_ipvs::{DestinationKey, Family, ServiceKey};
use lb_shared::probe::CheckKind;

use crate::config::{DirectorConfig, ServiceConfig};
use crate::director::{Director, LeaseView};
use crate::reconciler::Snapshot;
use crate::registry::LeaseState;
use crate::state::State;
use crate::view::{down, realserver_names};

pub type Labels = Vec<(&'static str, String)>;

/// Every table series of one scrape, family by family.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TableRows {
    pub weight: Vec<(Labels, i64)>,
    pub desired_weight: Vec<(Labels, i64)>,
    pub active: Vec<(Labels, i64)>,
    pub inactive: Vec<(Labels, i64)>,
    pub healthy: Vec<(Labels, i64)>,
    pub drained: Vec<(Labels, i64)>,
    pub lease_alive: Vec<(Labels, i64)>,
    pub service_connections: Vec<(Labels, u64)>,
    pub service_packets: Vec<(Labels, u64)>,
    pub service_bytes: Vec<(Labels, u64)>,
}

/// A service's name and labels: a configured one, or one still retiring. A fwmark service has
/// no VIP:port of its own: `fwmark` and `family` take the place of `vip`, `port`, `protocol`,
/// so the address services' series stay as they were.
fn service_labels(key: &ServiceKey, name: &str) -> Option<Labels> {
    Some(match key {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => vec![
            ("service", name.to_owned()),
            ("vip", addr.to_string()),
            ("port", port.to_string()),
            ("protocol", protocol.to_string()),
        ],
        ServiceKey::FwMark { family, mark } => vec![
            ("service", name.to_owned()),
            ("fwmark", mark.to_string()),
            (
                "family",
                match family {
                    Family::Inet => "ipv4",
                    Family::Inet6 => "ipv6",
                }
                .to_owned(),
            ),
        ],
    })
}

fn with(labels: &Labels, more: &[(&'static str, String)]) -> Labels {
    let mut all = labels.clone();
    all.extend(more.iter().cloned());
    all
}

/// The table's series, from the last pass's snapshot and what the director knows of names,
/// leases and overrides.
pub fn table_rows(
    snapshot: &Snapshot,
    config: &DirectorConfig,
    leases: &LeaseView,
    state: &State,
) -> TableRows {
    let mut rows = TableRows::default();
    let names = realserver_names(config, &leases.realservers, state);
    let name_of = |addr: &IpAddr| -> String {
        names
            .get(addr)
            .map_or_else(|| addr.to_string(), |n| (*n).to_owned())
    };
    let retiring: BTreeMap<ServiceKey, &str> = state
        .retiring
        .iter()
        .filter_map(|r| Some((r.service.key()?, r.service.name.as_str())))
        .collect();
    // One map for the scrape: a search of the config per service is quadratic in services.
    let by_key: BTreeMap<ServiceKey, &ServiceConfig> =
        config.services.iter().map(|s| (s.key(), s)).collect();
    let mut keys: Vec<&ServiceKey> = snapshot.observed.services.keys().collect();
    keys.extend(snapshot.desired.services.keys());
    keys.sort();
    keys.dedup();
    for key in keys {
        let configured = by_key.get(key).copied();
        let Some(name) = configured
            .map(|s| s.name.as_str())
            .or_else(|| retiring.get(key).copied())
        else {
            continue;
        };
        let Some(labels) = service_labels(key, name) else {
            continue;
        };
        let observed = snapshot.observed.services.get(key);
        let desired = snapshot.desired.services.get(key);
        if let Some(observed) = observed {
            let stats = &observed.stats;
            rows.service_connections.push((labels.clone(), stats.conns));
            for (direction, packets, bytes) in [
                ("in", stats.in_packets, stats.in_bytes),
                ("out", stats.out_packets, stats.out_bytes),
            ] {
                let labels = with(&labels, &[("direction", direction.to_owned())]);
                rows.service_packets.push((labels.clone(), packets));
                rows.service_bytes.push((labels, bytes));
            }
        }
        let mut dests: Vec<&DestinationKey> = observed
            .map(|o| o.destinations.keys().collect())
            .unwrap_or_default();
        if let Some(desired) = desired {
            dests.extend(desired.destinations.keys());
        }
        dests.sort();
        dests.dedup();
        for dest in dests {
            let addr = dest.addr;
            let realserver = name_of(&addr);
            let labels = with(
                &labels,
                &[
                    ("realserver", realserver.clone()),
                    ("address", addr.to_string()),
                ],
            );
            let entry = observed.and_then(|o| o.destinations.get(dest));
            if let Some(entry) = entry {
                rows.weight
                    .push((labels.clone(), i64::from(entry.destination.weight)));
                rows.active
                    .push((labels.clone(), i64::from(entry.active_conns)));
                rows.inactive
                    .push((labels.clone(), i64::from(entry.inactive_conns)));
            }
            // A destination the desired table leaves out is quiesced by the plan (weight 0)
            // until its connections end, then deleted: it is wanted at 0 meanwhile.
            let wanted = desired
                .and_then(|d| d.destinations.get(dest))
                .map_or(0, |d| d.weight);
            rows.desired_weight
                .push((labels.clone(), i64::from(wanted)));
            if let Some(service) = configured.filter(|s| s.check.kind != CheckKind::None) {
                rows.healthy
                    .push((labels.clone(), healthy(service, addr, snapshot, leases)));
            }
            let drained = state.drained.contains(&realserver);
            rows.drained.push((labels, i64::from(drained)));
        }
    }
    for rs in &leases.realservers {
        let labels = vec![
            ("realserver", rs.name.clone()),
            ("address", rs.address.to_string()),
        ];
        let alive = rs.state == LeaseState::Alive;
        rows.lease_alive.push((labels, i64::from(alive)));
    }
    rows
}

fn healthy(service: &ServiceConfig, addr: IpAddr, snapshot: &Snapshot, leases: &LeaseView) -> i64 {
    i64::from(down(service, addr, &snapshot.health, &leases.realservers).is_none())
}

/// Encodes the table's families at each scrape.
pub(super) struct TableCollector {
    director: Arc<Director>,
}

impl TableCollector {
    pub(super) fn new(director: Arc<Director>) -> TableCollector {
        TableCollector { director }
    }
}

impl std::fmt::Debug for TableCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TableCollector")
    }
}

const DESTINATION: &str = " (labels service, vip, port, protocol, realserver, address)";

impl Collector for TableCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let director = &self.director;
        let rows = table_rows(
            &director.snapshot(),
            &director.config(),
            &director.lease_view(),
            &director.state(),
        );
        let e = &mut encoder;
        gauges(
            e,
            "lb_destination_weight",
            "Weight of the destination in the kernel's IPVS table, as the last pass left it",
            &rows.weight,
        )?;
        gauges(e, "lb_destination_desired_weight", "Weight the director wants for the destination (registered, overridden, 0 when drained, down or its lease expired)", &rows.desired_weight)?;
        gauges(
            e,
            "lb_destination_connections_active",
            "ActiveConn of the destination as of the last pass's read",
            &rows.active,
        )?;
        gauges(
            e,
            "lb_destination_connections_inactive",
            "InActConn of the destination as of the last pass's read",
            &rows.inactive,
        )?;
        gauges(e, "lb_destination_healthy", "1 while the destination passes its health check (the director's probe and its agent's self-check), 0 while down; absent for services with check type none", &rows.healthy)?;
        gauges(
            e,
            "lb_destination_drained",
            "1 while the destination's realserver is drained (lbctl drain), else 0",
            &rows.drained,
        )?;
        gauges(e, "lb_realserver_lease_alive", "1 while the realserver's agent holds a confirmed lease, 0 while it is pending, adopted, expired or deregistered (labels realserver, address)", &rows.lease_alive)?;
        counters(e, "lb_service_connections", "Connections the kernel scheduled for the service (ipvsadm --stats Conns) (labels service, vip, port, protocol)", &rows.service_connections)?;
        counters(e, "lb_service_packets", "Packets of the service, by direction in or out (ipvsadm --stats InPkts, OutPkts; out is 0 with direct routing)", &rows.service_packets)?;
        counters(
            e,
            "lb_service_bytes",
            "Bytes of the service, by direction in or out (ipvsadm --stats InBytes, OutBytes)",
            &rows.service_bytes,
        )?;
        Ok(())
    }
}

fn gauges(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Labels, i64)],
) -> Result<(), std::fmt::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let help = if name.starts_with("lb_destination_") {
        format!("{help}{DESTINATION}.")
    } else {
        format!("{help}.")
    };
    let mut family = encoder.encode_descriptor(name, &help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn counters(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Labels, u64)],
) -> Result<(), std::fmt::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let help = format!("{help}.");
    let mut family = encoder.encode_descriptor(name, &help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}
