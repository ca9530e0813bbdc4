//! [`NetlinkIpvs`]: the kernel's IPVS table over generic netlink, as `ipvsadm` reaches it.
//!
//! One file per nested attribute block (service, destination, stats, daemon), the message and
//! its commands, the family lookup, and the socket.

mod daemon;
mod destination;
mod exchange;
mod family;
#[doc(hidden)]
pub mod fuzzing;
mod message;
mod nla;
mod request;
mod service;
mod stats;
mod transport;

#[cfg(test)]
#[cfg(target_endian = "little")]
mod tests;

use std::sync::Arc;

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use tokio::sync::Mutex;
use tracing::{debug, warn};

use crate::backend::{IpvsBackend, IpvsOp};
use crate::error::IpvsError;
use crate::types::{
    DestinationEntry, Info, ServiceEntry, ServiceKey, SyncDaemon, SyncRole, Timeouts,
};
use exchange::{collect, read_acks, Outcome};
use transport::{Transport, TransportError, MAX_SEND_LEN};

pub use daemon::DaemonAttr;
pub use destination::DestAttr;
pub use message::{IpvsAttr, IpvsCmd, IpvsMessage};
pub use nla::InetAddr;
pub use service::{FlagsAttr, ServiceAttr};
pub use stats::{Counter, StatsAttr};

/// How often a dump is restarted when the kernel says it was interrupted or its answer was
/// lost, before giving up.
const DUMP_ATTEMPTS: usize = 3;

/// Sockets reading destinations at once (measured in the lab with 1,000 services: 4 read the
/// table in about half the time of one; more gained nothing).
const READERS: usize = 4;

/// The kernel's IPVS table, reached over generic netlink in the caller's network namespace.
pub struct NetlinkIpvs {
    family_id: u16,
    /// One socket for every request. The lock keeps one caller's requests and replies
    /// together: answers are matched by sequence number, never interleaved between callers.
    transport: Mutex<Transport>,
    /// Sockets that only read destinations, several services at once (see
    /// [`NetlinkIpvs::destinations_of`]).
    readers: Vec<Arc<Mutex<Transport>>>,
}

/// `message` as a generic netlink message of the IPVS family.
fn frame(message: IpvsMessage, family_id: u16) -> GenlMessage<IpvsMessage> {
    let header = GenlHeader {
        cmd: message.command(),
        version: message.version(),
    };
    GenlMessage::new(header, message, family_id)
}

/// What went wrong with one request, before it is given the request's name.
fn failed(request: impl ToString, error: TransportError) -> IpvsError {
    match error {
        TransportError::Io(e) => IpvsError::Io(e),
        TransportError::Refused(errno) => IpvsError::Kernel {
            op: request.to_string(),
            errno,
        },
        TransportError::Decode(e) => IpvsError::Decode {
            request: request.to_string(),
            reason: Box::new(e),
        },
    }
}

fn undecodable(request: impl ToString, error: netlink_packet_core::DecodeError) -> IpvsError {
    failed(request, TransportError::Decode(error))
}

/// Sends one request on `transport` and reads its replies. A dump is restarted when the kernel
/// flags it as interrupted (the table changed under it) or part of it was lost to a receive
/// buffer overrun; answers to the abandoned attempt are told apart by sequence number.
async fn exchange(
    transport: &mut Transport,
    family_id: u16,
    message: &IpvsMessage,
    dump: bool,
    what: &str,
) -> Result<Vec<IpvsMessage>, IpvsError> {
    let flags = if dump {
        NLM_F_REQUEST | NLM_F_DUMP
    } else {
        NLM_F_REQUEST | NLM_F_ACK
    };
    transport.discard_unsent();
    let mut attempt = 1;
    loop {
        let seq = transport.queue(flags, frame(message.clone(), family_id));
        transport.flush().await?;
        let retry = match collect::<GenlMessage<IpvsMessage>>(transport, seq, dump).await {
            Ok(replies) if !replies.interrupted => {
                return Ok(replies.messages.into_iter().map(|m| m.payload).collect())
            }
            Ok(_) => "the kernel flagged the dump as interrupted",
            Err(TransportError::Io(e)) if dump && e.raw_os_error() == Some(libc::ENOBUFS) => {
                "netlink receive buffer overrun"
            }
            Err(e) => return Err(failed(what, e)),
        };
        if attempt == DUMP_ATTEMPTS {
            return Err(undecodable(
                what,
                format!("{retry}, {attempt} times").into(),
            ));
        }
        warn!(request = what, "{retry}; restarting the dump");
        attempt += 1;
    }
}

