//! Fuzzing of the director's config reader (`DirectorConfig::parse`, issue 6): any text and
//! any document in the config's shape is read or refused with problems that name key paths,
//! never a panic; an accepted config written out again reads back the same, and the daemon
//! can use every value it accepted. A few hundred cases per property in `cargo test`;
//! `PROPTEST_CASES` raises it.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

#[path = "../../shared/tests/fuzz_config_support/mod.rs"]
mod fuzz_config_support;

use std::path::Path;

use fuzz_config_support::*;
use lb_director::config::{DirectorConfig, ServiceMatch};
use lb_shared::config::ConfigError;
use lb_shared::duration;
use proptest::option;
use proptest::prelude::*;
use toml::{Table, Value};

const PATH: &str = "/etc/lb/director.toml";
const EXAMPLE: &str = include_str!("../../deploy/director.example.toml");
const KNOWN: &[&str] = &[
    "listen",
    "metrics_listen",
    "state_dir",
    "lease_ttl",
    "resync_interval",
    "timeouts",
    "tcp",
    "tcp_fin",
    "udp",
    "service",
    "name",
    "vip",
    "vips",
    "fwmark",
    "port",
    "protocol",
    "scheduler",
    "forward",
    "interface",
    "persistence",
    "tls",
    "ca",
    "cert",
    "key",
    "insecure",
    "admins",
    "admin_socket",
    "realserver",
    "address",
    "check",
    "type",
    "interval",
    "timeout",
    "fall",
    "rise",
    "peer",
    "url",
    "peer_interval",
    "peer_startup_wait",
];

fn integer(valid: std::ops::RangeInclusive<i64>, invalid: &'static [i64]) -> BoxedStrategy<Value> {
    let valid = valid.prop_map(Value::Integer);
    let invalid = proptest::sample::select(invalid).prop_map(Value::Integer);
    prop_oneof![30 => mostly(valid, KNOWN), 1 => invalid].boxed()
}

/// One `[service.check]`, every key mostly valid (a timeout of 1s or less under an interval of
/// 2s or more), now and then one that is not.
fn check() -> impl Strategy<Value = Value> {
    (
        option::of(pick(&["tcp", "ssh", "none"], &["http", "TCP"], KNOWN)),
        option::of(pick(&["2s", "5s", "1m"], &["0s", "2h", "2"], KNOWN)),
        option::of(pick(&["500ms", "1s"], &["0s", "2s", "1m"], KNOWN)),
        option::of(integer(1..=10, &[0, -1, 1001])),
        option::of(integer(1..=10, &[0, -1, 1001])),
        extra(KNOWN),
    )
        .prop_map(|(kind, interval, timeout, fall, rise, extra)| {
            let mut check = extra;
            set(&mut check, "type", kind);
            set(&mut check, "interval", interval);
            set(&mut check, "timeout", timeout);
            set(&mut check, "fall", fall);
            set(&mut check, "rise", rise);
            Value::Table(check)
        })
}

/// One `[[service]]`, from small pools of names and addresses so that duplicates happen.
fn service() -> impl Strategy<Value = Value> {
    (
        option::weighted(
            0.98,
            pick(
                &["llc-ssh", "web", "dns", "ntp", "smtp"],
                &["bad name", "-x", ""],
                KNOWN,
            ),
        ),
        option::weighted(
            0.98,
            pick(
                &[
                    "10.0.0.100",
                    "10.0.0.101",
                    "10.0.0.102",
                    "2001:db8::1",
                    "2001:db8::2",
                ],
                &["0.0.0.0", "224.0.0.1", "10.0.0", "::"],
                KNOWN,
            ),
        ),
        option::weighted(0.98, integer(1..=65535, &[0, 65536, -1, i64::MAX])),
        option::of(pick(&["tcp", "udp", "sctp"], &["TCP", "icmp"], KNOWN)),
        option::of(pick(
            &["rr", "wlc", "mh"],
            &["Round Robin", "abcdefghijklmnop"],
            KNOWN,
        )),
        option::of(pick(&["dr", "nat", "tunnel"], &["magic", "DR"], KNOWN)),
        option::weighted(
            0.98,
            pick(
                &["eth0", "lo", "bond0.12"],
                &["eth0:1", "a/b", "abcdefghijklmnop", ".."],
                KNOWN,
            ),
        ),
        option::of(mostly(duration_text(), KNOWN)),
        option::of(mostly(check(), KNOWN)),
        extra(KNOWN),
    )
        .prop_map(
            |(
                name,
                vip,
                port,
                protocol,
                scheduler,
                forward,
                interface,
                persistence,
                check,
                extra,
            )| {
                let mut service = extra;
                set(&mut service, "name", name);
                set(&mut service, "vip", vip);
                set(&mut service, "port", port);
                set(&mut service, "protocol", protocol);
                set(&mut service, "scheduler", scheduler);
                set(&mut service, "forward", forward);
                set(&mut service, "interface", interface);
                set(&mut service, "persistence", persistence);
                set(&mut service, "check", check);
                Value::Table(service)
            },
        )
}

