//! Steps the cases share: applying ops that must work, expecting the kernel's errno, and
//! reading the table back in a stable order.

use std::fmt::Debug;
use std::net::{IpAddr, Ipv6Addr};

use super::Failure;
use crate::backend::{IpvsBackend, IpvsOp};
use crate::error::IpvsError;
use crate::types::*;

/// The lab's VIP.
pub(super) const VIP: [u8; 4] = [10, 0, 0, 100];

/// An address written in the cases themselves.
pub(super) fn ip(text: &str) -> IpAddr {
    match text.parse() {
        Ok(addr) => addr,
        Err(_) => panic!("contract case address {text:?} does not parse"),
    }
}

/// An IPv6 address of the documentation prefix 2001:db8::/32 (the kernel takes any global
/// unicast IPv6 destination, routed or not).
pub(super) fn doc_v6(last: u16) -> IpAddr {
    IpAddr::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
}

/// `TCP VIP:port` on the lab's VIP.
pub(super) fn tcp(port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: IpAddr::from(VIP),
        port,
    }
}

/// A destination on the lab's subnet (the kernel refuses addresses it has no route for).
pub(super) fn dest(last_octet: u8, port: u16, forward: ForwardMethod, weight: u32) -> Destination {
    Destination::new(IpAddr::from([10, 0, 0, last_octet]), port, forward, weight)
}

pub(super) fn add_dest(service: ServiceKey, destination: Destination) -> IpvsOp {
    IpvsOp::AddDestination {
        service,
        destination,
    }
}

pub(super) fn edit_dest(service: ServiceKey, destination: Destination) -> IpvsOp {
    IpvsOp::EditDestination {
        service,
        destination,
    }
}

pub(super) fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EEXIST => "EEXIST",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINVAL => "EINVAL",
        libc::ERANGE => "ERANGE",
        libc::ENODEV => "ENODEV",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        _ => "errno",
    };
    format!("{name} ({errno})")
}

pub(super) fn backend(step: impl Into<String>) -> impl FnOnce(IpvsError) -> Failure {
    let step = step.into();
    move |source| Failure::Backend { step, source }
}

pub(super) fn same<T: Debug + PartialEq>(
    step: &str,
    expected: &T,
    actual: &T,
) -> Result<(), Failure> {
    if expected == actual {
        Ok(())
    } else {
        Err(Failure::Mismatch {
            step: step.to_owned(),
            expected: format!("{expected:?}"),
            actual: format!("{actual:?}"),
        })
    }
}

/// Applies `ops`; every one must succeed.
pub(super) async fn apply_ok<B: IpvsBackend>(ipvs: &B, ops: &[IpvsOp]) -> Result<(), Failure> {
    let results = ipvs.apply(ops).await.map_err(backend("apply"))?;
    same("one result per op", &ops.len(), &results.len())?;
    for (op, result) in ops.iter().zip(results) {
        result.map_err(backend(format!("{op}")))?;
    }
    Ok(())
}

/// Checks that `result` is the kernel refusing with `errno`.
pub(super) fn refused(
    step: &str,
    errno: i32,
    result: Result<(), IpvsError>,
) -> Result<(), Failure> {
    let actual = match result {
        Ok(()) => "success".to_owned(),
        Err(IpvsError::Kernel { errno: got, .. }) if got == errno => return Ok(()),
        Err(IpvsError::Kernel { errno: got, .. }) => errno_name(got),
        Err(other) => other.to_string(),
    };
    Err(Failure::Mismatch {
        step: step.to_owned(),
        expected: errno_name(errno),
        actual,
    })
}

/// Applies one op that the kernel must refuse with `errno`.
pub(super) async fn apply_refused<B: IpvsBackend>(
    ipvs: &B,
    op: IpvsOp,
    errno: i32,
) -> Result<(), Failure> {
    let step = op.to_string();
    let mut results = ipvs
        .apply(std::slice::from_ref(&op))
        .await
        .map_err(backend("apply"))?;
    let result = results.pop().ok_or_else(|| Failure::Mismatch {
        step: step.clone(),
        expected: "one result".into(),
        actual: "none".into(),
    })?;
    refused(&step, errno, result)
}

/// The services, sorted by key, without counters (they move with traffic).
pub(super) async fn services<B: IpvsBackend>(ipvs: &B) -> Result<Vec<Service>, Failure> {
    let mut services: Vec<Service> = ipvs
        .services()
        .await
        .map_err(backend("list services"))?
        .into_iter()
        .map(|entry| entry.service)
        .collect();
    services.sort_by_key(|s| s.key);
    Ok(services)
}

/// The destinations of `service`, sorted by address and port.
pub(super) async fn destinations<B: IpvsBackend>(
    ipvs: &B,
    service: &ServiceKey,
) -> Result<Vec<DestinationEntry>, Failure> {
    let mut entries = ipvs
        .destinations(service)
        .await
        .map_err(backend(format!("list destinations of {service}")))?;
    entries.sort_by_key(|e| e.destination.key());
    Ok(entries)
}

/// The destinations of `service` as they were added, sorted by address and port.
pub(super) async fn destination_settings<B: IpvsBackend>(
    ipvs: &B,
    service: &ServiceKey,
) -> Result<Vec<Destination>, Failure> {
    Ok(destinations(ipvs, service)
        .await?
        .into_iter()
        .map(|e| e.destination)
        .collect())
}

/// What a freshly added destination lists as: no connections, no traffic.
pub(super) fn idle(destination: Destination) -> DestinationEntry {
    DestinationEntry {
        destination,
        active_conns: 0,
        inactive_conns: 0,
        persistent_conns: 0,
        stats: Stats::default(),
    }
}

/// Checks that the table holds exactly `expected` services (in key order).
pub(super) async fn services_are<B: IpvsBackend>(
    ipvs: &B,
    step: &str,
    expected: &[Service],
) -> Result<(), Failure> {
    same(step, &expected.to_vec(), &services(ipvs).await?)
}

/// Checks that `service` has exactly `expected` destinations (in address and port order).
pub(super) async fn destinations_are<B: IpvsBackend>(
    ipvs: &B,
    service: &ServiceKey,
    step: &str,
    expected: &[Destination],
) -> Result<(), Failure> {
    same(
        step,
        &expected.to_vec(),
        &destination_settings(ipvs, service).await?,
    )
}
