//! The realservers the director knows, each with its lease.
//!
//! Time is passed in (`now`), so lease logic is tested with tokio's paused clock and the
//! registry itself stays free of timers.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

/// Upper bound on known realservers, so a registration flood cannot grow memory without bound.
pub const MAX_REALSERVERS: usize = 4096;

/// A registration stays pending this much longer than a lease: between Register and Confirm the
/// agent installs its rules, and iptables may wait on the xtables lock of a loaded host.
pub const CONFIRM_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Registered; the agent has not confirmed its REDIRECT rule yet, so no new traffic.
    Pending,
    /// Confirmed and heartbeating: in the table with its weight.
    Alive,
    /// Found in the kernel table when the director started; kept as it was for one lease TTL so
    /// its agent can register again without a flap.
    Adopted,
    /// Missed its lease: quiesced (weight 0), removed once idle.
    Expired,
    /// Said goodbye: quiesced like an expired one.
    Deregistered,
}

impl LeaseState {
    /// Whether the name is taken: a second realserver with this name is refused meanwhile.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            LeaseState::Pending | LeaseState::Alive | LeaseState::Adopted
        )
    }

    pub fn word(self) -> &'static str {
        match self {
            LeaseState::Pending => "pending",
            LeaseState::Alive => "alive",
            LeaseState::Adopted => "adopted",
            LeaseState::Expired => "expired",
            LeaseState::Deregistered => "deregistered",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    pub name: String,
    pub address: IpAddr,
    /// Weight per service name, as registered (for an adopted one: as found in the kernel).
    pub weights: BTreeMap<String, u32>,
    /// None for an adopted realserver: nobody holds its lease.
    pub lease_id: Option<String>,
    pub state: LeaseState,
    pub expires: Instant,
    /// The agent's own verdict on each service it checks locally (from its heartbeats); a
    /// service it does not report counts as up.
    pub agent_health: BTreeMap<String, AgentVerdict>,
}

/// What an agent's self-check says of one of its services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentVerdict {
    pub up: bool,
    /// Why it is down ("no SSH banner within 1s"); empty while up.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("realserver {name} is already registered from {address} with a live lease: stop the other agent or give this one another name")]
    NameTaken { name: String, address: IpAddr },
    #[error("address {address} is already registered as realserver {name} with a live lease")]
    AddressTaken { name: String, address: IpAddr },
    #[error("unknown lease {0}: register again")]
    UnknownLease(String),
    #[error("too many realservers (at most {MAX_REALSERVERS})")]
    Full,
}

/// A lease handed to an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
    pub ttl: Duration,
}

/// A second agent under a name that another agent holds (a cloned realserver, a copied
/// certificate): refused while the first one's lease lives, and remembered so `lbctl status`
/// shows it instead of the lease flapping silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedAgent {
    pub name: String,
    pub address: IpAddr,
    pub attempts: u64,
    pub last: Instant,
}

/// A refused agent is forgotten after this many lease TTLs without another attempt.
const REFUSAL_MEMORY_TTLS: u32 = 3;

#[derive(Debug)]
pub struct Registry {
    ttl: Duration,
    by_address: BTreeMap<IpAddr, RealServer>,
    /// By name and address; bounded like the registry.
    refused: BTreeMap<(String, IpAddr), RefusedAgent>,
}

