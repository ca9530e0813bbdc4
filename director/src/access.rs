//! Who may do what. Whoever can register a realserver receives the cluster's SSH traffic, and
//! whoever can drain one can take the service down, so:
//! - with `[tls]`, every caller presents a client certificate signed by the cluster CA; an agent
//!   may register, heartbeat and deregister only under the name its certificate carries, and only
//!   a listed realserver from its listed address;
//! - admin calls (drain, undrain, weight) need a certificate named in `admins`, or the local admin
//!   socket as root;
//! - without `[tls]` the director listens on loopback only (or, with `insecure = true`, anywhere,
//!   with a warning), and callers are not authenticated.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use rustls::pki_types::CertificateDer;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Status};

use crate::tls::TlsPeer;

/// An address or a network, as `[[realserver]] address` takes it: "10.0.0.11" or "10.0.0.0/24".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    pub network: IpAddr,
    pub prefix: u8,
}

impl AddressRange {
    pub fn parse(text: &str) -> Result<AddressRange, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| "is not an address or network: write \"10.0.0.11\" or \"10.0.0.0/24\"")?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("has a prefix length that is not 0..={max}"))?,
        };
        Ok(AddressRange { network, prefix })
    }

    pub fn contains(&self, addr: &IpAddr) -> bool {
        match (self.network, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(*a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(*a) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = if self.network.is_ipv4() { 32 } else { 128 };
        if self.prefix == max {
            write!(f, "{}", self.network)
        } else {
            write!(f, "{}/{}", self.network, self.prefix)
        }
    }
}

/// One `[[realserver]]`: a name that may register, and where from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedRealServer {
    pub name: String,
    pub address: AddressRange,
    /// Where its connections may come from, when not from the address it registers (an agent
    /// that reaches the director over another network). None: only from that address.
    pub source: Option<AddressRange>,
}

/// Who is calling, as far as the transport can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A TLS client; the DNS names of its certificate, and where it connected from.
    Certificate {
        names: Vec<String>,
        peer: Option<SocketAddr>,
    },
    /// A process on the admin socket.
    AdminSocket { uid: u32 },
    /// No TLS: only the peer address is known.
    Unauthenticated { peer: Option<SocketAddr> },
}

impl Caller {
    pub fn of<T>(request: &Request<T>) -> Caller {
        let names = |chain: &[CertificateDer<'_>]| {
            chain
                .first()
                .map(|der| certificate_names(der.as_ref()))
                .unwrap_or_default()
        };
        if let Some(tls) = request.extensions().get::<TlsPeer>() {
            return Caller::Certificate {
                names: names(&tls.certificates),
                peer: Some(tls.addr),
            };
        }
        // tonic's own TLS (`ServerTlsConfig`), for a server built without the acceptor.
        if let Some(certs) = request.peer_certs() {
            return Caller::Certificate {
                names: names(&certs),
                peer: request.remote_addr(),
            };
        }
        if let Some(info) = request.extensions().get::<UdsConnectInfo>() {
            // No credentials would be a kernel oddity: treat it as nobody.
            let uid = info.peer_cred.map_or(u32::MAX, |c| c.uid());
            return Caller::AdminSocket { uid };
        }
        Caller::Unauthenticated {
            peer: request.remote_addr(),
        }
    }

    /// The address the caller connected from; `None` on the admin socket, which has none.
    pub fn peer_ip(&self) -> Option<IpAddr> {
        match self {
            Caller::Certificate { peer, .. } | Caller::Unauthenticated { peer } => {
                peer.map(|p| p.ip())
            }
            Caller::AdminSocket { .. } => None,
        }
    }
}

impl fmt::Display for Caller {
    /// How the audit log names the caller.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Certificate { names, .. } if names.is_empty() => f.write_str("cert:(no name)"),
            Caller::Certificate { names, .. } => write!(f, "cert:{}", names.join(",")),
            Caller::AdminSocket { uid } => write!(f, "socket:uid={uid}"),
            Caller::Unauthenticated { peer: Some(p) } => write!(f, "unauthenticated:{p}"),
            Caller::Unauthenticated { peer: None } => f.write_str("unauthenticated"),
        }
    }
}

/// The DNS subject alternative names of a DER certificate (what the cluster CA puts a party's
/// name in). A certificate that does not parse has no names, so it is allowed nothing.
fn certificate_names(der: &[u8]) -> Vec<String> {
    use x509_parser::prelude::*;
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(name) => Some((*name).to_owned()),
            _ => None,
        })
        .collect()
}

