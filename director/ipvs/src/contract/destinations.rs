//! Contract cases for destinations: `ipvsadm -a/-e/-d` and their listing.

use super::helpers::*;
use super::Failure;
use crate::backend::{IpvsBackend, IpvsOp};
use crate::types::*;

/// The seed's service, `ipvsadm -A -t VIP:22 -s rr`, added before each destination case.
async fn ssh_service<B: IpvsBackend>(ipvs: &B) -> Result<ServiceKey, Failure> {
    apply_ok(ipvs, &[IpvsOp::AddService(Service::new(tcp(22), "rr"))]).await?;
    Ok(tcp(22))
}

/// Route (`-g`), masquerading (`-m`) and tunnels (`-i`, IPIP and GUE) are listed back as
/// added; an edit changes forward and weight; a delete removes only its destination.
pub async fn destination_forwards<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let service = ssh_service(ipvs).await?;
    let route = dest(11, 22, ForwardMethod::Route, 1);
    let masq = dest(12, 2222, ForwardMethod::Masq, 2);
    let ipip = dest(13, 22, ForwardMethod::Tunnel, 3);
    let gue = Destination {
        tunnel: Tunnel {
            kind: 1,
            port: 6080,
            flags: 1,
        },
        ..dest(14, 22, ForwardMethod::Tunnel, 4)
    };
    let all = [route.clone(), masq.clone(), ipip.clone(), gue.clone()];
    let adds: Vec<IpvsOp> = all.iter().map(|d| add_dest(service, d.clone())).collect();
    apply_ok(ipvs, &adds).await?;
    same(
        "list after add",
        &all.iter().cloned().map(idle).collect::<Vec<_>>(),
        &destinations(ipvs, &service).await?,
    )?;

    let route_now_masq = Destination {
        forward: ForwardMethod::Masq,
        weight: 5,
        ..route
    };
    apply_ok(ipvs, &[edit_dest(service, route_now_masq.clone())]).await?;
    apply_ok(
        ipvs,
        &[IpvsOp::DeleteDestination {
            service,
            destination: ipip.key(),
        }],
    )
    .await?;
    destinations_are(
        ipvs,
        &service,
        "list after edit and delete",
        &[route_now_masq, masq, gue],
    )
    .await
}

/// Adding a destination that exists is EEXIST and leaves it as it was.
pub async fn destination_duplicate<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let service = ssh_service(ipvs).await?;
    let first = dest(11, 22, ForwardMethod::Route, 1);
    apply_ok(ipvs, &[add_dest(service, first.clone())]).await?;
    apply_refused(
        ipvs,
        add_dest(service, dest(11, 22, ForwardMethod::Masq, 7)),
        libc::EEXIST,
    )
    .await?;
    destinations_are(ipvs, &service, "list", &[first]).await
}

/// Editing or deleting a destination the service does not have is ENOENT.
pub async fn destination_missing<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let service = ssh_service(ipvs).await?;
    let other_port = dest(11, 22, ForwardMethod::Route, 1);
    apply_ok(ipvs, &[add_dest(service, other_port.clone())]).await?;
    apply_refused(
        ipvs,
        edit_dest(service, dest(11, 2222, ForwardMethod::Route, 1)),
        libc::ENOENT,
    )
    .await?;
    let missing = IpvsOp::DeleteDestination {
        service,
        destination: dest(12, 22, ForwardMethod::Route, 1).key(),
    };
    apply_refused(ipvs, missing, libc::ENOENT).await?;
    destinations_are(ipvs, &service, "list", &[other_port]).await
}

/// Any destination command on a service that does not exist is ESRCH; listing its
/// destinations gives an empty list, as the kernel's dump does.
pub async fn destination_on_missing_service<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let missing = tcp(8080);
    let d = dest(11, 8080, ForwardMethod::Route, 1);
    apply_refused(ipvs, add_dest(missing, d.clone()), libc::ESRCH).await?;
    apply_refused(ipvs, edit_dest(missing, d.clone()), libc::ESRCH).await?;
    let delete = IpvsOp::DeleteDestination {
        service: missing,
        destination: d.key(),
    };
    apply_refused(ipvs, delete, libc::ESRCH).await?;
    same(
        "destinations of a missing service",
        &Vec::<DestinationEntry>::new(),
        &destinations(ipvs, &missing).await?,
    )
}

/// `ipvsadm -e ... -w 0` quiesces a destination; the listing carries every field: forward,
/// weight, thresholds, tunnel settings, connection counts and counters.
pub async fn destination_quiesced_lists_every_field<B: IpvsBackend>(
    ipvs: &B,
) -> Result<(), Failure> {
    let service = ssh_service(ipvs).await?;
    let serving = Destination {
        upper_threshold: 200,
        lower_threshold: 50,
        ..dest(11, 22, ForwardMethod::Route, 3)
    };
    apply_ok(ipvs, &[add_dest(service, serving.clone())]).await?;
    let quiesced = Destination {
        weight: 0,
        ..serving
    };
    apply_ok(ipvs, &[edit_dest(service, quiesced.clone())]).await?;
    same(
        "list after quiesce",
        &vec![idle(quiesced)],
        &destinations(ipvs, &service).await?,
    )
}

/// Upper and lower connection thresholds (`-x`, `-y`) come back as set; a lower threshold
/// above the upper one is ERANGE, also when the upper one is 0 ("no limit").
pub async fn destination_thresholds<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let service = ssh_service(ipvs).await?;
    let limited = Destination {
        upper_threshold: 100,
        lower_threshold: 10,
        ..dest(11, 22, ForwardMethod::Route, 1)
    };
    apply_ok(ipvs, &[add_dest(service, limited.clone())]).await?;
    let inverted = Destination {
        upper_threshold: 10,
        lower_threshold: 20,
        ..limited.clone()
    };
    apply_refused(ipvs, edit_dest(service, inverted), libc::ERANGE).await?;
    let lower_only = Destination {
        upper_threshold: 0,
        lower_threshold: 5,
        ..dest(12, 22, ForwardMethod::Route, 1)
    };
    apply_refused(ipvs, add_dest(service, lower_only), libc::ERANGE).await?;
    destinations_are(ipvs, &service, "list", &[limited]).await
}