/// One `[[realserver]]` that may register: a name and an address or network.
fn realserver() -> impl Strategy<Value = Value> {
    (
        option::weighted(0.98, pick(&["llc5", "llc6"], &["bad name"], KNOWN)),
        option::weighted(
            0.98,
            pick(
                &[
                    "129.129.190.175",
                    "10.0.0.0/24",
                    "2001:db8::/64",
                    "0.0.0.0/0",
                ],
                &["10.0.0.0/33", "10.0.0.0/x", "nowhere"],
                KNOWN,
            ),
        ),
        extra(KNOWN),
    )
        .prop_map(|(name, address, extra)| {
            let mut realserver = extra;
            set(&mut realserver, "name", name);
            set(&mut realserver, "address", address);
            Value::Table(realserver)
        })
}

/// The access keys: `[tls]`, `insecure`, `admins`, `admin_socket`, `[[realserver]]`.
fn access() -> impl Strategy<Value = Table> {
    let names = proptest::collection::vec(pick(&["ops", "admin"], &["bad name"], KNOWN), 0..3);
    let realservers = proptest::collection::vec(realserver(), 1..3).prop_map(Value::Array);
    (
        option::weighted(
            0.4,
            mostly(tls_table("llclb1.pem", "llclb1.key", KNOWN), KNOWN),
        ),
        option::weighted(0.2, mostly(any::<bool>().prop_map(Value::Boolean), KNOWN)),
        option::of(mostly(names.prop_map(Value::Array), KNOWN)),
        option::weighted(
            0.3,
            pick(
                &["/run/lb-director/admin.sock", "/tmp/a.sock", ""],
                &["admin.sock"],
                KNOWN,
            ),
        ),
        option::weighted(0.8, mostly(realservers, KNOWN)),
    )
        .prop_map(|(tls, insecure, admins, admin_socket, realservers)| {
            let mut access = Table::new();
            set(&mut access, "tls", tls);
            set(&mut access, "insecure", insecure);
            set(&mut access, "admins", admins);
            set(&mut access, "admin_socket", admin_socket);
            set(&mut access, "realserver", realservers);
            access
        })
}

/// `name`, `[[peer]]`, `peer_interval` and `peer_startup_wait`: names from a small pool so
/// that duplicates and the director's own name come up.
fn peers() -> impl Strategy<Value = Table> {
    let peer = (
        option::weighted(
            0.98,
            pick(&["llclb1", "llclb2", "llclb3"], &["bad name"], KNOWN),
        ),
        option::weighted(
            0.98,
            pick(
                &[
                    "http://127.0.0.1:7701",
                    "https://10.0.0.3:7700",
                    "http://[::1]:7700",
                ],
                &["ftp://x", "nowhere", "http://10.0.0.3:7700/path"],
                KNOWN,
            ),
        ),
        extra(KNOWN),
    )
        .prop_map(|(name, url, extra)| {
            let mut peer = extra;
            set(&mut peer, "name", name);
            set(&mut peer, "url", url);
            Value::Table(peer)
        });
    (
        option::weighted(0.5, pick(&["llclb1", "llclb2"], &["bad name", ""], KNOWN)),
        option::weighted(
            0.5,
            mostly(
                proptest::collection::vec(peer, 0..3).prop_map(Value::Array),
                KNOWN,
            ),
        ),
        option::of(mostly(duration_text(), KNOWN)),
        option::of(mostly(duration_text(), KNOWN)),
    )
        .prop_map(|(name, peers, interval, wait)| {
            let mut t = Table::new();
            set(&mut t, "name", name);
            set(&mut t, "peer", peers);
            set(&mut t, "peer_interval", interval);
            set(&mut t, "peer_startup_wait", wait);
            t
        })
}