/// The director's access policy, from its configuration.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub tls: bool,
    pub admins: Vec<String>,
    pub realservers: Vec<AllowedRealServer>,
    /// `[[peer]] name`: the other directors, who may exchange admin state with this one.
    pub peers: Vec<String>,
    /// The director's own uid: the admin socket also admits it (under systemd's DynamicUser the
    /// socket belongs to that user).
    pub own_uid: u32,
}

impl Access {
    /// The policy a configuration asks for.
    pub fn of(config: &crate::config::DirectorConfig) -> Access {
        Access {
            tls: config.tls.is_some(),
            admins: config.admins.clone(),
            realservers: config.realservers.clone(),
            peers: config.peers.iter().map(|p| p.name.clone()).collect(),
            own_uid: nix::unistd::geteuid().as_raw(),
        }
    }
}

/// A security refusal: its reason in one word (the `reason` of `lb_refusals_total`), and the
/// sentence the caller gets as PermissionDenied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: &'static str,
    message: String,
}

impl Refused {
    pub fn new(reason: &'static str, message: String) -> Refused {
        Refused { reason, message }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn code(&self) -> tonic::Code {
        tonic::Code::PermissionDenied
    }
}

impl From<Refused> for Status {
    fn from(refused: Refused) -> Status {
        Status::permission_denied(refused.message)
    }
}

fn denied(reason: &'static str, message: String) -> Refused {
    Refused::new(reason, message)
}

impl Access {
    /// May `caller` register (or hold a lease as) realserver `name` at `address`?
    pub fn realserver(
        &self,
        caller: &Caller,
        name: &str,
        address: Option<IpAddr>,
    ) -> Result<(), Refused> {
        match caller {
            Caller::Certificate { names, .. } if !names.iter().any(|n| n == name) => {
                return Err(denied("wrong_certificate", format!(
                    "the client certificate is for {}, not {name}: an agent acts only under the name in its certificate",
                    if names.is_empty() { "no name".to_owned() } else { names.join(", ") }
                )))
            }
            Caller::Unauthenticated { .. } if self.tls => {
                return Err(denied("no_certificate", "a client certificate is required".into()))
            }
            _ => {}
        }
        if self.realservers.is_empty() {
            return Ok(());
        }
        let Some(allowed) = self.realservers.iter().find(|r| r.name == name) else {
            return Err(denied("unlisted_realserver", format!(
                "{name} is not a listed realserver: add a [[realserver]] for it to the director's config"
            )));
        };
        match address {
            Some(a) if !allowed.address.contains(&a) => Err(denied(
                "wrong_address",
                format!(
                    "{name} may register from {} only, not from {a}",
                    allowed.address
                ),
            )),
            _ => Ok(()),
        }
    }

    /// With TLS, a registration's address must be where its connection comes from: a stolen
    /// certificate used from another host cannot claim the realserver's address. A
    /// `[[realserver]] source` names where else that realserver's agent may connect from.
    /// `peer` is None on the admin socket and when the transport does not say.
    pub fn bound_to_connection(
        &self,
        name: &str,
        address: IpAddr,
        peer: Option<IpAddr>,
    ) -> Result<(), Refused> {
        if !self.tls {
            return Ok(());
        }
        let Some(peer) = peer.map(unmapped) else {
            return Err(denied(
                "unknown_source",
                "the connection's source address is unknown".into(),
            ));
        };
        if unmapped(address) == peer {
            return Ok(());
        }
        let source = self
            .realservers
            .iter()
            .find(|r| r.name == name)
            .and_then(|r| r.source);
        match source {
            Some(range) if range.contains(&peer) => Ok(()),
            Some(range) => Err(denied("wrong_source", format!(
                "{name} registers address {address} from {peer}, outside its source {range}"
            ))),
            None => Err(denied("wrong_source", format!(
                "{name} registers address {address} but connects from {peer}: an agent registers the address it connects from (set [[realserver]] source for an agent that reaches the director from another address)"
            ))),
        }
    }

