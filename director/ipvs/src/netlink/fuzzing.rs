//! The fuzzing entry point: the decoder of kernel replies, reachable with raw bytes from the
//! fuzz tests (`tests/fuzz_netlink*.rs`). The parsers themselves stay private; this is the
//! narrowest door that still runs every one of them exactly as [`super::NetlinkIpvs`] does.
//! Not an API: nothing but tests calls it, and it changes with the decoder.

use netlink_packet_core::DecodeError;
use netlink_packet_generic::GenlMessage;

use super::message::IpvsMessage;
use super::request;
use super::transport::{self, encode_message};
use crate::backend::IpvsOp;
use crate::types::{DestinationEntry, Family, Info, ServiceEntry, SyncDaemon, Timeouts};

pub use super::family::FamilyId;
pub use super::transport::{Answer, TransportError};

/// Decodes one datagram of IPVS replies, as the client does with every datagram it receives.
pub fn decode_datagram(
    datagram: &[u8],
) -> Result<Vec<Answer<GenlMessage<IpvsMessage>>>, TransportError> {
    transport::decode_datagram(datagram, |_| {})
}

/// Decodes one datagram of the controller's answer to the family lookup.
pub fn decode_family_datagram(datagram: &[u8]) -> Result<Vec<Answer<FamilyId>>, TransportError> {
    transport::decode_datagram(datagram, |_| {})
}

/// What each of the client's readers makes of one IPVS message. The client picks the reader
/// by the request it sent; a hostile reply can be anything, so every reader sees every message.
#[derive(Debug)]
pub struct Readings {
    pub service: Result<Option<ServiceEntry>, DecodeError>,
    /// Read as the destination of an IPv4 and of an IPv6 service.
    pub destination: [Result<DestinationEntry, DecodeError>; 2],
    pub daemon: Result<SyncDaemon, DecodeError>,
    pub info: Result<Info, DecodeError>,
    pub timeouts: Timeouts,
}

pub fn read(message: &IpvsMessage) -> Readings {
    Readings {
        service: request::parse_service(message),
        destination: [Family::Inet, Family::Inet6]
            .map(|family| request::parse_destination(message, family)),
        daemon: request::parse_daemon(message),
        info: request::parse_info(message),
        timeouts: request::parse_timeouts(message),
    }
}

/// The request that makes `op`, as the client encodes it.
pub fn op_message(op: &IpvsOp) -> IpvsMessage {
    request::op_message(op)
}

/// The NEW_DAEMON request that starts `daemon`.
pub fn start_daemon(daemon: &SyncDaemon) -> IpvsMessage {
    request::start_daemon(daemon)
}

/// `message` framed as one netlink message of family `family_id`, as the client sends it.
pub fn encode(message: IpvsMessage, family_id: u16, flags: u16, seq: u32) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_message(&mut buf, flags, seq, super::frame(message, family_id));
    buf
}
