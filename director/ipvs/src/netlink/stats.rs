//! Traffic counters (`IPVS_STATS_ATTR_*`), nested in services and destinations twice: `STATS`
//! with 32-bit counts and rates (bytes are 64-bit there too), and `STATS64` with every value
//! 64-bit. The same attribute numbers serve both blocks; the width is the value's length.

use netlink_packet_core::{
    parse_u32, parse_u64, DecodeError, DefaultNla, ErrorContext, Nla, NlaBuffer, Parseable,
};

use crate::types::Stats;

const IPVS_STATS_ATTR_CONNS: u16 = 1;
const IPVS_STATS_ATTR_INPKTS: u16 = 2;
const IPVS_STATS_ATTR_OUTPKTS: u16 = 3;
const IPVS_STATS_ATTR_INBYTES: u16 = 4;
const IPVS_STATS_ATTR_OUTBYTES: u16 = 5;
const IPVS_STATS_ATTR_CPS: u16 = 6;
const IPVS_STATS_ATTR_INPPS: u16 = 7;
const IPVS_STATS_ATTR_OUTPPS: u16 = 8;
const IPVS_STATS_ATTR_INBPS: u16 = 9;
const IPVS_STATS_ATTR_OUTBPS: u16 = 10;
/// Empty attribute the kernel inserts so a following u64 is 8-byte aligned (only on
/// architectures without cheap unaligned access).
const IPVS_STATS_ATTR_PAD: u16 = 11;

/// One counter as the kernel sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    U32(u32),
    U64(u64),
}

impl Counter {
    pub fn get(self) -> u64 {
        match self {
            Counter::U32(v) => u64::from(v),
            Counter::U64(v) => v,
        }
    }

    fn len(self) -> usize {
        match self {
            Counter::U32(_) => 4,
            Counter::U64(_) => 8,
        }
    }

    fn emit(self, buffer: &mut [u8]) {
        match self {
            Counter::U32(v) => buffer.copy_from_slice(&v.to_ne_bytes()),
            Counter::U64(v) => buffer.copy_from_slice(&v.to_ne_bytes()),
        }
    }

    fn parse(value: &[u8]) -> Result<Counter, DecodeError> {
        match value.len() {
            4 => parse_u32(value).map(Counter::U32),
            8 => parse_u64(value).map(Counter::U64),
            other => Err(DecodeError::invalid_number(8, other)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsAttr {
    Conns(Counter),
    InPkts(Counter),
    OutPkts(Counter),
    InBytes(Counter),
    OutBytes(Counter),
    Cps(Counter),
    InPps(Counter),
    OutPps(Counter),
    InBps(Counter),
    OutBps(Counter),
    Pad,
    Other(DefaultNla),
}

impl StatsAttr {
    fn counter(&self) -> Option<Counter> {
        match self {
            StatsAttr::Conns(c)
            | StatsAttr::InPkts(c)
            | StatsAttr::OutPkts(c)
            | StatsAttr::InBytes(c)
            | StatsAttr::OutBytes(c)
            | StatsAttr::Cps(c)
            | StatsAttr::InPps(c)
            | StatsAttr::OutPps(c)
            | StatsAttr::InBps(c)
            | StatsAttr::OutBps(c) => Some(*c),
            StatsAttr::Pad | StatsAttr::Other(_) => None,
        }
    }
}

impl Nla for StatsAttr {
    fn value_len(&self) -> usize {
        match self {
            StatsAttr::Pad => 0,
            StatsAttr::Other(nla) => nla.value_len(),
            counter => counter.counter().map_or(0, Counter::len),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            StatsAttr::Conns(_) => IPVS_STATS_ATTR_CONNS,
            StatsAttr::InPkts(_) => IPVS_STATS_ATTR_INPKTS,
            StatsAttr::OutPkts(_) => IPVS_STATS_ATTR_OUTPKTS,
            StatsAttr::InBytes(_) => IPVS_STATS_ATTR_INBYTES,
            StatsAttr::OutBytes(_) => IPVS_STATS_ATTR_OUTBYTES,
            StatsAttr::Cps(_) => IPVS_STATS_ATTR_CPS,
            StatsAttr::InPps(_) => IPVS_STATS_ATTR_INPPS,
            StatsAttr::OutPps(_) => IPVS_STATS_ATTR_OUTPPS,
            StatsAttr::InBps(_) => IPVS_STATS_ATTR_INBPS,
            StatsAttr::OutBps(_) => IPVS_STATS_ATTR_OUTBPS,
            StatsAttr::Pad => IPVS_STATS_ATTR_PAD,
            StatsAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            StatsAttr::Other(nla) => nla.emit_value(buffer),
            counter => {
                if let Some(c) = counter.counter() {
                    c.emit(buffer)
                }
            }
        }
    }
}

impl<'a> Parseable<NlaBuffer<&'a [u8]>> for StatsAttr {
    fn parse(buf: &NlaBuffer<&'a [u8]>) -> Result<StatsAttr, DecodeError> {
        let value = buf.value();
        let counter =
            || Counter::parse(value).with_context(|| format!("stats attribute {}", buf.kind()));
        Ok(match buf.kind() {
            IPVS_STATS_ATTR_CONNS => StatsAttr::Conns(counter()?),
            IPVS_STATS_ATTR_INPKTS => StatsAttr::InPkts(counter()?),
            IPVS_STATS_ATTR_OUTPKTS => StatsAttr::OutPkts(counter()?),
            IPVS_STATS_ATTR_INBYTES => StatsAttr::InBytes(counter()?),
            IPVS_STATS_ATTR_OUTBYTES => StatsAttr::OutBytes(counter()?),
            IPVS_STATS_ATTR_CPS => StatsAttr::Cps(counter()?),
            IPVS_STATS_ATTR_INPPS => StatsAttr::InPps(counter()?),
            IPVS_STATS_ATTR_OUTPPS => StatsAttr::OutPps(counter()?),
            IPVS_STATS_ATTR_INBPS => StatsAttr::InBps(counter()?),
            IPVS_STATS_ATTR_OUTBPS => StatsAttr::OutBps(counter()?),
            IPVS_STATS_ATTR_PAD => StatsAttr::Pad,
            _ => StatsAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// The counters of one block.
pub fn to_stats(attrs: &[StatsAttr]) -> Stats {
    let mut stats = Stats::default();
    for attr in attrs {
        let Some(value) = attr.counter().map(Counter::get) else {
            continue;
        };
        let field = match attr {
            StatsAttr::Conns(_) => &mut stats.conns,
            StatsAttr::InPkts(_) => &mut stats.in_packets,
            StatsAttr::OutPkts(_) => &mut stats.out_packets,
            StatsAttr::InBytes(_) => &mut stats.in_bytes,
            StatsAttr::OutBytes(_) => &mut stats.out_bytes,
            StatsAttr::Cps(_) => &mut stats.cps,
            StatsAttr::InPps(_) => &mut stats.in_pps,
            StatsAttr::OutPps(_) => &mut stats.out_pps,
            StatsAttr::InBps(_) => &mut stats.in_bps,
            StatsAttr::OutBps(_) => &mut stats.out_bps,
            StatsAttr::Pad | StatsAttr::Other(_) => continue,
        };
        *field = value;
    }
    stats
}

/// Prefers the 64-bit block; kernels before 4.1 send only the 32-bit one.
pub fn pick_stats(stats64: Option<&[StatsAttr]>, stats32: Option<&[StatsAttr]>) -> Stats {
    stats64.or(stats32).map(to_stats).unwrap_or_default()
}
