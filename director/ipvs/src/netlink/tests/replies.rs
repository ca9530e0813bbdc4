//! Every reply kind, parsed from bytes derived from ip_vs.h (the kernel's 6.1 reply layout:
//! `ip_vs_genl_fill_service()`, `_fill_dest()`, `_fill_stats()`, `_fill_stats64()`,
//! `_fill_daemon()`), converted to [`crate::types`], and emitted back byte for byte.

use std::net::IpAddr;

use super::*;
use crate::netlink::family::FamilyId;
use crate::netlink::request;
use crate::netlink::stats::{pick_stats, Counter, StatsAttr};
use crate::netlink::transport::decode_datagram;
use crate::types::*;

/// `IPVS_SVC_ATTR_STATS` / `IPVS_DEST_ATTR_STATS` (both number 10): 32-bit counts and rates,
/// 64-bit byte counts. The connection count has wrapped past 2^32.
pub(super) const STATS32: &str = "
    5c00 0a00                     # STATS, 92 bytes
      0800 0100 05000000          #   CONNS 5 (u32: wrapped)
      0800 0200 28000000          #   INPKTS 40
      0800 0300 00000000          #   OUTPKTS 0 (direct routing: replies bypass us)
      0c00 0400 b80b0000 00000000 #   INBYTES 3000 (u64)
      0c00 0500 00000000 00000000 #   OUTBYTES 0 (u64)
      0800 0600 01000000          #   CPS 1
      0800 0700 02000000          #   INPPS 2
      0800 0800 00000000          #   OUTPPS 0
      0800 0900 64000000          #   INBPS 100
      0800 0a00 00000000          #   OUTBPS 0
";

/// `..._STATS64` (number 12): every value 64-bit.
pub(super) const STATS64: &str = "
    7c00 0c00                     # STATS64, 124 bytes
      0c00 0100 05000000 01000000 #   CONNS 2^32 + 5
      0c00 0200 28000000 00000000
      0c00 0300 00000000 00000000
      0c00 0400 b80b0000 00000000
      0c00 0500 00000000 00000000
      0c00 0600 01000000 00000000
      0c00 0700 02000000 00000000
      0c00 0800 00000000 00000000
      0c00 0900 64000000 00000000
      0c00 0a00 00000000 00000000
";

fn expected_stats() -> Stats {
    Stats {
        conns: (1 << 32) + 5,
        in_packets: 40,
        out_packets: 0,
        in_bytes: 3000,
        out_bytes: 0,
        cps: 1,
        in_pps: 2,
        out_pps: 0,
        in_bps: 100,
        out_bps: 0,
    }
}

fn service_entry_bytes() -> Vec<u8> {
    bytes(&format!(
        "
        40010000 1900 0200 07000000 4d0e0000  # 320 bytes, NLM_F_MULTI, seq 7, our port id
        01 01 0000                            # IPVS_CMD_NEW_SERVICE: one entry of the dump
        2c01 0100                             # IPVS_CMD_ATTR_SERVICE, 300 bytes
          0600 0100 0200 0000                 #   AF_INET
          0600 0200 0600 0000                 #   IPPROTO_TCP
          1400 0300 0a000064 00000000 00000000 00000000  # all 16 bytes of nf_inet_addr
          0600 0400 0016 0000                 #   port 22
          0800 0600 77727200                  #   \"wrr\"
          0c00 0700 03000000 ffffffff         #   PERSISTENT|HASHED (kernel-internal), mask ~0
          0800 0800 2c010000                  #   timeout 300
          0800 0900 ffffff00                  #   netmask 255.255.255.0
          {STATS32}
          {STATS64}
        "
    ))
}

/// Encodes `message` with the header fields of `expected` and compares the whole.
#[track_caller]
fn assert_reemits(expected: &[u8], message: IpvsMessage) {
    let flags = u16::from_ne_bytes([expected[6], expected[7]]);
    let seq = u32::from_ne_bytes([expected[8], expected[9], expected[10], expected[11]]);
    let family = u16::from_ne_bytes([expected[4], expected[5]]);
    let mut encoded = encode(message, flags, seq, family);
    // The port id is the kernel's to fill in.
    encoded[12..16].copy_from_slice(&expected[12..16]);
    assert_bytes(expected, &encoded);
}

#[test]
fn service_dump_entry() {
    let raw = service_entry_bytes();
    let message = decode(&raw);
    let entry = request::parse_service(&message).unwrap().unwrap();
    assert_eq!(
        entry,
        ServiceEntry {
            service: Service {
                key: ServiceKey::Addr {
                    protocol: Protocol::Tcp,
                    addr: IpAddr::from([10, 0, 0, 100]),
                    port: 22,
                },
                scheduler: "wrr".into(),
                flags: ServiceFlags(ServiceFlags::PERSISTENT),
                timeout: 300,
                netmask: 0xffff_ff00,
            },
            stats: expected_stats(),
        }
    );
    assert_reemits(&raw, message);
}

