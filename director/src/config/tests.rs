use super::*;

const SEED: &str = r#"
listen = "0.0.0.0:7700"
insecure = true
state_dir = "/var/lib/lb-director"
lease_ttl = "6s"
resync_interval = "5s"

[timeouts]
tcp = 259200
tcp_fin = 0
udp = 0

[[service]]
name = "llc-ssh"
vip = "129.129.190.54"
port = 22
protocol = "tcp"
scheduler = "rr"
forward = "dr"
interface = "eth0"
"#;

fn problems(text: &str) -> Vec<String> {
    match DirectorConfig::parse(Path::new("director.toml"), text) {
        Ok(_) => vec![],
        Err(ConfigError::Invalid { problems, .. }) => {
            problems.iter().map(|p| p.to_string()).collect()
        }
        Err(e) => vec![e.to_string()],
    }
}

#[test]
fn the_seed_config_reads_back() {
    let config = DirectorConfig::parse(Path::new("director.toml"), SEED).unwrap();
    assert_eq!(config.listen, "0.0.0.0:7700".parse().unwrap());
    assert_eq!(config.lease_ttl, Duration::from_secs(6));
    assert_eq!(config.resync_interval, Duration::from_secs(5));
    assert_eq!(
        config.timeouts,
        Timeouts {
            tcp: 259200,
            tcp_fin: 0,
            udp: 0
        }
    );
    let s = &config.services[0];
    assert_eq!(s.key().to_string(), "TCP 129.129.190.54:22");
    assert_eq!(s.scheduler, "rr");
    assert_eq!(s.forward, Forward::Dr);
    assert_eq!(s.interface, "eth0");
    let dest = s.destination("129.129.190.175".parse().unwrap(), 1);
    assert_eq!(dest.forward, ForwardMethod::Route);
    assert_eq!(dest.port, 22);
}

#[test]
fn every_bad_field_is_reported_at_once() {
    let text = r#"
listen = "nowhere"
state_dir = "relative/dir"
lease_ttl = "6"
resync_interval = "10ms"
surprise = true
[timeouts]
tcp = -1
[[service]]
name = "bad name"
vip = "129.129.190"
port = 0
protocol = "icmp"
scheduler = "Round Robin"
forward = "magic"
interface = "eth0/1"
"#;
    assert_eq!(
        problems(text),
        vec![
            "listen = \"nowhere\": is not an address and port: write for example \"0.0.0.0:7700\"",
            "state_dir = \"relative/dir\": must be an absolute path",
            "lease_ttl = \"6\": \"6\" has no unit: write for example \"500ms\", \"6s\" or \"2m\"",
            "resync_interval = \"10ms\": must be at least 100ms",
            "timeouts.tcp = -1: must be between 0 and 2147483647",
            "service[0].name = \"bad name\": contains ' ': use letters, digits, '-', '_' and '.' only",
            "service[0].vip = \"129.129.190\": is not an IP address: write for example \"129.129.190.54\"",
            "service[0].port = 0: must be between 1 and 65535",
            "service[0].protocol = \"icmp\": unknown protocol: use tcp, udp or sctp",
            "service[0].scheduler = \"Round Robin\": is not a scheduler name: use rr, wrr, lc, wlc, sh, mh, ...",
            "service[0].forward = \"magic\": unknown forward method: use dr, nat or tunnel",
            "service[0].interface = \"eth0/1\": contains '/', which the kernel refuses",
            "surprise = true: unknown key: remove it or check its spelling",
        ]
    );
}

#[test]
fn services_are_required_and_unique() {
    assert_eq!(
        problems("listen = \"127.0.0.1:1\""),
        vec!["service: at least one [[service]] is required"]
    );
    let twice = format!("{SEED}\n[[service]]\nname = \"llc-ssh\"\nvip = \"129.129.190.54\"\nport = 22\ninterface = \"eth0\"\n");
    assert_eq!(
        problems(&twice),
        vec![
            "service[1].name = \"llc-ssh\": is also the name of service[0]: names must be unique",
            "service[1] = TCP 129.129.190.54:22: is the same protocol, vip and port as service[0]",
        ]
    );
}

