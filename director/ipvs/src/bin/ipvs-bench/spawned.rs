//! The modes that start a command and time how long the kernel takes to show its effect:
//! keepalived loading the benchmark table, an agent's registration or `lbctl drain` reaching a
//! destination's weight. The clock starts just before the command is spawned and stops at the
//! first read of the kernel that shows the result, so a shell's own start-up and a log line's
//! delay are not in it.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lb_ipvs::{IpvsBackend, NetlinkIpvs, Protocol, ServiceKey};

/// How often a weight is read: the brief's ~1 ms, so that the poll adds at most that.
const WEIGHT_POLL: Duration = Duration::from_millis(1);
/// How often the table is counted; a count of 1,000 services costs far more than a weight.
const TABLE_POLL: Duration = Duration::from_millis(10);
/// Generous, for a loaded host under emulation: a weight change takes well under a second.
const WEIGHT_DEADLINE: Duration = Duration::from_secs(120);
/// keepalived loading 11,000 entries took tens of seconds in the lab.
const TABLE_DEADLINE: Duration = Duration::from_secs(1800);

/// What the kernel must show for the clock to stop.
pub enum Weight {
    /// The destination is in the service with a weight above 0.
    Up,
    /// The destination is in the service with weight 0.
    Down,
}

/// A command to start, with where its output goes and whether it is a daemon.
pub struct Spawn {
    pub log: String,
    /// A daemon (an agent): left running once the kernel shows the result, its PID printed.
    /// Otherwise (lbctl) it must also exit 0.
    pub background: bool,
    pub command: Vec<String>,
}

impl Spawn {
    /// `[--background] LOG -- CMD...`
    pub fn parse(args: &[String]) -> Option<Spawn> {
        let (background, args) = match args.first() {
            Some(flag) if flag == "--background" => (true, &args[1..]),
            _ => (false, args),
        };
        match args {
            [log, dashes, command @ ..] if dashes == "--" && !command.is_empty() => Some(Spawn {
                log: log.clone(),
                background,
                command: command.to_vec(),
            }),
            _ => None,
        }
    }

    fn start(&self) -> Result<Child, String> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("cannot open the log {}: {e}", self.log))?;
        let err = log
            .try_clone()
            .map_err(|e| format!("cannot open the log {}: {e}", self.log))?;
        Command::new(&self.command[0])
            .args(&self.command[1..])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.command[0]))
    }

    /// Fails once the command has exited, unless it is a command (not a daemon) that exited 0.
    fn check(&self, child: &mut Child) -> Result<(), String> {
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) if status.success() && !self.background => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited ({status}) before the kernel showed its result; see {}",
                self.command.join(" "),
                self.log
            )),
            Err(e) => Err(format!("cannot wait for {}: {e}", self.command[0])),
        }
    }

    /// After the result: a command must end with status 0; a daemon is left running.
    fn finish(&self, mut child: Child) -> Result<(), String> {
        if self.background {
            return Ok(());
        }
        match child.wait() {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!(
                "{} exited ({status}); see {}",
                self.command.join(" "),
                self.log
            )),
            Err(e) => Err(format!("cannot wait for {}: {e}", self.command[0])),
        }
    }
}

/// The result of a timed start: seconds from the spawn to the kernel read that showed it.
pub struct Timed {
    pub pid: u32,
    pub seconds: f64,
}

