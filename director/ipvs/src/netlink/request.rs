//! Which IPVS message each request is, and reading the replies back into [`crate::types`].

use netlink_packet_core::DecodeError;

use super::daemon::{self, DaemonAttr};
use super::destination::{self, DestAttr};
use super::message::{IpvsAttr, IpvsCmd, IpvsMessage};
use super::service::{self, ServiceAttr};
use crate::backend::IpvsOp;
use crate::types::{
    DestinationEntry, Family, Info, ServiceEntry, ServiceKey, SyncDaemon, SyncRole, Timeouts,
};

/// The message that makes `op`.
pub fn op_message(op: &IpvsOp) -> IpvsMessage {
    let cmd = match op {
        IpvsOp::AddService(_) => IpvsCmd::NewService,
        IpvsOp::EditService(_) => IpvsCmd::SetService,
        IpvsOp::DeleteService(_) => IpvsCmd::DelService,
        IpvsOp::AddDestination { .. } => IpvsCmd::NewDest,
        IpvsOp::EditDestination { .. } => IpvsCmd::SetDest,
        IpvsOp::DeleteDestination { .. } => IpvsCmd::DelDest,
        IpvsOp::SetTimeouts(_) => IpvsCmd::SetConfig,
    };
    let attrs = match op {
        IpvsOp::AddService(s) | IpvsOp::EditService(s) => {
            vec![IpvsAttr::Service(service::service_attrs(s))]
        }
        IpvsOp::DeleteService(key) => vec![IpvsAttr::Service(service::key_attrs(key))],
        IpvsOp::AddDestination {
            service,
            destination,
        }
        | IpvsOp::EditDestination {
            service,
            destination,
        } => vec![
            IpvsAttr::Service(service::key_attrs(service)),
            IpvsAttr::Dest(destination::destination_attrs(destination)),
        ],
        IpvsOp::DeleteDestination {
            service,
            destination,
        } => vec![
            IpvsAttr::Service(service::key_attrs(service)),
            IpvsAttr::Dest(destination::key_attrs(destination)),
        ],
        IpvsOp::SetTimeouts(t) => vec![
            IpvsAttr::TimeoutTcp(t.tcp),
            IpvsAttr::TimeoutTcpFin(t.tcp_fin),
            IpvsAttr::TimeoutUdp(t.udp),
        ],
    };
    IpvsMessage::new(cmd, attrs)
}

/// GET_DEST for one service (a dump).
pub fn list_destinations(key: &ServiceKey) -> IpvsMessage {
    IpvsMessage::new(
        IpvsCmd::GetDest,
        vec![IpvsAttr::Service(service::key_attrs(key))],
    )
}

pub fn start_daemon(daemon: &SyncDaemon) -> IpvsMessage {
    IpvsMessage::new(
        IpvsCmd::NewDaemon,
        vec![IpvsAttr::Daemon(daemon::start_attrs(daemon))],
    )
}

pub fn stop_daemon(role: SyncRole) -> IpvsMessage {
    IpvsMessage::new(
        IpvsCmd::DelDaemon,
        vec![IpvsAttr::Daemon(daemon::stop_attrs(role))],
    )
}

/// A command without attributes: GET_INFO, GET_CONFIG, the GET_SERVICE and GET_DAEMON dumps,
/// FLUSH.
pub fn bare(cmd: IpvsCmd) -> IpvsMessage {
    IpvsMessage::new(cmd, Vec::new())
}

fn nested<'a, T>(
    message: &'a IpvsMessage,
    pick: impl Fn(&'a IpvsAttr) -> Option<&'a Vec<T>>,
    what: &str,
) -> Result<&'a [T], DecodeError> {
    message
        .attrs
        .iter()
        .find_map(pick)
        .map(Vec::as_slice)
        .ok_or_else(|| format!("{what} reply without its nested attribute").into())
}

/// One message of the GET_SERVICE dump; `None` for a service this crate cannot name.
pub fn parse_service(message: &IpvsMessage) -> Result<Option<ServiceEntry>, DecodeError> {
    let attrs: &[ServiceAttr] = nested(
        message,
        |a| match a {
            IpvsAttr::Service(v) => Some(v),
            _ => None,
        },
        "GET_SERVICE",
    )?;
    service::parse_entry(attrs)
}

/// One message of the GET_DEST dump.
pub fn parse_destination(
    message: &IpvsMessage,
    service_family: Family,
) -> Result<DestinationEntry, DecodeError> {
    let attrs: &[DestAttr] = nested(
        message,
        |a| match a {
            IpvsAttr::Dest(v) => Some(v),
            _ => None,
        },
        "GET_DEST",
    )?;
    destination::parse_entry(attrs, service_family)
}

/// One message of the GET_DAEMON dump.
pub fn parse_daemon(message: &IpvsMessage) -> Result<SyncDaemon, DecodeError> {
    let attrs: &[DaemonAttr] = nested(
        message,
        |a| match a {
            IpvsAttr::Daemon(v) => Some(v),
            _ => None,
        },
        "GET_DAEMON",
    )?;
    daemon::parse_entry(attrs)
}

/// The GET_CONFIG reply. A timeout the kernel leaves out (no TCP support built in) reads 0.
pub fn parse_timeouts(message: &IpvsMessage) -> Timeouts {
    let mut timeouts = Timeouts::default();
    for attr in &message.attrs {
        match attr {
            IpvsAttr::TimeoutTcp(v) => timeouts.tcp = *v,
            IpvsAttr::TimeoutTcpFin(v) => timeouts.tcp_fin = *v,
            IpvsAttr::TimeoutUdp(v) => timeouts.udp = *v,
            _ => {}
        }
    }
    timeouts
}

/// The GET_INFO reply.
pub fn parse_info(message: &IpvsMessage) -> Result<Info, DecodeError> {
    let mut version = None;
    let mut conn_table_size = None;
    for attr in &message.attrs {
        match attr {
            IpvsAttr::Version(v) => version = Some(*v),
            IpvsAttr::ConnTabSize(v) => conn_table_size = Some(*v),
            _ => {}
        }
    }
    Ok(Info {
        version: version.ok_or("GET_INFO reply without IPVS_INFO_ATTR_VERSION")?,
        conn_table_size: conn_table_size
            .ok_or("GET_INFO reply without IPVS_INFO_ATTR_CONN_TAB_SIZE")?,
    })
}