#[test]
fn fwmark_ipv6_service_entry() {
    let raw = bytes(
        "
        4c000000 1900 0200 07000000 4d0e0000  # 76 bytes
        01 01 0000
        3800 0100
          0600 0100 0a00 0000                 #   AF_INET6
          0800 0500 07000000                  #   FWMARK 7 instead of protocol, address, port
          0700 0600 727200 00
          0c00 0700 02000000 ffffffff         #   only HASHED
          0800 0800 00000000
          0800 0900 40000000                  #   prefix length 64, host order
        ",
    );
    let entry = request::parse_service(&decode(&raw)).unwrap().unwrap();
    assert_eq!(
        entry.service,
        Service {
            key: ServiceKey::FwMark {
                family: Family::Inet6,
                mark: 7
            },
            scheduler: "rr".into(),
            flags: ServiceFlags(0),
            timeout: 0,
            netmask: 64,
        }
    );
    assert_eq!(entry.stats, Stats::default(), "no stats block, no counters");
}

#[test]
fn a_service_of_an_unknown_protocol_is_skipped() {
    let raw = bytes(
        "
        48000000 1900 0200 07000000 4d0e0000  # 72 bytes
        01 01 0000
        3400 0100                             # 52 bytes
          0600 0100 0200 0000
          0600 0200 3200 0000                 #   IPPROTO_ESP (50): not ours to name
          0800 0300 0a000064
          0600 0400 0000 0000
          0700 0600 727200 00
          0800 0900 ffffffff
        ",
    );
    assert_eq!(request::parse_service(&decode(&raw)).unwrap(), None);
}

fn destination_entry_bytes() -> Vec<u8> {
    bytes(&format!(
        "
        64010000 1900 0200 08000000 4d0e0000  # 356 bytes, NLM_F_MULTI
        05 01 0000                            # IPVS_CMD_NEW_DEST: one entry of the dump
        5001 0200                             # IPVS_CMD_ATTR_DEST, 336 bytes
          1400 0100 0a00000b 00000000 00000000 00000000  # 10.0.0.11 in 16 bytes
          0600 0200 0016 0000                 #   port 22
          0800 0300 03000000                  #   IP_VS_CONN_F_DROUTE
          0800 0400 01000000                  #   weight 1
          0500 0d00 00 000000                 #   TUN_TYPE ipip
          0600 0e00 0000 0000                 #   TUN_PORT
          0600 0f00 0000 0000                 #   TUN_FLAGS
          0800 0500 64000000                  #   U_THRESH 100
          0800 0600 0a000000                  #   L_THRESH 10
          0800 0700 02000000                  #   ACTIVE_CONNS 2
          0800 0800 03000000                  #   INACT_CONNS 3
          0800 0900 01000000                  #   PERSIST_CONNS 1
          0600 0b00 0200 0000                 #   ADDR_FAMILY AF_INET
          {STATS32}
          {STATS64}
        "
    ))
}

#[test]
fn destination_dump_entry_with_stats() {
    let raw = destination_entry_bytes();
    let message = decode(&raw);
    let entry = request::parse_destination(&message, Family::Inet).unwrap();
    assert_eq!(
        entry,
        DestinationEntry {
            destination: Destination {
                upper_threshold: 100,
                lower_threshold: 10,
                ..Destination::new(IpAddr::from([10, 0, 0, 11]), 22, ForwardMethod::Route, 1)
            },
            active_conns: 2,
            inactive_conns: 3,
            persistent_conns: 1,
            stats: expected_stats(),
        }
    );
    assert_reemits(&raw, message);
}

#[test]
fn a_destination_without_its_family_takes_the_services() {
    let raw = bytes(
        "
        44000000 1900 0200 08000000 4d0e0000  # 68 bytes
        05 01 0000
        3000 0200                             # 48 bytes
          1400 0100 20010db8 00000000 00000000 00000011  # an IPv6 address, no ADDR_FAMILY
          0600 0200 0016 0000
          0800 0300 00000000                  #   IP_VS_CONN_F_MASQ
          0800 0400 02000000
        ",
    );
    let entry = request::parse_destination(&decode(&raw), Family::Inet6).unwrap();
    assert_eq!(
        entry.destination.addr,
        "2001:db8::11".parse::<IpAddr>().unwrap()
    );
    assert_eq!(entry.destination.forward, ForwardMethod::Masq);
    assert_eq!(entry.destination.weight, 2);
}

#[test]
fn stats_fall_back_to_32_bits() {
    let attrs32 = vec![
        StatsAttr::Conns(Counter::U32(5)),
        StatsAttr::InBytes(Counter::U64(3000)),
    ];
    let stats = pick_stats(None, Some(&attrs32));
    assert_eq!((stats.conns, stats.in_bytes), (5, 3000));
    let attrs64 = vec![StatsAttr::Conns(Counter::U64(1 << 40))];
    assert_eq!(pick_stats(Some(&attrs64), Some(&attrs32)).conns, 1 << 40);
}

