//! `[service.check]`: how the director probes each destination of a service.

use std::time::Duration;

use lb_shared::config::Section;
use lb_shared::domain::Protocol;
use lb_shared::duration;
use lb_shared::probe::CheckKind;

/// One service's check, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    pub kind: CheckKind,
    /// Time between two probes of one destination.
    pub interval: Duration,
    /// A probe that takes longer fails; shorter than `interval`, so probes never overlap.
    pub timeout: Duration,
    /// Consecutive failures before a destination is down.
    pub fall: u32,
    /// Consecutive successes before it is up again.
    pub rise: u32,
    /// `port`: where a destination is probed instead of its own port (keepalived's
    /// `connect_port`); a fwmark service, whose destinations have no port, needs it.
    pub port: Option<u16>,
}

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_FALL: u32 = 3;
pub const DEFAULT_RISE: u32 = 2;

/// Below this a probe storm costs more than it tells.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Far beyond any use, and small enough to add to the clock.
const MAX_INTERVAL: Duration = Duration::from_secs(3600);
const MIN_TIMEOUT: Duration = Duration::from_millis(10);
/// Beyond a thousand probes in a row a destination is plainly up or down.
const MAX_COUNT: i64 = 1000;

impl CheckConfig {
    /// The check a service gets without `[service.check]`: a connect for tcp; none for udp and
    /// sctp, which a connect cannot test.
    pub fn default_for(protocol: Protocol) -> CheckConfig {
        CheckConfig {
            kind: default_kind(protocol),
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            fall: DEFAULT_FALL,
            rise: DEFAULT_RISE,
            port: None,
        }
    }

    /// The port a destination listed on `port` is probed on.
    pub fn probe_port(&self, port: u16) -> u16 {
        self.port.unwrap_or(port)
    }
}

fn default_kind(protocol: Protocol) -> CheckKind {
    match protocol {
        Protocol::Tcp => CheckKind::Tcp,
        Protocol::Udp | Protocol::Sctp => CheckKind::None,
    }
}

/// What a service's check is read for: its protocol, or a fwmark service (no protocol, no port
/// of its own: a probe needs `port`, and without `[service.check]` nothing is probed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckedService {
    Port(Protocol),
    FwMark,
}

/// Reads the optional `[service.check]` of one `[[service]]`, every problem recorded with its key
/// path. `None` when a problem was found.
pub fn read_check(service: &Section<'_>, checked: CheckedService) -> Option<CheckConfig> {
    let protocol = match checked {
        CheckedService::Port(protocol) => protocol,
        // A mark may cover several ports; the operator names the one to probe.
        CheckedService::FwMark => Protocol::Tcp,
    };
    let Some(check) = service.table("check") else {
        return Some(match checked {
            CheckedService::Port(protocol) => CheckConfig::default_for(protocol),
            CheckedService::FwMark => CheckConfig {
                kind: CheckKind::None,
                ..CheckConfig::default_for(Protocol::Tcp)
            },
        });
    };
    let kind = check.optional("type", |s| {
        let kind = s.parse::<CheckKind>()?;
        if kind != CheckKind::None && protocol != Protocol::Tcp {
            return Err(format!(
                "a {protocol} service cannot be checked with {kind} (a TCP connection): use none"
            ));
        }
        Ok(kind)
    });
    let interval = check.optional("interval", |s| within(s, MIN_INTERVAL, MAX_INTERVAL));
    let timeout = check.optional("timeout", |s| within(s, MIN_TIMEOUT, MAX_INTERVAL));
    let fall = check.integer::<u32>("fall", 1..=MAX_COUNT, Some(DEFAULT_FALL));
    let rise = check.integer::<u32>("rise", 1..=MAX_COUNT, Some(DEFAULT_RISE));
    let port = check.optional_integer::<u16>("port", 1..=65535);
    if checked == CheckedService::FwMark
        && matches!(port, Some(None))
        && kind.as_ref().is_some_and(|k| *k != Some(CheckKind::None))
    {
        check.problem(
            "port",
            "",
            "is required for a fwmark service's check (its destinations have no port): write the port the realservers answer on, e.g. port = 22, or type = \"none\"",
        );
        return None;
    }
    let interval = interval.map(|i| i.unwrap_or(DEFAULT_INTERVAL));
    let timeout = timeout.map(|t| t.unwrap_or(DEFAULT_TIMEOUT));
    if let (Some(interval), Some(timeout)) = (interval, timeout) {
        if timeout >= interval {
            check.problem(
                "timeout",
                &format!("\"{}\"", duration::format(timeout)),
                format!(
                    "must be shorter than interval ({})",
                    duration::format(interval)
                ),
            );
            return None;
        }
    }
    Some(CheckConfig {
        kind: kind?.unwrap_or(default_kind(protocol)),
        interval: interval?,
        timeout: timeout?,
        fall: fall?,
        rise: rise?,
        port: port?,
    })
}

fn within(text: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = duration::parse(text)?;
    if d < min {
        return Err(format!("must be at least {}", duration::format(min)));
    }
    if d > max {
        return Err(format!("must be at most {}", duration::format(max)));
    }
    Ok(d)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
