//! Reading the kernel's answers back: replies until the ack or NLMSG_DONE of one request, and
//! the acks of a pipelined batch matched to their ops by sequence number.

use netlink_packet_core::NetlinkDeserializable;
use netlink_packet_generic::GenlMessage;
use tracing::{debug, warn};

use super::failed;
use super::message::IpvsMessage;
use super::transport::{Answer, Transport, TransportError};
use crate::error::IpvsError;

/// Replies read for one request, and whether the kernel flagged its dump as inconsistent.
pub(super) struct Replies<T> {
    pub messages: Vec<T>,
    pub interrupted: bool,
}

/// What became of one op of a pipelined batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// No ack yet.
    Pending,
    Applied,
    Refused(i32),
    /// The kernel dropped its ack (receive buffer overrun).
    Lost,
}

/// Records an ack among the outcomes of the requests numbered `first_seq..`; returns whether
/// it was one of theirs not seen before. Acks of abandoned earlier requests are ignored.
pub(super) fn record_ack(outcomes: &mut [Outcome], first_seq: u32, seq: u32, errno: i32) -> bool {
    let index = seq.wrapping_sub(first_seq) as usize;
    match outcomes.get_mut(index) {
        Some(slot @ Outcome::Pending) => {
            *slot = if errno == 0 {
                Outcome::Applied
            } else {
                Outcome::Refused(errno)
            };
            true
        }
        _ => false,
    }
}

/// Reads the acks of the requests numbered `first_seq..` (one per entry of `chunk`).
pub(super) async fn read_acks(
    transport: &mut Transport,
    first_seq: u32,
    chunk: &mut [Outcome],
) -> Result<(), IpvsError> {
    let mut missing = chunk.len();
    let record = |answers: Vec<Answer<GenlMessage<IpvsMessage>>>, chunk: &mut [Outcome]| {
        answers
            .into_iter()
            .filter(|answer| match *answer {
                Answer::Ack { seq, errno } => record_ack(chunk, first_seq, seq, errno),
                _ => false,
            })
            .count()
    };
    while missing > 0 {
        match transport.receive().await {
            Ok(answers) => missing -= record(answers, chunk),
            Err(TransportError::Io(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                // Some acks were dropped. The kernel handled the whole datagram while we sent
                // it, so whatever survived is queued now: read it, and the rest is lost.
                while let Some(answers) = transport
                    .receive_now()
                    .map_err(|e| failed("read acks", e))?
                {
                    missing -= record(answers, chunk);
                }
                warn!(
                    lost = missing,
                    "netlink receive buffer overrun: acks lost; sending fewer requests at once"
                );
                transport.shrink_window();
                for slot in chunk.iter_mut().filter(|s| **s == Outcome::Pending) {
                    *slot = Outcome::Lost;
                }
                return Ok(());
            }
            Err(e) => return Err(failed("read acks", e)),
        }
    }
    Ok(())
}

/// Reads the answers to request `seq`: replies until its ack (a plain request) or until
/// NLMSG_DONE (a dump). Answers to other sequence numbers are leftovers of an abandoned
/// request and are dropped.
pub(super) async fn collect<T>(
    transport: &mut Transport,
    seq: u32,
    dump: bool,
) -> Result<Replies<T>, TransportError>
where
    T: NetlinkDeserializable,
{
    let mut replies = Replies {
        messages: Vec::new(),
        interrupted: false,
    };
    loop {
        for answer in transport.receive::<T>().await? {
            match answer {
                Answer::Data {
                    seq: s,
                    interrupted,
                    message,
                } if s == seq => {
                    replies.interrupted |= interrupted;
                    replies.messages.push(message);
                }
                Answer::Ack { seq: s, errno } if s == seq => {
                    if errno != 0 {
                        return Err(TransportError::Refused(errno));
                    }
                    if !dump {
                        return Ok(replies);
                    }
                }
                Answer::Done { seq: s, errno } if s == seq => {
                    if errno != 0 {
                        return Err(TransportError::Refused(errno));
                    }
                    return Ok(replies);
                }
                Answer::Other => {}
                _ => debug!("dropping a netlink answer to an earlier request"),
            }
        }
    }
}
