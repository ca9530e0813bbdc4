//! Contract cases for virtual services: `ipvsadm -A/-E/-D` and `-L -n`.

use std::net::IpAddr;

use super::helpers::*;
use super::Failure;
use crate::backend::{IpvsBackend, IpvsOp};
use crate::types::*;

/// Adds `service`, reads it back, deletes it, and sees the table empty again.
async fn round_trip<B: IpvsBackend>(ipvs: &B, service: Service) -> Result<(), Failure> {
    apply_ok(ipvs, &[IpvsOp::AddService(service.clone())]).await?;
    services_are(ipvs, "list after add", std::slice::from_ref(&service)).await?;
    apply_ok(ipvs, &[IpvsOp::DeleteService(service.key)]).await?;
    services_are(ipvs, "list after delete", &[]).await
}

/// `ipvsadm -A -t VIP:22 -s rr`, edited to `wrr` with persistence, then deleted.
pub async fn service_tcp<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let service = Service::new(tcp(22), "rr");
    apply_ok(ipvs, &[IpvsOp::AddService(service.clone())]).await?;
    services_are(ipvs, "list after add", std::slice::from_ref(&service)).await?;

    let edited = Service {
        scheduler: "wrr".into(),
        flags: ServiceFlags(ServiceFlags::PERSISTENT),
        timeout: 300,
        netmask: 0xffff_ff00,
        ..service.clone()
    };
    apply_ok(ipvs, &[IpvsOp::EditService(edited.clone())]).await?;
    services_are(ipvs, "list after edit", &[edited]).await?;

    apply_ok(ipvs, &[IpvsOp::DeleteService(service.key)]).await?;
    services_are(ipvs, "list after delete", &[]).await
}

/// `ipvsadm -A -u VIP:53 -s wlc -o` (one-packet scheduling); a TCP service on the same
/// address and port is a different service.
pub async fn service_udp<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let udp = ServiceKey::Addr {
        protocol: Protocol::Udp,
        addr: IpAddr::from(VIP),
        port: 53,
    };
    let mut service = Service::new(udp, "wlc");
    service.flags = ServiceFlags(ServiceFlags::ONEPACKET);
    let same_port_tcp = Service::new(tcp(53), "rr");
    apply_ok(
        ipvs,
        &[
            IpvsOp::AddService(service.clone()),
            IpvsOp::AddService(same_port_tcp.clone()),
        ],
    )
    .await?;
    services_are(ipvs, "list", &[same_port_tcp.clone(), service.clone()]).await?;
    apply_ok(ipvs, &[IpvsOp::DeleteService(same_port_tcp.key)]).await?;
    services_are(ipvs, "list after deleting TCP", &[service]).await
}

/// `ipvsadm -A --sctp-service VIP:3868 -s rr`.
pub async fn service_sctp<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let sctp = ServiceKey::Addr {
        protocol: Protocol::Sctp,
        addr: IpAddr::from(VIP),
        port: 3868,
    };
    round_trip(ipvs, Service::new(sctp, "rr")).await
}

/// `ipvsadm -A -f 7 -s rr` for IPv4 and `-f 8 -6` for IPv6, with a destination on each.
pub async fn service_fwmark<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let v4 = Service::new(
        ServiceKey::FwMark {
            family: Family::Inet,
            mark: 7,
        },
        "rr",
    );
    let v6 = Service::new(
        ServiceKey::FwMark {
            family: Family::Inet6,
            mark: 8,
        },
        "sh",
    );
    let d4 = dest(11, 0, ForwardMethod::Route, 1);
    let d6 = Destination::new(doc_v6(0x11), 0, ForwardMethod::Route, 1);
    apply_ok(
        ipvs,
        &[
            IpvsOp::AddService(v4.clone()),
            IpvsOp::AddService(v6.clone()),
            add_dest(v4.key, d4.clone()),
            add_dest(v6.key, d6.clone()),
        ],
    )
    .await?;
    services_are(ipvs, "list", &[v4.clone(), v6.clone()]).await?;
    destinations_are(ipvs, &v4.key, "destinations of FWM 7", &[d4]).await?;
    destinations_are(ipvs, &v6.key, "destinations of FWM 8", &[d6]).await?;
    apply_ok(
        ipvs,
        &[IpvsOp::DeleteService(v4.key), IpvsOp::DeleteService(v6.key)],
    )
    .await?;
    services_are(ipvs, "list after delete", &[]).await
}