#[test]
fn missing_required_keys_are_named() {
    assert_eq!(
        problems("listen = \"127.0.0.1:7700\"\n[[service]]\nname = \"x\"\n"),
        vec![
            "service[0].vip: is required",
            "service[0].port: is required",
            "service[0].interface: is required",
        ]
    );
}

#[test]
fn plaintext_is_loopback_only_unless_insecure() {
    let service =
        "[[service]]\nname = \"s\"\nvip = \"10.0.0.100\"\nport = 22\ninterface = \"eth0\"\n";
    assert_eq!(
        problems(&format!("listen = \"10.0.0.2:7700\"\n{service}")),
        vec!["listen = \"10.0.0.2:7700\": without [tls] the director listens on loopback only: add [tls] (ca, cert, key) or set insecure = true"]
    );
    assert_eq!(
        problems(service).len(),
        1,
        "the default 0.0.0.0:7700 is not loopback either"
    );
    assert!(problems(&format!("listen = \"127.0.0.1:7700\"\n{service}")).is_empty());
    assert!(problems(&format!(
        "listen = \"10.0.0.2:7700\"\ninsecure = true\n{service}"
    ))
    .is_empty());
}

#[test]
fn tls_files_and_the_realserver_list_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("director.pem");
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let text = format!(
        "listen = \"0.0.0.0:7700\"\nadmins = [\"ops\", \"bad name\"]\n[tls]\nca = \"{c}\"\ncert = \"{c}\"\nkey = \"{c}\"\n[[service]]\nname = \"s\"\nvip = \"10.0.0.100\"\nport = 22\ninterface = \"eth0\"\n",
        c = cert.display()
    );
    let found = problems(&text);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].starts_with("tls.key = "), "{found:#?}");
    assert!(found[0].ends_with("holds no PEM PRIVATE KEY block"));
    assert!(found[1].starts_with("admins[1] = \"bad name\""));
    assert!(found[2].starts_with("realserver: with [tls], list the realservers"));

    let listed = format!("{text}[[realserver]]\nname = \"llc5\"\naddress = \"10.0.0.0/33\"\n");
    assert!(problems(&listed)
        .iter()
        .any(|p| p.starts_with("realserver[0].address = \"10.0.0.0/33\": has a prefix length")));
}

#[test]
fn the_shipped_example_is_valid() {
    // Its [tls] names files under /etc/lb/tls: make real ones elsewhere and point there.
    let pki = tempfile::tempdir().unwrap();
    crate::certs::init_ca(pki.path(), "test CA").unwrap();
    crate::certs::issue(pki.path(), "llclb1", &[], &[]).unwrap();
    let text = include_str!("../../../deploy/director.example.toml")
        .replace("/etc/lb/tls", pki.path().to_str().unwrap());
    let config = DirectorConfig::parse(Path::new("director.example.toml"), &text).unwrap();
    assert_eq!(
        config.services[0].key().to_string(),
        "TCP 129.129.190.54:22"
    );
    assert_eq!(config.realservers.len(), 2);
    assert_eq!(config.admins, vec!["ops"]);
    assert!(config.tls.is_some());
}

const STATIC: &str = r#"
listen = "127.0.0.1:7700"
[[service]]
name = "web"
vip = "10.0.0.100"
port = 80
interface = "eth0"
[[service.realserver]]
address = "10.0.0.11"
[[service.realserver]]
address = "10.0.0.12"
port = 8080
weight = 3
name = "web2"
"#;

