//! Small pieces shared by the attribute enums: nested blocks and the kernel's address field.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{DecodeError, NlaBuffer, NlasIterator, Parseable};

use crate::types::Family;

pub(super) const AF_INET: u16 = libc::AF_INET as u16;
pub(super) const AF_INET6: u16 = libc::AF_INET6 as u16;

/// Parses every attribute of a nested block.
pub(super) fn parse_nested<T>(value: &[u8]) -> Result<Vec<T>, DecodeError>
where
    for<'a> T: Parseable<NlaBuffer<&'a [u8]>>,
{
    NlasIterator::new(value)
        .map(|nla| nla.and_then(|nla| T::parse(&nla)))
        .collect()
}

/// The kernel's `union nf_inet_addr`: it sends all 16 bytes even for IPv4 (the address in the
/// first four) and accepts 4 or 16. Kept raw because only the address family attribute beside
/// it says which it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InetAddr {
    len: u8,
    bytes: [u8; 16],
}

impl InetAddr {
    pub fn new(value: &[u8]) -> Result<InetAddr, DecodeError> {
        if value.len() > 16 {
            return Err(DecodeError::invalid_ip_address(value.len()));
        }
        let mut bytes = [0; 16];
        bytes[..value.len()].copy_from_slice(value);
        Ok(InetAddr {
            len: value.len() as u8,
            bytes,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The address, read as `family` says.
    pub fn to_ip(self, family: Family) -> Result<IpAddr, DecodeError> {
        match family {
            Family::Inet if self.len >= 4 => Ok(IpAddr::V4(Ipv4Addr::new(
                self.bytes[0],
                self.bytes[1],
                self.bytes[2],
                self.bytes[3],
            ))),
            Family::Inet6 if self.len == 16 => Ok(IpAddr::V6(Ipv6Addr::from(self.bytes))),
            _ => Err(DecodeError::invalid_ip_address(usize::from(self.len))),
        }
    }
}

impl From<IpAddr> for InetAddr {
    /// Exactly as long as the address: 4 bytes for IPv4, 16 for IPv6.
    fn from(ip: IpAddr) -> InetAddr {
        let mut bytes = [0; 16];
        let len = match ip {
            IpAddr::V4(v4) => {
                bytes[..4].copy_from_slice(&v4.octets());
                4
            }
            IpAddr::V6(v6) => {
                bytes = v6.octets();
                16
            }
        };
        InetAddr { len, bytes }
    }
}

pub(super) fn family_number(family: Family) -> u16 {
    match family {
        Family::Inet => AF_INET,
        Family::Inet6 => AF_INET6,
    }
}

pub(super) fn family_from_number(af: u16) -> Result<Family, DecodeError> {
    match af {
        AF_INET => Ok(Family::Inet),
        AF_INET6 => Ok(Family::Inet6),
        other => Err(format!("unknown address family {other}").into()),
    }
}
