//! The IPVS table of the director's own services, as desired and as observed in the kernel.
//! Only services the configuration owns appear here; entries on other VIPs are never read into
//! these tables, so nothing can plan a change to them.

use std::collections::BTreeMap;

use lb_ipvs::{
    Destination, DestinationEntry, DestinationKey, IpvsBackend, IpvsError, IpvsOp, Service,
    ServiceEntry, ServiceKey, Stats, Timeouts,
};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredTable {
    pub services: BTreeMap<ServiceKey, DesiredService>,
    /// Services owned before and no longer configured: to be deleted.
    pub retired: Vec<ServiceKey>,
    /// Only the non-zero fields are enforced (0 leaves a value unchanged, as in the config).
    pub timeouts: Timeouts,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredService {
    pub service: Service,
    pub destinations: BTreeMap<DestinationKey, Destination>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedTable {
    pub services: BTreeMap<ServiceKey, ObservedService>,
    pub timeouts: Timeouts,
    /// Destinations [`apply`](Self::apply) deleted: the kernel keeps one that connections use
    /// in its trash and gives it back, connections and counters, when it is added again.
    pub(crate) trash: BTreeMap<(ServiceKey, DestinationKey), DestinationEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedService {
    pub service: Service,
    /// The kernel's counters for the service as of the read (`ipvsadm -L -n --stats`), for the
    /// metrics; a service added by the pass starts at zero.
    pub stats: Stats,
    pub destinations: BTreeMap<DestinationKey, DestinationEntry>,
    /// The destinations in the kernel's list order (a dump's order: the newest first). The
    /// hashing scheduler mh builds its table in this order, so the plan keeps it canonical.
    pub order: Vec<DestinationKey>,
}

impl ObservedService {
    /// A service with these destinations, listed in the order given.
    pub fn listed(service: Service, stats: Stats, entries: Vec<DestinationEntry>) -> Self {
        ObservedService {
            service,
            stats,
            order: entries.iter().map(|d| d.destination.key()).collect(),
            destinations: entries
                .into_iter()
                .map(|d| (d.destination.key(), d))
                .collect(),
        }
    }
}

impl ObservedTable {
    /// Reads the services in `owned` (and their destinations) and the timeouts from the kernel.
    pub async fn read(
        ipvs: &impl IpvsBackend,
        owned: impl Fn(&ServiceKey) -> bool,
    ) -> Result<ObservedTable, IpvsError> {
        let mut table = ObservedTable {
            timeouts: ipvs.timeouts().await?,
            ..ObservedTable::default()
        };
        let services: Vec<ServiceEntry> = ipvs
            .services()
            .await?
            .into_iter()
            .filter(|entry| owned(&entry.service.key))
            .collect();
        let keys: Vec<ServiceKey> = services.iter().map(|e| e.service.key).collect();
        let destinations = ipvs.destinations_of(&keys).await?;
        for (entry, destinations) in services.into_iter().zip(destinations) {
            table.services.insert(
                entry.service.key,
                ObservedService::listed(entry.service, entry.stats, destinations),
            );
        }
        Ok(table)
    }

    /// The table as it is once the kernel has accepted `op`: a pass publishes what it left
    /// behind without reading the table a second time. A new destination has no connections;
    /// one deleted and added again (the plan reorders mh services so) keeps them.
    pub fn apply(&mut self, op: &IpvsOp) {
        match op {
            IpvsOp::AddService(service) | IpvsOp::EditService(service) => {
                let entry = self.services.entry(service.key).or_insert_with(|| {
                    ObservedService::listed(service.clone(), Stats::default(), Vec::new())
                });
                entry.service = service.clone();
            }
            IpvsOp::DeleteService(key) => {
                self.services.remove(key);
            }
            IpvsOp::AddDestination {
                service,
                destination,
            } => {
                if let Some(s) = self.services.get_mut(service) {
                    let key = destination.key();
                    s.order.retain(|k| *k != key);
                    // The kernel adds at the head of the list.
                    s.order.insert(0, key);
                    let entry = match self.trash.remove(&(*service, key)) {
                        Some(old) => DestinationEntry {
                            destination: destination.clone(),
                            ..old
                        },
                        None => DestinationEntry {
                            destination: destination.clone(),
                            active_conns: 0,
                            inactive_conns: 0,
                            persistent_conns: 0,
                            stats: Default::default(),
                        },
                    };
                    s.destinations.insert(key, entry);
                }
            }
            IpvsOp::EditDestination {
                service,
                destination,
            } => {
                if let Some(entry) = self
                    .services
                    .get_mut(service)
                    .and_then(|s| s.destinations.get_mut(&destination.key()))
                {
                    entry.destination = destination.clone();
                }
            }
            IpvsOp::DeleteDestination {
                service,
                destination,
            } => {
                if let Some(s) = self.services.get_mut(service) {
                    s.order.retain(|k| k != destination);
                    if let Some(old) = s.destinations.remove(destination) {
                        self.trash.insert((*service, *destination), old);
                    }
                }
            }
            IpvsOp::SetTimeouts(set) => {
                let keep = |new: u32, old: u32| if new == 0 { old } else { new };
                self.timeouts = Timeouts {
                    tcp: keep(set.tcp, self.timeouts.tcp),
                    tcp_fin: keep(set.tcp_fin, self.timeouts.tcp_fin),
                    udp: keep(set.udp, self.timeouts.udp),
                };
            }
        }
    }

    pub fn destination(
        &self,
        service: &ServiceKey,
        dest: &DestinationKey,
    ) -> Option<&DestinationEntry> {
        self.services.get(service)?.destinations.get(dest)
    }
}
