//! The read side: `lbctl status` and drain progress, from the snapshot the last reconcile pass
//! published, joined with leases and overrides. No kernel read happens here.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use lb_proto as pb;

use crate::config::{DirectorConfig, ServiceConfig};
use crate::director::Director;
use crate::grpc::proto_protocol;
use crate::health::{HealthMap, HealthStatus, TargetKey};
use crate::reconciler::unix_now;
use crate::registry::{AgentVerdict, LeaseState, RealServer};
use crate::state::State;
use crate::table::ObservedService;

fn proto_lease(state: LeaseState) -> pb::LeaseState {
    match state {
        LeaseState::Pending => pb::LeaseState::Pending,
        LeaseState::Alive => pb::LeaseState::Alive,
        LeaseState::Adopted => pb::LeaseState::Adopted,
        LeaseState::Expired => pb::LeaseState::Expired,
        LeaseState::Deregistered => pb::LeaseState::Deregistered,
    }
}

pub fn status(director: &Director) -> pb::StatusResponse {
    let snapshot = director.snapshot();
    let config = director.config();
    let leases = director.lease_view();
    let state = director.state();
    let mut services: Vec<pb::ServiceStatus> = config
        .services
        .iter()
        .map(|service| {
            let have = snapshot.observed.services.get(&service.key());
            let mut status = service_status(service, have, &leases.realservers, &state);
            if service.check.kind != lb_shared::probe::CheckKind::None {
                for row in &mut status.realservers {
                    fill_health(row, service, &snapshot.health, &leases.realservers);
                }
            }
            status
        })
        .collect();
    for retiring in &state.retiring {
        let Some(key) = retiring.service.key() else {
            continue;
        };
        let Some(have) = snapshot.observed.services.get(&key) else {
            continue;
        };
        let o = &retiring.service;
        let mut status = pb::ServiceStatus {
            name: o.name.clone(),
            vip: o.vip.to_string(),
            port: u32::from(o.port),
            protocol: o.protocol().map_or(0, |p| proto_protocol(p).into()),
            fwmark: o.fwmark.unwrap_or(0),
            vips: o.vips().iter().map(|v| v.vip.to_string()).collect(),
            scheduler: have.service.scheduler.clone(),
            in_kernel: true,
            retiring: Some(pb::Retiring {
                since_unix: retiring.since,
                deadline_unix: retiring
                    .since
                    .saturating_add(config.retire_timeout.as_secs()),
            }),
            ..Default::default()
        };
        status.realservers = kernel_rows(have, &state, BTreeMap::new());
        status.forward = status
            .realservers
            .first()
            .map(|r| r.forward.clone())
            .unwrap_or_default();
        services.push(status);
    }
    let now = tokio::time::Instant::now();
    let refused = leases
        .refused
        .iter()
        .map(|r| pb::RefusedAgent {
            name: r.name.clone(),
            address: r.address.to_string(),
            attempts: r.attempts,
            seconds_ago: now.duration_since(r.last).as_secs(),
            holder: leases
                .realservers
                .iter()
                .find(|rs| rs.name == r.name && rs.state.is_live())
                .map(|rs| rs.address.to_string())
                .unwrap_or_default(),
        })
        .collect();
    pb::StatusResponse {
        services,
        refused,
        role: director.role().get().to_proto() as i32,
        director: config.name.clone(),
    }
}

/// Why a destination counts as down: the director's probe first, then the agent's own check.
pub(crate) enum Down<'a> {
    Probe(&'a HealthStatus),
    Agent(&'a AgentVerdict),
}

/// The destination at `addr` of a checked `service`: None while it counts as up (no verdict
/// yet counts as up, as the desired table does).
pub(crate) fn down<'a>(
    service: &ServiceConfig,
    addr: IpAddr,
    health: &'a HealthMap,
    realservers: &'a [RealServer],
) -> Option<Down<'a>> {
    let key = TargetKey {
        service: service.name.clone(),
        addr: SocketAddr::new(addr, service.probe_port_of(addr)),
    };
    if let Some(probe) = health.get(&key).filter(|h| !h.up) {
        return Some(Down::Probe(probe));
    }
    realservers
        .iter()
        .find(|rs| rs.address == addr)
        .and_then(|rs| rs.agent_health.get(&service.name))
        .filter(|v| !v.up)
        .map(Down::Agent)
}

/// The Health column: `up`, or `down` with the reason and since when; the director's probe
/// first, then the agent's own check (its reason prefixed `agent:`).
fn fill_health(
    row: &mut pb::RealServerStatus,
    service: &ServiceConfig,
    health: &HealthMap,
    realservers: &[RealServer],
) {
    let Ok(addr) = row.address.parse::<IpAddr>() else {
        return;
    };
    row.health = "up".to_owned();
    match down(service, addr, health, realservers) {
        None => {}
        Some(Down::Probe(h)) => {
            row.health = "down".to_owned();
            row.health_reason = h.short_reason().unwrap_or("down").to_owned();
            row.health_seconds = h.since.elapsed().as_secs();
        }
        Some(Down::Agent(v)) => {
            row.health = "down".to_owned();
            row.health_reason = format!("agent: {}", v.reason);
        }
    }
}

