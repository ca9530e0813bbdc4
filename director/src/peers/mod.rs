//! Admin state across directors (issue 12): every director of a site keeps the same drains
//! and weight overrides. A change through one director is pushed to each `[[peer]]` at once;
//! every `peer_interval` each director pulls its peers' records and pushes what they lack
//! (anti-entropy, which also heals a partition); a start pulls briefly before the first pass.
//! Merging is per field by revision ([`crate::state::AdminRecord`]), so every director ends
//! with the latest write whatever order records arrive in.
//!
//! - [`wire`]: records on the wire, checked field by field;
//! - [`service`]: the `Peer` gRPC service other directors call;
//! - [`sync`]: this director's calls to its peers (push, exchange, start-up);
//! - [`board`]: what this director knows of each peer's reachability, for notes and metrics.

pub mod board;
pub mod service;
pub mod sync;
pub mod wire;

use std::time::Duration;

pub use board::{PeerBoard, PeerHealth};
pub use service::PeerService;

/// Records in one Push or Pull: a record is at most about 150 bytes, so a page stays far
/// below the 64 KiB message limit.
pub const PAGE: usize = 256;

/// Realservers whose admin state a director keeps: the registry's 4096 realservers and the
/// configured ones, twice over. A peer that offers more new names is refused the rest.
pub const MAX_RECORDS: usize = 8192;

/// One call to a peer (connect included) may take this long.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{url} is not a usable peer URL: {source}")]
    Url {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("cannot reach peer {peer} at {url}: {reason}")]
    Unreachable {
        peer: String,
        url: String,
        reason: String,
    },
    #[error("peer {peer} refused: {status}", status = .status.message())]
    Refused { peer: String, status: tonic::Status },
    #[error("peer {peer} sent a bad record: {reason}")]
    BadAnswer { peer: String, reason: String },
    #[error("peer {peer} lists more than {MAX_RECORDS} records: stopped reading")]
    TooMany { peer: String },
    /// Merging what the peer sent failed here (the state file could not be written).
    #[error(transparent)]
    Merge(#[from] crate::director::DirectorError),
}

impl PeerError {
    /// The `result` label of `lb_peer_exchanges_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            PeerError::Url { .. } | PeerError::Unreachable { .. } => "unreachable",
            PeerError::Refused { .. } => "refused",
            PeerError::BadAnswer { .. } | PeerError::TooMany { .. } => "bad_answer",
            PeerError::Merge(_) => "state",
        }
    }
}
