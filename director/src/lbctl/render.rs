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
        _ => "none",
    }
}

fn endpoint(addr: &str, port: u32) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
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
    let _ = writeln!(out, "Prot LocalAddress:Port Scheduler Service");
    let _ = writeln!(
        out,
        "  -> {:<22} {:<12} {:<7} {:>6} {:>10} {:>9}  {:<12} Admin",
        "RemoteAddress:Port", "Name", "Forward", "Weight", "ActiveConn", "InActConn", "Lease"
    );
    for s in &status.services {
        let missing = if s.in_kernel {
            ""
        } else {
            "  (not in the kernel table)"
        };
        let retiring = s.retiring.as_ref().map_or(String::new(), |r| {
            let active: u32 = s.realservers.iter().map(|rs| rs.active_conn).sum();
            let inactive: u32 = s.realservers.iter().map(|rs| rs.inact_conn).sum();
            format!(
                "  (retiring: waiting for {active} active, {inactive} inactive connections, at most {} s more)",
                crate::view::retire_seconds_left(r)
            )
        });
        let _ = writeln!(
            out,
            "{:<4} {} {} {}{missing}{retiring}",
            protocol_word(s.protocol).to_uppercase(),
            endpoint(&s.vip, s.port),
            s.scheduler,
            s.name
        );
        for rs in &s.realservers {
            let weight = rs.weight.map_or("-".to_owned(), |w| w.to_string());
            let _ = writeln!(
                out,
                "  -> {:<22} {:<12} {:<7} {:>6} {:>10} {:>9}  {:<12} {}",
                endpoint(&rs.address, s.port),
                rs.name,
                rs.forward,
                weight,
                rs.active_conn,
                rs.inact_conn,
                lease_word(rs.lease),
                admin_word(rs)
            );
        }
    }
    out
}

#[derive(Serialize)]
struct JsonStatus<'a> {
    services: Vec<JsonService<'a>>,
}

#[derive(Serialize)]
struct JsonService<'a> {
    name: &'a str,
    protocol: &'static str,
    vip: &'a str,
    port: u32,
    scheduler: &'a str,
    forward: &'a str,
    in_kernel: bool,
    /// Present while the service is retiring (removed from the config, kept for its sessions).
    retiring: Option<JsonRetiring>,
    realservers: Vec<JsonRealServer<'a>>,
}

#[derive(Serialize)]
struct JsonRetiring {
    since_unix: u64,
    deadline_unix: u64,
}

#[derive(Serialize)]
struct JsonRealServer<'a> {
    name: &'a str,
    address: &'a str,
    forward: &'a str,
    /// null when not in the kernel table.
    weight: Option<u32>,
    active_conn: u32,
    inact_conn: u32,
    lease: &'static str,
    drained: bool,
    weight_override: Option<u32>,
    registered_weight: u32,
}

/// The same content as [`render_table`], for scripts.
pub fn render_json(status: &pb::StatusResponse) -> String {
    let json = JsonStatus {
        services: status
            .services
            .iter()
            .map(|s| JsonService {
                name: &s.name,
                protocol: protocol_word(s.protocol),
                vip: &s.vip,
                port: s.port,
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
                        forward: &rs.forward,
                        weight: rs.weight,
                        active_conn: rs.active_conn,
                        inact_conn: rs.inact_conn,
                        lease: lease_word(rs.lease),
                        drained: rs.drained,
                        weight_override: rs.weight_override,
                        registered_weight: rs.registered_weight,
                    })
                    .collect(),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&json).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
