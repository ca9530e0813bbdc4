//! Reads the agent's rules back from `iptables -S PREROUTING` lines.
//!
//! iptables prints a rule in its own normal form, not as it was written (it adds `-m tcp`, may
//! reorder options), so a listed line is parsed into a [`RedirectRule`] instead of being
//! compared as text.

use std::net::IpAddr;

use lb_shared::domain::Protocol;

use super::{RedirectRule, ServicePort, CHAIN, COMMENT_PREFIX};

/// What a listed line is to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Listed {
    /// Not tagged `lb-agent:`: someone else's rule, never touched.
    Foreign,
    Owned(RedirectRule),
    /// Tagged `lb-agent:` but not in the shape the agent writes (edited by hand?): left alone,
    /// because deleting it would need a spec the agent did not write.
    Unreadable(String),
}

pub(crate) fn parse_line(line: &str) -> Listed {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let Some(comment) = tokens
        .windows(2)
        .find(|w| w[0] == "--comment")
        .map(|w| w[1].trim_matches('"'))
    else {
        return Listed::Foreign;
    };
    let Some(service) = comment.strip_prefix(COMMENT_PREFIX) else {
        return Listed::Foreign;
    };
    match parse_owned(&tokens, service) {
        Ok(rule) => Listed::Owned(rule),
        Err(why) => Listed::Unreadable(why),
    }
}

fn parse_owned(tokens: &[&str], service: &str) -> Result<RedirectRule, String> {
    let mut vip = None;
    let mut protocol = None;
    let mut port = None;
    let mut redirect = false;
    let mut pairs = tokens.chunks(2);
    match pairs.next() {
        Some(["-A", chain]) if *chain == CHAIN => {}
        _ => return Err(format!("does not start with -A {CHAIN}")),
    }
    for pair in pairs {
        match pair {
            ["-d", destination] => vip = Some(parse_host(destination)?),
            ["-p", name] => protocol = Some(name.parse::<Protocol>()?),
            // The match module iptables adds for the protocol, and the comment module.
            ["-m", _] | ["--comment", _] => {}
            ["--dport", number] => {
                port = Some(
                    number
                        .parse::<u16>()
                        .map_err(|_| format!("port {number:?} is not a number"))?,
                )
            }
            ["-j", "REDIRECT"] => redirect = true,
            other => {
                return Err(format!(
                    "has {:?}, which the agent never writes",
                    other.join(" ")
                ))
            }
        }
    }
    if !redirect {
        return Err("does not jump to REDIRECT".into());
    }
    let port = match (protocol, port) {
        (Some(protocol), Some(port)) => Some(ServicePort { protocol, port }),
        // A fwmark service's rule: every packet for the VIP.
        (None, None) => None,
        (Some(_), None) => return Err("has -p but no --dport".into()),
        (None, Some(_)) => return Err("has --dport but no -p".into()),
    };
    Ok(RedirectRule {
        service: service.to_owned(),
        vip: vip.ok_or("has no -d")?,
        port,
    })
}

/// `10.0.0.100/32` or `2001:db8::1/128`: one host, nothing wider.
fn parse_host(destination: &str) -> Result<IpAddr, String> {
    let (address, prefix) = destination.split_once('/').unwrap_or((destination, ""));
    let ip: IpAddr = address
        .parse()
        .map_err(|_| format!("destination {destination:?} is not an address"))?;
    let host_prefix = if ip.is_ipv6() { "128" } else { "32" };
    if !prefix.is_empty() && prefix != host_prefix {
        return Err(format!("destination {destination:?} is not a single host"));
    }
    Ok(ip)
}
