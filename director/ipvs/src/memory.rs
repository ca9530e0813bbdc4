//! An in-memory IPVS table for tests. It answers like the kernel (6.1 `ip_vs_ctl.c`), errnos
//! included, so a test that passes against it means the same against the kernel; the contract
//! suite holds the two together. Never used by the daemons.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::backend::{IpvsBackend, IpvsOp};
use crate::error::IpvsError;
use crate::types::*;

/// Schedulers a stock Debian kernel ships as `ip_vs_<name>` modules.
const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
];

/// `IP_VS_CONN_F_TUNNEL_TYPE_GUE`.
const TUNNEL_TYPE_GUE: u8 = 1;

/// The kernel's default timeouts (`ipvsadm -L --timeout` on a fresh boot).
const DEFAULT_TIMEOUTS: Timeouts = Timeouts {
    tcp: 900,
    tcp_fin: 120,
    udp: 300,
};

#[derive(Debug, Default)]
struct Table {
    /// Each service's destinations in the kernel's list order: `ip_vs_add_dest` puts a new one
    /// at the head, and a dump walks the list, so the newest comes first. Schedulers that
    /// hash (sh, mh, dh) build their tables in this order.
    services: BTreeMap<ServiceKey, (Service, Vec<DestinationEntry>)>,
    /// Destinations deleted while connections still used them: the kernel keeps such a
    /// destination in its trash, and adding it again to the same service brings it back with
    /// its connections and counters.
    trash: Vec<(ServiceKey, DestinationEntry)>,
    timeouts: Option<Timeouts>,
    daemons: Vec<SyncDaemon>,
    /// Operations the kernel accepted, for tests that count writes.
    writes: usize,
    /// Dumps of the service list, for tests that count reads.
    reads: usize,
    /// While set, every dump fails with this errno, as a netlink socket in trouble does
    /// (ENOBUFS after an overrun, say).
    failing_reads: Option<i32>,
    /// A service's counters, as traffic would leave them (set by tests; none is all zero).
    service_stats: BTreeMap<ServiceKey, Stats>,
}

/// The in-memory IPVS table.
#[derive(Debug, Default)]
pub struct MemoryIpvs {
    table: Mutex<Table>,
}

impl MemoryIpvs {
    pub fn new() -> MemoryIpvs {
        MemoryIpvs::default()
    }

    /// How many operations were accepted so far (a reconcile over an unchanged table adds none).
    pub fn writes(&self) -> usize {
        self.lock().writes
    }

    /// How many times the service list was read.
    pub fn reads(&self) -> usize {
        self.lock().reads
    }

    /// Makes every read fail with `errno` (None: reads work again).
    pub fn fail_reads(&self, errno: Option<i32>) {
        self.lock().failing_reads = errno;
    }

    /// Sets a destination's connection counts, as traffic would.
    pub fn set_connections(
        &self,
        service: &ServiceKey,
        destination: &DestinationKey,
        active: u32,
        inactive: u32,
    ) -> Result<(), IpvsError> {
        let mut table = self.lock();
        let entry = table
            .services
            .get_mut(service)
            .and_then(|(_, dests)| find(dests, destination))
            .ok_or_else(|| kernel(format!("connections of {destination}"), libc::ENOENT))?;
        entry.active_conns = active;
        entry.inactive_conns = inactive;
        Ok(())
    }

    /// Sets a service's counters (`ipvsadm -L -n --stats`), as traffic would.
    pub fn set_service_stats(&self, service: &ServiceKey, stats: Stats) -> Result<(), IpvsError> {
        let mut table = self.lock();
        if !table.services.contains_key(service) {
            return Err(kernel(format!("stats of {service}"), libc::ESRCH));
        }
        table.service_stats.insert(*service, stats);
        Ok(())
    }

