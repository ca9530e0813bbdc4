//! What the netlink fuzz tests share: the captured kernel bytes as a seed corpus, the
//! strategies that make hostile datagrams out of them, and the checks every decoded datagram
//! must pass.

// Each test binary uses its own part of this module; a panic is the failure report.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use lb_ipvs::netlink::fuzzing::{self, Answer, Readings};
use lb_ipvs::netlink::{IpvsAttr, IpvsCmd, IpvsMessage};
use lb_ipvs::{Family, IpvsOp, ServiceKey};
use proptest::prelude::*;

/// The family number the kernel gave IPVS on the capture's boot; any number works for
/// re-encoding, since the decoder does not check it.
pub const FAMILY: u16 = 32;
/// `NLM_F_REQUEST | NLM_F_ACK`.
pub const ACKED: u16 = 0x0005;

/// How long one decode may take before it counts as a hang. Decoding a datagram of a few
/// kilobytes takes microseconds; the margin is for a loaded 2-core machine.
pub const HANG: Duration = Duration::from_secs(5);

fn hex_bytes(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "odd number of hex digits");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn captured_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/captured")
}

/// One capture file's messages: `(sent, bytes)` in order.
fn capture(path: &Path) -> Vec<(bool, Vec<u8>)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| match line.split_once(' ') {
            Some(("send", hex)) => (true, hex_bytes(hex)),
            Some(("recv", hex)) => (false, hex_bytes(hex)),
            _ => panic!("{}: not a capture line: {line}", path.display()),
        })
        .collect()
}

fn capture_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(captured_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "hex"))
        .collect();
    files.sort();
    files
}

/// Real kernel bytes to mutate: every IPVS message captured (requests too: the kernel accepted
/// them, so they are valid messages), and each capture's replies joined into one datagram, as
/// a dump arrives.
pub fn ipvs_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for path in capture_files() {
        if path.ends_with("resolve_family.hex") {
            continue;
        }
        let messages = capture(&path);
        let mut joined = Vec::new();
        for (sent, bytes) in messages {
            if !sent {
                joined.extend_from_slice(&bytes);
            }
            seeds.push(bytes);
        }
        seeds.push(joined);
    }
    assert!(seeds.len() > 40, "the captured corpus went missing");
    seeds
}

/// The controller's captured answer to the IPVS family lookup.
pub fn family_seeds() -> Vec<Vec<u8>> {
    capture(&captured_dir().join("resolve_family.hex"))
        .into_iter()
        .filter(|(sent, _)| !sent)
        .map(|(_, bytes)| bytes)
        .collect()
}

/// proptest's settings for the fuzz tests: the case count from `PROPTEST_CASES` (256 when it
/// is unset), failures saved in `file` (relative to the crate) to be replayed first next time.
pub fn config(file: &'static str) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(file),
        )),
        ..ProptestConfig::default()
    }
}

/// Values that sit on the edges decoders get wrong: zero, lengths around the header sizes,
/// sign boundaries, all ones.
const EDGES: [u32; 14] = [
    0,
    1,
    3,
    4,
    8,
    16,
    20,
    0x7f,
    0x80,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
];

/// One edit of a byte string.
#[derive(Debug, Clone)]
pub enum Mutation {
    FlipBit {
        at: usize,
        bit: u8,
    },
    SetByte {
        at: usize,
        value: u8,
    },
    /// Writes an edge value, as many low bytes as `width` says, at `at`.
    SetEdge {
        at: usize,
        edge: usize,
        width: u8,
    },
    Truncate {
        at: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Remove {
        at: usize,
        len: usize,
    },
    /// Copies `len` bytes from `from` to `at` (a duplicated attribute, a repeated header).
    Splice {
        from: usize,
        len: usize,
        at: usize,
    },
}

impl Mutation {
    fn apply(&self, data: &mut Vec<u8>) {
        if data.is_empty() {
            if let Mutation::Insert { bytes, .. } = self {
                data.extend_from_slice(bytes);
            }
            return;
        }
        let n = data.len();
        match *self {
            Mutation::FlipBit { at, bit } => data[at % n] ^= 1 << (bit % 8),
            Mutation::SetByte { at, value } => data[at % n] = value,
            Mutation::SetEdge { at, edge, width } => {
                let bytes = EDGES[edge % EDGES.len()].to_le_bytes();
                let width = [1, 2, 4][usize::from(width % 3)];
                let at = at % n;
                let end = (at + width).min(n);
                data[at..end].copy_from_slice(&bytes[..end - at]);
            }
            Mutation::Truncate { at } => data.truncate(at % n),
            Mutation::Insert { at, ref bytes } => {
                let at = at % (n + 1);
                data.splice(at..at, bytes.iter().copied());
            }
            Mutation::Remove { at, len } => {
                let at = at % n;
                data.drain(at..(at + len).min(n));
            }
            Mutation::Splice { from, len, at } => {
                let from = from % n;
                let piece = data[from..(from + len).min(n)].to_vec();
                let at = at % (n + 1);
                data.splice(at..at, piece);
            }
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        (at, any::<u8>()).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        (at, any::<u8>()).prop_map(|(at, value)| Mutation::SetByte { at, value }),
        (at, any::<usize>(), any::<u8>()).prop_map(|(at, edge, width)| Mutation::SetEdge {
            at,
            edge,
            width
        }),
        at.prop_map(|at| Mutation::Truncate { at }),
        (at, proptest::collection::vec(any::<u8>(), 1..24))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (at, 1usize..24).prop_map(|(at, len)| Mutation::Remove { at, len }),
        (at, 1usize..64, at).prop_map(|(from, len, at)| Mutation::Splice { from, len, at }),
    ]
}

/// Sets the length field of the first netlink header to the datagram's length, so that an
/// edit inside a message reaches the attribute parsers instead of failing the length check.
fn fix_first_length(data: &mut [u8]) {
    if data.len() >= 4 {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        data[..4].copy_from_slice(&len.to_ne_bytes());
    }
}

/// A captured datagram with one to four edits; half the time its first length field is
/// corrected afterwards.
pub fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::sample::select(seeds),
        proptest::collection::vec(mutation(), 1..=4),
        any::<bool>(),
    )
        .prop_map(|(mut data, mutations, fix)| {
            for m in &mutations {
                m.apply(&mut data);
            }
            if fix {
                fix_first_length(&mut data);
            }
            data
        })
}

