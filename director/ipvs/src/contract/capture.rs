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

/// The ops of [`setup`], each with its step name. The byte-level tests encode these same ops
/// and compare them with the bytes the kernel accepted.
pub fn setup_ops() -> Vec<(&'static str, IpvsOp)> {
    let persistent = Service {
        flags: ServiceFlags(ServiceFlags::PERSISTENT),
        timeout: 300,
        netmask: 0xffff_ff00,
        ..Service::new(ssh(), "rr")
    };
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
    let add_dest = |service, destination| IpvsOp::AddDestination {
        service,
        destination,
    };
    vec![
        ("new_service", IpvsOp::AddService(Service::new(ssh(), "rr"))),
        (
            "new_service_exists",
            IpvsOp::AddService(Service::new(ssh(), "rr")),
        ),
        ("set_service", IpvsOp::EditService(persistent)),
        (
            "set_service_back",
            IpvsOp::EditService(Service::new(ssh(), "rr")),
        ),
        (
            "new_service_ipv6",
            IpvsOp::AddService(Service::new(ipv6_service(), "wlc")),
        ),
        (
            "new_service_fwmark",
            IpvsOp::AddService(Service::new(fwmark(), "sh")),
        ),
        ("new_dest", add_dest(ssh(), realserver(11))),
        ("new_dest_2", add_dest(ssh(), realserver(12))),
        ("new_dest_ipv6_gue", add_dest(ipv6_service(), gue.clone())),
        (
            "set_dest",
            IpvsOp::EditDestination {
                service: ipv6_service(),
                destination: Destination { weight: 0, ..gue },
            },
        ),
        (
            "del_dest_missing",
            IpvsOp::DeleteDestination {
                service: ssh(),
                destination: realserver(13).key(),
            },
        ),
        (
            "set_config",
            IpvsOp::SetTimeouts(Timeouts {
                tcp: 259200,
                tcp_fin: 0,
                udp: 0,
            }),
        ),
    ]
}

/// The sync daemon that [`setup`] starts.
pub fn master_daemon() -> SyncDaemon {
    SyncDaemon {
        role: SyncRole::Master,
        interface: "eth0".into(),
        sync_id: 1,
    }
}

/// The seed's director table (VIP:22 to both realservers, direct routing) and one of every
/// other request kind.
pub async fn setup(ipvs: &NetlinkIpvs) -> Result<(), IpvsError> {
    ipvs.info()
        .instrument(info_span!("capture", step = "get_info"))
        .await?;
    for (name, op) in setup_ops() {
        step(ipvs, name, op).await?;
    }
    ipvs.start_daemon(&master_daemon())
        .instrument(info_span!("capture", step = "new_daemon"))
        .await
}

/// The ops of [`teardown`] after the daemon stops, each with its step name.
pub fn teardown_ops() -> Vec<(&'static str, IpvsOp)> {
    vec![
        (
            "del_dest",
            IpvsOp::DeleteDestination {
                service: ssh(),
                destination: realserver(12).key(),
            },
        ),
        ("del_service", IpvsOp::DeleteService(fwmark())),
    ]
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
    for (name, op) in teardown_ops() {
        step(ipvs, name, op).await?;
    }
    ipvs.flush()
        .instrument(info_span!("capture", step = "flush"))
        .await
}
