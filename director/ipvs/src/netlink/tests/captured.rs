//! The bytes a real kernel accepted and answered (tests/captured/, see its README): today's
//! encoder must produce the same requests, and the parser must read every reply.

use std::net::IpAddr;

use super::*;
use crate::netlink::family::FamilyId;
use crate::netlink::message::IpvsCmd;
use crate::netlink::request;
use crate::types::*;

/// The number the kernel gave the IPVS family on the capture's boot.
const CAPTURED_FAMILY: u16 = 32;

struct Capture {
    sends: Vec<Vec<u8>>,
    recvs: Vec<Vec<u8>>,
}

fn capture(text: &str) -> Capture {
    let mut capture = Capture {
        sends: Vec::new(),
        recvs: Vec::new(),
    };
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("send", hex)) => capture.sends.push(bytes(hex)),
            Some(("recv", hex)) => capture.recvs.push(bytes(hex)),
            _ => panic!("not a capture line: {line}"),
        }
    }
    capture
}

/// The capture of one step, read from tests/captured/STEP.hex.
fn load(step: &str) -> Capture {
    let path = format!("{}/tests/captured/{step}.hex", env!("CARGO_MANIFEST_DIR"));
    capture(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

fn seq_of(message: &[u8]) -> u32 {
    u32::from_ne_bytes([message[8], message[9], message[10], message[11]])
}

/// The answers of a dump or a GET, without the closing ack or NLMSG_DONE.
fn replies(capture: &Capture) -> Vec<IpvsMessage> {
    capture
        .recvs
        .iter()
        .filter_map(
            |raw| match decode_message::<GenlMessage<IpvsMessage>>(raw).unwrap() {
                Answer::Data { message, .. } => Some(message.payload),
                _ => None,
            },
        )
        .collect()
}

/// The errno of the ack that closes the exchange.
fn ack_errno(capture: &Capture) -> i32 {
    let last = capture.recvs.last().expect("an answer");
    match decode_message::<GenlMessage<IpvsMessage>>(last).unwrap() {
        Answer::Ack { seq, errno } => {
            assert_eq!(seq, seq_of(&capture.sends[0]), "ack of another request");
            errno
        }
        other => panic!("expected an ack, got {other:?}"),
    }
}

#[cfg(feature = "testing")]
#[test]
fn every_captured_op_encodes_to_the_bytes_the_kernel_accepted() {
    use crate::contract::capture::{setup_ops, teardown_ops};
    let ops: Vec<_> = setup_ops().into_iter().chain(teardown_ops()).collect();
    for (name, op) in &ops {
        let captured = load(name);
        let sent = &captured.sends[0];
        let encoded = encode(
            request::op_message(op),
            ACKED,
            seq_of(sent),
            CAPTURED_FAMILY,
        );
        assert_eq!(
            super::super::transport::hex(&encoded),
            super::super::transport::hex(sent),
            "step {name}"
        );
        let expected = match *name {
            "new_service_exists" => libc::EEXIST,
            "del_dest_missing" => libc::ENOENT,
            _ => 0,
        };
        assert_eq!(ack_errno(&captured), expected, "step {name}");
    }
}

#[test]
fn every_other_captured_request_encodes_identically() {
    let ssh = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: IpAddr::from([10, 0, 0, 100]),
        port: 22,
    };
    let ipv6 = ServiceKey::Addr {
        protocol: Protocol::Udp,
        addr: "2001:db8::100".parse().unwrap(),
        port: 53,
    };
    let master = SyncDaemon {
        role: SyncRole::Master,
        interface: "eth0".into(),
        sync_id: 1,
    };
    let requests = [
        ("get_info", request::bare(IpvsCmd::GetInfo), ACKED),
        ("get_config", request::bare(IpvsCmd::GetConfig), ACKED),
        ("new_daemon", request::start_daemon(&master), ACKED),
        ("del_daemon", request::stop_daemon(SyncRole::Master), ACKED),
        ("flush", request::bare(IpvsCmd::Flush), ACKED),
        ("get_service_dump", request::bare(IpvsCmd::GetService), DUMP),
        ("get_dest_dump", request::list_destinations(&ssh), DUMP),
        (
            "get_dest_dump_ipv6",
            request::list_destinations(&ipv6),
            DUMP,
        ),
        ("get_daemon_dump", request::bare(IpvsCmd::GetDaemon), DUMP),
    ];
    for (name, message, flags) in requests {
        let captured = load(name);
        let sent = &captured.sends[0];
        let encoded = encode(message, flags, seq_of(sent), CAPTURED_FAMILY);
        assert_bytes(sent, &encoded);
        let ends_with_ack = flags == ACKED;
        if ends_with_ack {
            assert_eq!(ack_errno(&captured), 0, "step {name}");
        }
    }
    let mut family = Vec::new();
    let sent = &load("resolve_family").sends[0];
    encode_message(
        &mut family,
        ACKED,
        seq_of(sent),
        crate::netlink::family::request(),
    );
    assert_bytes(sent, &family);
}

#[test]
fn family_lookup() {
    let captured = load("resolve_family");
    match decode_message::<FamilyId>(&captured.recvs[0]).unwrap() {
        Answer::Data { message, .. } => assert_eq!(message.0, Some(CAPTURED_FAMILY)),
        other => panic!("expected the family, got {other:?}"),
    }
}

#[test]
fn info() {
    let captured = load("get_info");
    let reply = &replies(&captured)[0];
    assert_eq!(
        request::parse_info(reply).unwrap(),
        Info {
            version: 0x010201,
            conn_table_size: 4096
        }
    );
    let raw = &captured.recvs[0];
    let mut again = encode(reply.clone(), 0, seq_of(raw), CAPTURED_FAMILY);
    again[12..16].copy_from_slice(&raw[12..16]);
    assert_bytes(raw, &again);
}

/// Emits each reply again with its captured header and compares the whole message.
#[track_caller]
fn assert_all_reemit(captured: &Capture) {
    for raw in &captured.recvs {
        let Answer::Data { message, .. } = decode_message::<GenlMessage<IpvsMessage>>(raw).unwrap()
        else {
            continue;
        };
        let flags = u16::from_ne_bytes([raw[6], raw[7]]);
        let mut again = encode(message.payload, flags, seq_of(raw), CAPTURED_FAMILY);
        again[12..16].copy_from_slice(&raw[12..16]);
        assert_bytes(raw, &again);
    }
}

#[test]
fn service_dump() {
    let captured = load("get_service_dump");
    let services: Vec<ServiceEntry> = replies(&captured)
        .iter()
        .map(|m| request::parse_service(m).unwrap().unwrap())
        .collect();
    assert_eq!(services.len(), 3);
    // As ipvsadm -L -n --stats showed it after four ssh sessions: 4 conns, 102 packets and
    // 14492 bytes in, nothing out (direct routing).
    let ssh = &services[0];
    assert_eq!(ssh.service, Service::new(ssh.service.key, "rr"));
    assert_eq!(ssh.service.key.to_string(), "TCP 10.0.0.100:22");
    assert_eq!(
        (
            ssh.stats.conns,
            ssh.stats.in_packets,
            ssh.stats.in_bytes,
            ssh.stats.out_packets
        ),
        (4, 102, 14492, 0)
    );
    assert_eq!(
        services[1].service.key.to_string(),
        "UDP [2001:db8::100]:53"
    );
    assert_eq!(services[1].service.scheduler, "wlc");
    assert_eq!(services[1].service.netmask, 128);
    assert_eq!(services[2].service.key.to_string(), "FWM 7 IPv6");
    assert_eq!(services[2].service.scheduler, "sh");
    assert!(matches!(
        decode_message::<GenlMessage<IpvsMessage>>(captured.recvs.last().unwrap()).unwrap(),
        Answer::Done { errno: 0, .. }
    ));
    assert_all_reemit(&captured);
}

#[test]
fn destination_dumps() {
    let captured = load("get_dest_dump");
    let mut entries: Vec<DestinationEntry> = replies(&captured)
        .iter()
        .map(|m| request::parse_destination(m, Family::Inet).unwrap())
        .collect();
    entries.sort_by_key(|e| e.destination.key());
    let rip =
        |last: u8| Destination::new(IpAddr::from([10, 0, 0, last]), 22, ForwardMethod::Route, 1);
    assert_eq!(entries[0].destination, rip(11));
    assert_eq!(entries[1].destination, rip(12));
    // ipvsadm -L -n --stats: 10.0.0.11 2 conns, 50 packets, 7194 bytes; 10.0.0.12 2, 52, 7298.
    let counts = |e: &DestinationEntry| (e.stats.conns, e.stats.in_packets, e.stats.in_bytes);
    assert_eq!(counts(&entries[0]), (2, 50, 7194));
    assert_eq!(counts(&entries[1]), (2, 52, 7298));
    // The sessions had ended: no active connection left, the closed ones count as inactive.
    assert_eq!(entries[1].active_conns, 0);
    assert_eq!(entries[1].inactive_conns, 2);
    assert_all_reemit(&captured);

    let captured = load("get_dest_dump_ipv6");
    let gue = request::parse_destination(&replies(&captured)[0], Family::Inet6).unwrap();
    assert_eq!(
        gue.destination,
        Destination {
            tunnel: Tunnel {
                kind: 1,
                port: 6080,
                flags: 1
            },
            upper_threshold: 100,
            lower_threshold: 10,
            ..Destination::new(
                "2001:db8::11".parse().unwrap(),
                53,
                ForwardMethod::Tunnel,
                0
            )
        }
    );
    assert_all_reemit(&captured);
}

#[test]
fn config_and_daemon() {
    let captured = load("get_config");
    assert_eq!(
        request::parse_timeouts(&replies(&captured)[0]),
        Timeouts {
            tcp: 259200,
            tcp_fin: 120,
            udp: 300
        }
    );
    assert_all_reemit(&captured);
    let captured = load("get_daemon_dump");
    assert_eq!(
        request::parse_daemon(&replies(&captured)[0]).unwrap(),
        SyncDaemon {
            role: SyncRole::Master,
            interface: "eth0".into(),
            sync_id: 1
        }
    );
    assert_all_reemit(&captured);
}
