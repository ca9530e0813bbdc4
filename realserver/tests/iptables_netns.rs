//! The iptables backend and the agent binary against the real kernel, as root, each test in
//! network namespaces of its own (deleted at the end, also on failure). Not root: each test
//! prints "skipped: needs root" and passes.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use lb_realserver::keeper::RuleKeeper;
use lb_realserver::rules::contract::{self, ssh_rule, Shell, SEED_RULE};
use lb_realserver::rules::{Ensured, IptablesRules, Removed, RuleBackend};
use support::netns::{skip, skip_unless_root, wait_until, Netns};
use support::{Call, FakeDirector, Options, VIP};

fn ours(shell: &impl Shell) -> Vec<String> {
    shell
        .chain()
        .into_iter()
        .filter(|line| line.contains("lb-agent:"))
        .collect()
}

#[test]
fn iptables_keeps_the_backend_contract() {
    if skip_unless_root("iptables_keeps_the_backend_contract") {
        return;
    }
    let ns = Netns::new();
    let shell = ns.shell("iptables");
    ns.block_on(|| async {
        let rules = IptablesRules::new().unwrap();
        contract::all(&rules, &shell).await;
    });
    assert!(shell.chain().is_empty(), "left behind: {:?}", shell.chain());
}

#[test]
fn legacy_iptables_keeps_the_backend_contract() {
    if skip_unless_root("legacy_iptables_keeps_the_backend_contract") {
        return;
    }
    let ns = Netns::new();
    if !ns
        .exec("iptables-legacy -t nat -S")
        .status()
        .unwrap()
        .success()
    {
        skip(
            "legacy_iptables_keeps_the_backend_contract",
            "iptables-legacy does not work on this host",
        );
        return;
    }
    let shell = ns.shell("iptables-legacy");
    ns.block_on(|| async {
        let rules = IptablesRules::with_commands("iptables-legacy", "ip6tables-legacy").unwrap();
        contract::all(&rules, &shell).await;
    });
    assert!(shell.chain().is_empty(), "left behind: {:?}", shell.chain());
}

/// The realserver namespace with a veth to a client namespace that routes the VIP to it, as a
/// director doing direct routing would deliver it: addressed to the VIP, which the realserver
/// does not own.
fn direct_routing_pair() -> (Netns, Netns) {
    let realserver = Netns::new();
    let client = Netns::new();
    realserver.ip(&format!(
        "link add v0 type veth peer name v1 netns {}",
        client.name
    ));
    realserver.ip("addr add 198.18.0.1/24 dev v0");
    realserver.ip("link set v0 up");
    client.ip("addr add 198.18.0.2/24 dev v1");
    client.ip("link set v1 up");
    client.ip(&format!("route add {VIP}/32 via 198.18.0.1"));
    (realserver, client)
}

#[test]
fn a_connection_to_the_vip_reaches_the_local_listener_only_while_the_rule_is_there() {
    if skip_unless_root("a_connection_to_the_vip_reaches_the_local_listener") {
        return;
    }
    let (realserver, client) = direct_routing_pair();
    let shell = realserver.shell("iptables");
    // Someone else's rule on another VIP, which must survive untouched.
    shell.iptables("-A PREROUTING -d 198.18.1.60/32 -j REDIRECT");
    let table_before = realserver.nat_table("iptables-save");
    let listener = realserver.run(|| TcpListener::bind("0.0.0.0:22").unwrap());
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let local = stream.local_addr().unwrap();
        stream.write_all(b"served by llc5\n").unwrap();
        local
    });
    let vip: SocketAddr = format!("{VIP}:22").parse().unwrap();
    let connect = || client.run(|| TcpStream::connect_timeout(&vip, Duration::from_millis(1500)));
    assert!(connect().is_err(), "the VIP answered without the rule");

    let rule = ssh_rule(VIP);
    let rules = realserver.run(|| IptablesRules::new().unwrap());
    let (first, second) = realserver.block_on(|| async {
        (
            rules.ensure(&rule).await.unwrap(),
            rules.ensure(&rule).await.unwrap(),
        )
    });
    assert_eq!((first, second), (Ensured::Added, Ensured::AlreadyPresent));
    assert_eq!(ours(&shell), vec![rule.listing()], "exactly one rule");

    let mut stream = connect().expect("no connection to the VIP with the rule in place");
    let mut greeting = String::new();
    stream.read_to_string(&mut greeting).unwrap();
    assert_eq!(greeting, "served by llc5\n");
    assert_eq!(
        server.join().unwrap(),
        "198.18.0.1:22".parse::<SocketAddr>().unwrap(),
        "REDIRECT delivers to the receiving interface's own address"
    );

    let removed = realserver.block_on(|| async { rules.remove(&rule).await.unwrap() });
    assert_eq!(removed, Removed::Removed);
    assert_eq!(realserver.nat_table("iptables-save"), table_before);
    assert!(connect().is_err(), "the VIP still answers after removal");
}

