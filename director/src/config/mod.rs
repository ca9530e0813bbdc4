//! `lb-director --config /etc/lb/director.toml`: parsed and validated completely, every problem
//! reported at once, before any socket is bound or the kernel is touched.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lb_ipvs::{Destination, Family, ForwardMethod, Service, ServiceKey, Timeouts};
use lb_shared::config::{self, ConfigError, Section};
use lb_shared::domain::{self, Forward, Protocol};
use lb_shared::duration;
use lb_shared::tls::TlsFiles;

use crate::access::{AddressRange, AllowedRealServer};
use crate::health::{read_check, CheckConfig, CheckedService};

mod ha;
pub use ha::{default_sync_id, HaConfig};

mod peers;
pub use peers::{PeerConfig, DEFAULT_PEER_INTERVAL, DEFAULT_PEER_STARTUP_WAIT, MAX_PEERS};

pub const DEFAULT_PATH: &str = "/etc/lb/director.toml";

#[derive(Debug, Clone, PartialEq)]
pub struct DirectorConfig {
    /// gRPC for agents and lbctl.
    pub listen: SocketAddr,
    /// Plain HTTP `GET /metrics` for Prometheus; None serves no metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// Where admin overrides (drain, weight) and known realservers survive restarts.
    pub state_dir: PathBuf,
    /// An agent that misses its lease for this long is quiesced.
    pub lease_ttl: Duration,
    /// Period of drift repair.
    pub resync_interval: Duration,
    /// How long destinations found in the kernel at start are kept as they are while their
    /// agents come back (at least one lease TTL).
    pub adoption_grace: Duration,
    /// How long a service that left the configuration is kept, quiesced, for its open sessions.
    pub retire_timeout: Duration,
    /// Like `ipvsadm --set`: 0 leaves a value unchanged.
    pub timeouts: Timeouts,
    pub services: Vec<ServiceConfig>,
    /// Mutual TLS for every gRPC caller; None means plaintext (loopback unless `insecure`).
    pub tls: Option<TlsFiles>,
    /// Plaintext on a non-loopback address, knowingly.
    pub insecure: bool,
    /// Certificate names allowed to drain, undrain and set weights.
    pub admins: Vec<String>,
    /// Local socket for lbctl on the director host (root only); None disables it.
    pub admin_socket: Option<PathBuf>,
    /// `[[realserver]]`: who may register, from where. Required with TLS.
    pub realservers: Vec<AllowedRealServer>,
    /// `[ha]` (mode "active-standby"): keepalived owns the VIPs, the director runs the
    /// connection sync daemons.
    pub ha: Option<HaConfig>,
    /// `[ha] mode = "ecmp"`: every director active behind the gateway's multipath route; mh
    /// services only, `sloppy_tcp` on, no sync daemons, the director owns its VIPs.
    pub ecmp: bool,
    /// This director's name (the hostname unless configured): how status and its peers name
    /// it, and the writer of its admin revisions.
    pub name: String,
    /// `[[peer]]`: the other directors that keep the same admin state.
    pub peers: Vec<PeerConfig>,
    /// Between two anti-entropy exchanges with each peer.
    pub peer_interval: Duration,
    /// How long a start waits for its peers' admin state before the first pass.
    pub peer_startup_wait: Duration,
}

/// Loopback: metrics say which realservers exist and how busy they are; exposing them is the
/// operator's choice (README, "Metrics").
pub const DEFAULT_METRICS_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9770);

pub const DEFAULT_ADMIN_SOCKET: &str = "/run/lb-director/admin.sock";

/// One `[[service]]`: a virtual service this director owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub name: String,
    /// What the service matches: `vip`/`port`/`protocol`, or `fwmark`/`vips`.
    pub matching: ServiceMatch,
    pub scheduler: String,
    /// `scheduler_flags` (ipvsadm's `-b`) as `IP_VS_SVC_F_SCHED*` bits.
    pub scheduler_flags: u32,
    pub forward: Forward,
    /// The VIPs go on this interface as /32 (/128).
    pub interface: String,
    /// Persistence (`ipvsadm -p`), none when absent.
    pub persistence: Option<Duration>,
    /// `[service.check]`: how each destination is probed.
    pub check: CheckConfig,
    /// `[[service.realserver]]`: destinations configured here, for hosts without an agent.
    pub realservers: Vec<StaticRealServer>,
}

