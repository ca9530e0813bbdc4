//! The generic netlink socket: framing requests with sequence numbers, sending several per
//! datagram, and reading answers back. Knows netlink, not IPVS.

use std::io;

use netlink_packet_core::{
    DecodeError, NetlinkBuffer, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NetlinkSerializable, NLM_F_DUMP_INTR,
};
use netlink_sys::{
    protocols::NETLINK_GENERIC, AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket,
};
use tracing::debug;

/// Large enough for any datagram: the kernel sizes dump datagrams to at most 32 KiB.
const RECV_BUF_LEN: usize = 64 * 1024;
/// What we ask for as receive buffer; the kernel caps it at `net.core.rmem_max`.
const WANTED_RCVBUF: libc::c_int = 4 << 20;
/// Receive-buffer memory the kernel charges per queued ack (a socket buffer around a 36-byte
/// message is about 768 bytes), counted generously.
const ACK_CHARGE: usize = 1024;
/// Keep each datagram we send well under the default send buffer (212992 bytes).
pub(super) const MAX_SEND_LEN: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    #[error("cannot decode a netlink message: {0}")]
    Decode(#[from] DecodeError),
    #[error("refused by the kernel: {}", io::Error::from_raw_os_error(*.0))]
    Refused(i32),
}

/// One message read back, reduced to what the callers match on.
#[derive(Debug)]
pub enum Answer<T> {
    /// A reply carrying data (a GET reply or one part of a dump).
    Data {
        seq: u32,
        interrupted: bool,
        message: T,
    },
    /// NLMSG_ERROR: an ack (errno 0) or a refusal of request `seq`.
    Ack { seq: u32, errno: i32 },
    /// NLMSG_DONE: the end of dump `seq`, with the kernel's error if it gave up.
    Done { seq: u32, errno: i32 },
    /// Anything else (NOOP, OVERRUN): read and ignored.
    Other,
}

pub struct Transport {
    socket: TokioSocket,
    next_seq: u32,
    send_buf: Vec<u8>,
    recv_buf: Vec<u8>,
    /// How many acknowledged requests may be in flight at once: all of their acks must fit
    /// in the receive buffer, or the kernel drops the excess and reports ENOBUFS.
    max_in_flight: usize,
    /// `LB_IPVS_HEXDUMP=1`: log every message sent and received, in hex, at debug level.
    hexdump: bool,
}

impl Transport {
    /// Opens a generic netlink socket in the caller's network namespace.
    pub fn open() -> io::Result<Transport> {
        Transport::open_with_receive_buffer(WANTED_RCVBUF)
    }