#[test]
fn a_rule_deleted_by_hand_is_put_back_by_the_check() {
    if skip_unless_root("a_rule_deleted_by_hand_is_put_back_by_the_check") {
        return;
    }
    let ns = Netns::new();
    let shell = ns.shell("iptables");
    let rule = ssh_rule(VIP);
    ns.block_on(|| async {
        let mut keeper = RuleKeeper::new(IptablesRules::new().unwrap());
        keeper.apply(vec![rule.clone()]).await.unwrap();
        assert!(
            keeper.heal().await.unwrap().is_empty(),
            "healed a rule that was there"
        );
        shell.iptables(&rule.listing().replacen("-A", "-D", 1));
        assert!(ours(&shell).is_empty());
        assert_eq!(keeper.heal().await.unwrap(), vec![rule.clone()]);
        keeper.remove_all().await.unwrap();
    });
    assert!(shell.chain().is_empty());
}

#[test]
fn the_agent_binary_registers_heals_and_cleans_up_on_sigterm() {
    if skip_unless_root("the_agent_binary_registers_heals_and_cleans_up_on_sigterm") {
        return;
    }
    let ns = Netns::new();
    let shell = ns.shell("iptables");
    shell.iptables(SEED_RULE);
    let options = Options {
        ttl: Duration::from_secs(2),
        netns: Some(ns.name.clone()),
        ..Options::default()
    };
    let director = FakeDirector::start_with(Arc::new(shell.clone()), options);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "director = \"{}\"\nname = \"llc5\"\naddress = \"198.18.0.1\"\n\
             rule_check_interval = \"200ms\"\nmetrics_listen = \"\"\n[[service]]\nname = \"llc-ssh\"\n",
            director.url()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("agent.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut agent = ns.run(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_lb-agent"))
            .arg("--config")
            .arg(&config)
            .stderr(log)
            .spawn()
            .unwrap()
    });
    let agent_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let confirmed = || {
        director.calls().into_iter().find_map(|c| match c {
            Call::Confirm { chain, .. } => Some(chain),
            _ => None,
        })
    };
    wait_until("registration", 10, || confirmed().is_some());
    let at_confirm = confirmed().unwrap();
    assert!(
        at_confirm.contains(&ssh_rule(VIP).listing()),
        "confirmed before the rule existed: {at_confirm:?}\n{}",
        agent_log()
    );
    assert_eq!(ours(&shell), vec![ssh_rule(VIP).listing()]);

    shell.iptables(&ssh_rule(VIP).listing().replacen("-A", "-D", 1));
    wait_until("the rule put back", 5, || ours(&shell).len() == 1);
    assert!(agent_log().contains("put back"), "{}", agent_log());

    // systemctl reload: SIGHUP re-reads the file; the new weight reaches the director.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}weight = 2\n")).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let weighted = || {
        director
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Register(r) if r.services.iter().any(|s| s.weight == 2)))
    };
    wait_until("the registration with weight 2", 10, weighted);
    assert!(
        agent.try_wait().unwrap().is_none(),
        "SIGHUP ended the agent: {}",
        agent_log()
    );
    // "reloaded" is logged after the new registration: on a loaded machine the director can
    // see that before the line is written.
    wait_until("the reload logged", 10, || agent_log().contains("reloaded"));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    wait_until("the agent's exit", 10, || {
        agent.try_wait().unwrap().is_some()
    });
    let status = agent.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", agent_log());
    assert!(
        director
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Deregister { .. })),
        "no deregistration"
    );
    assert_eq!(
        shell.chain(),
        vec![SEED_RULE.to_string()],
        "{}",
        agent_log()
    );
}