/// Which packets a service takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceMatch {
    /// `vip`, `port`, `protocol`: `ipvsadm -t/-u/--sctp-service VIP:PORT`.
    Addr {
        vip: IpAddr,
        port: u16,
        protocol: Protocol,
    },
    /// `fwmark`, `vips`: `ipvsadm -f MARK`, whatever the operator's mangle rule marks. The
    /// director cannot see which addresses a mark covers, so `vips` names them: it puts them on
    /// the interface, and each agent REDIRECTs them. IPVS keeps fwmark services per family,
    /// which the VIPs give (all of one family).
    FwMark { mark: u32, vips: Vec<IpAddr> },
}

/// A realserver of one service given in the config (keepalived's `real_server`): always in the
/// table, health-checked, drained and weighted by name like a registered one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRealServer {
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    pub weight: u32,
}

impl ServiceConfig {
    pub fn key(&self) -> ServiceKey {
        match &self.matching {
            ServiceMatch::Addr {
                vip,
                port,
                protocol,
            } => ServiceKey::Addr {
                protocol: *protocol,
                addr: *vip,
                port: *port,
            },
            ServiceMatch::FwMark { mark, vips } => ServiceKey::FwMark {
                family: vips.first().map_or(Family::Inet, Family::of),
                mark: *mark,
            },
        }
    }

    /// The addresses this service puts on its interface and its agents REDIRECT.
    pub fn vips(&self) -> &[IpAddr] {
        match &self.matching {
            ServiceMatch::Addr { vip, .. } => std::slice::from_ref(vip),
            ServiceMatch::FwMark { vips, .. } => vips,
        }
    }

    /// The service's port; 0 for a fwmark service, whose destinations keep the packet's port
    /// (as `ipvsadm -a -f MARK -r RIP` makes them).
    pub fn port(&self) -> u16 {
        match &self.matching {
            ServiceMatch::Addr { port, .. } => *port,
            ServiceMatch::FwMark { .. } => 0,
        }
    }

    /// The protocol; None for a fwmark service, which takes whatever the mark covers.
    pub fn protocol(&self) -> Option<Protocol> {
        match &self.matching {
            ServiceMatch::Addr { protocol, .. } => Some(*protocol),
            ServiceMatch::FwMark { .. } => None,
        }
    }

    pub fn fwmark(&self) -> Option<u32> {
        match &self.matching {
            ServiceMatch::Addr { .. } => None,
            ServiceMatch::FwMark { mark, .. } => Some(*mark),
        }
    }

    /// Whether the service is IPv6 (its destinations must be too).
    pub fn is_ipv6(&self) -> bool {
        self.key().family() == Family::Inet6
    }

    /// The IPVS service this config asks for.
    pub fn ipvs_service(&self) -> Service {
        let mut service = Service::new(self.key(), self.scheduler.clone());
        service.flags.0 |= self.scheduler_flags;
        if let Some(timeout) = self.persistence {
            service.flags.0 |= lb_ipvs::ServiceFlags::PERSISTENT;
            service.timeout = u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX);
        }
        service
    }

    /// The IPVS destination of a realserver at `addr` with `weight` in this service. With direct
    /// routing and tunnels the realserver receives the VIP's own port, so the destination port is
    /// the service port.
    pub fn destination(&self, addr: IpAddr, weight: u32) -> Destination {
        Destination::new(addr, self.port(), ForwardMethod::from(self.forward), weight)
    }

    /// The destination of a configured realserver: its own port (the service's by default).
    pub fn static_destination(&self, rs: &StaticRealServer, weight: u32) -> Destination {
        Destination::new(
            rs.address,
            rs.port,
            ForwardMethod::from(self.forward),
            weight,
        )
    }

    /// The port a destination at `addr` is listed on.
    pub fn port_of(&self, addr: IpAddr) -> u16 {
        self.realservers
            .iter()
            .find(|rs| rs.address == addr)
            .map_or(self.port(), |rs| rs.port)
    }

    /// The port a destination at `addr` is probed on: `[service.check] port`, else its own.
    pub fn probe_port_of(&self, addr: IpAddr) -> u16 {
        self.check.probe_port(self.port_of(addr))
    }
}

impl DirectorConfig {
    pub fn load(path: &Path) -> Result<DirectorConfig, ConfigError> {
        config::load(path, read)
    }