impl Registry {
    pub fn new(ttl: Duration) -> Registry {
        Registry {
            ttl,
            by_address: BTreeMap::new(),
            refused: BTreeMap::new(),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A reload changed `lease_ttl`: new leases and the next heartbeat of each use it.
    pub fn set_ttl(&mut self, ttl: Duration) {
        self.ttl = ttl;
    }

    pub fn iter(&self) -> impl Iterator<Item = &RealServer> {
        self.by_address.values()
    }

    pub fn get(&self, address: &IpAddr) -> Option<&RealServer> {
        self.by_address.get(address)
    }

    /// Every realserver with this name (one live one at most; older ones may still drain).
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a RealServer> + 'a {
        self.by_address.values().filter(move |rs| rs.name == name)
    }

    /// A new lease for `name` at `address`, pending until confirmed. Registering again from the
    /// same address (an agent restart) replaces the old lease.
    pub fn register(
        &mut self,
        name: &str,
        address: IpAddr,
        weights: BTreeMap<String, u32>,
        now: Instant,
    ) -> Result<Lease, RegistryError> {
        let holder = self
            .named(name)
            .find(|rs| rs.address != address && rs.state.is_live())
            .map(|rs| rs.address);
        if let Some(holder) = holder {
            self.remember_refusal(name, address, now);
            return Err(RegistryError::NameTaken {
                name: name.to_owned(),
                address: holder,
            });
        }
        if let Some(other) = self.by_address.get(&address) {
            // An adopted entry carries a remembered (or made-up) name: the agent's word wins.
            if other.name != name && other.state.is_live() && other.state != LeaseState::Adopted {
                return Err(RegistryError::AddressTaken {
                    name: other.name.clone(),
                    address,
                });
            }
        } else if self.by_address.len() >= MAX_REALSERVERS {
            return Err(RegistryError::Full);
        }
        let id = new_lease_id();
        self.by_address.insert(
            address,
            RealServer {
                name: name.to_owned(),
                address,
                weights,
                lease_id: Some(id.clone()),
                state: LeaseState::Pending,
                expires: now + self.ttl + CONFIRM_GRACE,
                agent_health: BTreeMap::new(),
            },
        );
        Ok(Lease { id, ttl: self.ttl })
    }

    fn remember_refusal(&mut self, name: &str, address: IpAddr, now: Instant) {
        let key = (name.to_owned(), address);
        if !self.refused.contains_key(&key) && self.refused.len() >= MAX_REALSERVERS {
            return;
        }
        let entry = self.refused.entry(key).or_insert_with(|| RefusedAgent {
            name: name.to_owned(),
            address,
            attempts: 0,
            last: now,
        });
        entry.attempts += 1;
        entry.last = now;
    }

    /// Second agents refused recently, for `lbctl status`.
    pub fn refused_agents(&self) -> impl Iterator<Item = &RefusedAgent> {
        self.refused.values()
    }

    /// The agent's rule is in place: from now on it gets traffic.
    pub fn confirm(&mut self, lease_id: &str, now: Instant) -> Result<&RealServer, RegistryError> {
        let ttl = self.ttl;
        let rs = self.live_lease(lease_id)?;
        rs.state = LeaseState::Alive;
        rs.expires = now + ttl;
        Ok(rs)
    }

    pub fn heartbeat(&mut self, lease_id: &str, now: Instant) -> Result<(), RegistryError> {
        let ttl = self.ttl;
        let rs = self.live_lease(lease_id)?;
        rs.expires = now + ttl;
        Ok(())
    }

    /// Records the agent's self-check verdicts from a heartbeat; answers those that changed.
    pub fn report_health(
        &mut self,
        lease_id: &str,
        verdicts: BTreeMap<String, AgentVerdict>,
    ) -> Result<Vec<(String, AgentVerdict)>, RegistryError> {
        let rs = self.live_lease(lease_id)?;
        let changed = verdicts
            .iter()
            // A service not reported before counted as up.
            .filter(|(service, v)| rs.agent_health.get(*service).is_none_or(|o| o.up) != v.up)
            .map(|(service, v)| (service.clone(), v.clone()))
            .collect();
        rs.agent_health = verdicts;
        Ok(changed)
    }

    pub fn deregister(&mut self, lease_id: &str) -> Result<&RealServer, RegistryError> {
        let rs = self.live_lease(lease_id)?;
        rs.state = LeaseState::Deregistered;
        rs.lease_id = None;
        Ok(rs)
    }

    fn live_lease(&mut self, lease_id: &str) -> Result<&mut RealServer, RegistryError> {
        self.by_address
            .values_mut()
            .find(|rs| rs.lease_id.as_deref() == Some(lease_id) && rs.state.is_live())
            .ok_or_else(|| RegistryError::UnknownLease(lease_id.to_owned()))
    }

    /// Expires every live lease whose time is up; returns the names that expired.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let memory = self.ttl * REFUSAL_MEMORY_TTLS;
        self.refused
            .retain(|_, r| now.duration_since(r.last) < memory);
        let mut expired = Vec::new();
        for rs in self.by_address.values_mut() {
            if rs.state.is_live() && rs.expires <= now {
                rs.state = LeaseState::Expired;
                rs.lease_id = None;
                expired.push(rs.name.clone());
            }
        }
        expired
    }

    /// Records a destination found in the kernel at start-up, kept as it is for `window`.
    pub fn adopt(
        &mut self,
        address: IpAddr,
        name: String,
        service: &str,
        weight: u32,
        until: Instant,
    ) {
        let rs = self
            .by_address
            .entry(address)
            .or_insert_with(|| RealServer {
                name,
                address,
                weights: BTreeMap::new(),
                lease_id: None,
                state: LeaseState::Adopted,
                expires: until,
                agent_health: BTreeMap::new(),
            });
        rs.weights.insert(service.to_owned(), weight);
    }

    /// Drops a realserver that is gone from the kernel.
    pub fn forget(&mut self, address: &IpAddr) {
        self.by_address.remove(address);
    }

    /// The earliest moment a live lease runs out.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_address
            .values()
            .filter(|rs| rs.state.is_live())
            .map(|rs| rs.expires)
            .min()
    }
}

fn new_lease_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
