//! The domain words shared by the director, the agent and lbctl, with their validation.

use std::fmt;
use std::str::FromStr;

/// Largest weight an operator may set; the kernel takes an i32 but ipvsadm caps at 65535.
pub const MAX_WEIGHT: u32 = 65535;

/// Transport protocol of a virtual service, as in `ipvsadm -t/-u/--sctp-service`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            _ => Err("unknown protocol: use tcp, udp or sctp".into()),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}

/// How the director forwards packets to a realserver (`ipvsadm -g/-m/-i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Forward {
    /// Direct routing (`-g`, "Route"): the seed's LVS-DR.
    Dr,
    /// NAT (`-m`, "Masq").
    Nat,
    /// IP-in-IP tunnel (`-i`, "Tunnel").
    Tunnel,
}

impl FromStr for Forward {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dr" => Ok(Forward::Dr),
            "nat" => Ok(Forward::Nat),
            "tunnel" => Ok(Forward::Tunnel),
            _ => Err("unknown forward method: use dr, nat or tunnel".into()),
        }
    }
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Forward::Dr => "dr",
            Forward::Nat => "nat",
            Forward::Tunnel => "tunnel",
        })
    }
}

/// Checks a realserver or service name: a hostname label's characters (letters, digits, `-`,
/// `_`, `.`), 1 to 63 bytes, not starting with `-` or `.`.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 63 {
        return Err(format!(
            "is {} bytes long; at most 63 are allowed",
            name.len()
        ));
    }
    if name.starts_with(['-', '.']) {
        return Err("must start with a letter or digit".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "contains {c:?}: use letters, digits, '-', '_' and '.' only"
        ));
    }
    Ok(())
}

/// Parses a name with [`validate_name`].
pub fn parse_name(text: &str) -> Result<String, String> {
    validate_name(text).map(|()| text.to_owned())
}

/// Checks a weight against `0..=MAX_WEIGHT`.
pub fn validate_weight(weight: u32) -> Result<u32, String> {
    if weight > MAX_WEIGHT {
        Err(format!(
            "weight {weight} is out of range: use 0 to {MAX_WEIGHT}"
        ))
    } else {
        Ok(weight)
    }
}

/// Parses a unicast IP address (IPv4 or IPv6): not unspecified, not multicast.
pub fn parse_unicast(text: &str) -> Result<std::net::IpAddr, String> {
    let ip: std::net::IpAddr = text
        .parse()
        .map_err(|_| "is not an IP address: write for example \"129.129.190.54\"".to_string())?;
    if ip.is_unspecified() || ip.is_multicast() {
        return Err("must be a unicast address".into());
    }
    Ok(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("llc5").is_ok());
        assert!(validate_name("llc5.psi.ch").is_ok());
        for bad in ["", "-x", ".x", "a b", "a/b", "ä", &"x".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn words_round_trip() {
        for p in ["tcp", "udp", "sctp"] {
            assert_eq!(p.parse::<Protocol>().unwrap().to_string(), p);
        }
        for f in ["dr", "nat", "tunnel"] {
            assert_eq!(f.parse::<Forward>().unwrap().to_string(), f);
        }
        assert!("TCP".parse::<Protocol>().is_err());
    }

    #[test]
    fn addresses_and_weights() {
        assert!(parse_unicast("10.0.0.1").is_ok());
        assert!(parse_unicast("::1").is_ok());
        assert!(parse_unicast("0.0.0.0").is_err());
        assert!(parse_unicast("224.0.0.1").is_err());
        assert!(parse_unicast("10.0.0").is_err());
        assert_eq!(validate_weight(65535), Ok(65535));
        assert!(validate_weight(65536).is_err());
    }
}
