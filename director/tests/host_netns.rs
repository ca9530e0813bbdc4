//! The director's host setup against the real kernel, each test in a network namespace of its
//! own (`lbh-<random>`) with an interface `eth0`. Needs root; skipped visibly otherwise.
//!
//! What a person would check by hand is checked with `ip -n NS -o addr show dev eth0` and
//! `ip netns exec NS sysctl -n`, not with the code under test.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::net::IpAddr;
use std::process::Command;

use lb_director::host::sysctl::{plan, SysctlTree};
use lb_director::host::{
    owned_vips, AddressBackend, AddressError, HostSetup, OwnedVip, RtnetlinkAddresses, ServiceVip,
};
use lb_shared::domain::Forward;
use nix::sched::{setns, CloneFlags};

/// A network namespace with `eth0` up, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Self {
        let name = format!("lbh-{:08x}", rand_suffix());
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        // This kernel has no dummy driver (CONFIG_DUMMY is off); a veth pair with both ends in
        // the namespace gives an `eth0` that reaches nothing outside it.
        ns.ip(&[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0-peer",
        ]);
        ns.ip(&["link", "set", "eth0", "up"]);
        ns.ip(&["link", "set", "eth0-peer", "up"]);
        ns
    }

    /// `ip -n NS ARGS`, its output.
    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend(args);
        run("ip", &all)
    }

    /// The lines of `ip -n NS -o addr show dev eth0` that carry `address` (`192.0.2.54/32`).
    fn addr_lines(&self, address: &str) -> Vec<String> {
        let shown = self.ip(&["-o", "addr", "show", "dev", "eth0"]);
        shown
            .lines()
            .filter(|line| line.split_whitespace().any(|word| word == address))
            .map(str::to_owned)
            .collect()
    }

    fn sysctl(&self, name: &str) -> String {
        run("ip", &["netns", "exec", &self.name, "sysctl", "-n", name])
            .trim()
            .to_owned()
    }

    fn set_sysctl(&self, setting: &str) {
        run(
            "ip",
            &["netns", "exec", &self.name, "sysctl", "-q", "-w", setting],
        );
    }

    /// Runs `f` on a thread that has entered the namespace. Sockets and /proc/sys/net files
    /// opened there belong to the namespace; the test's own thread never moves.
    fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap();
            setns(ns, CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    }

    /// [`enter`](Self::enter), then drives the future on a current-thread runtime there, so the
    /// netlink socket and its connection task stay on the namespaced thread.
    fn block_on<F, Fut>(&self, f: F) -> Fut::Output
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future,
        Fut::Output: Send + 'static,
    {
        self.enter(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f())
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let deleted = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        if !matches!(deleted, Ok(status) if status.success()) {
            eprintln!("could not delete namespace {}: {deleted:?}", self.name);
        }
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    // RandomState is seeded per process and per instance: enough to keep parallel tests and
    // concurrent runs apart.
    RandomState::new().hash_one(std::process::id()) as u32
}

/// A fresh namespace, or `None` (after saying so where a person sees it, past the test
/// harness's capture) when the test cannot run.
fn netns_as_root(test: &str) -> Option<Netns> {
    if nix::unistd::geteuid().is_root() {
        return Some(Netns::new());
    }
    let _ = writeln!(std::io::stderr(), "{test}: skipped: needs root");
    None
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[derive(Clone, Copy)]
enum Call {
    Ensure,
    Remove,
}

/// Makes the call twice on `eth0` inside the namespace: what each reported, then `has_vip`.
fn twice(ns: &Netns, call: Call, vip: IpAddr) -> (bool, bool, bool) {
    ns.block_on(move || async move {
        let addresses = RtnetlinkAddresses::connect().unwrap();
        let mut reported = [false; 2];
        for slot in &mut reported {
            *slot = match call {
                Call::Ensure => addresses.ensure_vip("eth0", vip).await,
                Call::Remove => addresses.remove_vip("eth0", vip).await,
            }
            .unwrap();
        }
        let present = addresses.has_vip("eth0", vip).await.unwrap();
        (reported[0], reported[1], present)
    })
}

#[test]
fn ensure_adds_the_vip_once_as_a_host_address() {
    let Some(ns) = netns_as_root("ensure_adds_the_vip_once_as_a_host_address") else {
        return;
    };
    let (first, second, present) = twice(&ns, Call::Ensure, ip("192.0.2.54"));
    assert!(first, "the first ensure adds the VIP");
    assert!(!second, "the second ensure finds it there");
    assert!(present);
    let lines = ns.addr_lines("192.0.2.54/32");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("inet 192.0.2.54/32"), "{lines:?}");
}

