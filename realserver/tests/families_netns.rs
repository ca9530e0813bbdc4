//! IPv6 VIPs (ip6tables), a firewall-mark service's any-port rule and UDP through the agent's
//! REDIRECT rules, against the real kernel as root, each test in namespaces of its own. Not
//! root: each test prints "skipped: needs root" and passes.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use lb_realserver::keeper::RuleKeeper;
use lb_realserver::rules::contract::{fwmark_rule, rule, ssh_rule, Shell};
use lb_realserver::rules::{IptablesRules, RedirectRule};
use lb_shared::domain::Protocol;
use support::netns::{skip_unless_root, Netns};

const VIP6: &str = "fd00:18:1::54";
const VIP4: &str = "198.18.1.54";

/// A realserver and a client namespace on a veth, the client routing both VIPs to the
/// realserver as a direct-routing director would deliver them. `nodad`: a tentative address
/// drops packets for a second or more while duplicate address detection runs.
fn direct_routing_pair() -> (Netns, Netns) {
    let realserver = Netns::new();
    let client = Netns::new();
    realserver.ip(&format!(
        "link add v0 type veth peer name v1 netns {}",
        client.name
    ));
    realserver.ip("addr add 198.18.0.1/24 dev v0");
    realserver.ip("addr add fd00:18::1/64 dev v0 nodad");
    realserver.ip("link set v0 up");
    client.ip("addr add 198.18.0.2/24 dev v1");
    client.ip("addr add fd00:18::2/64 dev v1 nodad");
    client.ip("link set v1 up");
    client.ip(&format!("route add {VIP4}/32 via 198.18.0.1"));
    client.ip(&format!("-6 route add {VIP6}/128 via fd00:18::1"));
    (realserver, client)
}

fn ours(shell: &impl Shell) -> Vec<String> {
    shell
        .chain()
        .into_iter()
        .filter(|line| line.contains("lb-agent:"))
        .collect()
}

/// One TCP connection to `addr` from `client`; what the server wrote, or None.
fn fetch(client: &Netns, addr: SocketAddr) -> Option<String> {
    client.run(|| {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(1500)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        Some(text)
    })
}

/// Accepts connections on `port` (IPv6 socket, both families) and greets each, forever.
fn serve_tcp(realserver: &Netns, port: u16) {
    let listener = realserver.run(|| TcpListener::bind(("::", port)).unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"served by llc5\n");
        }
    });
}

#[test]
fn an_ipv6_vip_reaches_the_listener_through_ip6tables_and_is_repaired_and_pruned() {
    if skip_unless_root("an_ipv6_vip_reaches_the_listener_through_ip6tables") {
        return;
    }
    let (realserver, client) = direct_routing_pair();
    let v6 = realserver.shell("ip6tables");
    let v4 = realserver.shell("iptables");
    serve_tcp(&realserver, 22);
    let vip: SocketAddr = format!("[{VIP6}]:22").parse().unwrap();
    assert_eq!(
        fetch(&client, vip),
        None,
        "the VIP answered without the rule"
    );

    let rule = rule("llc-ssh6", VIP6, 22, Protocol::Tcp);
    // The IPv4 agent of the same host: its rule must survive the IPv6 agent's prune and stop.
    let other = ssh_rule(VIP4);
    realserver.block_on(|| async {
        let mut v4_keeper =
            RuleKeeper::new(IptablesRules::new().unwrap()).of_family("198.18.0.1".parse().unwrap());
        v4_keeper.apply(vec![other.clone()]).await.unwrap();
        let mut keeper =
            RuleKeeper::new(IptablesRules::new().unwrap()).of_family("fd00:18::1".parse().unwrap());
        keeper.apply(vec![rule.clone()]).await.unwrap();
        assert_eq!(
            ours(&v6),
            vec![rule.listing()],
            "exactly one ip6tables rule"
        );
        assert_eq!(
            ours(&v4),
            vec![other.listing()],
            "the IPv4 rule is untouched"
        );
        assert_eq!(
            fetch(&client, vip).as_deref(),
            Some("served by llc5\n"),
            "no connection to the IPv6 VIP with the rule in place"
        );

        // Drift: deleted by hand with ip6tables, put back by the next check.
        v6.iptables(&rule.listing().replacen("-A", "-D", 1));
        assert!(ours(&v6).is_empty());
        assert_eq!(keeper.heal().await.unwrap(), vec![rule.clone()]);
        assert_eq!(ours(&v6), vec![rule.listing()]);

        // A stale rule of this agent (a service it no longer has) is pruned; the other
        // family's agent keeps its rule through that and through this agent's stop.
        let stale = RedirectRule {
            service: "old".into(),
            ..rule.clone()
        };
        v6.iptables(&stale.listing());
        assert_eq!(keeper.prune().await.unwrap(), vec![stale.clone()]);
        keeper.remove_all().await.unwrap();
        assert!(ours(&v6).is_empty(), "left behind: {:?}", ours(&v6));
        assert_eq!(
            ours(&v4),
            vec![other.listing()],
            "the IPv6 agent took the IPv4 rule"
        );
        v4_keeper.remove_all().await.unwrap();
    });
    assert!(ours(&v4).is_empty());
    assert_eq!(
        fetch(&client, vip),
        None,
        "the VIP still answers after removal"
    );
}