    /// Like [`DirectorConfig::parse`] with a given hostname (the default `name`), for tests.
    pub fn parse_as(
        path: &Path,
        text: &str,
        hostname: &str,
    ) -> Result<DirectorConfig, ConfigError> {
        let hostname = hostname.to_owned();
        config::parse(path, text, |root| read_with(root, || Ok(hostname)))
    }

    pub fn parse(path: &Path, text: &str) -> Result<DirectorConfig, ConfigError> {
        config::parse(path, text, read)
    }

    /// The peer whose certificate names `name`.
    pub fn peer(&self, name: &str) -> Option<&PeerConfig> {
        self.peers.iter().find(|p| p.name == name)
    }

    /// What each service asks of the host: its VIP on its interface, and its forward method.
    pub fn service_vips(&self) -> Vec<crate::host::ServiceVip> {
        self.services
            .iter()
            .flat_map(|s| {
                s.vips().iter().map(|vip| crate::host::ServiceVip {
                    interface: s.interface.clone(),
                    vip: *vip,
                    forward: s.forward,
                })
            })
            .collect()
    }

    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Every configured realserver, with the service it belongs to.
    pub fn static_realservers(&self) -> impl Iterator<Item = (&ServiceConfig, &StaticRealServer)> {
        self.services
            .iter()
            .flat_map(|s| s.realservers.iter().map(move |rs| (s, rs)))
    }

    /// The configured realserver at `addr` (the same name in every service that lists it).
    pub fn static_at(&self, addr: IpAddr) -> Option<(&ServiceConfig, &StaticRealServer)> {
        self.static_realservers().find(|(_, rs)| rs.address == addr)
    }

    /// Whether `name` is a configured realserver.
    pub fn is_static(&self, name: &str) -> bool {
        self.static_realservers().any(|(_, rs)| rs.name == name)
    }

    /// Whether the director puts the service VIPs on their interfaces itself: not in HA mode,
    /// where keepalived moves them between the directors.
    pub fn owns_vips(&self) -> bool {
        self.ha.is_none()
    }

    /// How long adopted destinations are kept: the grace, never less than a lease.
    pub fn adoption_window(&self) -> Duration {
        self.adoption_grace.max(self.lease_ttl)
    }
}

fn read(root: &Section<'_>) -> Option<DirectorConfig> {
    read_with(root, config::system_hostname)
}