/// The kernel's weight is a signed int: above `i32::MAX` it is negative, ERANGE.
pub async fn destination_weight_range<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let service = ssh_service(ipvs).await?;
    let heaviest = dest(11, 22, ForwardMethod::Route, i32::MAX as u32);
    apply_ok(ipvs, &[add_dest(service, heaviest.clone())]).await?;
    let negative = dest(12, 22, ForwardMethod::Route, 1 << 31);
    apply_refused(ipvs, add_dest(service, negative), libc::ERANGE).await?;
    destinations_are(ipvs, &service, "list", &[heaviest]).await
}

/// A GUE tunnel needs a port (`--tun-port`): without one it is EINVAL.
pub async fn destination_gue_needs_port<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let service = ssh_service(ipvs).await?;
    let gue_without_port = Destination {
        tunnel: Tunnel {
            kind: 1,
            port: 0,
            flags: 0,
        },
        ..dest(11, 22, ForwardMethod::Tunnel, 1)
    };
    apply_refused(ipvs, add_dest(service, gue_without_port), libc::EINVAL).await?;
    destinations_are(ipvs, &service, "list", &[]).await
}

/// A new destination must be an address a packet can go to: not 0.0.0.0, broadcast or
/// multicast, and for IPv6 not link-local or multicast. EINVAL otherwise.
pub async fn destination_address_must_be_unicast<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let service = ssh_service(ipvs).await?;
    for addr in ["0.0.0.0", "255.255.255.255", "224.0.0.5"] {
        let bad = Destination::new(ip(addr), 22, ForwardMethod::Route, 1);
        apply_refused(ipvs, add_dest(service, bad), libc::EINVAL).await?;
    }
    let v6 = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: doc_v6(0x100),
        port: 22,
    };
    apply_ok(ipvs, &[IpvsOp::AddService(Service::new(v6, "rr"))]).await?;
    for addr in ["fe80::11", "ff02::1"] {
        let bad = Destination::new(ip(addr), 22, ForwardMethod::Route, 1);
        apply_refused(ipvs, add_dest(v6, bad), libc::EINVAL).await?;
    }
    destinations_are(ipvs, &service, "IPv4 list", &[]).await?;
    destinations_are(ipvs, &v6, "IPv6 list", &[]).await
}

/// `destinations_of` many services at once gives, service by service and in the order asked,
/// what `destinations` gives for each: services with none, one or many destinations, and a
/// missing service (an empty list) in the middle.
pub async fn destinations_of_many_services<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    let mut ops = Vec::new();
    let mut asked = Vec::new();
    for i in 0..40u16 {
        let service = tcp(1000 + i);
        ops.push(IpvsOp::AddService(Service::new(service, "wlc")));
        for d in 0..(i % 7) as u8 {
            ops.push(add_dest(
                service,
                dest(11 + d, 22, ForwardMethod::Route, u32::from(i) + 1),
            ));
        }
        asked.push(service);
        if i == 20 {
            asked.push(tcp(999));
        }
    }
    apply_ok(ipvs, &ops).await?;
    let all = ipvs
        .destinations_of(&asked)
        .await
        .map_err(backend("list the destinations of 41 services"))?;
    same("one list per service asked", &asked.len(), &all.len())?;
    for (service, mut listed) in asked.iter().zip(all) {
        listed.sort_by_key(|e| e.destination.key());
        same(
            &format!("destinations_of for {service}"),
            &destinations(ipvs, service).await?,
            &listed,
        )?;
    }
    Ok(())
}

/// A dump lists a service's destinations in the kernel's list order, newest first
/// (`ip_vs_add_dest` adds at the head), and a destination deleted and added again is the
/// newest. The hashing schedulers (sh, mh, dh) fill their tables in this order, so two
/// directors pick the same realserver for a flow only when their lists agree.
pub async fn destinations_listed_newest_first<B: IpvsBackend>(ipvs: &B) -> Result<(), Failure> {
    apply_ok(ipvs, &[IpvsOp::AddService(Service::new(tcp(22), "mh"))]).await?;
    let service = tcp(22);
    let [a, b, c] = [11, 12, 13].map(|last| dest(last, 22, ForwardMethod::Route, 1));
    let adds: Vec<IpvsOp> = [&a, &b, &c]
        .into_iter()
        .map(|d| add_dest(service, d.clone()))
        .collect();
    apply_ok(ipvs, &adds).await?;
    let listed = |entries: Vec<DestinationEntry>| -> Vec<Destination> {
        entries.into_iter().map(|e| e.destination).collect()
    };
    let dump = ipvs
        .destinations(&service)
        .await
        .map_err(backend("list destinations of the mh service"))?;
    same(
        "list order after adding a, b, c",
        &vec![c.clone(), b.clone(), a.clone()],
        &listed(dump),
    )?;
    apply_ok(
        ipvs,
        &[
            IpvsOp::DeleteDestination {
                service,
                destination: a.key(),
            },
            add_dest(service, a.clone()),
        ],
    )
    .await?;
    let dump = ipvs
        .destinations(&service)
        .await
        .map_err(backend("list destinations after a was added again"))?;
    same(
        "list order after a was deleted and added again",
        &vec![a, c, b],
        &listed(dump),
    )
}
