//! A destination, the realserver of a service (`IPVS_DEST_ATTR_*`, nested in
//! `IPVS_CMD_ATTR_DEST`), and its conversion from and to [`Destination`].

use netlink_packet_core::{
    parse_u16, parse_u16_be, parse_u32, parse_u8, DecodeError, DefaultNla, Emitable, ErrorContext,
    Nla, NlaBuffer, Parseable,
};

use super::nla::{family_from_number, family_number, parse_nested, InetAddr};
use super::stats::{pick_stats, StatsAttr};
use crate::types::{Destination, DestinationEntry, DestinationKey, Family, ForwardMethod, Tunnel};

const IPVS_DEST_ATTR_ADDR: u16 = 1;
const IPVS_DEST_ATTR_PORT: u16 = 2;
const IPVS_DEST_ATTR_FWD_METHOD: u16 = 3;
const IPVS_DEST_ATTR_WEIGHT: u16 = 4;
const IPVS_DEST_ATTR_U_THRESH: u16 = 5;
const IPVS_DEST_ATTR_L_THRESH: u16 = 6;
const IPVS_DEST_ATTR_ACTIVE_CONNS: u16 = 7;
const IPVS_DEST_ATTR_INACT_CONNS: u16 = 8;
const IPVS_DEST_ATTR_PERSIST_CONNS: u16 = 9;
const IPVS_DEST_ATTR_STATS: u16 = 10;
const IPVS_DEST_ATTR_ADDR_FAMILY: u16 = 11;
const IPVS_DEST_ATTR_STATS64: u16 = 12;
const IPVS_DEST_ATTR_TUN_TYPE: u16 = 13;
const IPVS_DEST_ATTR_TUN_PORT: u16 = 14;
const IPVS_DEST_ATTR_TUN_FLAGS: u16 = 15;

// IP_VS_CONN_F_* forwarding methods, the low bits of a destination's connection flags.
const IP_VS_CONN_F_FWD_MASK: u32 = 0x0007;
const IP_VS_CONN_F_MASQ: u32 = 0x0000;
const IP_VS_CONN_F_LOCALNODE: u32 = 0x0001;
const IP_VS_CONN_F_TUNNEL: u32 = 0x0002;
const IP_VS_CONN_F_DROUTE: u32 = 0x0003;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestAttr {
    Addr(InetAddr),
    /// Host-order value; network order on the wire.
    Port(u16),
    /// `IP_VS_CONN_F_*` forwarding method.
    FwdMethod(u32),
    Weight(u32),
    UThresh(u32),
    LThresh(u32),
    ActiveConns(u32),
    InactConns(u32),
    PersistConns(u32),
    Stats(Vec<StatsAttr>),
    AddrFamily(u16),
    Stats64(Vec<StatsAttr>),
    TunType(u8),
    /// Host-order value; network order on the wire.
    TunPort(u16),
    TunFlags(u16),
    Other(DefaultNla),
}