fn read_with(
    root: &Section<'_>,
    hostname: impl FnOnce() -> Result<String, String>,
) -> Option<DirectorConfig> {
    let listen = root.optional("listen", |s| {
        s.parse::<SocketAddr>()
            .map_err(|_| "is not an address and port: write for example \"0.0.0.0:7700\"".into())
    });
    let metrics_listen = root.optional("metrics_listen", lb_shared::metrics::parse_listen);
    let state_dir = root.optional("state_dir", parse_absolute_path);
    let lease_ttl = root.optional("lease_ttl", |s| {
        within(s, Duration::from_millis(500), MAX_INTERVAL)
    });
    let resync = root.optional("resync_interval", |s| {
        within(s, Duration::from_millis(100), MAX_INTERVAL)
    });
    let adoption_grace = root.optional("adoption_grace", |s| {
        within(s, Duration::from_millis(500), MAX_INTERVAL)
    });
    let retire_timeout = root.optional("retire_timeout", |s| within(s, Duration::ZERO, MAX_RETIRE));
    let timeouts = match root.table("timeouts") {
        None => Some(Timeouts::default()),
        Some(t) => {
            let max = i64::from(i32::MAX);
            let tcp = t.integer("tcp", 0..=max, Some(0));
            let tcp_fin = t.integer("tcp_fin", 0..=max, Some(0));
            let udp = t.integer("udp", 0..=max, Some(0));
            // No `?` here: it would return from `read` before the other keys are checked.
            match (tcp, tcp_fin, udp) {
                (Some(tcp), Some(tcp_fin), Some(udp)) => Some(Timeouts { tcp, tcp_fin, udp }),
                _ => None,
            }
        }
    };
    let services: Vec<Option<ServiceConfig>> =
        root.tables("service").iter().map(read_service).collect();
    if services.is_empty() {
        root.problem("service", "", "at least one [[service]] is required");
    }
    check_unique(root, &services);
    check_static_names(root, &services);
    let tls = TlsFiles::read_section(root);
    let peers = peers::read(root, hostname, !matches!(tls, Some(None)));
    let insecure = root.boolean("insecure", false);
    let admins = root.strings("admins", domain::parse_name);
    let admin_socket = root.optional("admin_socket", |s| {
        if s.is_empty() {
            Ok(None)
        } else {
            parse_absolute_path(s).map(Some)
        }
    });
    let realservers: Vec<Option<AllowedRealServer>> = root
        .tables("realserver")
        .iter()
        .map(read_realserver)
        .collect();
    for (i, allowed) in realservers.iter().enumerate() {
        let Some(allowed) = allowed else { continue };
        let configured = services
            .iter()
            .flatten()
            .any(|s| s.realservers.iter().any(|rs| rs.name == allowed.name));
        if configured {
            root.problem(
                &format!("realserver[{i}].name"),
                &format!("{:?}", allowed.name),
                "is a [[service.realserver]] of this config: a configured realserver has no agent; remove one of the two",
            );
        }
    }
    let first_vip = services
        .first()
        .and_then(|s| s.as_ref())
        .and_then(|s| s.vips().first().copied());
    let ha = ha::read_ha(root, first_vip);
    if ha == Some(ha::HaSection::Ecmp) {
        for (i, service) in services.iter().enumerate() {
            if let Some(service) = service
                .as_ref()
                .filter(|s| s.scheduler != ha::ECMP_SCHEDULER)
            {
                root.problem(
                    &format!("service[{i}].scheduler"),
                    &format!("{:?}", service.scheduler),
                    "cannot be used with [ha] mode = \"ecmp\": each director must send a flow to the same realserver; use scheduler = \"mh\" (with scheduler_flags = [\"mh-port\"] to spread one client's connections)",
                );
            }
        }
    }
    let listen = listen.map(|l| l.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 7700))));
    if let (Some(addr), Some(None), Some(false)) = (&listen, &tls, insecure) {
        if !addr.ip().is_loopback() {
            root.problem(
                "listen",
                &format!("\"{addr}\""),
                "without [tls] the director listens on loopback only: add [tls] (ca, cert, key) or set insecure = true",
            );
        }
    }
    if let (Some(addr), Some(Some(Some(metrics)))) = (&listen, &metrics_listen) {
        // Port 0 (any free port, as tests use) cannot clash.
        if addr == metrics && addr.port() != 0 {
            root.problem(
                "metrics_listen",
                &format!("\"{metrics}\""),
                "is also the gRPC listen address: give metrics a port of its own (default 127.0.0.1:9770)",
            );
        }
    }
    // `Some(None)` is "no [tls]"; `None` is a [tls] with problems, still a [tls].
    if !matches!(tls, Some(None)) && realservers.is_empty() {
        root.problem(
            "realserver",
            "",
            "with [tls], list the realservers that may register: [[realserver]] name = \"llc5\", address = \"129.129.190.175\"",
        );
    }

    let peers = peers?;
    Some(DirectorConfig {
        listen: listen?,
        metrics_listen: metrics_listen?.unwrap_or(Some(DEFAULT_METRICS_LISTEN)),
        state_dir: state_dir?.unwrap_or_else(|| PathBuf::from("/var/lib/lb-director")),
        lease_ttl: lease_ttl?.unwrap_or(Duration::from_secs(6)),
        resync_interval: resync?.unwrap_or(Duration::from_secs(5)),
        adoption_grace: adoption_grace?.unwrap_or(DEFAULT_ADOPTION_GRACE),
        retire_timeout: retire_timeout?.unwrap_or(Duration::from_secs(3600)),
        timeouts: timeouts?,
        services: services.into_iter().collect::<Option<Vec<_>>>()?,
        tls: tls?,
        insecure: insecure?,
        admins,
        admin_socket: admin_socket?.unwrap_or_else(|| Some(PathBuf::from(DEFAULT_ADMIN_SOCKET))),
        realservers: realservers.into_iter().collect::<Option<Vec<_>>>()?,
        ecmp: ha == Some(ha::HaSection::Ecmp),
        ha: match ha? {
            ha::HaSection::ActiveStandby(config) => Some(config),
            ha::HaSection::Absent | ha::HaSection::Ecmp => None,
        },
        name: peers.name,
        peers: peers.peers,
        peer_interval: peers.interval,
        peer_startup_wait: peers.startup_wait,
    })
}

