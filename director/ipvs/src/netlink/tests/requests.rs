//! Every request, encoded and compared with bytes derived from ip_vs.h, then parsed back.

use std::net::{IpAddr, Ipv6Addr};

use super::*;
use crate::backend::IpvsOp;
use crate::netlink::message::IpvsCmd;
use crate::netlink::{family, request};
use crate::types::*;

const VIP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 100));
const RIP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 11));

fn ssh() -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: VIP,
        port: 22,
    }
}

/// The service key block every destination command carries: TCP 10.0.0.100:22.
const SSH_KEY: &str = "
    2400 0100                   # IPVS_CMD_ATTR_SERVICE, 36 bytes
      0600 0100 0200 0000       #   AF: AF_INET (2), host order, 2 bytes padding
      0600 0200 0600 0000       #   PROTOCOL: IPPROTO_TCP (6)
      0800 0300 0a000064        #   ADDR: 10.0.0.100, exactly 4 bytes for IPv4
      0600 0400 0016 0000       #   PORT: 22 in network order
";

/// Encodes `op` as the pipeline does and checks it against `expected`, then parses it back.
#[track_caller]
fn check_op(op: IpvsOp, seq: u32, expected: &str) {
    let message = request::op_message(&op);
    let encoded = encode(message.clone(), ACKED, seq, FAMILY);
    assert_bytes(&bytes(expected), &encoded);
    assert_eq!(decode(&encoded), message);
}

#[track_caller]
fn check_message(message: IpvsMessage, flags: u16, seq: u32, expected: &str) {
    let encoded = encode(message.clone(), flags, seq, FAMILY);
    assert_bytes(&bytes(expected), &encoded);
    assert_eq!(decode(&encoded), message);
}

#[test]
fn add_service_tcp() {
    check_op(
        IpvsOp::AddService(Service::new(ssh(), "rr")),
        1,
        "
        5c000000 1900 0500 01000000 00000000  # nlmsghdr: 92 bytes, IPVS, REQUEST|ACK, seq 1
        01 01 0000                            # genl: IPVS_CMD_NEW_SERVICE, version 1
        4800 0100                             # IPVS_CMD_ATTR_SERVICE, 72 bytes
          0600 0100 0200 0000                 #   AF_INET
          0600 0200 0600 0000                 #   IPPROTO_TCP
          0800 0300 0a000064                  #   10.0.0.100
          0600 0400 0016 0000                 #   port 22, network order
          0700 0600 727200 00                 #   SCHED_NAME \"rr\" NUL-terminated, padded
          0c00 0700 00000000 ffffffff         #   FLAGS: struct ip_vs_flags {flags 0, mask ~0}
          0800 0800 00000000                  #   TIMEOUT 0
          0800 0900 ffffffff                  #   NETMASK 255.255.255.255
        ",
    );
}

#[test]
fn edit_service_persistent_with_scheduler_flag() {
    let service = Service {
        flags: ServiceFlags(ServiceFlags::PERSISTENT | ServiceFlags::SCHED1),
        timeout: 300,
        netmask: 0xffff_ff00,
        ..Service::new(ssh(), "sh")
    };
    check_op(
        IpvsOp::EditService(service),
        2,
        "
        5c000000 1900 0500 02000000 00000000  # 92 bytes, seq 2
        02 01 0000                            # IPVS_CMD_SET_SERVICE
        4800 0100
          0600 0100 0200 0000
          0600 0200 0600 0000
          0800 0300 0a000064
          0600 0400 0016 0000
          0700 0600 736800 00                 #   \"sh\"
          0c00 0700 09000000 ffffffff         #   PERSISTENT|SCHED1, mask ~0
          0800 0800 2c010000                  #   timeout 300
          0800 0900 ffffff00                  #   netmask 255.255.255.0: network order
        ",
    );
}

#[test]
fn the_hashed_flag_is_never_sent() {
    let service = Service {
        flags: ServiceFlags(ServiceFlags::HASHED | ServiceFlags::PERSISTENT),
        ..Service::new(ssh(), "rr")
    };
    let encoded = encode(
        request::op_message(&IpvsOp::AddService(service)),
        ACKED,
        1,
        FAMILY,
    );
    let flags_attr = bytes("0c00 0700 01000000 ffffffff");
    assert!(encoded.windows(12).any(|w| w == flags_attr.as_slice()));
}

#[test]
fn delete_service() {
    check_op(
        IpvsOp::DeleteService(ssh()),
        3,
        &format!(
            "38000000 1900 0500 03000000 00000000  # 56 bytes, seq 3
             03 01 0000                            # IPVS_CMD_DEL_SERVICE
             {SSH_KEY}                             # only what names the service"
        ),
    );
}

#[test]
fn delete_sctp_service() {
    let sctp = ServiceKey::Addr {
        protocol: Protocol::Sctp,
        addr: VIP,
        port: 3868,
    };
    check_op(
        IpvsOp::DeleteService(sctp),
        4,
        "
        38000000 1900 0500 04000000 00000000
        03 01 0000
        2400 0100
          0600 0100 0200 0000
          0600 0200 8400 0000                 #   IPPROTO_SCTP (132)
          0800 0300 0a000064
          0600 0400 0f1c 0000                 #   port 3868
        ",
    );
}