/// A director config, each key mostly valid and sometimes missing or of another kind.
fn document() -> impl Strategy<Value = Table> {
    const MAX: i64 = i32::MAX as i64;
    let timeout = || option::of(integer(0..=MAX, &[-1, MAX + 1]));
    let timeouts = (timeout(), timeout(), timeout()).prop_map(|(tcp, tcp_fin, udp)| {
        let mut t = Table::new();
        set(&mut t, "tcp", tcp);
        set(&mut t, "tcp_fin", tcp_fin);
        set(&mut t, "udp", udp);
        Value::Table(t)
    });
    (
        // Mostly on loopback: anything else (the default, 0.0.0.0, too) needs [tls] or insecure.
        option::weighted(
            0.9,
            pick(
                &["127.0.0.1:7700", "[::1]:7700", "127.0.0.2:1"],
                &["0.0.0.0:7700", "nowhere", ":7700", "127.0.0.1"],
                KNOWN,
            ),
        ),
        option::of(pick(
            &["/var/lib/lb-director", "/tmp/x"],
            &["relative/dir", ""],
            KNOWN,
        )),
        option::of(mostly(duration_text(), KNOWN)),
        option::of(mostly(duration_text(), KNOWN)),
        option::of(mostly(timeouts, KNOWN)),
        option::weighted(
            0.98,
            mostly(
                proptest::collection::vec(service(), 1..4).prop_map(Value::Array),
                KNOWN,
            ),
        ),
        extra(KNOWN),
        (access(), peers()),
    )
        .prop_map(
            |(listen, state_dir, lease_ttl, resync, timeouts, services, extra, (access, peers))| {
                let mut root = extra;
                root.extend(access);
                root.extend(peers);
                set(&mut root, "listen", listen);
                set(&mut root, "state_dir", state_dir);
                set(&mut root, "lease_ttl", lease_ttl);
                set(&mut root, "resync_interval", resync);
                set(&mut root, "timeouts", timeouts);
                set(&mut root, "service", services);
                root
            },
        )
}

/// `config` as a file, every key written out.
fn to_toml(config: &DirectorConfig) -> String {
    let mut root = Table::new();
    let string = |s: String| Value::String(s);
    root.insert("listen".into(), string(config.listen.to_string()));
    let metrics = config.metrics_listen.map(|a| a.to_string());
    root.insert("metrics_listen".into(), string(metrics.unwrap_or_default()));
    let state_dir = config.state_dir.to_str().unwrap().to_owned();
    root.insert("state_dir".into(), string(state_dir));
    root.insert(
        "lease_ttl".into(),
        string(duration::format(config.lease_ttl)),
    );
    let resync = duration::format(config.resync_interval);
    root.insert("resync_interval".into(), string(resync));
    let mut timeouts = Table::new();
    for (key, value) in [
        ("tcp", config.timeouts.tcp),
        ("tcp_fin", config.timeouts.tcp_fin),
        ("udp", config.timeouts.udp),
    ] {
        timeouts.insert(key.into(), Value::Integer(i64::from(value)));
    }
    root.insert("timeouts".into(), Value::Table(timeouts));
    let services = config.services.iter().map(|s| {
        let mut t = Table::new();
        t.insert("name".into(), string(s.name.clone()));
        match &s.matching {
            ServiceMatch::Addr {
                vip,
                port,
                protocol,
            } => {
                t.insert("vip".into(), string(vip.to_string()));
                t.insert("port".into(), Value::Integer(i64::from(*port)));
                t.insert("protocol".into(), string(protocol.to_string()));
            }
            ServiceMatch::FwMark { mark, vips } => {
                t.insert("fwmark".into(), Value::Integer(i64::from(*mark)));
                let vips = vips.iter().map(|v| string(v.to_string())).collect();
                t.insert("vips".into(), Value::Array(vips));
            }
        }
        t.insert("scheduler".into(), string(s.scheduler.clone()));
        t.insert("forward".into(), string(s.forward.to_string()));
        t.insert("interface".into(), string(s.interface.clone()));
        if let Some(p) = s.persistence {
            t.insert("persistence".into(), string(duration::format(p)));
        }
        let mut check = Table::new();
        check.insert("type".into(), string(s.check.kind.to_string()));
        let interval = duration::format(s.check.interval);
        check.insert("interval".into(), string(interval));
        check.insert("timeout".into(), string(duration::format(s.check.timeout)));
        check.insert("fall".into(), Value::Integer(i64::from(s.check.fall)));
        check.insert("rise".into(), Value::Integer(i64::from(s.check.rise)));
        if let Some(port) = s.check.port {
            check.insert("port".into(), Value::Integer(i64::from(port)));
        }
        t.insert("check".into(), Value::Table(check));
        Value::Table(t)
    });
    root.insert("service".into(), Value::Array(services.collect()));
    if let Some(tls) = &config.tls {
        root.insert("tls".into(), tls_value(tls));
    }
    root.insert("insecure".into(), Value::Boolean(config.insecure));
    let admins = config.admins.iter().cloned().map(string).collect();
    root.insert("admins".into(), Value::Array(admins));
    let admin_socket = config
        .admin_socket
        .as_ref()
        .map_or("", |p| p.to_str().unwrap());
    root.insert("admin_socket".into(), string(admin_socket.to_owned()));
    let realservers = config.realservers.iter().map(|r| {
        let mut t = Table::new();
        t.insert("name".into(), string(r.name.clone()));
        t.insert("address".into(), string(r.address.to_string()));
        Value::Table(t)
    });
    root.insert("realserver".into(), Value::Array(realservers.collect()));
    root.insert("name".into(), string(config.name.clone()));
    let peers = config.peers.iter().map(|p| {
        let mut t = Table::new();
        t.insert("name".into(), string(p.name.clone()));
        t.insert("url".into(), string(p.url.to_string()));
        Value::Table(t)
    });
    root.insert("peer".into(), Value::Array(peers.collect()));
    let interval = duration::format(config.peer_interval);
    root.insert("peer_interval".into(), string(interval));
    let wait = duration::format(config.peer_startup_wait);
    root.insert("peer_startup_wait".into(), string(wait));
    toml::to_string(&root).unwrap()
}