#[test]
fn a_fwmark_rule_takes_every_port_of_its_vip_in_both_families() {
    if skip_unless_root("a_fwmark_rule_takes_every_port_of_its_vip_in_both_families") {
        return;
    }
    let (realserver, client) = direct_routing_pair();
    serve_tcp(&realserver, 22);
    serve_tcp(&realserver, 2222);
    let addrs: Vec<SocketAddr> = [
        format!("{VIP4}:22"),
        format!("{VIP4}:2222"),
        format!("[{VIP6}]:22"),
        format!("[{VIP6}]:2222"),
    ]
    .iter()
    .map(|a| a.parse().unwrap())
    .collect();
    let rules = vec![fwmark_rule("llc-fwm", VIP4), fwmark_rule("llc-fwm6", VIP6)];
    realserver.block_on(|| async {
        let backend = IptablesRules::new().unwrap();
        let mut keeper = RuleKeeper::new(backend);
        keeper.apply(rules.clone()).await.unwrap();
    });
    for addr in &addrs {
        assert_eq!(
            fetch(&client, *addr).as_deref(),
            Some("served by llc5\n"),
            "{addr} not delivered by the fwmark service's rule"
        );
    }
    // Read back in the agent's own terms from both tables.
    let mut owned = realserver.block_on(|| async {
        use lb_realserver::rules::RuleBackend;
        IptablesRules::new().unwrap().owned().await.unwrap()
    });
    owned.sort();
    let mut expected = rules.clone();
    expected.sort();
    assert_eq!(owned, expected);
    realserver.block_on(|| async {
        let mut keeper = RuleKeeper::new(IptablesRules::new().unwrap());
        keeper.apply(rules.clone()).await.unwrap();
        keeper.remove_all().await.unwrap();
    });
    for addr in &addrs {
        assert_eq!(fetch(&client, *addr), None, "{addr} answers after removal");
    }
}

#[test]
fn a_udp_datagram_to_the_vip_is_answered_from_the_vip() {
    if skip_unless_root("a_udp_datagram_to_the_vip_is_answered_from_the_vip") {
        return;
    }
    let (realserver, client) = direct_routing_pair();
    let responder = realserver.run(|| UdpSocket::bind("[::]:5353").unwrap());
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((_, from)) = responder.recv_from(&mut buf) {
            let _ = responder.send_to(b"llc5", from);
        }
    });
    let rules = vec![
        rule("dns", VIP4, 5353, Protocol::Udp),
        rule("dns6", VIP6, 5353, Protocol::Udp),
    ];
    realserver.block_on(|| async {
        let mut keeper = RuleKeeper::new(IptablesRules::new().unwrap());
        keeper.apply(rules.clone()).await.unwrap();
    });
    for (bind, vip) in [
        ("0.0.0.0:0", format!("{VIP4}:5353")),
        ("[::]:0", format!("[{VIP6}]:5353")),
    ] {
        let vip: SocketAddr = vip.parse().unwrap();
        let (answer, from) = client.run(|| {
            let socket = UdpSocket::bind(bind).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let mut buf = [0u8; 512];
            // UDP may lose the first datagram while neighbours are resolved: ask a few times.
            for _ in 0..10 {
                socket.send_to(b"who?", vip).unwrap();
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    return (String::from_utf8_lossy(&buf[..n]).into_owned(), from);
                }
            }
            panic!("no answer from {vip}");
        });
        assert_eq!(answer, "llc5");
        assert_eq!(
            from, vip,
            "the answer must come from the VIP (conntrack undoes REDIRECT)"
        );
    }
    realserver.block_on(|| async {
        let mut keeper = RuleKeeper::new(IptablesRules::new().unwrap());
        keeper.apply(rules.clone()).await.unwrap();
        keeper.remove_all().await.unwrap();
    });
}