fn read_realserver(s: &Section<'_>) -> Option<AllowedRealServer> {
    let name = s.required("name", domain::parse_name);
    let address = s.required("address", AddressRange::parse);
    let source = s.optional("source", AddressRange::parse);
    Some(AllowedRealServer {
        name: name?,
        address: address?,
        source: source?,
    })
}

fn read_service(s: &Section<'_>) -> Option<ServiceConfig> {
    let name = s.required("name", domain::parse_name);
    let matching = read_match(s);
    let scheduler = s.optional("scheduler", parse_scheduler);
    let named = scheduler.clone().flatten();
    let scheduler_flags: u32 = s
        .strings("scheduler_flags", |flag| {
            parse_scheduler_flag(named.as_deref().unwrap_or(DEFAULT_SCHEDULER), flag)
        })
        .into_iter()
        .fold(0, |all, bit| all | bit);
    let forward = s.optional("forward", str::parse::<Forward>);
    let interface = s.required("interface", parse_interface);
    let persistence = s.optional("persistence", |t| at_least(t, Duration::from_secs(1)));
    // A bad protocol is reported already; the check is still read, as if for tcp.
    let checked = match &matching {
        Some(ServiceMatch::FwMark { .. }) => CheckedService::FwMark,
        Some(ServiceMatch::Addr { protocol, .. }) => CheckedService::Port(*protocol),
        None if s.has("fwmark") => CheckedService::FwMark,
        None => CheckedService::Port(Protocol::Tcp),
    };
    let check = read_check(s, checked);
    let (family_of, port) = match &matching {
        Some(ServiceMatch::Addr { vip, port, .. }) => (Some(*vip), Some(*port)),
        Some(ServiceMatch::FwMark { vips, .. }) => (vips.first().copied(), None),
        None => (None, None),
    };
    let realservers = read_static_realservers(s, family_of, port, checked);
    Some(ServiceConfig {
        name: name?,
        matching: matching?,
        scheduler: scheduler?.unwrap_or_else(|| DEFAULT_SCHEDULER.to_owned()),
        scheduler_flags,
        forward: forward?.unwrap_or(Forward::Dr),
        interface: interface?,
        persistence: persistence?,
        check: check?,
        realservers: realservers?,
    })
}

/// `vip`, `port` and `protocol`, or `fwmark` and `vips`: never both, never neither.
fn read_match(s: &Section<'_>) -> Option<ServiceMatch> {
    if !s.has("fwmark") {
        let vip = s.required("vip", domain::parse_unicast);
        let port = s.integer::<u16>("port", 1..=65535, None);
        let protocol = s.optional("protocol", str::parse::<Protocol>);
        if s.has("vips") {
            s.problem(
                "vips",
                &s.raw("vips"),
                "belongs to a fwmark service: a vip/port service has one vip (or add fwmark = N and remove vip and port)",
            );
            return None;
        }
        return Some(ServiceMatch::Addr {
            vip: vip?,
            port: port?,
            protocol: protocol?.unwrap_or(Protocol::Tcp),
        });
    }
    // The kernel reads fwmark 0 as "no mark", i.e. an address service.
    let mark = s.integer::<u32>("fwmark", 1..=i64::from(u32::MAX), None);
    let mut clash = false;
    for (key, why) in [
        ("vip", "a fwmark service takes the addresses its mark covers in vips = [...], not vip"),
        ("port", "a fwmark service matches every port the mark covers: remove port (a health check's port goes in [service.check] port)"),
        ("protocol", "a fwmark service matches every protocol the mark covers: remove protocol"),
    ] {
        if s.has(key) {
            s.problem(key, &s.raw(key), why);
            clash = true;
        }
    }
    let vips = s.strings("vips", domain::parse_unicast);
    let listed = s.array_len("vips");
    if listed == Some(0) || !s.has("vips") {
        s.problem(
            "vips",
            "",
            "is required for a fwmark service: the addresses its mark covers, e.g. vips = [\"129.129.190.55\"] (the director puts them on its interface, the agents REDIRECT them)",
        );
        return None;
    }
    if listed != Some(vips.len()) {
        return None;
    }
    let mut seen = BTreeMap::new();
    for (i, vip) in vips.iter().enumerate() {
        if vip.is_ipv4() != vips[0].is_ipv4() {
            s.problem(
                &format!("vips[{i}]"),
                &format!("\"{vip}\""),
                format!("is not of the family of vips[0] ({}): IPVS keeps fwmark services per family; make a second service with the same fwmark for the other family", vips[0]),
            );
            clash = true;
        } else if let Some(first) = seen.insert(*vip, i) {
            s.problem(
                &format!("vips[{i}]"),
                &format!("\"{vip}\""),
                format!("is also vips[{first}]: list each address once"),
            );
            clash = true;
        }
    }
    if clash {
        return None;
    }
    Some(ServiceMatch::FwMark { mark: mark?, vips })
}

