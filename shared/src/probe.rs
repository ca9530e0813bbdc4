//! Health probes of a service port, shared by the director (which probes every destination, as
//! keepalived's TCP_CHECK does) and the agent (which probes its own port). A probe only connects
//! and, for ssh, reads: it never sends a byte, so it cannot confuse the server, and it always
//! closes the connection when it returns.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::duration;

/// How a destination is checked (`[service.check] type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// A TCP connect within the timeout.
    Tcp,
    /// A TCP connect and an SSH version line (`SSH-2.0-...`) within the timeout.
    Ssh,
    /// Not checked: always up.
    None,
}

impl FromStr for CheckKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcp" => Ok(CheckKind::Tcp),
            "ssh" => Ok(CheckKind::Ssh),
            "none" => Ok(CheckKind::None),
            _ => Err("unknown check type: use tcp, ssh or none".into()),
        }
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Ssh => "ssh",
            CheckKind::None => "none",
        })
    }
}

/// Why a probe failed. `Display` is the sentence for logs; [`ProbeFailure::reason`] the few
/// words for a status column. Clone, so that the last failure can be kept and published; the
/// I/O errors are shared for that reason.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProbeFailure {
    #[error("connection refused")]
    Refused,
    #[error("no TCP connection within {}", duration::format(*.0))]
    ConnectTimeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(#[source] Arc<io::Error>),
    #[error("no SSH banner within {}", duration::format(*.0))]
    NoBanner(Duration),
    /// The start of what the server sent instead, escaped and cut short.
    #[error("bad SSH banner \"{0}\"")]
    BadBanner(String),
    #[error("connection closed before the SSH banner")]
    ClosedBeforeBanner,
    #[error("cannot read the SSH banner: {0}")]
    Read(#[source] Arc<io::Error>),
}

impl ProbeFailure {
    /// A short reason for `lbctl status`, e.g. `down (no banner, 12s)`.
    pub fn reason(&self) -> &'static str {
        match self {
            ProbeFailure::Refused => "refused",
            ProbeFailure::ConnectTimeout(_) => "timeout",
            ProbeFailure::Connect(_) => "unreachable",
            ProbeFailure::NoBanner(_) => "no banner",
            ProbeFailure::BadBanner(_) => "bad banner",
            ProbeFailure::ClosedBeforeBanner => "closed",
            ProbeFailure::Read(_) => "read error",
        }
    }
}

/// The longest banner line read. RFC 4253 allows 255 characters with CR LF; anything longer
/// is not an SSH server, and a bound keeps a hostile peer from making the probe read forever.
pub const MAX_BANNER: usize = 256;

/// How much of a bad banner a message quotes.
const QUOTED: usize = 40;

const SSH_PREFIXES: [&[u8]; 2] = [b"SSH-2.0-", b"SSH-1.99-"];

/// Probes `addr` once; the whole probe (connect and, for ssh, the banner) takes at most
/// `timeout`.
pub async fn probe(
    kind: CheckKind,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(), ProbeFailure> {
    if kind == CheckKind::None {
        return Ok(());
    }
    let deadline = Instant::now() + timeout;
    let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
        Err(_) => return Err(ProbeFailure::ConnectTimeout(timeout)),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            return Err(ProbeFailure::Refused)
        }
        Ok(Err(e)) => return Err(ProbeFailure::Connect(Arc::new(e))),
        Ok(Ok(stream)) => stream,
    };
    if kind == CheckKind::Tcp {
        return Ok(());
    }
    match tokio::time::timeout_at(deadline, read_banner(stream)).await {
        Err(_) => Err(ProbeFailure::NoBanner(timeout)),
        Ok(result) => result,
    }
}

/// Reads the first line and checks that it is an SSH version line. Gives up as soon as the bytes
/// cannot become one, so a server that talks another protocol fails at once, not at the timeout.
async fn read_banner(mut stream: TcpStream) -> Result<(), ProbeFailure> {
    let mut buf = [0u8; MAX_BANNER];
    let mut len = 0;
    loop {
        let n = stream
            .read(&mut buf[len..])
            .await
            .map_err(|e| ProbeFailure::Read(Arc::new(e)))?;
        if n == 0 {
            return Err(if len == 0 || could_be_ssh(&buf[..len]) {
                ProbeFailure::ClosedBeforeBanner
            } else {
                ProbeFailure::BadBanner(quote(&buf[..len]))
            });
        }
        len += n;
        let seen = &buf[..len];
        if let Some(end) = seen.iter().position(|&b| b == b'\n') {
            let line = &seen[..end];
            if SSH_PREFIXES.iter().any(|p| line.starts_with(p)) {
                return Ok(());
            }
            return Err(ProbeFailure::BadBanner(quote(line)));
        }
        if !could_be_ssh(seen) || len == MAX_BANNER {
            return Err(ProbeFailure::BadBanner(quote(seen)));
        }
    }
}

/// Whether `seen` is the start of an SSH version line (or too short to tell).
fn could_be_ssh(seen: &[u8]) -> bool {
    SSH_PREFIXES
        .iter()
        .any(|p| seen.starts_with(p) || p.starts_with(seen))
}

/// Up to [`QUOTED`] characters of what the server sent, printable and escaped, `...` when cut.
fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end_matches(['\r', '\n']);
    let mut quoted: String = text
        .chars()
        .take(QUOTED)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > QUOTED {
        quoted.push_str("...");
    }
    quoted
}

#[cfg(test)]
mod tests;
