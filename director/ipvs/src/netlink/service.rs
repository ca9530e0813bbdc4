//! A virtual service (`IPVS_SVC_ATTR_*`, nested in `IPVS_CMD_ATTR_SERVICE`) and its conversion
//! from and to [`Service`].

use netlink_packet_core::{
    parse_string, parse_u16, parse_u16_be, parse_u32, DecodeError, DefaultNla, ErrorContext, Nla,
    NlaBuffer, Parseable,
};
use tracing::warn;

use super::nla::{family_from_number, family_number, parse_nested, InetAddr};
use super::stats::{pick_stats, StatsAttr};
use crate::types::{Protocol, Service, ServiceEntry, ServiceFlags, ServiceKey};

const IPVS_SVC_ATTR_AF: u16 = 1;
const IPVS_SVC_ATTR_PROTOCOL: u16 = 2;
const IPVS_SVC_ATTR_ADDR: u16 = 3;
const IPVS_SVC_ATTR_PORT: u16 = 4;
const IPVS_SVC_ATTR_FWMARK: u16 = 5;
const IPVS_SVC_ATTR_SCHED_NAME: u16 = 6;
const IPVS_SVC_ATTR_FLAGS: u16 = 7;
const IPVS_SVC_ATTR_TIMEOUT: u16 = 8;
const IPVS_SVC_ATTR_NETMASK: u16 = 9;
const IPVS_SVC_ATTR_STATS: u16 = 10;
const IPVS_SVC_ATTR_PE_NAME: u16 = 11;
const IPVS_SVC_ATTR_STATS64: u16 = 12;

const IPPROTO_TCP: u16 = libc::IPPROTO_TCP as u16;
const IPPROTO_UDP: u16 = libc::IPPROTO_UDP as u16;
const IPPROTO_SCTP: u16 = libc::IPPROTO_SCTP as u16;

/// `struct ip_vs_flags`: the kernel sets the bits of `flags` selected by `mask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagsAttr {
    pub flags: u32,
    pub mask: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAttr {
    Af(u16),
    Protocol(u16),
    Addr(InetAddr),
    /// Host-order value; network order on the wire.
    Port(u16),
    FwMark(u32),
    SchedName(String),
    Flags(FlagsAttr),
    /// Persistence timeout, seconds.
    Timeout(u32),
    /// The kernel's `__be32 netmask`, raw: an IPv4 mask in network order, or for IPv6 the
    /// prefix length as a host-order number.
    Netmask([u8; 4]),
    Stats(Vec<StatsAttr>),
    PeName(String),
    Stats64(Vec<StatsAttr>),
    Other(DefaultNla),
}