/// `[[service.realserver]]` entries of one service; `vip` and `port` are the service's (None
/// when they are themselves wrong, which is reported already).
fn read_static_realservers(
    s: &Section<'_>,
    vip: Option<IpAddr>,
    port: Option<u16>,
    checked: CheckedService,
) -> Option<Vec<StaticRealServer>> {
    let mut all = Some(Vec::new());
    let mut seen = BTreeMap::new();
    for (i, rs) in s.tables("realserver").iter().enumerate() {
        let address = rs.required("address", domain::parse_unicast);
        let rs_port = if checked == CheckedService::FwMark {
            // ipvsadm -a -f MARK -r RIP: the packet keeps its port.
            if rs.has("port") {
                rs.problem(
                    "port",
                    &rs.raw("port"),
                    "a fwmark service's realservers keep each packet's port: remove port (the check's port goes in [service.check] port)",
                );
                None
            } else {
                Some(0)
            }
        } else {
            rs.integer::<u16>("port", 1..=65535, port.or(Some(1)))
        };
        let weight = rs.integer::<u32>("weight", 0..=i64::from(domain::MAX_WEIGHT), Some(1));
        let name = rs.optional("name", domain::parse_name);
        let entry = (|| {
            let address = address?;
            Some(StaticRealServer {
                name: name?.unwrap_or_else(|| address_text(address)),
                address,
                port: rs_port?,
                weight: weight?,
            })
        })();
        let Some(entry) = entry else {
            all = None;
            continue;
        };
        if vip.is_some_and(|vip| vip.is_ipv4() != entry.address.is_ipv4()) {
            rs.problem(
                "address",
                &format!("\"{}\"", entry.address),
                "is not of the VIP's address family: IPVS forwards IPv4 to IPv4 and IPv6 to IPv6",
            );
            all = None;
            continue;
        }
        if let Some(first) = seen.insert(entry.address, i) {
            rs.problem(
                "address",
                &format!("\"{}\"", entry.address),
                format!("is also realserver[{first}] of this service: list each address once"),
            );
            all = None;
            continue;
        }
        if let Some(list) = &mut all {
            list.push(entry);
        }
    }
    all
}