#[test]
fn static_realservers_read_back_with_their_defaults() {
    let config = DirectorConfig::parse(Path::new("director.toml"), STATIC).unwrap();
    let web = &config.services[0];
    assert_eq!(
        web.realservers,
        vec![
            StaticRealServer {
                name: "10.0.0.11".into(),
                address: "10.0.0.11".parse().unwrap(),
                port: 80,
                weight: 1,
            },
            StaticRealServer {
                name: "web2".into(),
                address: "10.0.0.12".parse().unwrap(),
                port: 8080,
                weight: 3,
            },
        ]
    );
    assert!(config.is_static("web2"));
    assert_eq!(web.port_of("10.0.0.12".parse().unwrap()), 8080);
    assert_eq!(web.port_of("10.0.0.13".parse().unwrap()), 80);
}

#[test]
fn every_bad_static_realserver_is_reported_with_its_key_path() {
    let text = r#"
listen = "127.0.0.1:7700"
[[service]]
name = "web"
vip = "10.0.0.100"
port = 80
interface = "eth0"
[[service.realserver]]
port = 0
weight = 70000
name = "no name"
colour = "red"
[[service.realserver]]
address = "fe80::1"
[[service.realserver]]
address = "10.0.0.11"
[[service.realserver]]
address = "10.0.0.11"
"#;
    assert_eq!(
        problems(text),
        vec![
            "service[0].realserver[0].address: is required",
            "service[0].realserver[0].port = 0: must be between 1 and 65535",
            "service[0].realserver[0].weight = 70000: must be between 0 and 65535",
            "service[0].realserver[0].name = \"no name\": contains ' ': use letters, digits, '-', '_' and '.' only",
            "service[0].realserver[1].address = \"fe80::1\": is not of the VIP's address family: IPVS forwards IPv4 to IPv4 and IPv6 to IPv6",
            "service[0].realserver[3].address = \"10.0.0.11\": is also realserver[2] of this service: list each address once",
            "service[0].realserver[0].colour = \"red\": unknown key: remove it or check its spelling",
        ]
    );
}

#[test]
fn a_static_realserver_is_one_host_under_one_name_and_has_no_agent() {
    let text = r#"
listen = "127.0.0.1:7700"
[[service]]
name = "web"
vip = "10.0.0.100"
port = 80
interface = "eth0"
[[service.realserver]]
address = "10.0.0.11"
name = "a"
[[service]]
name = "ssh"
vip = "10.0.0.100"
port = 22
interface = "eth0"
[[service.realserver]]
address = "10.0.0.12"
name = "a"
[[service.realserver]]
address = "10.0.0.11"
name = "b"
[[realserver]]
name = "a"
address = "10.0.0.0/24"
"#;
    assert_eq!(
        problems(text),
        vec![
            "service[1].realserver[0].name = \"a\": is service[0].realserver[0] at 10.0.0.11: one name is one host, give this address another name",
            "service[1].realserver[1].name = \"b\": service[0].realserver[0] names 10.0.0.11 \"a\": use one name for one address",
            "realserver[0].name = \"a\": is a [[service.realserver]] of this config: a configured realserver has no agent; remove one of the two",
        ]
    );
}

#[test]
fn metrics_listen_defaults_to_loopback_and_can_be_off() {
    let config = DirectorConfig::parse(Path::new("director.toml"), SEED).unwrap();
    assert_eq!(
        config.metrics_listen,
        Some("127.0.0.1:9770".parse().unwrap())
    );
    let off = DirectorConfig::parse(
        Path::new("director.toml"),
        &format!("metrics_listen = \"\"\n{SEED}"),
    )
    .unwrap();
    assert_eq!(off.metrics_listen, None);
    let open = DirectorConfig::parse(
        Path::new("director.toml"),
        &format!("metrics_listen = \"0.0.0.0:9770\"\n{SEED}"),
    )
    .unwrap();
    assert_eq!(open.metrics_listen, Some("0.0.0.0:9770".parse().unwrap()));
    assert_eq!(
        problems(&format!("metrics_listen = \"9770\"\n{SEED}")),
        vec!["metrics_listen = \"9770\": is not an address and port: write for example \"127.0.0.1:9770\", or \"\" to serve no metrics"]
    );
    assert_eq!(
        problems(&format!("metrics_listen = \"0.0.0.0:7700\"\n{SEED}")),
        vec!["metrics_listen = \"0.0.0.0:7700\": is also the gRPC listen address: give metrics a port of its own (default 127.0.0.1:9770)"]
    );
}