/// A random attribute tree: kinds around the ones IPVS defines (with the nested and
/// byte-order flag bits now and then), values of every short length, nests three deep.
fn attributes() -> impl Strategy<Value = Vec<u8>> {
    let kind = prop_oneof![
        8 => 0u16..20,
        1 => any::<u16>(),
    ];
    let leaf = (kind.clone(), proptest::collection::vec(any::<u8>(), 0..20))
        .prop_map(|(kind, value)| nla(kind, &value));
    let tree = leaf.prop_recursive(3, 48, 8, move |inner| {
        (kind.clone(), proptest::collection::vec(inner, 0..8))
            .prop_map(|(kind, children)| nla(kind, &children.concat()))
    });
    proptest::collection::vec(tree, 0..8).prop_map(|attrs| attrs.concat())
}

/// One attribute: length, kind, value, padding to four bytes.
fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let len = u16::try_from(4 + value.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(value.len() + 8);
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
    out
}

/// A well-framed netlink message of a random type (mostly the IPVS family, an error/ack or
/// NLMSG_DONE) around a generic netlink header and a random attribute tree.
fn framed_message() -> impl Strategy<Value = Vec<u8>> {
    let message_type = prop_oneof![
        4 => Just(FAMILY),
        2 => Just(2u16), // NLMSG_ERROR
        2 => Just(3u16), // NLMSG_DONE
        1 => 0u16..0x20,
        1 => any::<u16>(),
    ];
    (
        message_type,
        any::<u16>(),
        any::<u32>(),
        0u8..20,
        any::<u8>(),
        attributes(),
    )
        .prop_map(|(message_type, flags, seq, cmd, version, attrs)| {
            let len = 16 + 4 + attrs.len();
            let mut out = Vec::with_capacity(len);
            out.extend_from_slice(&u32::try_from(len).unwrap().to_ne_bytes());
            out.extend_from_slice(&message_type.to_ne_bytes());
            out.extend_from_slice(&flags.to_ne_bytes());
            out.extend_from_slice(&seq.to_ne_bytes());
            out.extend_from_slice(&0u32.to_ne_bytes());
            out.extend_from_slice(&[cmd, version, 0, 0]);
            out.extend_from_slice(&attrs);
            out
        })
}

/// Arbitrary bytes of three kinds: raw noise, datagrams of well-framed messages with random
/// attribute trees, and those with a few edits on top.
pub fn arbitrary_datagram() -> impl Strategy<Value = Vec<u8>> {
    let framed = || proptest::collection::vec(framed_message(), 1..4).prop_map(|m| m.concat());
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        framed(),
        (framed(), proptest::collection::vec(mutation(), 1..=3)).prop_map(|(mut data, edits)| {
            for m in &edits {
                m.apply(&mut data);
            }
            data
        }),
    ]
}

