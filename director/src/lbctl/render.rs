//! How lbctl prints status: a table in ipvsadm's words, or JSON with the same content.

use std::fmt::Write;

use serde::Serialize;

use lb_proto as pb;

fn protocol_word(protocol: i32) -> &'static str {
    match pb::Protocol::try_from(protocol) {
        Ok(pb::Protocol::Tcp) => "tcp",
        Ok(pb::Protocol::Udp) => "udp",
        Ok(pb::Protocol::Sctp) => "sctp",
        _ => "unknown",
    }
}

fn lease_word(lease: i32) -> &'static str {
    match pb::LeaseState::try_from(lease) {
        Ok(pb::LeaseState::Pending) => "pending",
        Ok(pb::LeaseState::Alive) => "alive",
        Ok(pb::LeaseState::Expired) => "expired",
        Ok(pb::LeaseState::Deregistered) => "deregistered",
        Ok(pb::LeaseState::Adopted) => "adopted",
        Ok(pb::LeaseState::Static) => "static",
        _ => "none",
    }
}

/// A realserver's port: its own, or the service's from a director that does not say.
fn port_of(rs: &pb::RealServerStatus, s: &pb::ServiceStatus) -> u32 {
    if rs.port == 0 {
        s.port
    } else {
        rs.port
    }
}

/// The Prot column: `TCP`, `UDP`, `SCTP`, or `FWM` as ipvsadm shows a fwmark service.
fn service_protocol(s: &pb::ServiceStatus) -> String {
    if s.fwmark != 0 {
        "FWM".to_owned()
    } else {
        protocol_word(s.protocol).to_uppercase()
    }
}

/// `VIP:PORT`, or a fwmark service's mark where ipvsadm puts it (`FWM  7 rr`), with `IPv6`
/// for an IPv6 one.
fn service_endpoint(s: &pb::ServiceStatus) -> String {
    if s.fwmark == 0 {
        return endpoint(&s.vip, s.port);
    }
    if s.vip.contains(':') {
        format!("{} IPv6", s.fwmark)
    } else {
        s.fwmark.to_string()
    }
}

/// `  (vips 10.0.0.101 10.0.0.102)`: the addresses a fwmark service's mark covers.
fn fwmark_vips(s: &pb::ServiceStatus) -> String {
    if s.fwmark == 0 || s.vips.is_empty() {
        String::new()
    } else {
        format!("  (vips {})", s.vips.join(" "))
    }
}

fn endpoint(addr: &str, port: u32) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// `up`, `down (no banner, 12s)`, or `-` for a service without a health check.
fn health_word(rs: &pb::RealServerStatus) -> String {
    match rs.health.as_str() {
        "" => "-".to_owned(),
        "down" if rs.health_seconds > 0 => {
            format!("down ({}, {}s)", rs.health_reason, rs.health_seconds)
        }
        "down" => format!("down ({})", rs.health_reason),
        other => other.to_owned(),
    }
}

fn admin_word(rs: &pb::RealServerStatus) -> String {
    let mut words = Vec::new();
    if rs.drained {
        words.push("drained".to_owned());
    }
    if let Some(w) = rs.weight_override {
        words.push(format!("weight={w}"));
    }
    if words.is_empty() {
        "-".to_owned()
    } else {
        words.join(",")
    }
}

/// The table operators know from `ipvsadm -L -n`, with the realserver's name, lease and the
/// operator's overrides added.
pub fn render_table(status: &pb::StatusResponse) -> String {
    let mut out = String::new();
    // Only a director of an HA pair says it: a single director's table looks as it always did.
    match pb::DirectorRole::try_from(status.role) {
        Ok(pb::DirectorRole::Active) => {
            let _ = writeln!(out, "Director ACTIVE (holds the VIP)");
        }
        Ok(pb::DirectorRole::Standby) => {
            let _ = writeln!(out, "Director STANDBY (the peer holds the VIP)");
        }
        Ok(pb::DirectorRole::Ecmp) => {
            let _ = writeln!(
                out,
                "Director ECMP (active beside its peers behind the gateway's multipath route)"
            );
        }
        _ => {}
    }
    let _ = writeln!(out, "Prot LocalAddress:Port Scheduler Service");
    let _ = writeln!(
        out,
        "  -> {:<22} {:<12} {:<7} {:>6} {:>10} {:>9}  {:<12} {:<14} Health",
        "RemoteAddress:Port",
        "Name",
        "Forward",
        "Weight",
        "ActiveConn",
        "InActConn",
        "Lease",
        "Admin"
    );
    for s in &status.services {
        let missing = match &s.retiring {
            Some(r) => {
                let active: u32 = s.realservers.iter().map(|rs| rs.active_conn).sum();
                let inactive: u32 = s.realservers.iter().map(|rs| rs.inact_conn).sum();
                format!(
                    "  (retiring: waiting for {active} active, {inactive} inactive connections, at most {} more)",
                    lb_shared::duration::format(std::time::Duration::from_secs(
                        crate::view::retire_seconds_left(r)
                    ))
                )
            }
            None if !s.in_kernel => "  (not in the kernel table)".to_owned(),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<4} {} {} {}{}{missing}",
            service_protocol(s),
            service_endpoint(s),
            s.scheduler,
            s.name,
            fwmark_vips(s)
        );
        for rs in &s.realservers {
            let weight = rs.weight.map_or("-".to_owned(), |w| w.to_string());
            let _ = writeln!(
                out,
                "  -> {:<22} {:<12} {:<7} {:>6} {:>10} {:>9}  {:<12} {:<14} {}",
                endpoint(&rs.address, port_of(rs, s)),
                rs.name,
                rs.forward,
                weight,
                rs.active_conn,
                rs.inact_conn,
                lease_word(rs.lease),
                admin_word(rs),
                // Last: "down (no banner, 12s)" has spaces, and scripts split on them.
                health_word(rs)
            );
        }
    }
    for r in &status.refused {
        let _ = writeln!(
            out,
            "refused: a second agent named {} from {} ({} attempt(s), last {}s ago); {} holds the name",
            r.name, r.address, r.attempts, r.seconds_ago, r.holder
        );
    }
    out
}