const FWMARK: &str = r#"
listen = "127.0.0.1:7700"
[[service]]
name = "llc-fwm"
fwmark = 7
vips = ["10.0.0.101", "10.0.0.102"]
scheduler = "rr"
interface = "eth0"
[service.check]
type = "ssh"
port = 22
[[service]]
name = "llc-fwm6"
fwmark = 7
vips = ["fd00::101"]
interface = "eth0"
[[service]]
name = "ssh6"
vip = "fd00::100"
port = 22
interface = "eth0"
"#;

#[test]
fn a_fwmark_service_reads_back_per_family() {
    let config = DirectorConfig::parse(Path::new("director.toml"), FWMARK).unwrap();
    let [fwm, fwm6, ssh6] = &config.services[..] else {
        panic!("three services expected");
    };
    assert_eq!(fwm.key().to_string(), "FWM 7");
    assert_eq!(fwm6.key().to_string(), "FWM 7 IPv6");
    assert_eq!(ssh6.key().to_string(), "TCP [fd00::100]:22");
    assert!(fwm6.is_ipv6() && ssh6.is_ipv6() && !fwm.is_ipv6());
    assert_eq!(fwm.vips().len(), 2);
    assert_eq!(
        (fwm.port(), fwm.protocol(), fwm.fwmark()),
        (0, None, Some(7))
    );
    // ipvsadm -a -f 7 -r RIP -g: the destination keeps each packet's port; probes go to 22.
    let dest = fwm.destination("10.0.0.11".parse().unwrap(), 1);
    assert_eq!((dest.port, dest.forward), (0, ForwardMethod::Route));
    assert_eq!(fwm.probe_port_of("10.0.0.11".parse().unwrap()), 22);
    // Without [service.check] a fwmark service probes nothing: it has no port to probe.
    assert_eq!(fwm6.check.kind, lb_shared::probe::CheckKind::None);
    let vips: Vec<String> = config
        .service_vips()
        .iter()
        .map(|v| v.vip.to_string())
        .collect();
    assert_eq!(vips, ["10.0.0.101", "10.0.0.102", "fd00::101", "fd00::100"]);
}

fn service_problems(service: &str) -> Vec<String> {
    problems(&format!(
        "listen = \"127.0.0.1:7700\"\n[[service]]\nname = \"x\"\ninterface = \"eth0\"\n{service}"
    ))
}