    /// `ipvsadm -C`. Tests only, like the netlink client's flush.
    pub fn flush(&self) {
        let mut table = self.lock();
        table.services.clear();
        table.service_stats.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic in another test thread must not hide this test's own result.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn find<'a>(
    dests: &'a mut [DestinationEntry],
    key: &DestinationKey,
) -> Option<&'a mut DestinationEntry> {
    dests.iter_mut().find(|e| e.destination.key() == *key)
}

fn kernel(op: String, errno: i32) -> IpvsError {
    IpvsError::Kernel { op, errno }
}

impl Table {
    fn apply_one(&mut self, op: &IpvsOp) -> Result<(), i32> {
        match op {
            IpvsOp::AddService(service) => {
                // The kernel's order: attribute policy, then the service lookup, then the
                // scheduler module.
                check_name_length(&service.scheduler)?;
                if self.services.contains_key(&service.key) {
                    return Err(libc::EEXIST);
                }
                validate_service(service)?;
                self.services
                    .insert(service.key, (stored(service), Vec::new()));
            }
            IpvsOp::EditService(service) => {
                check_name_length(&service.scheduler)?;
                let (current, _) = self.services.get_mut(&service.key).ok_or(libc::ESRCH)?;
                validate_service(service)?;
                *current = stored(service);
            }
            IpvsOp::DeleteService(key) => {
                self.services.remove(key).ok_or(libc::ESRCH)?;
                self.service_stats.remove(key);
            }
            IpvsOp::AddDestination {
                service,
                destination,
            } => {
                let (svc, dests) = self.services.get_mut(service).ok_or(libc::ESRCH)?;
                validate_destination(svc, destination)?;
                if find(dests, &destination.key()).is_some() {
                    return Err(libc::EEXIST);
                }
                check_new_address(destination.addr)?;
                let restored = self
                    .trash
                    .iter()
                    .position(|(k, e)| k == service && e.destination.key() == destination.key());
                let entry = match restored {
                    Some(at) => DestinationEntry {
                        destination: destination.clone(),
                        ..self.trash.remove(at).1
                    },
                    None => DestinationEntry {
                        destination: destination.clone(),
                        active_conns: 0,
                        inactive_conns: 0,
                        persistent_conns: 0,
                        stats: Stats::default(),
                    },
                };
                dests.insert(0, entry);
            }
            IpvsOp::EditDestination {
                service,
                destination,
            } => {
                let (svc, dests) = self.services.get_mut(service).ok_or(libc::ESRCH)?;
                validate_destination(svc, destination)?;
                let entry = find(dests, &destination.key()).ok_or(libc::ENOENT)?;
                entry.destination = destination.clone();
            }
            IpvsOp::DeleteDestination {
                service,
                destination,
            } => {
                let (_, dests) = self.services.get_mut(service).ok_or(libc::ESRCH)?;
                let at = dests
                    .iter()
                    .position(|e| e.destination.key() == *destination)
                    .ok_or(libc::ENOENT)?;
                let entry = dests.remove(at);
                if entry.active_conns + entry.inactive_conns + entry.persistent_conns > 0 {
                    self.trash.push((*service, entry));
                }
            }
            IpvsOp::SetTimeouts(new) => {
                // ip_vs_set_timeout() refuses anything above INT_MAX / HZ seconds; HZ is at
                // least 100, so above INT_MAX / 100 every kernel refuses (all three kept).
                let limit = i32::MAX as u32 / 100;
                if [new.tcp, new.tcp_fin, new.udp].iter().any(|&t| t > limit) {
                    return Err(libc::EINVAL);
                }
                let old = self.timeouts.unwrap_or(DEFAULT_TIMEOUTS);
                let keep = |new: u32, old: u32| if new == 0 { old } else { new };
                self.timeouts = Some(Timeouts {
                    tcp: keep(new.tcp, old.tcp),
                    tcp_fin: keep(new.tcp_fin, old.tcp_fin),
                    udp: keep(new.udp, old.udp),
                });
            }
        }
        self.writes += 1;
        Ok(())
    }
}

/// The kernel keeps flags without its internal HASHED bit.
fn stored(service: &Service) -> Service {
    let mut s = service.clone();
    s.flags.0 &= !ServiceFlags::HASHED;
    s
}

/// ip_vs_new_dest() takes only addresses a packet can be sent to: an IPv4 address the routing
/// table calls local or unicast (not 0.0.0.0, broadcast or multicast), an IPv6 unicast address
/// that is not link-local. Checked after EEXIST, and only when a destination is created.
fn check_new_address(addr: std::net::IpAddr) -> Result<(), i32> {
    let refused = match addr {
        std::net::IpAddr::V4(v4) => v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast(),
        std::net::IpAddr::V6(v6) => {
            v6.is_unspecified() || v6.is_multicast() || v6.is_unicast_link_local()
        }
    };
    if refused {
        return Err(libc::EINVAL);
    }
    Ok(())
}

/// Scheduler and interface names are NUL-terminated strings of at most 15 bytes in the
/// kernel's attribute policy: a longer one is EINVAL before anything is looked up.
fn check_name_length(name: &str) -> Result<(), i32> {
    if name.len() > 15 {
        return Err(libc::EINVAL);
    }
    Ok(())
}

fn validate_service(service: &Service) -> Result<(), i32> {
    // "none" is a scheduler of its own: the service accepts no new connections.
    if service.scheduler != "none" && !SCHEDULERS.contains(&service.scheduler.as_str()) {
        // ip_vs_scheduler_get() found no module ip_vs_<name>.
        return Err(libc::ENOENT);
    }
    if service.key.family() == Family::Inet6 && !(1..=128).contains(&service.netmask) {
        return Err(libc::EINVAL);
    }
    Ok(())
}

fn validate_destination(service: &Service, destination: &Destination) -> Result<(), i32> {
    // Mixed address families work only through tunnels.
    if Family::of(&destination.addr) != service.key.family()
        && destination.forward != ForwardMethod::Tunnel
    {
        return Err(libc::EINVAL);
    }
    // The kernel's weight is an i32; a negative one is refused with ERANGE.
    if destination.weight > i32::MAX as u32 {
        return Err(libc::ERANGE);
    }
    // Checked even when the upper threshold is 0 ("no limit"): ip_vs_add_dest() and
    // ip_vs_edit_dest() compare the two plainly.
    if destination.lower_threshold > destination.upper_threshold {
        return Err(libc::ERANGE);
    }
    // A GUE tunnel without a port is refused whatever the forwarding method.
    if destination.tunnel.kind == TUNNEL_TYPE_GUE && destination.tunnel.port == 0 {
        return Err(libc::EINVAL);
    }
    Ok(())
}

impl IpvsBackend for MemoryIpvs {
    async fn info(&self) -> Result<Info, IpvsError> {
        Ok(Info {
            version: 0x010201,
            conn_table_size: 4096,
        })
    }

