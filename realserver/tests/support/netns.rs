//! Network namespaces for root tests. Each test makes its own (`lbt-<random>`), and a guard
//! deletes it when the test ends, failed or not, so nothing leaks into the host's tables.
//!
//! Code runs inside a namespace on a thread of its own that `setns`es first: a socket belongs
//! to the namespace its thread was in when it was made, and a child process (iptables)
//! inherits the namespace of the thread that started it.

use std::future::Future;
use std::process::{Command, Output};

use lb_realserver::rules::contract::Shell;

/// Root is needed for namespaces and iptables; elsewhere the test says so and passes.
pub fn skip_unless_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        for tool in ["ip", "iptables", "iptables-save"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            // As root the test must run: a missing tool is a broken machine, not a skip.
            assert!(
                found,
                "{tool} is missing: apt-get install iproute2 iptables"
            );
        }
        false
    } else {
        println!("skipped: needs root ({test})");
        true
    }
}

/// Moves the calling thread into the namespace `name`.
pub fn enter(name: &str) {
    let path = format!("/var/run/netns/{name}");
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns {path}: {e}"));
}

pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Netns {
        let name = format!("lbt-{:08x}", rand::random::<u32>());
        checked(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip("link set lo up");
        ns
    }

    /// The operator's `iptables` (or `iptables-legacy`) inside this namespace.
    pub fn shell(&self, command: &'static str) -> IptablesShell {
        IptablesShell {
            netns: self.name.clone(),
            command,
        }
    }

    /// `ip -n NAME <args>`.
    pub fn ip(&self, args: &str) {
        checked(
            Command::new("ip")
                .arg("-n")
                .arg(&self.name)
                .args(args.split_whitespace()),
        );
    }

    /// A shell command inside the namespace; panics with its stderr if it fails.
    pub fn sh(&self, command: &str) -> String {
        sh_in(&self.name, command)
    }

    /// A shell command inside the namespace, whatever its outcome.
    pub fn exec(&self, command: &str) -> Command {
        exec_in(&self.name, command)
    }

    /// Runs `f` on a thread inside the namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    enter(&self.name);
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Runs the future `make` builds on a current-thread runtime inside the namespace; its
    /// blocking pool threads are started from that thread, so they are inside too.
    pub fn block_on<T: Send, F: Future<Output = T>>(&self, make: impl FnOnce() -> F + Send) -> T {
        self.run(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(make())
        })
    }

    /// The namespace's nat table as an operator reads it, without the volatile parts
    /// (comments with times, counters).
    pub fn nat_table(&self, save: &str) -> Vec<String> {
        self.sh(&format!("{save} -t nat"))
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| match line.split_once(" [") {
                Some((chain, _counters)) if line.starts_with(':') => chain.to_owned(),
                _ => line.to_owned(),
            })
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let deleted = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        if !deleted.is_ok_and(|s| s.success()) {
            eprintln!("could not delete network namespace {}", self.name);
        }
    }
}

fn exec_in(netns: &str, command: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", netns, "sh", "-c", command]);
    cmd
}

fn sh_in(netns: &str, command: &str) -> String {
    checked(&mut exec_in(netns, command))
}

fn checked(command: &mut Command) -> String {
    let output: Output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The shell an operator uses on the realserver: `iptables` run inside the namespace.
#[derive(Clone)]
pub struct IptablesShell {
    pub netns: String,
    /// `iptables` or `iptables-legacy`.
    pub command: &'static str,
}

impl Shell for IptablesShell {
    fn chain(&self) -> Vec<String> {
        sh_in(
            &self.netns,
            &format!("{} -t nat -S PREROUTING", self.command),
        )
        .lines()
        .filter(|line| !line.starts_with("-P "))
        .map(str::to_owned)
        .collect()
    }

    fn iptables(&self, command: &str) {
        sh_in(&self.netns, &format!("{} -t nat {command}", self.command));
    }
}

/// Polls `condition` every 50 ms for up to `limit` seconds, from a plain (non-async) test.
pub fn wait_until(what: &str, limit_secs: u64, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(limit_secs);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {limit_secs} s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
