//! What the kernel's IPVS table holds, in ipvsadm's words, mirroring `include/uapi/linux/ip_vs.h`.

use std::fmt;
use std::net::IpAddr;

pub use lb_shared::domain::Protocol;

/// Address family of a service or destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Inet,
    Inet6,
}

impl Family {
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Inet,
            IpAddr::V6(_) => Family::Inet6,
        }
    }
}

/// What identifies a virtual service: `-t/-u/--sctp-service VIP:PORT` or `-f MARK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    Addr {
        protocol: Protocol,
        addr: IpAddr,
        port: u16,
    },
    FwMark {
        family: Family,
        mark: u32,
    },
}

impl ServiceKey {
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Addr { addr, .. } => Family::of(addr),
            ServiceKey::FwMark { family, .. } => *family,
        }
    }
}

impl fmt::Display for ServiceKey {
    /// As `ipvsadm -L -n` prints it: `TCP 10.0.0.100:22`, `FWM 7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr {
                protocol,
                addr,
                port,
            } => {
                let proto = protocol.to_string().to_uppercase();
                match addr {
                    IpAddr::V4(a) => write!(f, "{proto} {a}:{port}"),
                    IpAddr::V6(a) => write!(f, "{proto} [{a}]:{port}"),
                }
            }
            ServiceKey::FwMark { family, mark } => match family {
                Family::Inet => write!(f, "FWM {mark}"),
                Family::Inet6 => write!(f, "FWM {mark} IPv6"),
            },
        }
    }
}

/// Service flags (`IP_VS_SVC_F_*`). The kernel-internal `HASHED` bit is never exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ServiceFlags(pub u32);

impl ServiceFlags {
    /// `-p`: persistent service.
    pub const PERSISTENT: u32 = 0x0001;
    /// Kernel-internal: the service is in the hash table. Stripped when read.
    pub const HASHED: u32 = 0x0002;
    /// `-o`: one-packet scheduling (UDP).
    pub const ONEPACKET: u32 = 0x0004;
    /// Scheduler flags `sh-fallback`/`mh-fallback`, `sh-port`/`mh-port`, and the third one.
    pub const SCHED1: u32 = 0x0008;
    pub const SCHED2: u32 = 0x0010;
    pub const SCHED3: u32 = 0x0020;
}

/// A virtual service as `ipvsadm -A` creates it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Service {
    pub key: ServiceKey,
    /// Kernel scheduler name: rr, wrr, lc, wlc, sh, mh, ...
    pub scheduler: String,
    pub flags: ServiceFlags,
    /// Persistence timeout in seconds (`-p`), meaningful with `ServiceFlags::PERSISTENT`.
    pub timeout: u32,
    /// Persistence netmask: an IPv4 mask as a number in network order semantics
    /// (0xffff_ffff = /32) or an IPv6 prefix length (128).
    pub netmask: u32,
}

impl Service {
    /// A service with the kernel's defaults for everything but the key and scheduler, as
    /// `ipvsadm -A -t VIP:PORT -s SCHED` makes it.
    pub fn new(key: ServiceKey, scheduler: impl Into<String>) -> Service {
        let netmask = match key.family() {
            Family::Inet => 0xffff_ffff,
            Family::Inet6 => 128,
        };
        Service {
            key,
            scheduler: scheduler.into(),
            flags: ServiceFlags::default(),
            timeout: 0,
            netmask,
        }
    }
}

/// Forwarding method of a destination (`IP_VS_CONN_F_*` in the low bits of the conn flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardMethod {
    /// `-m`, "Masq": NAT.
    Masq,
    /// "Local": the director serves the connection itself.
    Local,
    /// `-i`, "Tunnel": IP-in-IP (or GUE/GRE, see [`Tunnel`]).
    Tunnel,
    /// `-g`, "Route": direct routing, the seed's LVS-DR.
    Route,
}

impl ForwardMethod {
    /// The column word of `ipvsadm -L`.
    pub fn ipvsadm_word(self) -> &'static str {
        match self {
            ForwardMethod::Masq => "Masq",
            ForwardMethod::Local => "Local",
            ForwardMethod::Tunnel => "Tunnel",
            ForwardMethod::Route => "Route",
        }
    }
}

impl From<lb_shared::domain::Forward> for ForwardMethod {
    fn from(forward: lb_shared::domain::Forward) -> Self {
        match forward {
            lb_shared::domain::Forward::Dr => ForwardMethod::Route,
            lb_shared::domain::Forward::Nat => ForwardMethod::Masq,
            lb_shared::domain::Forward::Tunnel => ForwardMethod::Tunnel,
        }
    }
}

/// Encapsulation of a tunnel destination (`--tun-type`, `--tun-port`, `--tun-nocsum`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tunnel {
    /// `IP_VS_CONN_F_TUNNEL_TYPE_*`: 0 ipip, 1 gue, 2 gre.
    pub kind: u8,
    pub port: u16,
    pub flags: u16,
}

/// Which destination of a service: its address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestinationKey {
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for DestinationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// A realserver of a service as `ipvsadm -a` creates it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    pub addr: IpAddr,
    pub port: u16,
    pub forward: ForwardMethod,
    /// 0 quiesces: established connections continue, no new ones are scheduled.
    pub weight: u32,
    /// `-x`: 0 means no limit.
    pub upper_threshold: u32,
    /// `-y`: 0 means no limit.
    pub lower_threshold: u32,
    /// Meaningful only with [`ForwardMethod::Tunnel`].
    pub tunnel: Tunnel,
}

impl Destination {
    /// A destination with weight and thresholds as `ipvsadm -a ... -w WEIGHT` leaves them.
    pub fn new(addr: IpAddr, port: u16, forward: ForwardMethod, weight: u32) -> Destination {
        Destination {
            addr,
            port,
            forward,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            tunnel: Tunnel::default(),
        }
    }

    pub fn key(&self) -> DestinationKey {
        DestinationKey {
            addr: self.addr,
            port: self.port,
        }
    }
}

/// Traffic counters (`IPVS_STATS_ATTR_*`, the 64-bit set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub conns: u64,
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub cps: u64,
    pub in_pps: u64,
    pub out_pps: u64,
    pub in_bps: u64,
    pub out_bps: u64,
}

/// A service read back from the kernel, with its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub service: Service,
    pub stats: Stats,
}

/// A destination read back from the kernel, with the connection counts of `ipvsadm -L`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationEntry {
    pub destination: Destination,
    /// ActiveConn.
    pub active_conns: u32,
    /// InActConn.
    pub inactive_conns: u32,
    pub persistent_conns: u32,
    pub stats: Stats,
}

/// Connection timeouts in seconds, as `ipvsadm --set TCP TCPFIN UDP`; on set, 0 leaves a value
/// unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

/// What `ipvsadm --version` and the header of `ipvsadm -L` show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// `(major << 16) | (minor << 8) | patch`, e.g. 0x010201 for 1.2.1.
    pub version: u32,
    pub conn_table_size: u32,
}

impl fmt::Display for Info {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IP Virtual Server version {}.{}.{} (size={})",
            self.version >> 16,
            (self.version >> 8) & 0xff,
            self.version & 0xff,
            self.conn_table_size
        )
    }
}

/// Role of a connection synchronisation daemon (`--start-daemon master|backup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncRole {
    Master,
    Backup,
}

/// A connection synchronisation daemon, for director high availability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDaemon {
    pub role: SyncRole,
    /// `--mcast-interface`.
    pub interface: String,
    /// `--syncid`, 0..=255.
    pub sync_id: u32,
}