#[test]
fn every_bad_fwmark_combination_names_its_key() {
    let cases: &[(&str, &[&str])] = &[
        (
            "fwmark = 7\nvip = \"10.0.0.100\"\nport = 22\nprotocol = \"tcp\"\nvips = [\"10.0.0.100\"]\n",
            &[
                "service[0].vip = \"10.0.0.100\": a fwmark service takes the addresses its mark covers in vips = [...], not vip",
                "service[0].port = 22: a fwmark service matches every port the mark covers: remove port (a health check's port goes in [service.check] port)",
                "service[0].protocol = \"tcp\": a fwmark service matches every protocol the mark covers: remove protocol",
            ],
        ),
        (
            "fwmark = 7\n",
            &["service[0].vips: is required for a fwmark service: the addresses its mark covers, e.g. vips = [\"129.129.190.55\"] (the director puts them on its interface, the agents REDIRECT them)"],
        ),
        (
            "fwmark = 7\nvips = []\n",
            &["service[0].vips: is required for a fwmark service: the addresses its mark covers, e.g. vips = [\"129.129.190.55\"] (the director puts them on its interface, the agents REDIRECT them)"],
        ),
        (
            "fwmark = 0\nvips = [\"10.0.0.100\"]\n",
            &["service[0].fwmark = 0: must be between 1 and 4294967295"],
        ),
        (
            "fwmark = \"7\"\nvips = [\"10.0.0.100\"]\n",
            &["service[0].fwmark = \"7\": must be a whole number"],
        ),
        (
            "fwmark = 7\nvips = [\"10.0.0.100\", \"fd00::1\", \"10.0.0.100\", \"nope\"]\n",
            &[
                "service[0].vips[3] = \"nope\": is not an IP address: write for example \"129.129.190.54\"",
            ],
        ),
        (
            "fwmark = 7\nvips = [\"10.0.0.100\", \"fd00::1\", \"10.0.0.100\"]\n",
            &[
                "service[0].vips[1] = \"fd00::1\": is not of the family of vips[0] (10.0.0.100): IPVS keeps fwmark services per family; make a second service with the same fwmark for the other family",
                "service[0].vips[2] = \"10.0.0.100\": is also vips[0]: list each address once",
            ],
        ),
        (
            "vips = [\"10.0.0.100\"]\n",
            &[
                "service[0].vip: is required",
                "service[0].port: is required",
                "service[0].vips = [\"10.0.0.100\"]: belongs to a fwmark service: a vip/port service has one vip (or add fwmark = N and remove vip and port)",
            ],
        ),
        (
            "fwmark = 7\nvips = [\"10.0.0.100\"]\n[service.check]\ntype = \"ssh\"\n",
            &["service[0].check.port: is required for a fwmark service's check (its destinations have no port): write the port the realservers answer on, e.g. port = 22, or type = \"none\""],
        ),
        (
            "fwmark = 7\nvips = [\"10.0.0.100\"]\n[service.check]\nport = 0\n",
            &["service[0].check.port = 0: must be between 1 and 65535"],
        ),
        (
            "fwmark = 7\nvips = [\"10.0.0.100\"]\n[[service.realserver]]\naddress = \"10.0.0.11\"\nport = 22\n",
            &["service[0].realserver[0].port = 22: a fwmark service's realservers keep each packet's port: remove port (the check's port goes in [service.check] port)"],
        ),
        (
            "fwmark = 7\nvips = [\"fd00::100\"]\n[[service.realserver]]\naddress = \"10.0.0.11\"\n",
            &["service[0].realserver[0].address = \"10.0.0.11\": is not of the VIP's address family: IPVS forwards IPv4 to IPv4 and IPv6 to IPv6"],
        ),
    ];
    for (service, expected) in cases {
        assert_eq!(&service_problems(service), expected, "for {service:?}");
    }
}

#[test]
fn two_fwmark_services_of_one_mark_and_family_clash() {
    let text = "listen = \"127.0.0.1:7700\"\n[[service]]\nname = \"a\"\nfwmark = 7\nvips = [\"10.0.0.1\"]\ninterface = \"eth0\"\n[[service]]\nname = \"b\"\nfwmark = 7\nvips = [\"10.0.0.2\"]\ninterface = \"eth0\"\n";
    assert_eq!(
        problems(text),
        ["service[1] = FWM 7: is the same fwmark and family as service[0]"]
    );
}

#[test]
fn the_check_port_moves_probes_of_an_address_service_too() {
    let text = format!("{SEED}[service.check]\ntype = \"tcp\"\nport = 2222\n");
    let config = DirectorConfig::parse(Path::new("director.toml"), &text).unwrap();
    let s = &config.services[0];
    assert_eq!(s.probe_port_of("129.129.190.175".parse().unwrap()), 2222);
    assert_eq!(s.port_of("129.129.190.175".parse().unwrap()), 22);
}