/// Runs `decode` on its own thread and fails if it does not finish within [`HANG`].
pub fn within_deadline<T: Send + 'static>(
    input: &[u8],
    decode: impl FnOnce(Vec<u8>) -> T + Send + 'static,
) -> T {
    let (done, wait) = mpsc::channel();
    let owned = input.to_vec();
    std::thread::spawn(move || {
        let _ = done.send(decode(owned));
    });
    match wait.recv_timeout(HANG) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!(
            "decoding {} bytes took more than {HANG:?}: {}",
            input.len(),
            hex(input)
        ),
        // The decoder panicked; its message is already printed by the thread.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            panic!("the decoder panicked on {}", hex(input))
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes `datagram` and, for every IPVS message in it, checks that the message and each
/// value read from it re-encode consistently. A datagram that does not decode must say why.
pub fn check_datagram(datagram: &[u8]) {
    let answers = match within_deadline(datagram, |d| fuzzing::decode_datagram(&d)) {
        Ok(answers) => answers,
        Err(error) => {
            assert!(!error.to_string().is_empty(), "an error without a message");
            return;
        }
    };
    for answer in answers {
        if let Answer::Data { message, .. } = answer {
            check_message(&message.payload);
        }
    }
}

/// Decodes the one IPVS message of `bytes`.
fn decode_one(bytes: &[u8]) -> IpvsMessage {
    let answers = fuzzing::decode_datagram(bytes)
        .unwrap_or_else(|e| panic!("re-encoded message does not decode ({e}): {}", hex(bytes)));
    match <[_; 1]>::try_from(answers) {
        Ok([Answer::Data { message, .. }]) => message.payload,
        other => panic!("re-encoded message decodes to {other:?}"),
    }
}

/// Re-encodes `message` and its readings, and reads the same values back.
///
/// The message itself is compared through its encoding (encoding what was decoded from our
/// own encoding gives the same bytes), not field by field: netlink-packet-core 0.9 drops
/// `NLA_F_NET_BYTEORDER` when it emits an unknown attribute that also has `NLA_F_NESTED`, so
/// such an attribute comes back with one flag less. The client never re-emits an attribute
/// it received, so only the values read out of the message must survive exactly.
pub fn check_message(message: &IpvsMessage) {
    let encoded = fuzzing::encode(message.clone(), FAMILY, ACKED, 1);
    let again = decode_one(&encoded);
    assert_eq!(
        hex(&fuzzing::encode(again.clone(), FAMILY, ACKED, 1)),
        hex(&encoded),
        "the message's encoding changed on a second round"
    );
    assert_same_readings(&fuzzing::read(message), &fuzzing::read(&again));

    let Readings {
        service,
        destination,
        daemon,
        info,
        timeouts,
    } = fuzzing::read(message);
    if let Ok(Some(entry)) = service {
        let request = fuzzing::op_message(&IpvsOp::AddService(entry.service.clone()));
        let back = reread(request).service.unwrap().unwrap();
        assert_eq!(
            back.service, entry.service,
            "service changed on re-encoding"
        );
    }
    for (family, entry) in [Family::Inet, Family::Inet6].into_iter().zip(destination) {
        let Ok(entry) = entry else { continue };
        let service = match family {
            Family::Inet => ServiceKey::FwMark { family, mark: 1 },
            Family::Inet6 => ServiceKey::FwMark { family, mark: 2 },
        };
        let request = fuzzing::op_message(&IpvsOp::AddDestination {
            service,
            destination: entry.destination.clone(),
        });
        let [v4, v6] = reread(request).destination;
        let back = match family {
            Family::Inet => v4,
            Family::Inet6 => v6,
        };
        assert_eq!(
            back.unwrap().destination,
            entry.destination,
            "destination changed on re-encoding"
        );
    }
    if let Ok(daemon) = daemon {
        let back = reread(fuzzing::start_daemon(&daemon)).daemon.unwrap();
        assert_eq!(back, daemon, "sync daemon changed on re-encoding");
    }
    if let Ok(info) = info {
        let reply = IpvsMessage::new(
            IpvsCmd::SetInfo,
            vec![
                IpvsAttr::Version(info.version),
                IpvsAttr::ConnTabSize(info.conn_table_size),
            ],
        );
        assert_eq!(
            reread(reply).info.unwrap(),
            info,
            "info changed on re-encoding"
        );
    }
    let back = reread(fuzzing::op_message(&IpvsOp::SetTimeouts(timeouts))).timeouts;
    assert_eq!(back, timeouts, "timeouts changed on re-encoding");
}

/// Compares what the readers made of two messages: equal values, or both an error.
fn assert_same_readings(a: &Readings, b: &Readings) {
    assert_eq!(a.service.as_ref().ok(), b.service.as_ref().ok(), "service");
    for (a, b) in a.destination.iter().zip(&b.destination) {
        assert_eq!(a.as_ref().ok(), b.as_ref().ok(), "destination");
    }
    assert_eq!(
        a.daemon.as_ref().ok(),
        b.daemon.as_ref().ok(),
        "sync daemon"
    );
    assert_eq!(a.info.as_ref().ok(), b.info.as_ref().ok(), "info");
    assert_eq!(a.timeouts, b.timeouts, "timeouts");
}

fn reread(message: IpvsMessage) -> Readings {
    fuzzing::read(&decode_one(&fuzzing::encode(message, FAMILY, ACKED, 1)))
}

/// The inputs that once broke the decoder, one hex string per `*.hex` file in
/// `tests/fuzz-regressions/NAME/` (`#` starts a comment line).
pub fn regressions(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions")
        .join(name);
    let mut found: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "hex"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let digits: String = text
                .lines()
                .filter(|line| !line.trim_start().starts_with('#'))
                .flat_map(str::chars)
                .filter(|c| !c.is_whitespace())
                .collect();
            (path.display().to_string(), hex_bytes(&digits))
        })
        .collect();
    found.sort();
    found
}