fn service_status(
    service: &ServiceConfig,
    have: Option<&ObservedService>,
    realservers: &[RealServer],
    state: &State,
) -> pb::ServiceStatus {
    let forward = lb_ipvs::ForwardMethod::from(service.forward)
        .ipvsadm_word()
        .to_owned();
    // Every realserver of this service: registered ones, and whatever else the kernel holds.
    let mut rows: BTreeMap<IpAddr, pb::RealServerStatus> = BTreeMap::new();
    let row = |name: &str, addr: IpAddr, port: u16, lease: pb::LeaseState, weight: u32| {
        pb::RealServerStatus {
            name: name.to_owned(),
            address: addr.to_string(),
            forward: forward.clone(),
            port: u32::from(port),
            lease: lease.into(),
            drained: state.drained.contains(name),
            weight_override: state.weights.get(name).copied(),
            registered_weight: weight,
            ..Default::default()
        }
    };
    for rs in realservers {
        if let Some(&registered) = rs.weights.get(&service.name) {
            let lease = proto_lease(rs.state);
            let r = row(&rs.name, rs.address, service.port(), lease, registered);
            rows.insert(rs.address, r);
        }
    }
    for rs in &service.realservers {
        let r = row(
            &rs.name,
            rs.address,
            rs.port,
            pb::LeaseState::Static,
            rs.weight,
        );
        rows.insert(rs.address, r);
    }
    let realservers = match have {
        Some(have) => kernel_rows(have, state, rows),
        None => rows.into_values().collect(),
    };
    pb::ServiceStatus {
        name: service.name.clone(),
        vip: service
            .vips()
            .first()
            .map(ToString::to_string)
            .unwrap_or_default(),
        port: u32::from(service.port()),
        protocol: service.protocol().map_or(0, |p| proto_protocol(p).into()),
        fwmark: service.fwmark().unwrap_or(0),
        vips: service.vips().iter().map(ToString::to_string).collect(),
        scheduler: have
            .map(|s| s.service.scheduler.clone())
            .unwrap_or_else(|| service.scheduler.clone()),
        forward,
        in_kernel: have.is_some(),
        realservers,
        retiring: None,
    }
}

/// `rows` completed with what the kernel holds: weights, connection counts, and rows for
/// destinations no lease explains (named from the state file when known).
fn kernel_rows(
    have: &ObservedService,
    state: &State,
    mut rows: BTreeMap<IpAddr, pb::RealServerStatus>,
) -> Vec<pb::RealServerStatus> {
    for entry in have.destinations.values() {
        let d = &entry.destination;
        let row = rows.entry(d.addr).or_insert_with(|| pb::RealServerStatus {
            name: state
                .realservers
                .get(&d.addr)
                .cloned()
                .unwrap_or_else(|| d.addr.to_string()),
            address: d.addr.to_string(),
            ..Default::default()
        });
        row.port = u32::from(d.port);
        row.forward = d.forward.ipvsadm_word().to_owned();
        row.weight = Some(d.weight);
        row.active_conn = entry.active_conns;
        row.inact_conn = entry.inactive_conns;
    }
    rows.into_values().collect()
}

/// Who is at each realserver address, for labels and probe targets: a lease's name, else a
/// configured realserver's (the first service that lists it names it), else the name
/// remembered from an earlier registration. Built once, so that a lookup per destination
/// stays linear in a large table.
pub fn realserver_names<'a>(
    config: &'a DirectorConfig,
    leases: impl IntoIterator<Item = &'a RealServer>,
    state: &'a State,
) -> BTreeMap<IpAddr, &'a str> {
    let mut names: BTreeMap<IpAddr, &str> = state
        .realservers
        .iter()
        .map(|(addr, name)| (*addr, name.as_str()))
        .collect();
    let mut configured = BTreeMap::new();
    for (_, rs) in config.static_realservers() {
        configured.entry(rs.address).or_insert(rs.name.as_str());
    }
    names.extend(configured);
    names.extend(leases.into_iter().map(|rs| (rs.address, rs.name.as_str())));
    names
}

/// ActiveConn and InActConn of a realserver summed over the director's services, as the last
/// pass saw them.
pub fn connections_of(director: &Director, name: &str) -> pb::DrainProgress {
    let addresses = director.addresses_of(name);
    let snapshot = director.snapshot();
    let mut progress = pb::DrainProgress::default();
    for service in snapshot.observed.services.values() {
        for entry in service.destinations.values() {
            if addresses.contains(&entry.destination.addr) {
                progress.active_conn += entry.active_conns;
                progress.inact_conn += entry.inactive_conns;
            }
        }
    }
    progress
}

/// Seconds left before a retiring service goes even with sessions left.
pub fn retire_seconds_left(retiring: &pb::Retiring) -> u64 {
    retiring.deadline_unix.saturating_sub(unix_now())
}