/// `ipvsadm -A -t [2001:db8::100]:22 -s rr -p 600 -M 64`. An IPv4 destination of an IPv6
/// service works only as a tunnel; a prefix length outside 1..=128 is EINVAL.
pub async fn service_ipv6<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let key = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: doc_v6(0x100),
        port: 22,
    };
    let service = Service {
        flags: ServiceFlags(ServiceFlags::PERSISTENT),
        timeout: 600,
        netmask: 64,
        ..Service::new(key, "rr")
    };
    let v6_route = Destination::new(doc_v6(0x11), 22, ForwardMethod::Route, 1);
    let v4_tunnel = dest(12, 22, ForwardMethod::Tunnel, 1);
    apply_ok(
        ipvs,
        &[
            IpvsOp::AddService(service.clone()),
            add_dest(key, v6_route.clone()),
            add_dest(key, v4_tunnel.clone()),
        ],
    )
    .await?;
    services_are(ipvs, "list", std::slice::from_ref(&service)).await?;
    destinations_are(ipvs, &key, "destinations", &[v4_tunnel, v6_route]).await?;
    apply_refused(
        ipvs,
        add_dest(key, dest(13, 22, ForwardMethod::Route, 1)),
        libc::EINVAL,
    )
    .await?;
    let bad_prefix = Service {
        netmask: 0,
        ..service.clone()
    };
    apply_refused(ipvs, IpvsOp::EditService(bad_prefix), libc::EINVAL).await?;
    services_are(ipvs, "list after refused edit", &[service]).await
}

/// Scheduler names: "none" is a scheduler of its own (the service schedules nothing); a name
/// longer than the kernel's 15 bytes is EINVAL, before any module is looked for.
pub async fn service_scheduler_names<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let none = Service::new(tcp(22), "none");
    apply_ok(ipvs, &[IpvsOp::AddService(none.clone())]).await?;
    services_are(
        ipvs,
        "list with scheduler none",
        std::slice::from_ref(&none),
    )
    .await?;
    let long = Service::new(tcp(23), "sixteen-bytes-xx");
    apply_refused(ipvs, IpvsOp::AddService(long), libc::EINVAL).await?;
    services_are(ipvs, "list after a too long name", &[none]).await
}

/// Flags come back as set, without the kernel's internal HASHED bit, with persistence
/// timeout and netmask.
pub async fn service_flags_and_persistence<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let asked = Service {
        flags: ServiceFlags(ServiceFlags::PERSISTENT | ServiceFlags::HASHED | ServiceFlags::SCHED1),
        timeout: 3600,
        netmask: 0xffff_0000,
        ..Service::new(tcp(443), "sh")
    };
    apply_ok(ipvs, &[IpvsOp::AddService(asked.clone())]).await?;
    let expected = Service {
        flags: ServiceFlags(ServiceFlags::PERSISTENT | ServiceFlags::SCHED1),
        ..asked
    };
    services_are(ipvs, "list", &[expected]).await
}

/// A scheduler without a kernel module is ENOENT, on add and on edit.
pub async fn service_unknown_scheduler<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    apply_refused(
        ipvs,
        IpvsOp::AddService(Service::new(tcp(22), "nosuch")),
        libc::ENOENT,
    )
    .await?;
    services_are(ipvs, "list after refused add", &[]).await?;
    let service = Service::new(tcp(22), "rr");
    apply_ok(ipvs, &[IpvsOp::AddService(service.clone())]).await?;
    apply_refused(
        ipvs,
        IpvsOp::EditService(Service::new(tcp(22), "nosuch")),
        libc::ENOENT,
    )
    .await?;
    services_are(ipvs, "list after refused edit", &[service]).await
}

/// Adding a service that exists is EEXIST and leaves it as it was, whatever the new scheduler
/// (the kernel looks for the service before it looks for the scheduler).
pub async fn service_duplicate_add<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let service = Service::new(tcp(22), "rr");
    apply_ok(ipvs, &[IpvsOp::AddService(service.clone())]).await?;
    apply_refused(
        ipvs,
        IpvsOp::AddService(Service::new(tcp(22), "wrr")),
        libc::EEXIST,
    )
    .await?;
    apply_refused(
        ipvs,
        IpvsOp::AddService(Service::new(tcp(22), "nosuch")),
        libc::EEXIST,
    )
    .await?;
    services_are(ipvs, "list", &[service]).await
}

/// Editing or deleting a service that does not exist is ESRCH.
pub async fn service_missing<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    apply_refused(
        ipvs,
        IpvsOp::EditService(Service::new(tcp(22), "rr")),
        libc::ESRCH,
    )
    .await?;
    apply_refused(ipvs, IpvsOp::DeleteService(tcp(22)), libc::ESRCH).await?;
    let fwmark = ServiceKey::FwMark {
        family: Family::Inet,
        mark: 9,
    };
    apply_refused(ipvs, IpvsOp::DeleteService(fwmark), libc::ESRCH).await
}