/// `ipvsadm -L -n` for one service, on `transport`.
async fn read_destinations(
    transport: &mut Transport,
    family_id: u16,
    service: &ServiceKey,
) -> Result<Vec<DestinationEntry>, IpvsError> {
    let what = format!("list destinations of {service}");
    let message = request::list_destinations(service);
    let replies = exchange(transport, family_id, &message, true, &what).await?;
    replies
        .iter()
        .map(|reply| request::parse_destination(reply, service.family()))
        .collect::<Result<_, _>>()
        .map_err(|e| undecodable(&what, e))
}

impl NetlinkIpvs {
    /// Opens a generic netlink socket and resolves the "IPVS" family.
    /// [`IpvsError::Unavailable`] when the kernel has no IPVS (module not loaded).
    pub async fn connect() -> Result<NetlinkIpvs, IpvsError> {
        let mut transport = Transport::open()?;
        let seq = transport.queue(NLM_F_REQUEST | NLM_F_ACK, family::request());
        transport.flush().await?;
        let replies = collect::<family::FamilyId>(&mut transport, seq, false)
            .await
            .map_err(|e| match e {
                TransportError::Refused(libc::ENOENT) => IpvsError::Unavailable,
                other => failed("resolve the IPVS generic netlink family", other),
            })?;
        let family_id = replies
            .messages
            .into_iter()
            .find_map(|family| family.0)
            .ok_or(IpvsError::Unavailable)?;
        debug!(family_id, "resolved the IPVS generic netlink family");
        let readers = (0..READERS)
            .map(|_| Transport::open().map(|t| Arc::new(Mutex::new(t))))
            .collect::<Result<_, _>>()?;
        Ok(NetlinkIpvs {
            family_id,
            transport: Mutex::new(transport),
            readers,
        })
    }

    /// `ipvsadm -C`: deletes every service. For tests only (the contract suite between cases):
    /// the director never flushes a table it shares with others.
    #[cfg(feature = "testing")]
    pub async fn flush(&self) -> Result<(), IpvsError> {
        self.command(request::bare(IpvsCmd::Flush), "flush the IPVS table")
            .await
    }

    fn frame(&self, message: IpvsMessage) -> GenlMessage<IpvsMessage> {
        frame(message, self.family_id)
    }

    /// Sends one request and waits for its ack.
    async fn command(&self, message: IpvsMessage, what: &str) -> Result<(), IpvsError> {
        self.request(message, false, what).await.map(drop)
    }

    /// Sends one request that the kernel answers with a single message (GET_INFO, GET_CONFIG,
    /// GET_SERVICE of one service).
    async fn fetch(&self, message: IpvsMessage, what: &str) -> Result<IpvsMessage, IpvsError> {
        let replies = self.request(message, false, what).await?;
        replies
            .into_iter()
            .next()
            .ok_or_else(|| undecodable(what, "the kernel acknowledged without a reply".into()))
    }

    /// Runs a dump to its end.
    async fn dump(&self, message: IpvsMessage, what: &str) -> Result<Vec<IpvsMessage>, IpvsError> {
        self.request(message, true, what).await
    }

    /// Sends one request and reads its replies (see [`exchange`]).
    async fn request(
        &self,
        message: IpvsMessage,
        dump: bool,
        what: &str,
    ) -> Result<Vec<IpvsMessage>, IpvsError> {
        let mut transport = self.transport.lock().await;
        exchange(&mut transport, self.family_id, &message, dump, what).await
    }

    /// The destinations of each service of `services`, in order, read over the reader sockets
    /// at once: the kernel runs one dump at a time per socket, so a read of a large table
    /// one service after the other would wait for each answer in turn.
    async fn destinations_in_parallel(
        &self,
        services: &[ServiceKey],
    ) -> Result<Vec<Vec<DestinationEntry>>, IpvsError> {
        let per_reader = services.len().div_ceil(self.readers.len()).max(1);
        let mut readers = Vec::new();
        for (chunk, reader) in services.chunks(per_reader).zip(&self.readers) {
            let chunk = chunk.to_vec();
            let reader = reader.clone();
            let family_id = self.family_id;
            // Spawned, so that on a multi-threaded runtime the dumps run on every core; and
            // never cancelled half-way, which would leave a dump running on the socket.
            readers.push(tokio::spawn(async move {
                let mut transport = reader.lock().await;
                let mut lists = Vec::with_capacity(chunk.len());
                for service in &chunk {
                    lists.push(read_destinations(&mut transport, family_id, service).await?);
                }
                Ok::<_, IpvsError>(lists)
            }));
        }
        let mut all = Vec::with_capacity(services.len());
        for reader in readers {
            let lists = reader.await.map_err(|e| {
                IpvsError::Io(std::io::Error::other(format!("destination reader: {e}")))
            })??;
            all.extend(lists);
        }
        Ok(all)
    }