#[test]
fn add_service_ipv6() {
    let key = ServiceKey::Addr {
        protocol: Protocol::Udp,
        addr: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100)),
        port: 53,
    };
    check_op(
        IpvsOp::AddService(Service::new(key, "wlc")),
        5,
        "
        68000000 1900 0500 05000000 00000000  # 104 bytes
        01 01 0000
        5400 0100                             # 84 bytes
          0600 0100 0a00 0000                 #   AF_INET6 (10)
          0600 0200 1100 0000                 #   IPPROTO_UDP (17)
          1400 0300 20010db8 00000000 00000000 00000100  # 2001:db8::100, 16 bytes
          0600 0400 0035 0000                 #   port 53
          0800 0600 776c6300                  #   \"wlc\"
          0c00 0700 00000000 ffffffff
          0800 0800 00000000
          0800 0900 80000000                  #   prefix length 128, host order
        ",
    );
}

#[test]
fn add_fwmark_service_ipv6() {
    let key = ServiceKey::FwMark {
        family: Family::Inet6,
        mark: 7,
    };
    check_op(
        IpvsOp::AddService(Service::new(key, "rr")),
        6,
        "
        4c000000 1900 0500 06000000 00000000  # 76 bytes
        01 01 0000
        3800 0100                             # 56 bytes
          0600 0100 0a00 0000                 #   AF_INET6
          0800 0500 07000000                  #   FWMARK 7: no protocol, address or port
          0700 0600 727200 00
          0c00 0700 00000000 ffffffff
          0800 0800 00000000
          0800 0900 80000000
        ",
    );
}

#[test]
fn add_destination_route() {
    let destination = Destination {
        upper_threshold: 100,
        lower_threshold: 10,
        ..Destination::new(RIP, 22, ForwardMethod::Route, 1)
    };
    check_op(
        IpvsOp::AddDestination {
            service: ssh(),
            destination,
        },
        7,
        &format!(
            "8c000000 1900 0500 07000000 00000000  # 140 bytes
             05 01 0000                            # IPVS_CMD_NEW_DEST
             {SSH_KEY}
             5400 0200                             # IPVS_CMD_ATTR_DEST, 84 bytes
               0600 0b00 0200 0000                 #   ADDR_FAMILY: AF_INET
               0800 0100 0a00000b                  #   ADDR: 10.0.0.11
               0600 0200 0016 0000                 #   PORT 22, network order
               0800 0300 03000000                  #   FWD_METHOD: IP_VS_CONN_F_DROUTE
               0800 0400 01000000                  #   WEIGHT 1
               0800 0500 64000000                  #   U_THRESH 100
               0800 0600 0a000000                  #   L_THRESH 10
               0500 0d00 00 000000                 #   TUN_TYPE: u8, 3 bytes padding
               0600 0e00 0000 0000                 #   TUN_PORT, network order
               0600 0f00 0000 0000                 #   TUN_FLAGS"
        ),
    );
}

#[test]
fn edit_destination_gue_tunnel() {
    let destination = Destination {
        tunnel: Tunnel {
            kind: 1,
            port: 6080,
            flags: 1,
        },
        ..Destination::new(RIP, 22, ForwardMethod::Tunnel, 0)
    };
    check_op(
        IpvsOp::EditDestination {
            service: ssh(),
            destination,
        },
        8,
        &format!(
            "8c000000 1900 0500 08000000 00000000
             06 01 0000                            # IPVS_CMD_SET_DEST
             {SSH_KEY}
             5400 0200
               0600 0b00 0200 0000
               0800 0100 0a00000b
               0600 0200 0016 0000
               0800 0300 02000000                  #   IP_VS_CONN_F_TUNNEL
               0800 0400 00000000                  #   weight 0: quiesced
               0800 0500 00000000
               0800 0600 00000000
               0500 0d00 01 000000                 #   IP_VS_CONN_F_TUNNEL_TYPE_GUE
               0600 0e00 17c0 0000                 #   port 6080, network order
               0600 0f00 0100 0000                 #   IP_VS_TUNNEL_ENCAP_FLAG_CSUM"
        ),
    );
}

#[test]
fn edit_destination_masq() {
    let destination = Destination::new(RIP, 2222, ForwardMethod::Masq, 7);
    let encoded = encode(
        request::op_message(&IpvsOp::EditDestination {
            service: ssh(),
            destination,
        }),
        ACKED,
        9,
        FAMILY,
    );
    // IP_VS_CONN_F_MASQ is 0; the port is 2222 in network order.
    assert!(encoded.windows(8).any(|w| w == bytes("0800 0300 00000000")));
    assert!(encoded
        .windows(8)
        .any(|w| w == bytes("0600 0200 08ae 0000")));
    assert!(encoded.windows(8).any(|w| w == bytes("0800 0400 07000000")));
}