impl Nla for ServiceAttr {
    fn value_len(&self) -> usize {
        match self {
            ServiceAttr::Af(_) | ServiceAttr::Protocol(_) | ServiceAttr::Port(_) => 2,
            ServiceAttr::Addr(addr) => addr.as_bytes().len(),
            ServiceAttr::FwMark(_) | ServiceAttr::Timeout(_) | ServiceAttr::Netmask(_) => 4,
            ServiceAttr::SchedName(name) | ServiceAttr::PeName(name) => name.len() + 1,
            ServiceAttr::Flags(_) => 8,
            ServiceAttr::Stats(nlas) | ServiceAttr::Stats64(nlas) => {
                netlink_packet_core::Emitable::buffer_len(&nlas.as_slice())
            }
            ServiceAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            ServiceAttr::Af(_) => IPVS_SVC_ATTR_AF,
            ServiceAttr::Protocol(_) => IPVS_SVC_ATTR_PROTOCOL,
            ServiceAttr::Addr(_) => IPVS_SVC_ATTR_ADDR,
            ServiceAttr::Port(_) => IPVS_SVC_ATTR_PORT,
            ServiceAttr::FwMark(_) => IPVS_SVC_ATTR_FWMARK,
            ServiceAttr::SchedName(_) => IPVS_SVC_ATTR_SCHED_NAME,
            ServiceAttr::Flags(_) => IPVS_SVC_ATTR_FLAGS,
            ServiceAttr::Timeout(_) => IPVS_SVC_ATTR_TIMEOUT,
            ServiceAttr::Netmask(_) => IPVS_SVC_ATTR_NETMASK,
            ServiceAttr::Stats(_) => IPVS_SVC_ATTR_STATS,
            ServiceAttr::PeName(_) => IPVS_SVC_ATTR_PE_NAME,
            ServiceAttr::Stats64(_) => IPVS_SVC_ATTR_STATS64,
            ServiceAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            ServiceAttr::Af(v) | ServiceAttr::Protocol(v) => {
                buffer.copy_from_slice(&v.to_ne_bytes())
            }
            ServiceAttr::Port(port) => buffer.copy_from_slice(&port.to_be_bytes()),
            ServiceAttr::Addr(addr) => buffer.copy_from_slice(addr.as_bytes()),
            ServiceAttr::FwMark(v) | ServiceAttr::Timeout(v) => {
                buffer.copy_from_slice(&v.to_ne_bytes())
            }
            ServiceAttr::Netmask(raw) => buffer.copy_from_slice(raw),
            ServiceAttr::SchedName(name) | ServiceAttr::PeName(name) => {
                let (text, nul) = buffer.split_at_mut(name.len());
                text.copy_from_slice(name.as_bytes());
                nul.fill(0);
            }
            ServiceAttr::Flags(f) => {
                buffer[..4].copy_from_slice(&f.flags.to_ne_bytes());
                buffer[4..].copy_from_slice(&f.mask.to_ne_bytes());
            }
            ServiceAttr::Stats(nlas) | ServiceAttr::Stats64(nlas) => {
                netlink_packet_core::Emitable::emit(&nlas.as_slice(), buffer)
            }
            ServiceAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a> Parseable<NlaBuffer<&'a [u8]>> for ServiceAttr {
    fn parse(buf: &NlaBuffer<&'a [u8]>) -> Result<ServiceAttr, DecodeError> {
        let value = buf.value();
        Ok(match buf.kind() {
            IPVS_SVC_ATTR_AF => ServiceAttr::Af(parse_u16(value).context("IPVS_SVC_ATTR_AF")?),
            IPVS_SVC_ATTR_PROTOCOL => {
                ServiceAttr::Protocol(parse_u16(value).context("IPVS_SVC_ATTR_PROTOCOL")?)
            }
            IPVS_SVC_ATTR_ADDR => {
                ServiceAttr::Addr(InetAddr::new(value).context("IPVS_SVC_ATTR_ADDR")?)
            }
            IPVS_SVC_ATTR_PORT => {
                ServiceAttr::Port(parse_u16_be(value).context("IPVS_SVC_ATTR_PORT")?)
            }
            IPVS_SVC_ATTR_FWMARK => {
                ServiceAttr::FwMark(parse_u32(value).context("IPVS_SVC_ATTR_FWMARK")?)
            }
            IPVS_SVC_ATTR_SCHED_NAME => {
                ServiceAttr::SchedName(parse_string(value).context("IPVS_SVC_ATTR_SCHED_NAME")?)
            }
            IPVS_SVC_ATTR_FLAGS => {
                if value.len() != 8 {
                    return Err(DecodeError::invalid_number(8, value.len()))
                        .context("IPVS_SVC_ATTR_FLAGS");
                }
                ServiceAttr::Flags(FlagsAttr {
                    flags: parse_u32(&value[..4])?,
                    mask: parse_u32(&value[4..])?,
                })
            }
            IPVS_SVC_ATTR_TIMEOUT => {
                ServiceAttr::Timeout(parse_u32(value).context("IPVS_SVC_ATTR_TIMEOUT")?)
            }
            IPVS_SVC_ATTR_NETMASK => ServiceAttr::Netmask(
                value
                    .try_into()
                    .map_err(|_| DecodeError::invalid_number(4, value.len()))
                    .context("IPVS_SVC_ATTR_NETMASK")?,
            ),
            IPVS_SVC_ATTR_STATS => {
                ServiceAttr::Stats(parse_nested(value).context("IPVS_SVC_ATTR_STATS")?)
            }
            IPVS_SVC_ATTR_PE_NAME => {
                ServiceAttr::PeName(parse_string(value).context("IPVS_SVC_ATTR_PE_NAME")?)
            }
            IPVS_SVC_ATTR_STATS64 => {
                ServiceAttr::Stats64(parse_nested(value).context("IPVS_SVC_ATTR_STATS64")?)
            }
            _ => ServiceAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

fn protocol_number(protocol: Protocol) -> u16 {
    match protocol {
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
        Protocol::Sctp => IPPROTO_SCTP,
    }
}

/// The attributes that name a service: what DEL_SERVICE and the destination commands need.
pub fn key_attrs(key: &ServiceKey) -> Vec<ServiceAttr> {
    let mut attrs = Vec::with_capacity(9);
    push_key(&mut attrs, key);
    attrs
}

fn push_key(attrs: &mut Vec<ServiceAttr>, key: &ServiceKey) {
    attrs.push(ServiceAttr::Af(family_number(key.family())));
    match *key {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => {
            attrs.push(ServiceAttr::Protocol(protocol_number(protocol)));
            attrs.push(ServiceAttr::Addr(addr.into()));
            attrs.push(ServiceAttr::Port(port));
        }
        ServiceKey::FwMark { mark, .. } => attrs.push(ServiceAttr::FwMark(mark)),
    }
}

/// Every attribute NEW_SERVICE and SET_SERVICE require, in the order ipvsadm sends them.
pub fn service_attrs(service: &Service) -> Vec<ServiceAttr> {
    let mut attrs = Vec::with_capacity(8);
    push_key(&mut attrs, &service.key);
    attrs.push(ServiceAttr::SchedName(service.scheduler.clone()));
    attrs.push(ServiceAttr::Flags(FlagsAttr {
        // All bits replaced (mask ~0), as ipvsadm does; HASHED is the kernel's to manage.
        flags: service.flags.0 & !ServiceFlags::HASHED,
        mask: u32::MAX,
    }));
    attrs.push(ServiceAttr::Timeout(service.timeout));
    attrs.push(ServiceAttr::Netmask(netmask_bytes(
        &service.key,
        service.netmask,
    )));
    attrs
}

fn netmask_bytes(key: &ServiceKey, netmask: u32) -> [u8; 4] {
    match key.family() {
        crate::types::Family::Inet => netmask.to_be_bytes(),
        crate::types::Family::Inet6 => netmask.to_ne_bytes(),
    }
}

/// A service from a GET_SERVICE reply. `Ok(None)` for one this crate cannot name (a protocol
/// other than TCP, UDP and SCTP): it belongs to someone else and is skipped with a warning.
pub fn parse_entry(attrs: &[ServiceAttr]) -> Result<Option<ServiceEntry>, DecodeError> {
    let mut af = None;
    let mut protocol = None;
    let mut addr = None;
    let mut port = None;
    let mut fwmark = None;
    let mut scheduler = None;
    let mut flags = 0;
    let mut timeout = 0;
    let mut netmask = None;
    let mut stats32 = None;
    let mut stats64 = None;
    for attr in attrs {
        match attr {
            ServiceAttr::Af(v) => af = Some(*v),
            ServiceAttr::Protocol(v) => protocol = Some(*v),
            ServiceAttr::Addr(v) => addr = Some(*v),
            ServiceAttr::Port(v) => port = Some(*v),
            ServiceAttr::FwMark(v) => fwmark = Some(*v),
            ServiceAttr::SchedName(v) => scheduler = Some(v.clone()),
            ServiceAttr::Flags(f) => flags = f.flags & !ServiceFlags::HASHED,
            ServiceAttr::Timeout(v) => timeout = *v,
            ServiceAttr::Netmask(v) => netmask = Some(*v),
            ServiceAttr::Stats(v) => stats32 = Some(v.as_slice()),
            ServiceAttr::Stats64(v) => stats64 = Some(v.as_slice()),
            ServiceAttr::PeName(_) | ServiceAttr::Other(_) => {}
        }
    }
    let family = family_from_number(af.ok_or("service without IPVS_SVC_ATTR_AF")?)?;
    let key = match fwmark {
        Some(mark) if mark != 0 => ServiceKey::FwMark { family, mark },
        _ => {
            let number = protocol.ok_or("service without IPVS_SVC_ATTR_PROTOCOL")?;
            let protocol = match number {
                IPPROTO_TCP => Protocol::Tcp,
                IPPROTO_UDP => Protocol::Udp,
                IPPROTO_SCTP => Protocol::Sctp,
                other => {
                    warn!(
                        protocol = other,
                        "skipping an IPVS service of an unknown protocol"
                    );
                    return Ok(None);
                }
            };
            ServiceKey::Addr {
                protocol,
                addr: addr
                    .ok_or("service without IPVS_SVC_ATTR_ADDR")?
                    .to_ip(family)?,
                port: port.ok_or("service without IPVS_SVC_ATTR_PORT")?,
            }
        }
    };
    let raw_netmask = netmask.ok_or("service without IPVS_SVC_ATTR_NETMASK")?;
    let netmask = match family {
        crate::types::Family::Inet => u32::from_be_bytes(raw_netmask),
        crate::types::Family::Inet6 => u32::from_ne_bytes(raw_netmask),
    };
    Ok(Some(ServiceEntry {
        service: Service {
            key,
            scheduler: scheduler.ok_or("service without IPVS_SVC_ATTR_SCHED_NAME")?,
            flags: ServiceFlags(flags),
            timeout,
            netmask,
        },
        stats: pick_stats(stats64, stats32),
    }))
}