    /// [`Transport::open`] asking for `wanted` bytes of receive buffer; tests ask for almost
    /// none to make the kernel drop acks.
    pub fn open_with_receive_buffer(wanted: libc::c_int) -> io::Result<Transport> {
        let mut tokio_socket = TokioSocket::new(NETLINK_GENERIC)?;
        let socket = tokio_socket.socket_mut();
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // A refusal echoes only the failed request's header, not the whole request: smaller
        // error acks, more of them fit in the receive buffer.
        socket.set_cap_ack(true)?;
        // Best effort: without it the default buffer still holds a few hundred acks.
        let _ = socket.set_rx_buf_sz(wanted);
        let rcvbuf = socket.get_rx_buf_sz()?;
        let hexdump = std::env::var("LB_IPVS_HEXDUMP").is_ok_and(|v| v == "1");
        Ok(Transport {
            socket: tokio_socket,
            // Start away from 0, which the kernel uses for notifications (we subscribe to none).
            next_seq: 1,
            send_buf: Vec::with_capacity(MAX_SEND_LEN),
            recv_buf: Vec::with_capacity(RECV_BUF_LEN),
            max_in_flight: (rcvbuf / ACK_CHARGE).clamp(1, 1024),
            hexdump,
        })
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Called after the kernel dropped acks: send fewer at once from now on.
    pub fn shrink_window(&mut self) {
        self.max_in_flight = (self.max_in_flight / 2).max(1);
    }

    /// Drops messages that a cancelled caller queued but never sent, so that they do not go
    /// out with the next caller's requests. Every exchange starts with this.
    pub fn discard_unsent(&mut self) {
        if !self.send_buf.is_empty() {
            debug!(
                bytes = self.send_buf.len(),
                "dropping requests of a cancelled call"
            );
            self.send_buf.clear();
        }
    }

    /// Bytes queued for the next [`Transport::flush`].
    pub fn pending_len(&self) -> usize {
        self.send_buf.len()
    }

    /// Frames `payload` as one netlink message with a fresh sequence number and queues it;
    /// returns the sequence number.
    pub fn queue<T>(&mut self, flags: u16, payload: T) -> u32
    where
        T: NetlinkSerializable,
    {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let start = self.send_buf.len();
        encode_message(&mut self.send_buf, flags, seq, payload);
        if self.hexdump {
            debug!(seq, hex = %hex(&self.send_buf[start..]), "netlink send");
        }
        seq
    }

    /// Sends every queued message in one datagram.
    pub async fn flush(&mut self) -> io::Result<()> {
        let mut enobufs_retries = 0;
        loop {
            match self.socket.send(&self.send_buf).await {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The kernel had no memory for our datagram: nothing was processed, so retrying
                // is safe; give up after a few attempts.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) && enobufs_retries < 5 => {
                    enobufs_retries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(e) => {
                    self.send_buf.clear();
                    return Err(e);
                }
            }
        }
        self.send_buf.clear();
        Ok(())
    }

    /// Waits for the next datagram and decodes its messages.
    pub async fn receive<T>(&mut self) -> Result<Vec<Answer<T>>, TransportError>
    where
        T: NetlinkDeserializable,
    {
        loop {
            self.recv_buf.clear();
            self.recv_buf.reserve(RECV_BUF_LEN);
            match self.socket.recv(&mut self.recv_buf).await {
                Ok(()) => return self.decode(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reads one datagram if one is queued, without waiting. The kernel processes a request
    /// while we send it, so after a send every answer it will ever give is already queued.
    pub fn receive_now<T>(&mut self) -> Result<Option<Vec<Answer<T>>>, TransportError>
    where
        T: NetlinkDeserializable,
    {
        loop {
            self.recv_buf.clear();
            self.recv_buf.reserve(RECV_BUF_LEN);
            match self.socket.socket_ref().recv(&mut self.recv_buf, 0) {
                Ok(_) => return self.decode().map(Some),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn decode<T>(&self) -> Result<Vec<Answer<T>>, TransportError>
    where
        T: NetlinkDeserializable,
    {
        let hexdump = self.hexdump;
        decode_datagram(&self.recv_buf, |bytes| {
            if hexdump {
                debug!(hex = %hex(bytes), "netlink receive");
            }
        })
    }
}

/// Decodes every netlink message of one datagram; `inspect` sees each message's bytes.
pub fn decode_datagram<T>(
    datagram: &[u8],
    mut inspect: impl FnMut(&[u8]),
) -> Result<Vec<Answer<T>>, TransportError>
where
    T: NetlinkDeserializable,
{
    let mut answers = Vec::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        // A datagram longer than our buffer would arrive cut; the cut message then fails
        // this length check instead of being misread.
        let len = NetlinkBuffer::new_checked(rest)?.length() as usize;
        let bytes = &rest[..len];
        inspect(bytes);
        answers.push(decode_message(bytes)?);
        rest = rest.get(align4(len)..).unwrap_or_default();
    }
    Ok(answers)
}

/// Appends `payload` framed as one netlink message (header, payload, padding) to `buf`.
pub fn encode_message<T>(buf: &mut Vec<u8>, flags: u16, seq: u32, payload: T)
where
    T: NetlinkSerializable,
{
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload));
    message.finalize();
    let start = buf.len();
    buf.resize(start + message.buffer_len(), 0);
    message.serialize(&mut buf[start..]);
}

/// Decodes one netlink message (header included).
pub fn decode_message<T>(bytes: &[u8]) -> Result<Answer<T>, TransportError>
where
    T: NetlinkDeserializable,
{
    let message = NetlinkMessage::<T>::deserialize(bytes)?;
    let seq = message.header.sequence_number;
    Ok(match message.payload {
        NetlinkPayload::InnerMessage(message_body) => Answer::Data {
            seq,
            interrupted: message.header.flags & NLM_F_DUMP_INTR != 0,
            message: message_body,
        },
        NetlinkPayload::Error(error) => Answer::Ack {
            seq,
            errno: errno_of(error.raw_code())?,
        },
        NetlinkPayload::Done(done) => Answer::Done {
            seq,
            errno: errno_of(done.code)?,
        },
        _ => Answer::Other,
    })
}

/// The errno carried by NLMSG_ERROR or NLMSG_DONE. The kernel sends 0 or a negative errno;
/// any other code is garbage, and negating i32::MIN would overflow (found by fuzzing).
fn errno_of(code: i32) -> Result<i32, DecodeError> {
    match code.checked_neg() {
        Some(errno) if errno >= 0 => Ok(errno),
        _ => Err(format!("netlink error code {code} is not 0 or a negative errno").into()),
    }
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