#[test]
fn ha_reads_back_with_the_sync_id_from_the_vip() {
    let config = DirectorConfig::parse(
        Path::new("director.toml"),
        &format!("{SEED}\n[ha]\nsync_interface = \"eth1\"\n"),
    )
    .unwrap();
    let ha = config.ha.clone().unwrap();
    assert_eq!(ha.sync_interface, "eth1");
    // The seed's VIP 129.129.190.54: both directors of the pair derive the same id.
    assert_eq!(ha.sync_id, 54);
    assert!(!config.owns_vips());
    let explicit = DirectorConfig::parse(
        Path::new("director.toml"),
        &format!("{SEED}\n[ha]\nsync_interface = \"eth0\"\nsync_id = 200\n"),
    )
    .unwrap();
    assert_eq!(explicit.ha.unwrap().sync_id, 200);
    let single = DirectorConfig::parse(Path::new("director.toml"), SEED).unwrap();
    assert!(single.ha.is_none() && single.owns_vips());
    assert_eq!(default_sync_id(Some("10.0.0.0".parse().unwrap())), 1);
    assert_eq!(default_sync_id(Some("fd00::1:7".parse().unwrap())), 7);
}

#[test]
fn bad_ha_keys_are_named_with_their_path() {
    let bad = problems(&format!(
        "{SEED}\n[ha]\nsync_interface = \"eth0:1\"\nsync_id = 0\nvrrp = true\n"
    ));
    assert_eq!(bad.len(), 3, "{bad:#?}");
    assert!(
        bad.iter().any(|p| p.starts_with("ha.sync_interface")),
        "{bad:#?}"
    );
    assert!(
        bad.iter()
            .any(|p| p.starts_with("ha.sync_id") && p.contains("between 1 and 255")),
        "{bad:#?}"
    );
    assert!(
        bad.iter()
            .any(|p| p.starts_with("ha.vrrp") && p.contains("unknown key")),
        "{bad:#?}"
    );
    let missing = problems(&format!("{SEED}\n[ha]\nsync_id = 256\n"));
    assert!(
        missing
            .iter()
            .any(|p| p.starts_with("ha.sync_interface") && p.contains("is required")),
        "{missing:#?}"
    );
    assert!(
        missing.iter().any(|p| p.starts_with("ha.sync_id")),
        "{missing:#?}"
    );
    let not_a_table = problems(&format!("ha = \"yes\"\n{SEED}"));
    assert!(
        not_a_table.iter().any(|p| p.starts_with("ha")),
        "{not_a_table:#?}"
    );
}

#[test]
fn the_ha_pair_configs_are_valid_and_agree() {
    let pki = tempfile::tempdir().unwrap();
    crate::certs::init_ca(pki.path(), "test CA").unwrap();
    let read = |name: &str, text: &str| {
        crate::certs::issue(pki.path(), name, &[], &[]).unwrap();
        let text = text.replace("/etc/lb/tls", pki.path().to_str().unwrap());
        DirectorConfig::parse(Path::new(name), &text).unwrap()
    };
    let one = read(
        "llclb1",
        include_str!("../../../deploy/ha/director-llclb1.toml"),
    );
    let two = read(
        "llclb2",
        include_str!("../../../deploy/ha/director-llclb2.toml"),
    );
    let ha = one.ha.clone().unwrap();
    assert_eq!((ha.sync_interface.as_str(), ha.sync_id), ("eth0", 54));
    assert_eq!(one.ha, two.ha, "both directors sync on the same id");
    assert_eq!(one.services, two.services);
    assert_eq!(one.realservers, two.realservers);
    assert_ne!(one.listen, two.listen);
    // Each lists the other as its peer, by the name the other goes by, at its listen address.
    assert_eq!((one.name.as_str(), two.name.as_str()), ("llclb1", "llclb2"));
    let (to_two, to_one) = (one.peer("llclb2").unwrap(), two.peer("llclb1").unwrap());
    assert_eq!(to_two.url.authority(), two.listen.to_string());
    assert_eq!(to_one.url.authority(), one.listen.to_string());
}

