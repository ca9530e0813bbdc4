//! `lbctl status`: the owned part of the kernel table joined with leases and overrides.

use std::collections::BTreeMap;
use std::net::IpAddr;

use lb_ipvs::IpvsBackend;
use lb_proto as pb;

use crate::control::{ControlError, Director};
use crate::grpc::proto_protocol;
use crate::registry::LeaseState;

fn proto_lease(state: LeaseState) -> pb::LeaseState {
    match state {
        LeaseState::Pending => pb::LeaseState::Pending,
        LeaseState::Alive => pb::LeaseState::Alive,
        LeaseState::Adopted => pb::LeaseState::Adopted,
        LeaseState::Expired => pb::LeaseState::Expired,
        LeaseState::Deregistered => pb::LeaseState::Deregistered,
    }
}

pub async fn status<I: IpvsBackend>(
    director: &Director<I>,
) -> Result<pb::StatusResponse, ControlError> {
    let observed = director.observe().await?;
    let (realservers, state) = director.snapshot();
    let mut services = Vec::new();
    for service in &director.config().services {
        let key = service.key();
        let have = observed.services.get(&key);
        // Every realserver of this service: registered ones, and whatever else the kernel holds.
        let mut rows: BTreeMap<IpAddr, pb::RealServerStatus> = BTreeMap::new();
        for rs in &realservers {
            let Some(&registered) = rs.weights.get(&service.name) else {
                continue;
            };
            rows.insert(
                rs.address,
                pb::RealServerStatus {
                    name: rs.name.clone(),
                    address: rs.address.to_string(),
                    forward: lb_ipvs::ForwardMethod::from(service.forward)
                        .ipvsadm_word()
                        .to_owned(),
                    lease: proto_lease(rs.state).into(),
                    drained: state.drained.contains(&rs.name),
                    weight_override: state.weights.get(&rs.name).copied(),
                    registered_weight: registered,
                    ..Default::default()
                },
            );
        }
        for entry in have.into_iter().flat_map(|s| s.destinations.values()) {
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
            row.forward = d.forward.ipvsadm_word().to_owned();
            row.weight = Some(d.weight);
            row.active_conn = entry.active_conns;
            row.inact_conn = entry.inactive_conns;
        }
        services.push(pb::ServiceStatus {
            name: service.name.clone(),
            vip: service.vip.to_string(),
            port: u32::from(service.port),
            protocol: proto_protocol(service.protocol).into(),
            scheduler: have
                .map(|s| s.service.scheduler.clone())
                .unwrap_or_else(|| service.scheduler.clone()),
            forward: lb_ipvs::ForwardMethod::from(service.forward)
                .ipvsadm_word()
                .to_owned(),
            in_kernel: have.is_some(),
            realservers: rows.into_values().collect(),
        });
    }
    Ok(pb::StatusResponse { services })
}