/// `wait-weight`: starts the command, then reads `dest`'s weight in the TCP service `service`
/// every millisecond until it is as `want` says.
pub async fn wait_weight(
    ipvs: &NetlinkIpvs,
    service: SocketAddr,
    dest: SocketAddr,
    want: Weight,
    spawn: &Spawn,
) -> Result<Timed, String> {
    let key = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: service.ip(),
        port: service.port(),
    };
    let started = Instant::now();
    let mut child = spawn.start()?;
    loop {
        let entries = ipvs
            .destinations(&key)
            .await
            .map_err(|e| format!("cannot read the destinations of {service}: {e}"))?;
        let weight = entries
            .iter()
            .find(|e| e.destination.addr == dest.ip() && e.destination.port == dest.port())
            .map(|e| e.destination.weight);
        let reached = match want {
            Weight::Up => weight.is_some_and(|w| w > 0),
            Weight::Down => weight == Some(0),
        };
        if reached {
            let seconds = started.elapsed().as_secs_f64();
            let pid = child.id();
            spawn.finish(child)?;
            return Ok(Timed { pid, seconds });
        }
        spawn.check(&mut child)?;
        if started.elapsed() > WEIGHT_DEADLINE {
            return Err(format!(
                "{dest} in {service} has weight {weight:?} after {} s",
                WEIGHT_DEADLINE.as_secs()
            ));
        }
        tokio::time::sleep(WEIGHT_POLL).await;
    }
}

/// `wait-table`: starts the command, then reads the kernel until it holds the benchmark table
/// of `services` x `dests` (`last` is the last service of it). Answers the entries found.
pub async fn wait_table(
    ipvs: &NetlinkIpvs,
    services: u16,
    dests: u8,
    last: ServiceKey,
    spawn: &Spawn,
) -> Result<(Timed, usize), String> {
    let expected = usize::from(services) * (usize::from(dests) + 1);
    let started = Instant::now();
    let mut child = spawn.start()?;
    // Cheap checks first: every service there and the last one complete (a loader that goes
    // in config order, as keepalived and the director do, is done then, and the clock stops
    // at that read); the whole table is counted after that, and again until it is all there
    // (then the clock stops at the end of the count that found it all).
    let mut seen_last: Option<f64> = None;
    let mut counts = 0;
    loop {
        if seen_last.is_none() && last_service_complete(ipvs, services, dests, last).await? {
            seen_last = Some(started.elapsed().as_secs_f64());
        }
        if let Some(at) = seen_last {
            let entries = super::read(ipvs, true).await?;
            counts += 1;
            if entries == expected {
                let seconds = if counts == 1 {
                    at
                } else {
                    started.elapsed().as_secs_f64()
                };
                let pid = child.id();
                spawn.finish(child)?;
                return Ok((Timed { pid, seconds }, entries));
            }
        }
        spawn.check(&mut child)?;
        if started.elapsed() > TABLE_DEADLINE {
            let entries = super::read(ipvs, true).await?;
            return Err(format!(
                "the kernel holds {entries} entries of {expected} after {} s",
                TABLE_DEADLINE.as_secs()
            ));
        }
        tokio::time::sleep(TABLE_POLL).await;
    }
}

async fn last_service_complete(
    ipvs: &NetlinkIpvs,
    services: u16,
    dests: u8,
    last: ServiceKey,
) -> Result<bool, String> {
    let listed = ipvs.services().await.map_err(|e| e.to_string())?;
    if listed.len() < usize::from(services) || !listed.iter().any(|s| s.service.key == last) {
        return Ok(false);
    }
    let entries = ipvs.destinations(&last).await.map_err(|e| e.to_string())?;
    Ok(entries.len() >= usize::from(dests))
}

/// `run`: runs each line of `file` (words split on spaces, no quoting; `#` lines skipped) one
/// after the other, as a daemon would (the agent's iptables calls); answers how many ran and
/// their total seconds. Each must exit 0, except a line whose first word is `?`, whose status
/// is not looked at (`iptables -C` of an absent rule exits 1).
pub fn run_commands(file: &str) -> Result<(usize, f64), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|words| words.first().is_some_and(|w| !w.starts_with('#')))
        .collect();
    let started = Instant::now();
    for words in &lines {
        let (any_status, words) = match words.split_first() {
            Some((first, rest)) if *first == "?" && !rest.is_empty() => (true, rest),
            _ => (false, &words[..]),
        };
        let output = Command::new(words[0])
            .args(&words[1..])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot start {}: {e}", words[0]))?;
        if !any_status && !output.status.success() {
            return Err(format!(
                "{} exited ({}): {}",
                words.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
    }
    Ok((lines.len(), started.elapsed().as_secs_f64()))
}
