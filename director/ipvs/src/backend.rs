//! The one interface through which the director reads and changes the kernel's IPVS table.

use std::fmt;
use std::future::Future;

use crate::error::IpvsError;
use crate::types::*;

/// A change to the IPVS table, in the words of the ipvsadm command that makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpvsOp {
    /// `ipvsadm -A`
    AddService(Service),
    /// `ipvsadm -E`
    EditService(Service),
    /// `ipvsadm -D`
    DeleteService(ServiceKey),
    /// `ipvsadm -a`
    AddDestination {
        service: ServiceKey,
        destination: Destination,
    },
    /// `ipvsadm -e`
    EditDestination {
        service: ServiceKey,
        destination: Destination,
    },
    /// `ipvsadm -d`
    DeleteDestination {
        service: ServiceKey,
        destination: DestinationKey,
    },
    /// `ipvsadm --set TCP TCPFIN UDP` (0 leaves a value unchanged)
    SetTimeouts(Timeouts),
}

impl IpvsOp {
    /// The operation's kind in one word, as a metric label says it: `add_service`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            IpvsOp::AddService(_) => "add_service",
            IpvsOp::EditService(_) => "edit_service",
            IpvsOp::DeleteService(_) => "delete_service",
            IpvsOp::AddDestination { .. } => "add_destination",
            IpvsOp::EditDestination { .. } => "edit_destination",
            IpvsOp::DeleteDestination { .. } => "delete_destination",
            IpvsOp::SetTimeouts(_) => "set_timeouts",
        }
    }
}

impl fmt::Display for IpvsOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpvsOp::AddService(s) => write!(f, "add service {} scheduler {}", s.key, s.scheduler),
            IpvsOp::EditService(s) => write!(f, "edit service {} scheduler {}", s.key, s.scheduler),
            IpvsOp::DeleteService(k) => write!(f, "delete service {k}"),
            IpvsOp::AddDestination {
                service,
                destination: d,
            } => write!(
                f,
                "add destination {} to {service} ({}, weight {})",
                d.key(),
                d.forward.ipvsadm_word(),
                d.weight
            ),
            IpvsOp::EditDestination {
                service,
                destination: d,
            } => write!(
                f,
                "edit destination {} of {service} ({}, weight {})",
                d.key(),
                d.forward.ipvsadm_word(),
                d.weight
            ),
            IpvsOp::DeleteDestination {
                service,
                destination,
            } => write!(f, "delete destination {destination} from {service}"),
            IpvsOp::SetTimeouts(t) => write!(
                f,
                "set timeouts tcp {} tcpfin {} udp {}",
                t.tcp, t.tcp_fin, t.udp
            ),
        }
    }
}

/// The kernel's IPVS table. Implemented over generic netlink for the daemons, and in memory for
/// tests (feature `testing`); the contract suite holds both to the same behaviour, errors
/// included.
pub trait IpvsBackend: Send + Sync + 'static {
    /// `ipvsadm --version`: IPVS version and connection table size.
    fn info(&self) -> impl Future<Output = Result<Info, IpvsError>> + Send;

    /// `ipvsadm -L -n`: every virtual service, with counters.
    fn services(&self) -> impl Future<Output = Result<Vec<ServiceEntry>, IpvsError>> + Send;

    /// `ipvsadm -L -n` for one service: its destinations with ActiveConn/InActConn.
    /// Like the kernel's dump, a missing service gives an empty list.
    fn destinations(
        &self,
        service: &ServiceKey,
    ) -> impl Future<Output = Result<Vec<DestinationEntry>, IpvsError>> + Send;

    /// [`IpvsBackend::destinations`] of each of `services`, in the same order. The kernel's
    /// backend reads many services at once; the default reads one after the other.
    fn destinations_of(
        &self,
        services: &[ServiceKey],
    ) -> impl Future<Output = Result<Vec<Vec<DestinationEntry>>, IpvsError>> + Send {
        async move {
            let mut all = Vec::with_capacity(services.len());
            for service in services {
                all.push(self.destinations(service).await?);
            }
            Ok(all)
        }
    }

    /// `ipvsadm -L --timeout`.
    fn timeouts(&self) -> impl Future<Output = Result<Timeouts, IpvsError>> + Send;

    /// Applies `ops` in order and returns one result per op. The kernel goes on after a refused
    /// op, and so does this. The outer error is for a failure of the channel itself.
    fn apply(
        &self,
        ops: &[IpvsOp],
    ) -> impl Future<Output = Result<Vec<Result<(), IpvsError>>, IpvsError>> + Send;

    /// `ipvsadm -L --daemon`: the running connection sync daemons.
    fn daemons(&self) -> impl Future<Output = Result<Vec<SyncDaemon>, IpvsError>> + Send;

    /// `ipvsadm --start-daemon`.
    fn start_daemon(
        &self,
        daemon: &SyncDaemon,
    ) -> impl Future<Output = Result<(), IpvsError>> + Send;

    /// `ipvsadm --stop-daemon`.
    fn stop_daemon(&self, role: SyncRole) -> impl Future<Output = Result<(), IpvsError>> + Send;
}

/// Shared ownership: a test keeps one handle on the in-memory table while the director uses
/// another.
impl<T: IpvsBackend> IpvsBackend for std::sync::Arc<T> {
    fn info(&self) -> impl Future<Output = Result<Info, IpvsError>> + Send {
        (**self).info()
    }
    fn services(&self) -> impl Future<Output = Result<Vec<ServiceEntry>, IpvsError>> + Send {
        (**self).services()
    }
    fn destinations(
        &self,
        service: &ServiceKey,
    ) -> impl Future<Output = Result<Vec<DestinationEntry>, IpvsError>> + Send {
        (**self).destinations(service)
    }
    fn destinations_of(
        &self,
        services: &[ServiceKey],
    ) -> impl Future<Output = Result<Vec<Vec<DestinationEntry>>, IpvsError>> + Send {
        (**self).destinations_of(services)
    }
    fn timeouts(&self) -> impl Future<Output = Result<Timeouts, IpvsError>> + Send {
        (**self).timeouts()
    }
    fn apply(
        &self,
        ops: &[IpvsOp],
    ) -> impl Future<Output = Result<Vec<Result<(), IpvsError>>, IpvsError>> + Send {
        (**self).apply(ops)
    }
    fn daemons(&self) -> impl Future<Output = Result<Vec<SyncDaemon>, IpvsError>> + Send {
        (**self).daemons()
    }
    fn start_daemon(
        &self,
        daemon: &SyncDaemon,
    ) -> impl Future<Output = Result<(), IpvsError>> + Send {
        (**self).start_daemon(daemon)
    }
    fn stop_daemon(&self, role: SyncRole) -> impl Future<Output = Result<(), IpvsError>> + Send {
        (**self).stop_daemon(role)
    }
}