/// `addr.to_string()`: the default name of a configured realserver. An IPv4 address is
/// written out digit by digit: through `Display` it cost more than reading the rest of the
/// realserver (a restart names thousands of them).
fn address_text(addr: IpAddr) -> String {
    let IpAddr::V4(v4) = addr else {
        return addr.to_string();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

/// A configured realserver is one host: one name for one address in every service that lists
/// it.
fn check_static_names(root: &Section<'_>, services: &[Option<ServiceConfig>]) {
    // Where each was first seen, (service, realserver): written out only for a problem.
    let place = |(i, j): (usize, usize)| format!("service[{i}].realserver[{j}]");
    let mut by_name: BTreeMap<&str, (IpAddr, (usize, usize))> = BTreeMap::new();
    let mut by_address: BTreeMap<IpAddr, (&str, (usize, usize))> = BTreeMap::new();
    for (i, service) in services.iter().enumerate() {
        let Some(service) = service else { continue };
        for (j, rs) in service.realservers.iter().enumerate() {
            let here = (i, j);
            if let Some(&(addr, first)) = by_name.get(rs.name.as_str()) {
                if addr != rs.address {
                    root.problem(
                        &format!("{}.name", place(here)),
                        &format!("{:?}", rs.name),
                        format!(
                            "is {} at {addr}: one name is one host, give this address another name",
                            place(first)
                        ),
                    );
                }
            } else {
                by_name.insert(&rs.name, (rs.address, here));
            }
            if let Some(&(name, first)) = by_address.get(&rs.address) {
                if name != rs.name {
                    root.problem(
                        &format!("{}.name", place(here)),
                        &format!("{:?}", rs.name),
                        format!(
                            "{} names {} {name:?}: use one name for one address",
                            place(first),
                            rs.address
                        ),
                    );
                }
            } else {
                by_address.insert(rs.address, (&rs.name, here));
            }
        }
    }
}

/// Two services with one name, or two on one VIP:port, would fight over the same table entry.
fn check_unique(root: &Section<'_>, services: &[Option<ServiceConfig>]) {
    let mut names = BTreeMap::new();
    let mut keys = BTreeMap::new();
    for (i, service) in services.iter().enumerate() {
        let Some(service) = service else { continue };
        if let Some(first) = names.insert(service.name.clone(), i) {
            root.problem(
                &format!("service[{i}].name"),
                &format!("{:?}", service.name),
                format!("is also the name of service[{first}]: names must be unique"),
            );
        }
        if let Some(first) = keys.insert(service.key(), i) {
            root.problem(
                &format!("service[{i}]"),
                &service.key().to_string(),
                match service.fwmark() {
                    None => format!("is the same protocol, vip and port as service[{first}]"),
                    Some(_) => format!("is the same fwmark and family as service[{first}]"),
                },
            );
        }
    }
}

fn at_least(text: &str, min: Duration) -> Result<Duration, String> {
    let d = duration::parse(text)?;
    if d < min {
        return Err(format!("must be at least {}", duration::format(min)));
    }
    Ok(d)
}

/// The daemon adds the lease TTL and the resync interval to the clock, which panics past
/// about 292 billion years (found by fuzzing); a day is already more than either needs.
const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// A retiring service waits for its sessions at most a week: longer is a service nobody meant
/// to keep.
const MAX_RETIRE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Agents retry at most every 10 s (their backoff ceiling) and then register and confirm: half a
/// minute covers that with room for a loaded host.
pub const DEFAULT_ADOPTION_GRACE: Duration = Duration::from_secs(30);

fn within(text: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = at_least(text, min)?;
    if d > max {
        return Err(format!("must be at most {}", duration::format(max)));
    }
    Ok(d)
}

fn parse_absolute_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if !path.is_absolute() {
        return Err("must be an absolute path".into());
    }
    Ok(path)
}

/// Kernel scheduler names are short lower-case words (IP_VS_SCHEDNAME_MAXLEN is 16 with the NUL).
/// Whether the module exists only the kernel can say, when the service is added.
fn parse_scheduler(text: &str) -> Result<String, String> {
    if text.is_empty()
        || text.len() > 15
        || !text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err("is not a scheduler name: use rr, wrr, lc, wlc, sh, mh, ...".into());
    }
    Ok(text.to_owned())
}

const DEFAULT_SCHEDULER: &str = "wlc";

/// One of ipvsadm's `--sched-flags` names. `sh-*` and `mh-*` belong to their scheduler (the
/// kernel reads the bits only there); `flag-1..3` are the raw bits for any scheduler.
fn parse_scheduler_flag(scheduler: &str, text: &str) -> Result<u32, String> {
    use lb_ipvs::ServiceFlags;
    match text {
        "flag-1" => return Ok(ServiceFlags::SCHED1),
        "flag-2" => return Ok(ServiceFlags::SCHED2),
        "flag-3" => return Ok(ServiceFlags::SCHED3),
        _ => {}
    }
    let bit = |name: &str| match name {
        "fallback" => Some(ServiceFlags::SCHED1),
        "port" => Some(ServiceFlags::SCHED2),
        _ => None,
    };
    let unknown = || {
        "is not a scheduler flag: use mh-port, mh-fallback (scheduler mh), sh-port, sh-fallback (sh) or flag-1, flag-2, flag-3".to_owned()
    };
    let Some((owner, name)) = text.split_once('-') else {
        return Err(unknown());
    };
    let Some(bit) = bit(name).filter(|_| owner == "mh" || owner == "sh") else {
        return Err(unknown());
    };
    if owner != scheduler {
        return Err(format!(
            "is a flag of the {owner} scheduler and this service's scheduler is {scheduler}: remove it, or set scheduler = \"{owner}\""
        ));
    }
    Ok(bit)
}

fn parse_interface(text: &str) -> Result<String, String> {
    crate::host::validate_interface(text).map(|()| text.to_owned())
}

#[cfg(test)]
mod tests;