#[test]
fn an_odd_hostname_keeps_no_single_director_from_starting_but_a_peered_one_must_set_name() {
    let parse = |text: &str| DirectorConfig::parse_as(Path::new("director.toml"), text, "(none)");
    assert_eq!(parse(SEED).unwrap().name, "(none)");
    let peered = format!("{SEED}\n[[peer]]\nname = \"b\"\nurl = \"http://10.0.0.3:7700\"\n");
    let found = match parse(&peered) {
        Err(ConfigError::Invalid { problems, .. }) => {
            problems.iter().map(ToString::to_string).collect::<Vec<_>>()
        }
        other => panic!("accepted: {other:?}"),
    };
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("name: is not set and the hostname \"(none)\"")),
        "{found:#?}"
    );
}

#[test]
fn name_defaults_to_the_hostname_and_peers_are_checked_by_key() {
    let parse = |text: &str| DirectorConfig::parse_as(Path::new("director.toml"), text, "llclb1");
    let config = parse(SEED).unwrap();
    assert_eq!(config.name, "llclb1");
    assert!(config.peers.is_empty());
    assert_eq!(config.peer_interval, DEFAULT_PEER_INTERVAL);
    assert_eq!(config.peer_startup_wait, DEFAULT_PEER_STARTUP_WAIT);
    let text = format!(
        "name = \"a\"\npeer_interval = \"2s\"\npeer_startup_wait = \"0s\"\n{SEED}\n[[peer]]\nname = \"b\"\nurl = \"http://10.0.0.3:7700\"\n"
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.name, "a");
    assert_eq!(
        config.peer("b").unwrap().url.to_string(),
        "http://10.0.0.3:7700/"
    );
    assert_eq!(config.peer_interval, Duration::from_secs(2));
    assert_eq!(config.peer_startup_wait, Duration::ZERO);

    let bad = format!(
        "{SEED}\n[[peer]]\nname = \"llclb1\"\nurl = \"http://10.0.0.2:7700\"\n\
         [[peer]]\nname = \"b\"\nurl = \"https://10.0.0.3:7700\"\n\
         [[peer]]\nname = \"c\"\nurl = \"http://10.0.0.4:7700\"\n\
         [[peer]]\nname = \"c\"\nurl = \"http://10.0.0.5:7700\"\n\
         [[peer]]\nname = \"d\"\nurl = \"http://10.0.0.4:7700\"\n\
         [[peer]]\nname = \"e f\"\nurl = \"ftp://x\"\n"
    );
    let found = match parse(&bad) {
        Err(ConfigError::Invalid { problems, .. }) => {
            problems.iter().map(ToString::to_string).collect::<Vec<_>>()
        }
        other => panic!("accepted: {other:?}"),
    };
    assert_eq!(
        found,
        vec![
            "peer[0].name = \"llclb1\": is this director's own name: list the other directors only (or set name)",
            "peer[1].url = \"https://10.0.0.3:7700\": is https:// but this director has no [tls] to show the peer a certificate: add [tls] or use http:// on an insecure setup",
            "peer[3].name = \"c\": is also peer[2]: list each director once",
            "peer[4].url = \"http://10.0.0.4:7700/\": is also the url of peer[2]: one director has one url",
            "peer[5].name = \"e f\": contains ' ': use letters, digits, '-', '_' and '.' only",
            "peer[5].url = \"ftp://x\": must start with http:// or https://",
        ]
    );
}