#[test]
fn remove_takes_the_vip_away_and_a_second_remove_finds_nothing() {
    let Some(ns) = netns_as_root("remove_takes_the_vip_away_and_a_second_remove_finds_nothing")
    else {
        return;
    };
    // Put there the way the seed's operator would, not by the code under test.
    ns.ip(&["addr", "add", "192.0.2.54/32", "dev", "eth0"]);
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"]);
    let (first, second, present) = twice(&ns, Call::Remove, ip("192.0.2.54"));
    assert!(first, "the first remove takes the VIP away");
    assert!(!second, "the second remove finds nothing");
    assert!(!present);
    assert_eq!(ns.addr_lines("192.0.2.54/32"), Vec::<String>::new());
    assert_eq!(
        ns.addr_lines("192.0.2.1/24").len(),
        1,
        "the interface's own address stays"
    );
}

#[test]
fn a_missing_interface_is_a_typed_error_naming_it() {
    let Some(ns) = netns_as_root("a_missing_interface_is_a_typed_error_naming_it") else {
        return;
    };
    let errors = ns.block_on(|| async {
        let addresses = RtnetlinkAddresses::connect().unwrap();
        let vip = ip("192.0.2.54");
        [
            addresses.ensure_vip("eth9", vip).await.unwrap_err(),
            addresses.remove_vip("eth9", vip).await.unwrap_err(),
            addresses.has_vip("eth9", vip).await.unwrap_err(),
        ]
    });
    for err in errors {
        assert!(
            matches!(&err, AddressError::NoSuchInterface { interface } if interface == "eth9"),
            "{err:?}"
        );
        assert!(err.to_string().contains("\"eth9\" does not exist"), "{err}");
    }
}

#[test]
fn an_ipv6_vip_is_a_128() {
    let Some(ns) = netns_as_root("an_ipv6_vip_is_a_128") else {
        return;
    };
    let vip = ip("2001:db8::54");
    assert_eq!(twice(&ns, Call::Ensure, vip), (true, false, true));
    let lines = ns.addr_lines("2001:db8::54/128");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        !lines[0].contains("tentative"),
        "a VIP skips duplicate address detection: {lines:?}"
    );
    assert_eq!(twice(&ns, Call::Remove, vip), (true, false, false));
    assert_eq!(ns.addr_lines("2001:db8::54/128"), Vec::<String>::new());
}

#[test]
fn the_seeds_sysctls_then_nothing_to_change() {
    let Some(ns) = netns_as_root("the_seeds_sysctls_then_nothing_to_change") else {
        return;
    };
    // The opposite of what the seed wants, so a run that does nothing fails.
    ns.set_sysctl("net.ipv4.ip_forward=1");
    for scope in ["all", "default", "eth0"] {
        ns.set_sysctl(&format!("net.ipv4.conf.{scope}.send_redirects=0"));
    }
    let services = [ServiceVip {
        interface: "eth0".into(),
        vip: ip("192.0.2.54"),
        forward: Forward::Dr,
    }];
    let settings = plan(&services, false).unwrap();

    let apply = move || {
        let tree = SysctlTree::default();
        let first = tree.apply(&settings).unwrap();
        let second = tree.apply(&settings).unwrap();
        (first.len(), second.len())
    };
    let (first, second) = ns.enter(apply);

    assert_eq!(first, 4, "ip_forward and three send_redirects changed");
    assert_eq!(second, 0, "the second run changes nothing");
    assert_eq!(ns.sysctl("net.ipv4.ip_forward"), "0");
    for scope in ["all", "default", "eth0"] {
        assert_eq!(
            ns.sysctl(&format!("net.ipv4.conf.{scope}.send_redirects")),
            "1",
            "{scope}"
        );
    }
}

#[test]
fn host_setup_then_nothing_to_change() {
    let Some(ns) = netns_as_root("host_setup_then_nothing_to_change") else {
        return;
    };
    ns.set_sysctl("net.ipv4.ip_forward=1");
    // A VIP of a service that has left the configuration.
    ns.ip(&["addr", "add", "192.0.2.99/32", "dev", "eth0"]);
    let (first, second) = ns.block_on(|| async {
        let setup = HostSetup::new(
            RtnetlinkAddresses::connect().unwrap(),
            SysctlTree::default(),
        );
        let services = [ServiceVip {
            interface: "eth0".into(),
            vip: ip("192.0.2.54"),
            forward: Forward::Dr,
        }];
        let previous = [OwnedVip {
            interface: "eth0".into(),
            vip: ip("192.0.2.99"),
        }];
        let first = setup.apply(&services, &previous).await.unwrap();
        let second = setup
            .apply(&services, &owned_vips(&services))
            .await
            .unwrap();
        (first, second)
    });
    assert_eq!(first.added.len(), 1, "{first:?}");
    assert_eq!(first.removed.len(), 1, "{first:?}");
    assert!(second.is_empty(), "{second:?}");
    assert_eq!(ns.addr_lines("192.0.2.54/32").len(), 1);
    assert_eq!(ns.addr_lines("192.0.2.99/32"), Vec::<String>::new());
    assert_eq!(ns.sysctl("net.ipv4.ip_forward"), "0");
}