    async fn services(&self) -> Result<Vec<ServiceEntry>, IpvsError> {
        let mut table = self.lock();
        table.reads += 1;
        if let Some(errno) = table.failing_reads {
            return Err(kernel("dump services".into(), errno));
        }
        Ok(table
            .services
            .values()
            .map(|(service, _)| ServiceEntry {
                service: service.clone(),
                stats: table
                    .service_stats
                    .get(&service.key)
                    .copied()
                    .unwrap_or_default(),
            })
            .collect())
    }

    async fn destinations(&self, service: &ServiceKey) -> Result<Vec<DestinationEntry>, IpvsError> {
        // Like the kernel's dump: a missing service gives an empty list, not an error.
        Ok(self
            .lock()
            .services
            .get(service)
            .map(|(_, dests)| dests.clone())
            .unwrap_or_default())
    }

    async fn timeouts(&self) -> Result<Timeouts, IpvsError> {
        Ok(self.lock().timeouts.unwrap_or(DEFAULT_TIMEOUTS))
    }

    async fn apply(&self, ops: &[IpvsOp]) -> Result<Vec<Result<(), IpvsError>>, IpvsError> {
        let mut table = self.lock();
        Ok(ops
            .iter()
            .map(|op| {
                table
                    .apply_one(op)
                    .map_err(|errno| kernel(op.to_string(), errno))
            })
            .collect())
    }

    async fn daemons(&self) -> Result<Vec<SyncDaemon>, IpvsError> {
        Ok(self.lock().daemons.clone())
    }

    async fn start_daemon(&self, daemon: &SyncDaemon) -> Result<(), IpvsError> {
        let op = || {
            format!(
                "start {:?} sync daemon on {}",
                daemon.role, daemon.interface
            )
        };
        check_name_length(&daemon.interface).map_err(|errno| kernel(op(), errno))?;
        // The kernel looks the interface up in the caller's network namespace before it
        // checks for a running daemon; sysfs shows this process's namespace.
        let name = daemon.interface.as_str();
        let plain = !name.is_empty() && !name.contains('/') && name != "." && name != "..";
        if !plain || !std::path::Path::new("/sys/class/net").join(name).exists() {
            return Err(kernel(op(), libc::ENODEV));
        }
        let mut table = self.lock();
        if table.daemons.iter().any(|d| d.role == daemon.role) {
            return Err(kernel(op(), libc::EEXIST));
        }
        table.daemons.push(daemon.clone());
        Ok(())
    }

    async fn stop_daemon(&self, role: SyncRole) -> Result<(), IpvsError> {
        let mut table = self.lock();
        let before = table.daemons.len();
        table.daemons.retain(|d| d.role != role);
        if table.daemons.len() == before {
            return Err(kernel(format!("stop {role:?} sync daemon"), libc::ESRCH));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Destination, ForwardMethod};

    /// The kernel's trash: a destination deleted while connections use it comes back with
    /// them when it is added again, at the head of the list; an idle one comes back empty.
    #[tokio::test]
    async fn a_destination_added_again_keeps_its_connections() {
        let ipvs = MemoryIpvs::new();
        let key = ServiceKey::Addr {
            protocol: crate::types::Protocol::Tcp,
            addr: "192.0.2.1".parse().unwrap(),
            port: 22,
        };
        let dest = |last: u8| {
            Destination::new(
                format!("10.0.0.{last}").parse().unwrap(),
                22,
                ForwardMethod::Route,
                1,
            )
        };
        let add = |d: Destination| IpvsOp::AddDestination {
            service: key,
            destination: d,
        };
        let del = |d: &Destination| IpvsOp::DeleteDestination {
            service: key,
            destination: d.key(),
        };
        let (busy, idle) = (dest(11), dest(12));
        ipvs.apply(&[
            IpvsOp::AddService(Service::new(key, "mh")),
            add(busy.clone()),
            add(idle.clone()),
        ])
        .await
        .unwrap();
        ipvs.set_connections(&key, &busy.key(), 3, 1).unwrap();
        ipvs.set_connections(&key, &idle.key(), 0, 0).unwrap();
        let readded = Destination {
            weight: 5,
            ..busy.clone()
        };
        for result in ipvs
            .apply(&[
                del(&busy),
                del(&idle),
                add(idle.clone()),
                add(readded.clone()),
            ])
            .await
            .unwrap()
        {
            result.unwrap();
        }
        let listed = ipvs.destinations(&key).await.unwrap();
        let seen: Vec<(Destination, u32, u32)> = listed
            .into_iter()
            .map(|e| (e.destination, e.active_conns, e.inactive_conns))
            .collect();
        assert_eq!(seen, vec![(readded, 3, 1), (idle, 0, 0)]);
    }
}
