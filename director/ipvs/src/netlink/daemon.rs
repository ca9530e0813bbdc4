//! A connection synchronisation daemon (`IPVS_DAEMON_ATTR_*`, nested in
//! `IPVS_CMD_ATTR_DAEMON`) and its conversion from and to [`SyncDaemon`].

use std::net::{Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{
    parse_string, parse_u16, parse_u32, parse_u8, DecodeError, DefaultNla, ErrorContext, Nla,
    NlaBuffer, Parseable,
};

use crate::types::{SyncDaemon, SyncRole};

const IPVS_DAEMON_ATTR_STATE: u16 = 1;
const IPVS_DAEMON_ATTR_MCAST_IFN: u16 = 2;
const IPVS_DAEMON_ATTR_SYNC_ID: u16 = 3;
const IPVS_DAEMON_ATTR_SYNC_MAXLEN: u16 = 4;
const IPVS_DAEMON_ATTR_MCAST_GROUP: u16 = 5;
const IPVS_DAEMON_ATTR_MCAST_GROUP6: u16 = 6;
const IPVS_DAEMON_ATTR_MCAST_PORT: u16 = 7;
const IPVS_DAEMON_ATTR_MCAST_TTL: u16 = 8;

const IP_VS_STATE_MASTER: u32 = 0x0001;
const IP_VS_STATE_BACKUP: u32 = 0x0002;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonAttr {
    /// `IP_VS_STATE_MASTER` or `IP_VS_STATE_BACKUP`.
    State(u32),
    McastIfn(String),
    SyncId(u32),
    SyncMaxlen(u16),
    McastGroup(Ipv4Addr),
    McastGroup6(Ipv6Addr),
    /// Host order, unlike the ports of services and destinations.
    McastPort(u16),
    McastTtl(u8),
    Other(DefaultNla),
}

impl Nla for DaemonAttr {
    fn value_len(&self) -> usize {
        match self {
            DaemonAttr::State(_) | DaemonAttr::SyncId(_) | DaemonAttr::McastGroup(_) => 4,
            DaemonAttr::McastIfn(name) => name.len() + 1,
            DaemonAttr::SyncMaxlen(_) | DaemonAttr::McastPort(_) => 2,
            DaemonAttr::McastGroup6(_) => 16,
            DaemonAttr::McastTtl(_) => 1,
            DaemonAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            DaemonAttr::State(_) => IPVS_DAEMON_ATTR_STATE,
            DaemonAttr::McastIfn(_) => IPVS_DAEMON_ATTR_MCAST_IFN,
            DaemonAttr::SyncId(_) => IPVS_DAEMON_ATTR_SYNC_ID,
            DaemonAttr::SyncMaxlen(_) => IPVS_DAEMON_ATTR_SYNC_MAXLEN,
            DaemonAttr::McastGroup(_) => IPVS_DAEMON_ATTR_MCAST_GROUP,
            DaemonAttr::McastGroup6(_) => IPVS_DAEMON_ATTR_MCAST_GROUP6,
            DaemonAttr::McastPort(_) => IPVS_DAEMON_ATTR_MCAST_PORT,
            DaemonAttr::McastTtl(_) => IPVS_DAEMON_ATTR_MCAST_TTL,
            DaemonAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            DaemonAttr::State(v) | DaemonAttr::SyncId(v) => {
                buffer.copy_from_slice(&v.to_ne_bytes())
            }
            DaemonAttr::McastIfn(name) => {
                let (text, nul) = buffer.split_at_mut(name.len());
                text.copy_from_slice(name.as_bytes());
                nul.fill(0);
            }
            DaemonAttr::SyncMaxlen(v) | DaemonAttr::McastPort(v) => {
                buffer.copy_from_slice(&v.to_ne_bytes())
            }
            DaemonAttr::McastGroup(group) => buffer.copy_from_slice(&group.octets()),
            DaemonAttr::McastGroup6(group) => buffer.copy_from_slice(&group.octets()),
            DaemonAttr::McastTtl(v) => buffer[0] = *v,
            DaemonAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a> Parseable<NlaBuffer<&'a [u8]>> for DaemonAttr {
    fn parse(buf: &NlaBuffer<&'a [u8]>) -> Result<DaemonAttr, DecodeError> {
        let value = buf.value();
        Ok(match buf.kind() {
            IPVS_DAEMON_ATTR_STATE => {
                DaemonAttr::State(parse_u32(value).context("IPVS_DAEMON_ATTR_STATE")?)
            }
            IPVS_DAEMON_ATTR_MCAST_IFN => {
                DaemonAttr::McastIfn(parse_string(value).context("IPVS_DAEMON_ATTR_MCAST_IFN")?)
            }
            IPVS_DAEMON_ATTR_SYNC_ID => {
                DaemonAttr::SyncId(parse_u32(value).context("IPVS_DAEMON_ATTR_SYNC_ID")?)
            }
            IPVS_DAEMON_ATTR_SYNC_MAXLEN => {
                DaemonAttr::SyncMaxlen(parse_u16(value).context("IPVS_DAEMON_ATTR_SYNC_MAXLEN")?)
            }
            IPVS_DAEMON_ATTR_MCAST_GROUP => {
                let octets: [u8; 4] = value
                    .try_into()
                    .map_err(|_| DecodeError::invalid_ip_address(value.len()))
                    .context("IPVS_DAEMON_ATTR_MCAST_GROUP")?;
                DaemonAttr::McastGroup(Ipv4Addr::from(octets))
            }
            IPVS_DAEMON_ATTR_MCAST_GROUP6 => {
                let octets: [u8; 16] = value
                    .try_into()
                    .map_err(|_| DecodeError::invalid_ip_address(value.len()))
                    .context("IPVS_DAEMON_ATTR_MCAST_GROUP6")?;
                DaemonAttr::McastGroup6(Ipv6Addr::from(octets))
            }
            IPVS_DAEMON_ATTR_MCAST_PORT => {
                DaemonAttr::McastPort(parse_u16(value).context("IPVS_DAEMON_ATTR_MCAST_PORT")?)
            }
            IPVS_DAEMON_ATTR_MCAST_TTL => {
                DaemonAttr::McastTtl(parse_u8(value).context("IPVS_DAEMON_ATTR_MCAST_TTL")?)
            }
            _ => DaemonAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

fn state_number(role: SyncRole) -> u32 {
    match role {
        SyncRole::Master => IP_VS_STATE_MASTER,
        SyncRole::Backup => IP_VS_STATE_BACKUP,
    }
}

/// What NEW_DAEMON requires: state, interface and sync id; the kernel picks defaults for the
/// rest (multicast group 224.0.0.81, port 8848, TTL 1, packet size from the MTU).
pub fn start_attrs(daemon: &SyncDaemon) -> Vec<DaemonAttr> {
    vec![
        DaemonAttr::State(state_number(daemon.role)),
        DaemonAttr::McastIfn(daemon.interface.clone()),
        DaemonAttr::SyncId(daemon.sync_id),
    ]
}

/// What DEL_DAEMON requires: only the state says which daemon to stop.
pub fn stop_attrs(role: SyncRole) -> Vec<DaemonAttr> {
    vec![DaemonAttr::State(state_number(role))]
}

/// A daemon from a GET_DAEMON reply.
pub fn parse_entry(attrs: &[DaemonAttr]) -> Result<SyncDaemon, DecodeError> {
    let mut role = None;
    let mut interface = None;
    let mut sync_id = None;
    for attr in attrs {
        match attr {
            DaemonAttr::State(IP_VS_STATE_MASTER) => role = Some(SyncRole::Master),
            DaemonAttr::State(IP_VS_STATE_BACKUP) => role = Some(SyncRole::Backup),
            DaemonAttr::State(other) => {
                return Err(format!("unknown sync daemon state {other}").into())
            }
            DaemonAttr::McastIfn(name) => interface = Some(name.clone()),
            DaemonAttr::SyncId(id) => sync_id = Some(*id),
            _ => {}
        }
    }
    Ok(SyncDaemon {
        role: role.ok_or("daemon without IPVS_DAEMON_ATTR_STATE")?,
        interface: interface.ok_or("daemon without IPVS_DAEMON_ATTR_MCAST_IFN")?,
        sync_id: sync_id.ok_or("daemon without IPVS_DAEMON_ATTR_SYNC_ID")?,
    })
}