#[test]
fn delete_destination() {
    check_op(
        IpvsOp::DeleteDestination {
            service: ssh(),
            destination: DestinationKey {
                addr: RIP,
                port: 22,
            },
        },
        10,
        &format!(
            "54000000 1900 0500 0a000000 00000000  # 84 bytes
             07 01 0000                            # IPVS_CMD_DEL_DEST
             {SSH_KEY}
             1c00 0200                             # only what names the destination
               0600 0b00 0200 0000
               0800 0100 0a00000b
               0600 0200 0016 0000"
        ),
    );
}

#[test]
fn delete_ipv6_destination() {
    let addr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11));
    let encoded = encode(
        request::op_message(&IpvsOp::DeleteDestination {
            service: ssh(),
            destination: DestinationKey { addr, port: 22 },
        }),
        ACKED,
        11,
        FAMILY,
    );
    let dest_block = bytes(
        "2800 0200
           0600 0b00 0a00 0000                 # AF_INET6: an IPv6 destination of an IPv4 service
           1400 0100 20010db8 00000000 00000000 00000011
           0600 0200 0016 0000",
    );
    assert_bytes(&dest_block, &encoded[encoded.len() - dest_block.len()..]);
}

#[test]
fn set_timeouts() {
    check_op(
        IpvsOp::SetTimeouts(Timeouts {
            tcp: 259200,
            tcp_fin: 0,
            udp: 0,
        }),
        12,
        "
        2c000000 1900 0500 0c000000 00000000  # 44 bytes
        0c 01 0000                            # IPVS_CMD_SET_CONFIG
        0800 0400 80f40300                    # TIMEOUT_TCP 259200
        0800 0500 00000000                    # TIMEOUT_TCP_FIN 0: unchanged
        0800 0600 00000000                    # TIMEOUT_UDP 0: unchanged
        ",
    );
}

#[test]
fn bare_requests() {
    check_message(
        request::bare(IpvsCmd::GetInfo),
        ACKED,
        13,
        "14000000 1900 0500 0d000000 00000000  0f 01 0000  # IPVS_CMD_GET_INFO",
    );
    check_message(
        request::bare(IpvsCmd::GetConfig),
        ACKED,
        14,
        "14000000 1900 0500 0e000000 00000000  0d 01 0000  # IPVS_CMD_GET_CONFIG",
    );
    check_message(
        request::bare(IpvsCmd::Flush),
        ACKED,
        15,
        "14000000 1900 0500 0f000000 00000000  11 01 0000  # IPVS_CMD_FLUSH",
    );
}

#[test]
fn dumps() {
    check_message(
        request::bare(IpvsCmd::GetService),
        DUMP,
        16,
        "14000000 1900 0103 10000000 00000000  # REQUEST|DUMP (0x301)
         04 01 0000                            # IPVS_CMD_GET_SERVICE",
    );
    check_message(
        request::bare(IpvsCmd::GetDaemon),
        DUMP,
        17,
        "14000000 1900 0103 11000000 00000000  0b 01 0000  # IPVS_CMD_GET_DAEMON",
    );
    check_message(
        request::list_destinations(&ssh()),
        DUMP,
        18,
        &format!(
            "38000000 1900 0103 12000000 00000000
             08 01 0000                            # IPVS_CMD_GET_DEST
             {SSH_KEY}"
        ),
    );
}

#[test]
fn daemons() {
    let master = SyncDaemon {
        role: SyncRole::Master,
        interface: "lo".into(),
        sync_id: 1,
    };
    check_message(
        request::start_daemon(&master),
        ACKED,
        19,
        "
        30000000 1900 0500 13000000 00000000  # 48 bytes
        09 01 0000                            # IPVS_CMD_NEW_DAEMON
        1c00 0300                             # IPVS_CMD_ATTR_DAEMON, 28 bytes
          0800 0100 01000000                  #   STATE: IP_VS_STATE_MASTER
          0700 0200 6c6f00 00                 #   MCAST_IFN \"lo\"
          0800 0300 01000000                  #   SYNC_ID 1
        ",
    );
    check_message(
        request::stop_daemon(SyncRole::Backup),
        ACKED,
        20,
        "
        20000000 1900 0500 14000000 00000000  # 32 bytes
        0a 01 0000                            # IPVS_CMD_DEL_DAEMON
        0c00 0300
          0800 0100 02000000                  #   STATE: IP_VS_STATE_BACKUP
        ",
    );
}

#[test]
fn resolve_family() {
    let mut encoded = Vec::new();
    encode_message(&mut encoded, ACKED, 1, family::request());
    assert_bytes(
        &bytes(
            "
            20000000 1000 0500 01000000 00000000  # 32 bytes to GENL_ID_CTRL (16)
            03 02 0000                            # CTRL_CMD_GETFAMILY, version 2
            0900 0200 49505653 00 000000          # CTRL_ATTR_FAMILY_NAME \"IPVS\"
            ",
        ),
        &encoded,
    );
}