    /// Sends `ops` as pipelined, acknowledged requests: as many per datagram as the receive
    /// buffer can take acks for, each with its own sequence number.
    async fn pipeline(&self, ops: &[IpvsOp]) -> Result<Vec<Result<(), IpvsError>>, IpvsError> {
        let mut outcomes = vec![Outcome::Pending; ops.len()];
        let mut transport = self.transport.lock().await;
        transport.discard_unsent();
        let mut next = 0;
        while next < ops.len() {
            let first = next;
            let mut first_seq = 0;
            while next < ops.len()
                && next - first < transport.max_in_flight()
                && transport.pending_len() < MAX_SEND_LEN
            {
                let seq = transport.queue(
                    NLM_F_REQUEST | NLM_F_ACK,
                    self.frame(request::op_message(&ops[next])),
                );
                if next == first {
                    first_seq = seq;
                }
                next += 1;
            }
            transport.flush().await?;
            let chunk = &mut outcomes[first..next];
            read_acks(&mut transport, first_seq, chunk).await?;
        }
        Ok(outcomes
            .into_iter()
            .zip(ops)
            .map(|(outcome, op)| match outcome {
                Outcome::Applied => Ok(()),
                Outcome::Refused(errno) => Err(IpvsError::Kernel {
                    op: op.to_string(),
                    errno,
                }),
                Outcome::Pending | Outcome::Lost => {
                    Err(IpvsError::Unacknowledged { op: op.to_string() })
                }
            })
            .collect())
    }
}

impl IpvsBackend for NetlinkIpvs {
    async fn info(&self) -> Result<Info, IpvsError> {
        const WHAT: &str = "read IPVS info";
        let reply = self.fetch(request::bare(IpvsCmd::GetInfo), WHAT).await?;
        request::parse_info(&reply).map_err(|e| undecodable(WHAT, e))
    }

    async fn services(&self) -> Result<Vec<ServiceEntry>, IpvsError> {
        const WHAT: &str = "list services";
        let replies = self.dump(request::bare(IpvsCmd::GetService), WHAT).await?;
        let mut services = Vec::with_capacity(replies.len());
        for reply in &replies {
            if let Some(entry) = request::parse_service(reply).map_err(|e| undecodable(WHAT, e))? {
                services.push(entry);
            }
        }
        Ok(services)
    }

    async fn destinations(&self, service: &ServiceKey) -> Result<Vec<DestinationEntry>, IpvsError> {
        let mut transport = self.transport.lock().await;
        read_destinations(&mut transport, self.family_id, service).await
    }

    async fn destinations_of(
        &self,
        services: &[ServiceKey],
    ) -> Result<Vec<Vec<DestinationEntry>>, IpvsError> {
        self.destinations_in_parallel(services).await
    }

    async fn timeouts(&self) -> Result<Timeouts, IpvsError> {
        let reply = self
            .fetch(request::bare(IpvsCmd::GetConfig), "read timeouts")
            .await?;
        Ok(request::parse_timeouts(&reply))
    }

    async fn apply(&self, ops: &[IpvsOp]) -> Result<Vec<Result<(), IpvsError>>, IpvsError> {
        self.pipeline(ops).await
    }

    async fn daemons(&self) -> Result<Vec<SyncDaemon>, IpvsError> {
        const WHAT: &str = "list sync daemons";
        let replies = self.dump(request::bare(IpvsCmd::GetDaemon), WHAT).await?;
        replies
            .iter()
            .map(request::parse_daemon)
            .collect::<Result<_, _>>()
            .map_err(|e| undecodable(WHAT, e))
    }

    async fn start_daemon(&self, daemon: &SyncDaemon) -> Result<(), IpvsError> {
        let what = format!(
            "start sync daemon {:?} on {} (syncid {})",
            daemon.role, daemon.interface, daemon.sync_id
        );
        self.command(request::start_daemon(daemon), &what).await
    }

    async fn stop_daemon(&self, role: SyncRole) -> Result<(), IpvsError> {
        let what = format!("stop sync daemon {role:?}");
        self.command(request::stop_daemon(role), &what).await
    }
}