#[test]
fn ecmp_mode_owns_its_vips_and_wants_mh() {
    let mh = SEED.replace(
        "scheduler = \"rr\"",
        "scheduler = \"mh\"\nscheduler_flags = [\"mh-port\"]",
    );
    let config = DirectorConfig::parse(
        Path::new("director.toml"),
        &format!("{mh}\n[ha]\nmode = \"ecmp\"\n"),
    )
    .unwrap();
    assert!(config.ecmp && config.ha.is_none() && config.owns_vips());
    let service = config.services[0].ipvs_service();
    assert_eq!(service.flags.0, lb_ipvs::ServiceFlags::SCHED2, "mh-port");
    let standby = DirectorConfig::parse(
        Path::new("director.toml"),
        &format!("{SEED}\n[ha]\nmode = \"active-standby\"\nsync_interface = \"eth0\"\n"),
    )
    .unwrap();
    assert!(!standby.ecmp && standby.ha.is_some());

    let rr = problems(&format!(
        "{SEED}\n[ha]\nmode = \"ecmp\"\nsync_interface = \"eth0\"\n"
    ));
    assert_eq!(rr.len(), 2, "{rr:#?}");
    assert!(
        rr.iter()
            .any(|p| p.starts_with("service[0].scheduler = \"rr\"")
                && p.contains("use scheduler = \"mh\"")),
        "{rr:#?}"
    );
    assert!(
        rr.iter()
            .any(|p| p.starts_with("ha.sync_interface") && p.contains("no use with mode")),
        "{rr:#?}"
    );
    let mode = problems(&format!("{SEED}\n[ha]\nmode = \"active-active\"\n"));
    assert!(
        mode.len() == 1 && mode[0].starts_with("ha.mode = \"active-active\": is not a mode"),
        "{mode:#?}"
    );
}

#[test]
fn scheduler_flags_are_ipvsadms_names_for_their_scheduler() {
    let with = |sched: &str, flags: &str| {
        SEED.replace(
            "scheduler = \"rr\"",
            &format!("scheduler = \"{sched}\"\nscheduler_flags = {flags}"),
        )
    };
    let both = DirectorConfig::parse(
        Path::new("director.toml"),
        &with("sh", "[\"sh-fallback\", \"sh-port\"]"),
    )
    .unwrap();
    use lb_ipvs::ServiceFlags;
    assert_eq!(
        both.services[0].ipvs_service().flags.0,
        ServiceFlags::SCHED1 | ServiceFlags::SCHED2
    );
    let raw =
        DirectorConfig::parse(Path::new("director.toml"), &with("rr", "[\"flag-3\"]")).unwrap();
    assert_eq!(raw.services[0].ipvs_service().flags.0, ServiceFlags::SCHED3);
    let wrong = problems(&with("wlc", "[\"mh-port\", \"mh-flag-1\", 7]"));
    assert_eq!(wrong.len(), 3, "{wrong:#?}");
    assert!(wrong[0].starts_with("service[0].scheduler_flags[0] = \"mh-port\": is a flag of the mh scheduler and this service's scheduler is wlc"), "{wrong:#?}");
    assert!(
        wrong[1]
            .starts_with("service[0].scheduler_flags[1] = \"mh-flag-1\": is not a scheduler flag"),
        "{wrong:#?}"
    );
    assert!(
        wrong[2].starts_with("service[0].scheduler_flags[2]"),
        "{wrong:#?}"
    );
}

#[test]
fn a_realservers_default_name_is_its_address_as_display_writes_it() {
    for o in 0..=255u8 {
        for v4 in [
            std::net::Ipv4Addr::new(o, 0, 0, 0),
            std::net::Ipv4Addr::new(10, o, 0, 11),
            std::net::Ipv4Addr::new(192, 168, 1, o),
            std::net::Ipv4Addr::new(o, o, o, o),
        ] {
            assert_eq!(address_text(IpAddr::V4(v4)), v4.to_string());
        }
    }
    for v6 in ["fe80::1", "2001:db8::a:0:0:1", "::ffff:10.0.0.1"] {
        let addr: IpAddr = v6.parse().unwrap();
        assert_eq!(address_text(addr), addr.to_string());
    }
}
