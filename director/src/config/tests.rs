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