#[test]
fn info_reply() {
    let raw = bytes(
        "
        24000000 1900 0000 0d000000 4d0e0000  # 36 bytes, a plain reply
        0e 01 0000                            # IPVS_CMD_SET_INFO answers GET_INFO
        0800 0100 01020100                    # IPVS_INFO_ATTR_VERSION 0x010201
        0800 0200 00100000                    # IPVS_INFO_ATTR_CONN_TAB_SIZE 4096
        ",
    );
    let message = decode(&raw);
    let info = request::parse_info(&message).unwrap();
    assert_eq!(
        info,
        Info {
            version: 0x010201,
            conn_table_size: 4096
        }
    );
    assert_eq!(
        info.to_string(),
        "IP Virtual Server version 1.2.1 (size=4096)"
    );
    assert_reemits(&raw, message);
}

#[test]
fn config_reply() {
    let raw = bytes(
        "
        2c000000 1900 0000 0e000000 4d0e0000
        0c 01 0000                            # IPVS_CMD_SET_CONFIG answers GET_CONFIG
        0800 0400 84030000                    # TIMEOUT_TCP 900
        0800 0500 78000000                    # TIMEOUT_TCP_FIN 120
        0800 0600 2c010000                    # TIMEOUT_UDP 300
        ",
    );
    let message = decode(&raw);
    assert_eq!(
        request::parse_timeouts(&message),
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300
        }
    );
    assert_reemits(&raw, message);
}

#[test]
fn daemon_reply() {
    let raw = bytes(
        "
        54000000 1900 0200 11000000 4d0e0000  # 84 bytes, NLM_F_MULTI
        09 01 0000                            # IPVS_CMD_NEW_DAEMON: one entry of the dump
        4000 0300                             # IPVS_CMD_ATTR_DAEMON, 64 bytes
          0800 0100 01000000                  #   STATE master
          0900 0200 65746830 00 000000        #   MCAST_IFN \"eth0\"
          0800 0300 01000000                  #   SYNC_ID 1
          0600 0400 c005 0000                 #   SYNC_MAXLEN 1472, host order
          0600 0700 9022 0000                 #   MCAST_PORT 8848, host order
          0500 0800 01 000000                 #   MCAST_TTL 1
          0800 0500 e0000051                  #   MCAST_GROUP 224.0.0.81
        ",
    );
    let message = decode(&raw);
    assert_eq!(
        request::parse_daemon(&message).unwrap(),
        SyncDaemon {
            role: SyncRole::Master,
            interface: "eth0".into(),
            sync_id: 1
        }
    );
    assert_reemits(&raw, message);
}

#[test]
fn refusal_ack_and_done() {
    let refusal = bytes(
        "
        24000000 0200 0001 07000000 4d0e0000  # NLMSG_ERROR, NLM_F_CAPPED, seq 7
        efffffff                              # -EEXIST
        8c000000 1900 0500 07000000 00000000  # the refused request's header only (capped)
        ",
    );
    match decode_message::<GenlMessage<IpvsMessage>>(&refusal).unwrap() {
        Answer::Ack { seq: 7, errno } => assert_eq!(errno, libc::EEXIST),
        other => panic!("expected a refusal of request 7, got {other:?}"),
    }
    let ack = bytes(
        "24000000 0200 0001 08000000 4d0e0000  00000000  8c000000 1900 0500 08000000 00000000",
    );
    assert!(matches!(
        decode_message::<GenlMessage<IpvsMessage>>(&ack).unwrap(),
        Answer::Ack { seq: 8, errno: 0 }
    ));
    let done = bytes("14000000 0300 0200 10000000 4d0e0000  00000000  # NLMSG_DONE, status 0");
    assert!(matches!(
        decode_message::<GenlMessage<IpvsMessage>>(&done).unwrap(),
        Answer::Done { seq: 16, errno: 0 }
    ));
}

#[test]
fn one_datagram_with_two_entries_and_done() {
    let mut datagram = service_entry_bytes();
    datagram.extend(destination_entry_bytes());
    datagram.extend(bytes("14000000 0300 0200 07000000 4d0e0000 00000000"));
    let answers = decode_datagram::<GenlMessage<IpvsMessage>>(&datagram, |_| {}).unwrap();
    assert_eq!(answers.len(), 3);
    assert!(matches!(answers[2], Answer::Done { seq: 7, errno: 0 }));
}

#[test]
fn a_cut_datagram_is_an_error_not_a_short_list() {
    let mut datagram = service_entry_bytes();
    datagram.truncate(200);
    assert!(decode_datagram::<GenlMessage<IpvsMessage>>(&datagram, |_| {}).is_err());
}

#[test]
fn family_reply() {
    let raw = bytes(
        "
        30000000 1000 0000 01000000 4d0e0000  # 48 bytes from GENL_ID_CTRL
        01 02 0000                            # CTRL_CMD_NEWFAMILY
        0900 0200 49505653 00 000000          # FAMILY_NAME \"IPVS\"
        0600 0100 1900 0000                   # FAMILY_ID 0x19
        0800 0300 01000000                    # VERSION 1
        ",
    );
    match decode_message::<FamilyId>(&raw).unwrap() {
        Answer::Data { message, .. } => assert_eq!(message.0, Some(0x19)),
        other => panic!("expected the family, got {other:?}"),
    }
}
