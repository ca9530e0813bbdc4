//! Byte-level tests: every request is encoded and compared with bytes derived from
//! `include/uapi/linux/ip_vs.h` (and, where the lab captured them, with what the kernel
//! accepted); every reply kind is parsed from bytes and emitted back identically.
//! Host-order fields are written little-endian here, as on the machines this runs on.

mod acks;
mod captured;
mod overrun;
mod replies;
mod requests;

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_generic::GenlMessage;

use super::message::IpvsMessage;
use super::transport::{decode_message, encode_message, Answer};

/// The family number used by the hand-derived bytes (the kernel assigns it at load time).
const FAMILY: u16 = 0x19;

const ACKED: u16 = NLM_F_REQUEST | NLM_F_ACK;
const DUMP: u16 = NLM_F_REQUEST | NLM_F_DUMP;

/// Hex digits with `#` comments and any whitespace, as bytes.
fn bytes(annotated: &str) -> Vec<u8> {
    let digits: String = annotated
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .flat_map(str::chars)
        .filter(|c| !c.is_whitespace())
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

/// `message` framed as the transport sends it.
fn encode(message: IpvsMessage, flags: u16, seq: u32, family: u16) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_message(&mut buf, flags, seq, super::frame(message, family));
    buf
}

/// Parses one IPVS message (with its netlink header) and returns it with its header fields.
fn decode(bytes: &[u8]) -> IpvsMessage {
    match decode_message::<GenlMessage<IpvsMessage>>(bytes).unwrap() {
        Answer::Data { message, .. } => message.payload,
        other => panic!("expected an IPVS message, got {other:?}"),
    }
}

/// Compares byte strings showing the first difference, which a plain assert_eq hides in
/// hundreds of numbers.
#[track_caller]
fn assert_bytes(expected: &[u8], actual: &[u8]) {
    if let Some(at) = (0..expected.len().min(actual.len())).find(|&i| expected[i] != actual[i]) {
        panic!(
            "bytes differ at offset {at}: expected {:02x?}, got {:02x?}\nexpected: {}\nactual:   {}",
            &expected[at..(at + 8).min(expected.len())],
            &actual[at..(at + 8).min(actual.len())],
            super::transport::hex(expected),
            super::transport::hex(actual),
        );
    }
    assert_eq!(expected.len(), actual.len(), "lengths differ");
}