    /// May `caller` change the table (drain, undrain, weight)?
    pub fn admin(&self, caller: &Caller) -> Result<(), Refused> {
        match caller {
            Caller::AdminSocket { uid } if *uid == 0 || *uid == self.own_uid => Ok(()),
            Caller::AdminSocket { uid } => Err(denied("not_root", format!(
                "the admin socket is for root only (you are uid {uid})"
            ))),
            Caller::Certificate { names, .. } if names.iter().any(|n| self.admins.contains(n)) => Ok(()),
            Caller::Certificate { .. } => Err(denied("not_admin", format!(
                "{caller} is not an admin: use a certificate listed in the director's admins, or lbctl on the director host as root"
            ))),
            // Without TLS the listener is loopback-only, or the operator chose `insecure`.
            Caller::Unauthenticated { .. } if !self.tls => Ok(()),
            Caller::Unauthenticated { .. } => Err(denied("no_certificate", "a client certificate is required".into())),
        }
    }
}

impl Access {
    /// May `caller` exchange admin state as a peer director? A peer can drain anything, so it
    /// is trusted like an admin, but by its own list: with `[tls]` only a certificate named in
    /// `[[peer]]`; without `[tls]` whoever may reach the port (loopback, or `insecure`), and
    /// only when peers are configured at all.
    pub fn peer(&self, caller: &Caller) -> Result<(), Refused> {
        match caller {
            Caller::Certificate { names, .. } if names.iter().any(|n| self.peers.contains(n)) => Ok(()),
            Caller::Certificate { .. } => Err(denied("not_peer", format!(
                "{caller} is not a peer director: only a certificate named in this director's [[peer]] may exchange admin state"
            ))),
            Caller::AdminSocket { .. } => Err(denied("not_peer", "peer directors call over the network, not the admin socket".into())),
            Caller::Unauthenticated { .. } if self.tls => Err(denied("no_certificate", "a client certificate is required".into())),
            Caller::Unauthenticated { .. } if self.peers.is_empty() => Err(denied("not_peer", "this director has no [[peer]]: it exchanges admin state with nobody".into())),
            Caller::Unauthenticated { .. } => Ok(()),
        }
    }
}

/// An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
fn unmapped(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(name: &str) -> Caller {
        Caller::Certificate {
            names: vec![name.into()],
            peer: Some(SocketAddr::from(([10, 0, 0, 11], 40000))),
        }
    }

    fn listed() -> Access {
        Access {
            tls: true,
            admins: vec!["ops".into()],
            realservers: vec![
                AllowedRealServer {
                    name: "llc5".into(),
                    address: AddressRange::parse("10.0.0.11").unwrap(),
                    source: None,
                },
                AllowedRealServer {
                    name: "llc6".into(),
                    address: AddressRange::parse("10.0.1.0/24").unwrap(),
                    source: Some(AddressRange::parse("192.168.7.0/24").unwrap()),
                },
            ],
            peers: vec!["llclb2".into()],
            own_uid: 999,
        }
    }

    #[test]
    fn peers_are_listed_certificates_only() {
        let a = listed();
        assert!(a.peer(&cert("llclb2")).is_ok());
        let e = a.peer(&cert("ops")).unwrap_err();
        assert_eq!(e.reason, "not_peer");
        assert!(
            e.message().contains("cert:ops is not a peer director"),
            "{}",
            e.message()
        );
        assert_eq!(a.peer(&cert("llc5")).unwrap_err().reason, "not_peer");
        assert_eq!(
            a.peer(&Caller::AdminSocket { uid: 0 }).unwrap_err().reason,
            "not_peer"
        );
        assert_eq!(
            a.peer(&Caller::Unauthenticated { peer: None })
                .unwrap_err()
                .reason,
            "no_certificate"
        );
        let plain = Access {
            peers: vec!["b".into()],
            ..Access::default()
        };
        assert!(plain.peer(&Caller::Unauthenticated { peer: None }).is_ok());
        assert!(Access::default()
            .peer(&Caller::Unauthenticated { peer: None })
            .is_err());
    }

    #[test]
    fn ranges() {
        let r = AddressRange::parse("10.0.1.0/24").unwrap();
        assert!(r.contains(&"10.0.1.77".parse().unwrap()));
        assert!(!r.contains(&"10.0.2.1".parse().unwrap()));
        assert!(!r.contains(&"::1".parse().unwrap()));
        assert!(AddressRange::parse("0.0.0.0/0")
            .unwrap()
            .contains(&"1.2.3.4".parse().unwrap()));
        assert!(AddressRange::parse("fd00::/8")
            .unwrap()
            .contains(&"fd12::1".parse().unwrap()));
        assert!(AddressRange::parse("10.0.0.0/33").is_err());
        assert!(AddressRange::parse("10.0.0").is_err());
        assert_eq!(
            AddressRange::parse("10.0.0.11").unwrap().to_string(),
            "10.0.0.11"
        );
    }

    #[test]
    fn an_agent_registers_only_as_itself_from_its_address() {
        let a = listed();
        let at = |s: &str| Some(s.parse().unwrap());
        assert!(a.realserver(&cert("llc5"), "llc5", at("10.0.0.11")).is_ok());
        assert!(a.realserver(&cert("llc6"), "llc6", at("10.0.1.9")).is_ok());
        let e = a
            .realserver(&cert("llc6"), "llc5", at("10.0.0.11"))
            .unwrap_err();
        assert_eq!(e.message(), "the client certificate is for llc6, not llc5: an agent acts only under the name in its certificate");
        let e = a
            .realserver(&cert("llc5"), "llc5", at("10.0.0.99"))
            .unwrap_err();
        assert_eq!(
            e.message(),
            "llc5 may register from 10.0.0.11 only, not from 10.0.0.99"
        );
        let e = a
            .realserver(&cert("llc7"), "llc7", at("10.0.0.12"))
            .unwrap_err();
        assert!(e.message().starts_with("llc7 is not a listed realserver"));
        assert!(a
            .realserver(
                &Caller::Unauthenticated { peer: None },
                "llc5",
                at("10.0.0.11")
            )
            .is_err());
    }

    #[test]
    fn a_registration_is_bound_to_the_address_it_comes_from() {
        let a = listed();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(a
            .bound_to_connection("llc5", ip("10.0.0.11"), Some(ip("10.0.0.11")))
            .is_ok());
        assert!(a
            .bound_to_connection("llc5", ip("10.0.0.11"), Some(ip("::ffff:10.0.0.11")))
            .is_ok());
        let e = a
            .bound_to_connection("llc5", ip("10.0.0.11"), Some(ip("10.9.9.9")))
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(
            e.message().contains("connects from 10.9.9.9"),
            "{}",
            e.message()
        );
        // llc6 has a source range: from there it may register its service address.
        assert!(a
            .bound_to_connection("llc6", ip("10.0.1.9"), Some(ip("192.168.7.3")))
            .is_ok());
        assert!(a
            .bound_to_connection("llc6", ip("10.0.1.9"), Some(ip("192.168.8.3")))
            .is_err());
        assert!(a
            .bound_to_connection("llc5", ip("10.0.0.11"), None)
            .is_err());
        assert!(
            Access::default()
                .bound_to_connection("llc5", ip("10.0.0.11"), Some(ip("127.0.0.1")))
                .is_ok(),
            "without TLS nobody is authenticated, so nothing is bound"
        );
    }

    #[test]
    fn admins_are_listed_certificates_or_root_on_the_socket() {
        let a = listed();
        assert!(a.admin(&cert("ops")).is_ok());
        assert_eq!(
            a.admin(&cert("llc5")).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        assert!(a.admin(&Caller::AdminSocket { uid: 0 }).is_ok());
        assert!(a.admin(&Caller::AdminSocket { uid: 999 }).is_ok());
        assert!(a.admin(&Caller::AdminSocket { uid: 1000 }).is_err());
        assert!(a.admin(&Caller::Unauthenticated { peer: None }).is_err());
        let plain = Access::default();
        assert!(plain.admin(&Caller::Unauthenticated { peer: None }).is_ok());
    }

    #[test]
    fn the_peer_ip_is_known_for_network_callers_only() {
        assert_eq!(cert("llc5").peer_ip(), Some("10.0.0.11".parse().unwrap()));
        assert_eq!(cert("llc5").to_string(), "cert:llc5");
        let plain = Caller::Unauthenticated {
            peer: Some("127.0.0.1:5000".parse().unwrap()),
        };
        assert_eq!(plain.peer_ip(), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(Caller::AdminSocket { uid: 0 }.peer_ip(), None);
    }

    #[test]
    fn a_tls_caller_is_named_by_the_certificate_of_its_connection() {
        let key = rcgen::KeyPair::generate().unwrap();
        let der = rcgen::CertificateParams::new(vec!["llc5".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .der()
            .clone();
        let peer: SocketAddr = "10.0.0.11:40000".parse().unwrap();
        let mut request = Request::new(());
        request.extensions_mut().insert(TlsPeer {
            addr: peer,
            certificates: std::sync::Arc::new(vec![der]),
        });
        let caller = Caller::of(&request);
        assert_eq!(
            caller,
            Caller::Certificate {
                names: vec!["llc5".into()],
                peer: Some(peer)
            }
        );
        assert_eq!(caller.to_string(), "cert:llc5");
        assert_eq!(
            Caller::of(&Request::new(())),
            Caller::Unauthenticated { peer: None }
        );
    }
}