fn parse(text: &str) -> Result<DirectorConfig, ConfigError> {
    DirectorConfig::parse(Path::new(PATH), text)
}

/// What the daemon does with an accepted config must not fail on its values: it adds the
/// lease TTL, the resync interval and each check's interval to the current time.
fn assert_usable(config: &DirectorConfig) {
    let mut durations = vec![
        ("lease_ttl", config.lease_ttl),
        ("resync_interval", config.resync_interval),
        ("peer_interval", config.peer_interval),
        ("peer_startup_wait", config.peer_startup_wait),
    ];
    for service in &config.services {
        durations.push(("check.interval", service.check.interval));
        assert!(service.check.timeout < service.check.interval);
    }
    assert_fits_the_clock(&durations);
}

proptest! {
    #![proptest_config(config("tests/proptest-regressions/fuzz_config.txt"))]

    #[test]
    fn any_text_is_read_or_refused_with_named_problems(
        text in prop_oneof![edited(with_test_tls(EXAMPLE)), any::<String>()]
    ) {
        match parse(&text) {
            Ok(config) => assert_usable(&config),
            Err(error) => check_error(&error, PATH, text.parse().ok().as_ref()),
        }
    }

    #[test]
    fn any_document_is_read_or_refused_with_problems_at_its_keys(document in document()) {
        let text = toml::to_string(&document).unwrap();
        match parse(&text) {
            Ok(config) => {
                assert_usable(&config);
                let again = parse(&to_toml(&config));
                prop_assert_eq!(again.unwrap(), config);
            }
            Err(error) => check_error(&error, PATH, Some(&document)),
        }
    }
}

proptest! {
    #![proptest_config(config("tests/proptest-regressions/fuzz_config.txt"))]

    /// Durations get a property of their own: in a whole random document a huge one is
    /// rarely the only problem, so an accepted one that the daemon cannot use would hide.
    #[test]
    fn any_duration_in_the_example_is_usable_or_refused_by_name(
        lease_ttl in duration_text(),
        resync in duration_text(),
        persistence in duration_text(),
    ) {
        let quoted = |v: &Value| v.to_string();
        let text = with_test_tls(EXAMPLE)
            .replace("lease_ttl = \"6s\"", &format!("lease_ttl = {}", quoted(&lease_ttl)))
            .replace(
                "resync_interval = \"5s\"",
                &format!("resync_interval = {}", quoted(&resync)),
            )
            .replace(
                "# persistence = \"5m\"",
                &format!("persistence = {}", quoted(&persistence)),
            );
        match parse(&text) {
            Ok(config) => assert_usable(&config),
            Err(error) => check_error(&error, PATH, Some(&text.parse().unwrap())),
        }
    }
}

#[test]
fn the_example_config_reads_back_the_same() {
    let config = parse(&with_test_tls(EXAMPLE)).unwrap();
    assert_eq!(parse(&to_toml(&config)).unwrap(), config);
}

#[test]
fn inputs_that_once_failed_are_refused_or_usable() {
    for text in regression_texts(env!("CARGO_MANIFEST_DIR")) {
        match parse(&text) {
            Ok(config) => assert_usable(&config),
            Err(error) => check_error(&error, PATH, Some(&text.parse().unwrap())),
        }
    }
}
