//! Real kernel bytes for the byte-level tests. With `LB_IPVS_HEXDUMP=1` and
//! `LB_LOG=lb_ipvs=debug`, the netlink client logs every message it sends and receives in hex;
//! these steps make one of each request kind in the lab VM, each inside a `capture{step=..}`
//! span so the log says which is which. Between `setup` and `list` the lab scenario sends real
//! traffic through the service, so the dumped counters are not all zero.

use std::net::{IpAddr, Ipv6Addr};

use tracing::{info_span, Instrument};

use crate::backend::{IpvsBackend, IpvsOp};
use crate::error::IpvsError;
use crate::netlink::NetlinkIpvs;
use crate::types::*;

/// The lab's VIP:22, the seed's service.
fn ssh() -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: IpAddr::from([10, 0, 0, 100]),
        port: 22,
    }
}

fn ipv6_service() -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Udp,
        addr: IpAddr::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100)),
        port: 53,
    }
}

fn fwmark() -> ServiceKey {
    ServiceKey::FwMark {
        family: Family::Inet6,
        mark: 7,
    }
}

fn realserver(last_octet: u8) -> Destination {
    Destination::new(
        IpAddr::from([10, 0, 0, last_octet]),
        22,
        ForwardMethod::Route,
        1,
    )
}

/// Applies one op in its own span, reporting a refusal as a result rather than an error (the
/// refusals are wanted: they capture the kernel's error acks).
async fn step(ipvs: &NetlinkIpvs, name: &'static str, op: IpvsOp) -> Result<(), IpvsError> {
    let results = ipvs
        .apply(std::slice::from_ref(&op))
        .instrument(info_span!("capture", step = name))
        .await?;
    for result in results {
        if let Err(e) = result {
            tracing::info!(step = name, "refused as expected or not: {e}");
        }
    }
    Ok(())
}

/// The seed's director table (VIP:22 to both realservers, direct routing) and one of every
/// other request kind.
pub async fn setup(ipvs: &NetlinkIpvs) -> Result<(), IpvsError> {
    ipvs.info()
        .instrument(info_span!("capture", step = "get_info"))
        .await?;
    let persistent = Service {
        flags: ServiceFlags(ServiceFlags::PERSISTENT),
        timeout: 300,
        netmask: 0xffff_ff00,
        ..Service::new(ssh(), "rr")
    };
    step(
        ipvs,
        "new_service",
        IpvsOp::AddService(Service::new(ssh(), "rr")),
    )
    .await?;
    step(
        ipvs,
        "new_service_exists",
        IpvsOp::AddService(Service::new(ssh(), "rr")),
    )
    .await?;
    step(ipvs, "set_service", IpvsOp::EditService(persistent)).await?;
    step(
        ipvs,
        "set_service_back",
        IpvsOp::EditService(Service::new(ssh(), "rr")),
    )
    .await?;
    step(
        ipvs,
        "new_service_ipv6",
        IpvsOp::AddService(Service::new(ipv6_service(), "wlc")),
    )
    .await?;
    step(
        ipvs,
        "new_service_fwmark",
        IpvsOp::AddService(Service::new(fwmark(), "sh")),
    )
    .await?;
    for (name, last_octet) in [("new_dest", 11), ("new_dest_2", 12)] {
        let op = IpvsOp::AddDestination {
            service: ssh(),
            destination: realserver(last_octet),
        };
        step(ipvs, name, op).await?;
    }
    let gue = Destination {
        tunnel: Tunnel {
            kind: 1,
            port: 6080,
            flags: 1,
        },
        upper_threshold: 100,
        lower_threshold: 10,
        ..Destination::new(
            IpAddr::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11)),
            53,
            ForwardMethod::Tunnel,
            3,
        )
    };
    let op = IpvsOp::AddDestination {
        service: ipv6_service(),
        destination: gue.clone(),
    };
    step(ipvs, "new_dest_ipv6_gue", op).await?;
    let op = IpvsOp::EditDestination {
        service: ipv6_service(),
        destination: Destination { weight: 0, ..gue },
    };
    step(ipvs, "set_dest", op).await?;
    let op = IpvsOp::DeleteDestination {
        service: ssh(),
        destination: realserver(13).key(),
    };
    step(ipvs, "del_dest_missing", op).await?;
    let timeouts = Timeouts {
        tcp: 259200,
        tcp_fin: 0,
        udp: 0,
    };
    step(ipvs, "set_config", IpvsOp::SetTimeouts(timeouts)).await?;
    let master = SyncDaemon {
        role: SyncRole::Master,
        interface: "eth0".into(),
        sync_id: 1,
    };
    ipvs.start_daemon(&master)
        .instrument(info_span!("capture", step = "new_daemon"))
        .await
}

/// Every read: the dumps and the plain GETs.
pub async fn list(ipvs: &NetlinkIpvs) -> Result<(), IpvsError> {
    ipvs.services()
        .instrument(info_span!("capture", step = "get_service_dump"))
        .await?;
    ipvs.destinations(&ssh())
        .instrument(info_span!("capture", step = "get_dest_dump"))
        .await?;
    ipvs.destinations(&ipv6_service())
        .instrument(info_span!("capture", step = "get_dest_dump_ipv6"))
        .await?;
    ipvs.timeouts()
        .instrument(info_span!("capture", step = "get_config"))
        .await?;
    ipvs.daemons()
        .instrument(info_span!("capture", step = "get_daemon_dump"))
        .await?;
    Ok(())
}

/// Stops the daemon, deletes what setup made, and flushes.
pub async fn teardown(ipvs: &NetlinkIpvs) -> Result<(), IpvsError> {
    ipvs.stop_daemon(SyncRole::Master)
        .instrument(info_span!("capture", step = "del_daemon"))
        .await?;
    let op = IpvsOp::DeleteDestination {
        service: ssh(),
        destination: realserver(12).key(),
    };
    step(ipvs, "del_dest", op).await?;
    step(ipvs, "del_service", IpvsOp::DeleteService(fwmark())).await?;
    ipvs.flush()
        .instrument(info_span!("capture", step = "flush"))
        .await
}
