//! The IPVS table of the director's own services, as desired and as observed in the kernel.
//! Only services the configuration owns appear here; entries on other VIPs are never read into
//! these tables, so nothing can plan a change to them.

use std::collections::BTreeMap;

use lb_ipvs::{
    Destination, DestinationEntry, DestinationKey, IpvsBackend, IpvsError, Service, ServiceKey,
    Timeouts,
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedService {
    pub service: Service,
    pub destinations: BTreeMap<DestinationKey, DestinationEntry>,
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
        for entry in ipvs.services().await? {
            if !owned(&entry.service.key) {
                continue;
            }
            let destinations = ipvs
                .destinations(&entry.service.key)
                .await?
                .into_iter()
                .map(|d| (d.destination.key(), d))
                .collect();
            table.services.insert(
                entry.service.key,
                ObservedService {
                    service: entry.service,
                    destinations,
                },
            );
        }
        Ok(table)
    }

    pub fn destination(
        &self,
        service: &ServiceKey,
        dest: &DestinationKey,
    ) -> Option<&DestinationEntry> {
        self.services.get(service)?.destinations.get(dest)
    }
}