#[derive(Serialize)]
struct JsonStatus<'a> {
    services: Vec<JsonService<'a>>,
    refused: Vec<JsonRefused<'a>>,
}

#[derive(Serialize)]
struct JsonService<'a> {
    name: &'a str,
    protocol: &'static str,
    vip: &'a str,
    port: u32,
    /// A fwmark service's mark (then `protocol` is "fwmark", `vip` its first VIP, `port` 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    fwmark: Option<u32>,
    /// Every VIP of the service.
    vips: &'a [String],
    scheduler: &'a str,
    forward: &'a str,
    in_kernel: bool,
    /// Present while the service waits for its sessions to end before it is removed.
    retiring: Option<JsonRetiring>,
    realservers: Vec<JsonRealServer<'a>>,
}

#[derive(Serialize)]
struct JsonRetiring {
    since_unix: u64,
    deadline_unix: u64,
}

#[derive(Serialize)]
struct JsonRefused<'a> {
    name: &'a str,
    address: &'a str,
    attempts: u64,
    seconds_ago: u64,
    holder: &'a str,
}

#[derive(Serialize)]
struct JsonRealServer<'a> {
    name: &'a str,
    address: &'a str,
    port: u32,
    forward: &'a str,
    /// null when not in the kernel table.
    weight: Option<u32>,
    active_conn: u32,
    inact_conn: u32,
    lease: &'static str,
    drained: bool,
    weight_override: Option<u32>,
    registered_weight: u32,
    /// "up", "down", or null without a health check.
    health: Option<&'a str>,
    health_reason: Option<&'a str>,
    health_seconds: Option<u64>,
}

/// The same content as [`render_table`], for scripts.
pub fn render_json(status: &pb::StatusResponse) -> String {
    serde_json::to_string_pretty(&json_status(status))
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// [`render_json`] on one line: `status --watch --json` prints one document per refresh.
pub fn render_json_line(status: &pb::StatusResponse) -> String {
    serde_json::to_string(&json_status(status))
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn json_status(status: &pb::StatusResponse) -> JsonStatus<'_> {
    JsonStatus {
        services: status
            .services
            .iter()
            .map(|s| JsonService {
                name: &s.name,
                protocol: if s.fwmark != 0 {
                    "fwmark"
                } else {
                    protocol_word(s.protocol)
                },
                vip: &s.vip,
                port: s.port,
                fwmark: (s.fwmark != 0).then_some(s.fwmark),
                vips: &s.vips,
                scheduler: &s.scheduler,
                forward: &s.forward,
                in_kernel: s.in_kernel,
                retiring: s.retiring.as_ref().map(|r| JsonRetiring {
                    since_unix: r.since_unix,
                    deadline_unix: r.deadline_unix,
                }),
                realservers: s
                    .realservers
                    .iter()
                    .map(|rs| JsonRealServer {
                        name: &rs.name,
                        address: &rs.address,
                        port: port_of(rs, s),
                        forward: &rs.forward,
                        weight: rs.weight,
                        active_conn: rs.active_conn,
                        inact_conn: rs.inact_conn,
                        lease: lease_word(rs.lease),
                        drained: rs.drained,
                        weight_override: rs.weight_override,
                        registered_weight: rs.registered_weight,
                        health: (!rs.health.is_empty()).then_some(rs.health.as_str()),
                        health_reason: (rs.health == "down").then_some(rs.health_reason.as_str()),
                        health_seconds: (rs.health == "down").then_some(rs.health_seconds),
                    })
                    .collect(),
            })
            .collect(),
        refused: status
            .refused
            .iter()
            .map(|r| JsonRefused {
                name: &r.name,
                address: &r.address,
                attempts: r.attempts,
                seconds_ago: r.seconds_ago,
                holder: &r.holder,
            })
            .collect(),
    }
}