impl Nla for DestAttr {
    fn value_len(&self) -> usize {
        match self {
            DestAttr::Addr(addr) => addr.as_bytes().len(),
            DestAttr::TunType(_) => 1,
            DestAttr::Port(_)
            | DestAttr::AddrFamily(_)
            | DestAttr::TunPort(_)
            | DestAttr::TunFlags(_) => 2,
            DestAttr::FwdMethod(_)
            | DestAttr::Weight(_)
            | DestAttr::UThresh(_)
            | DestAttr::LThresh(_)
            | DestAttr::ActiveConns(_)
            | DestAttr::InactConns(_)
            | DestAttr::PersistConns(_) => 4,
            DestAttr::Stats(nlas) | DestAttr::Stats64(nlas) => nlas.as_slice().buffer_len(),
            DestAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            DestAttr::Addr(_) => IPVS_DEST_ATTR_ADDR,
            DestAttr::Port(_) => IPVS_DEST_ATTR_PORT,
            DestAttr::FwdMethod(_) => IPVS_DEST_ATTR_FWD_METHOD,
            DestAttr::Weight(_) => IPVS_DEST_ATTR_WEIGHT,
            DestAttr::UThresh(_) => IPVS_DEST_ATTR_U_THRESH,
            DestAttr::LThresh(_) => IPVS_DEST_ATTR_L_THRESH,
            DestAttr::ActiveConns(_) => IPVS_DEST_ATTR_ACTIVE_CONNS,
            DestAttr::InactConns(_) => IPVS_DEST_ATTR_INACT_CONNS,
            DestAttr::PersistConns(_) => IPVS_DEST_ATTR_PERSIST_CONNS,
            DestAttr::Stats(_) => IPVS_DEST_ATTR_STATS,
            DestAttr::AddrFamily(_) => IPVS_DEST_ATTR_ADDR_FAMILY,
            DestAttr::Stats64(_) => IPVS_DEST_ATTR_STATS64,
            DestAttr::TunType(_) => IPVS_DEST_ATTR_TUN_TYPE,
            DestAttr::TunPort(_) => IPVS_DEST_ATTR_TUN_PORT,
            DestAttr::TunFlags(_) => IPVS_DEST_ATTR_TUN_FLAGS,
            DestAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            DestAttr::Addr(addr) => buffer.copy_from_slice(addr.as_bytes()),
            DestAttr::Port(v) | DestAttr::TunPort(v) => buffer.copy_from_slice(&v.to_be_bytes()),
            DestAttr::AddrFamily(v) | DestAttr::TunFlags(v) => {
                buffer.copy_from_slice(&v.to_ne_bytes())
            }
            DestAttr::TunType(v) => buffer[0] = *v,
            DestAttr::FwdMethod(v)
            | DestAttr::Weight(v)
            | DestAttr::UThresh(v)
            | DestAttr::LThresh(v)
            | DestAttr::ActiveConns(v)
            | DestAttr::InactConns(v)
            | DestAttr::PersistConns(v) => buffer.copy_from_slice(&v.to_ne_bytes()),
            DestAttr::Stats(nlas) | DestAttr::Stats64(nlas) => nlas.as_slice().emit(buffer),
            DestAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a> Parseable<NlaBuffer<&'a [u8]>> for DestAttr {
    fn parse(buf: &NlaBuffer<&'a [u8]>) -> Result<DestAttr, DecodeError> {
        let value = buf.value();
        let u32_of = |name: &'static str| parse_u32(value).context(name);
        Ok(match buf.kind() {
            IPVS_DEST_ATTR_ADDR => {
                DestAttr::Addr(InetAddr::new(value).context("IPVS_DEST_ATTR_ADDR")?)
            }
            IPVS_DEST_ATTR_PORT => {
                DestAttr::Port(parse_u16_be(value).context("IPVS_DEST_ATTR_PORT")?)
            }
            IPVS_DEST_ATTR_FWD_METHOD => DestAttr::FwdMethod(u32_of("IPVS_DEST_ATTR_FWD_METHOD")?),
            IPVS_DEST_ATTR_WEIGHT => DestAttr::Weight(u32_of("IPVS_DEST_ATTR_WEIGHT")?),
            IPVS_DEST_ATTR_U_THRESH => DestAttr::UThresh(u32_of("IPVS_DEST_ATTR_U_THRESH")?),
            IPVS_DEST_ATTR_L_THRESH => DestAttr::LThresh(u32_of("IPVS_DEST_ATTR_L_THRESH")?),
            IPVS_DEST_ATTR_ACTIVE_CONNS => {
                DestAttr::ActiveConns(u32_of("IPVS_DEST_ATTR_ACTIVE_CONNS")?)
            }
            IPVS_DEST_ATTR_INACT_CONNS => {
                DestAttr::InactConns(u32_of("IPVS_DEST_ATTR_INACT_CONNS")?)
            }
            IPVS_DEST_ATTR_PERSIST_CONNS => {
                DestAttr::PersistConns(u32_of("IPVS_DEST_ATTR_PERSIST_CONNS")?)
            }
            IPVS_DEST_ATTR_STATS => {
                DestAttr::Stats(parse_nested(value).context("IPVS_DEST_ATTR_STATS")?)
            }
            IPVS_DEST_ATTR_ADDR_FAMILY => {
                DestAttr::AddrFamily(parse_u16(value).context("IPVS_DEST_ATTR_ADDR_FAMILY")?)
            }
            IPVS_DEST_ATTR_STATS64 => {
                DestAttr::Stats64(parse_nested(value).context("IPVS_DEST_ATTR_STATS64")?)
            }
            IPVS_DEST_ATTR_TUN_TYPE => {
                DestAttr::TunType(parse_u8(value).context("IPVS_DEST_ATTR_TUN_TYPE")?)
            }
            IPVS_DEST_ATTR_TUN_PORT => {
                DestAttr::TunPort(parse_u16_be(value).context("IPVS_DEST_ATTR_TUN_PORT")?)
            }
            IPVS_DEST_ATTR_TUN_FLAGS => {
                DestAttr::TunFlags(parse_u16(value).context("IPVS_DEST_ATTR_TUN_FLAGS")?)
            }
            _ => DestAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

fn forward_number(forward: ForwardMethod) -> u32 {
    match forward {
        ForwardMethod::Masq => IP_VS_CONN_F_MASQ,
        ForwardMethod::Local => IP_VS_CONN_F_LOCALNODE,
        ForwardMethod::Tunnel => IP_VS_CONN_F_TUNNEL,
        ForwardMethod::Route => IP_VS_CONN_F_DROUTE,
    }
}

fn forward_from_number(number: u32) -> Result<ForwardMethod, DecodeError> {
    match number & IP_VS_CONN_F_FWD_MASK {
        IP_VS_CONN_F_MASQ => Ok(ForwardMethod::Masq),
        IP_VS_CONN_F_LOCALNODE => Ok(ForwardMethod::Local),
        IP_VS_CONN_F_TUNNEL => Ok(ForwardMethod::Tunnel),
        IP_VS_CONN_F_DROUTE => Ok(ForwardMethod::Route),
        other => Err(format!("unknown forwarding method {other}").into()),
    }
}

/// The attributes that name a destination: what DEL_DEST needs. The family is sent so that
/// an IPv4 destination of an IPv6 service (tunnel only) is found too.
pub fn key_attrs(key: &DestinationKey) -> Vec<DestAttr> {
    let mut attrs = Vec::with_capacity(10);
    push_key(&mut attrs, key);
    attrs
}

fn push_key(attrs: &mut Vec<DestAttr>, key: &DestinationKey) {
    attrs.push(DestAttr::AddrFamily(family_number(Family::of(&key.addr))));
    attrs.push(DestAttr::Addr(key.addr.into()));
    attrs.push(DestAttr::Port(key.port));
}

/// Every attribute NEW_DEST and SET_DEST require, plus the tunnel settings (kernels before 5.3
/// ignore those).
pub fn destination_attrs(destination: &Destination) -> Vec<DestAttr> {
    let mut attrs = Vec::with_capacity(10);
    push_key(&mut attrs, &destination.key());
    attrs.extend([
        DestAttr::FwdMethod(forward_number(destination.forward)),
        DestAttr::Weight(destination.weight),
        DestAttr::UThresh(destination.upper_threshold),
        DestAttr::LThresh(destination.lower_threshold),
        DestAttr::TunType(destination.tunnel.kind),
        DestAttr::TunPort(destination.tunnel.port),
        DestAttr::TunFlags(destination.tunnel.flags),
    ]);
    attrs
}

/// A destination from a GET_DEST reply. `service_family` stands in for kernels that do not
/// report the destination's own family.
pub fn parse_entry(
    attrs: &[DestAttr],
    service_family: Family,
) -> Result<DestinationEntry, DecodeError> {
    let mut addr = None;
    let mut port = None;
    let mut family = service_family;
    let mut forward = None;
    let mut weight = None;
    let (mut active_conns, mut inactive_conns, mut persistent_conns) = (0, 0, 0);
    let (mut upper, mut lower) = (0, 0);
    let mut tunnel = Tunnel::default();
    let (mut stats32, mut stats64) = (None, None);
    for attr in attrs {
        match attr {
            DestAttr::Addr(v) => addr = Some(*v),
            DestAttr::Port(v) => port = Some(*v),
            DestAttr::AddrFamily(v) => family = family_from_number(*v)?,
            DestAttr::FwdMethod(v) => forward = Some(forward_from_number(*v)?),
            DestAttr::Weight(v) => weight = Some(*v),
            DestAttr::UThresh(v) => upper = *v,
            DestAttr::LThresh(v) => lower = *v,
            DestAttr::ActiveConns(v) => active_conns = *v,
            DestAttr::InactConns(v) => inactive_conns = *v,
            DestAttr::PersistConns(v) => persistent_conns = *v,
            DestAttr::TunType(v) => tunnel.kind = *v,
            DestAttr::TunPort(v) => tunnel.port = *v,
            DestAttr::TunFlags(v) => tunnel.flags = *v,
            DestAttr::Stats(v) => stats32 = Some(v.as_slice()),
            DestAttr::Stats64(v) => stats64 = Some(v.as_slice()),
            DestAttr::Other(_) => {}
        }
    }
    Ok(DestinationEntry {
        destination: Destination {
            addr: addr
                .ok_or("destination without IPVS_DEST_ATTR_ADDR")?
                .to_ip(family)?,
            port: port.ok_or("destination without IPVS_DEST_ATTR_PORT")?,
            forward: forward.ok_or("destination without IPVS_DEST_ATTR_FWD_METHOD")?,
            weight: weight.ok_or("destination without IPVS_DEST_ATTR_WEIGHT")?,
            upper_threshold: upper,
            lower_threshold: lower,
            tunnel,
        },
        active_conns,
        inactive_conns,
        persistent_conns,
        stats: pick_stats(stats64, stats32),
    })
}
