//! `lbctl`, the operator's CLI: what it asks the director, and how it prints the answers. The
//! binary only parses arguments and calls [`run`].

mod render;

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_stream::StreamExt;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

use lb_proto as pb;
use lb_shared::duration;
use lb_shared::tls::TlsFiles;

use crate::certs::{self, CertError};
use crate::config::DEFAULT_ADMIN_SOCKET;

pub use render::{render_json, render_table};

pub const DEFAULT_DIRECTOR: &str = "http://127.0.0.1:7700";

#[derive(Debug, Parser)]
#[command(
    name = "lbctl",
    version,
    about = "Operate the LVS director: status, drain, weights",
    after_help = "Without --director or --socket, lbctl uses the director's admin socket \
                  (/run/lb-director/admin.sock) when it exists, else http://127.0.0.1:7700."
)]
pub struct Cli {
    /// Director URL: http://HOST:7700, or https://HOST:7700 with --ca, --cert and --key.
    #[arg(long, env = "LBCTL_DIRECTOR", global = true)]
    pub director: Option<String>,
    /// The director's admin socket (on the director host, as root).
    #[arg(long, env = "LBCTL_SOCKET", global = true, conflicts_with = "director")]
    pub socket: Option<PathBuf>,
    /// CA certificate (PEM) that signed the director's certificate, for https.
    #[arg(long, env = "LBCTL_CA", global = true)]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) naming an admin, for https.
    #[arg(long, env = "LBCTL_CERT", global = true)]
    pub cert: Option<PathBuf>,
    /// Client key (PEM), for https.
    #[arg(long, env = "LBCTL_KEY", global = true)]
    pub key: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The IPVS table of the director's services, like `ipvsadm -L -n`, with leases and overrides.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Weight 0 on every service of a realserver (new sessions go elsewhere; open ones stay).
    Drain {
        name: String,
        /// Wait until the realserver has no active connections, printing progress.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this long ("90s", "30m", "8h").
        #[arg(long, default_value = "8h", value_parser = duration::parse, requires = "wait")]
        timeout: Duration,
    },
    /// Give a drained realserver its weight back.
    Undrain { name: String },
    /// Override a realserver's registered weight (0..=65535) on every service.
    Weight {
        name: String,
        #[arg(value_parser = clap::value_parser!(u32).range(0..=65535))]
        weight: u32,
    },
    /// Make the cluster's private CA and certificates for mutual TLS (no director needed).
    #[command(subcommand)]
    Certs(CertsCommand),
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create DIR/ca.pem and DIR/ca.key.
    Init {
        dir: PathBuf,
        #[arg(long, default_value = "lb cluster CA")]
        common_name: String,
    },
    /// Create DIR/NAME.pem and DIR/NAME.key signed by the CA in DIR. NAME is the identity the
    /// director checks: a realserver's name, an admin's name, or the director's own name.
    Issue {
        dir: PathBuf,
        name: String,
        /// Another DNS name the party is reached at (repeatable).
        #[arg(long)]
        dns: Vec<String>,
        /// An IP address the party is reached at, e.g. the director's DIP (repeatable).
        #[arg(long)]
        ip: Vec<IpAddr>,
    },
}

/// Where lbctl talks to the director.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Url(String),
    Socket(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Url(url) => f.write_str(url),
            Target::Socket(path) => write!(f, "socket {}", path.display()),
        }
    }
}

impl Cli {
    /// --socket, else --director (or LBCTL_DIRECTOR), else the admin socket if it exists on this
    /// host, else the director on loopback.
    pub fn target(&self) -> Target {
        if let Some(path) = &self.socket {
            return Target::Socket(path.clone());
        }
        if let Some(url) = &self.director {
            return Target::Url(url.clone());
        }
        if Path::new(DEFAULT_ADMIN_SOCKET).exists() {
            return Target::Socket(PathBuf::from(DEFAULT_ADMIN_SOCKET));
        }
        Target::Url(DEFAULT_DIRECTOR.to_owned())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LbctlError {
    #[error("{0:?} is not a director URL: write for example http://10.0.0.2:7700")]
    BadUrl(String),
    #[error("cannot reach the director at {target}: {reason}")]
    Unreachable { target: Target, reason: String },
    #[error("an https director needs --ca, --cert and --key (or LBCTL_CA, LBCTL_CERT, LBCTL_KEY)")]
    TlsFilesMissing,
    #[error("{0}")]
    TlsFiles(String),
    #[error(transparent)]
    Certs(#[from] CertError),
    #[error("{}", .0.message())]
    Refused(#[from] tonic::Status),
    #[error("timed out after {} waiting for {name} to drain ({active} active connection(s) left)", duration::format(*.after))]
    DrainTimeout {
        name: String,
        active: u32,
        after: Duration,
    },
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

async fn connect(cli: &Cli) -> Result<Channel, LbctlError> {
    let target = cli.target();
    let unreachable = |e: tonic::transport::Error| LbctlError::Unreachable {
        target: target.clone(),
        reason: causes(&e),
    };
    match &target {
        Target::Socket(path) => {
            // The URI is a placeholder: the connector below always dials the socket.
            let path = path.clone();
            Endpoint::from_static("http://admin.sock")
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                }))
                .await
                .map_err(unreachable)
        }
        Target::Url(url) => {
            let mut endpoint = Endpoint::from_shared(url.clone())
                .map_err(|_| LbctlError::BadUrl(url.clone()))?
                .connect_timeout(Duration::from_secs(3));
            if url.starts_with("https://") {
                let (Some(ca), Some(cert), Some(key)) = (&cli.ca, &cli.cert, &cli.key) else {
                    return Err(LbctlError::TlsFilesMissing);
                };
                let files = TlsFiles::read(ca, cert, key).map_err(LbctlError::TlsFiles)?;
                let tls = ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(&files.ca.pem))
                    .identity(Identity::from_pem(&files.cert.pem, &files.key.pem));
                endpoint = endpoint.tls_config(tls).map_err(unreachable)?;
            }
            endpoint.connect().await.map_err(unreachable)
        }
    }
}

/// An error with its causes ("transport error: tcp connect error: Connection refused"): tonic's
/// own message alone does not tell the operator what went wrong.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    let mut last = text.clone();
    while let Some(cause) = source {
        let words = cause.to_string();
        // tonic wraps some causes twice with the same words.
        if words != last {
            text.push_str(": ");
            text.push_str(&words);
        }
        source = cause.source();
        last = words;
    }
    text
}

/// Runs one lbctl command, writing what the operator reads to `out`.
pub async fn run(cli: Cli, out: &mut impl Write) -> Result<(), LbctlError> {
    if let Command::Certs(certs) = &cli.command {
        return make_certs(certs, out);
    }
    let channel = connect(&cli).await?;
    let mut admin = pb::admin_client::AdminClient::new(channel);
    match cli.command {
        Command::Certs(_) => {}
        Command::Status { json } => {
            let status = admin.status(pb::StatusRequest {}).await?.into_inner();
            if json {
                writeln!(out, "{}", render_json(&status))?;
            } else {
                write!(out, "{}", render_table(&status))?;
            }
        }
        Command::Drain {
            name,
            wait,
            timeout,
        } => {
            let reply = admin.drain(pb::DrainRequest { name: name.clone() }).await?;
            writeln!(out, "{}", reply.into_inner().message)?;
            if wait {
                wait_drained(&mut admin, &name, timeout, out).await?;
            }
        }
        Command::Undrain { name } => {
            let reply = admin.undrain(pb::UndrainRequest { name }).await?;
            writeln!(out, "{}", reply.into_inner().message)?;
        }
        Command::Weight { name, weight } => {
            let reply = admin
                .set_weight(pb::SetWeightRequest { name, weight })
                .await?;
            writeln!(out, "{}", reply.into_inner().message)?;
        }
    }
    Ok(())
}

fn make_certs(command: &CertsCommand, out: &mut impl Write) -> Result<(), LbctlError> {
    let written = match command {
        CertsCommand::Init { dir, common_name } => certs::init_ca(dir, common_name)?,
        CertsCommand::Issue { dir, name, dns, ip } => certs::issue(dir, name, dns, ip)?,
    };
    for path in written {
        writeln!(out, "wrote {}", path.display())?;
    }
    Ok(())
}

async fn wait_drained(
    admin: &mut pb::admin_client::AdminClient<Channel>,
    name: &str,
    timeout: Duration,
    out: &mut impl Write,
) -> Result<(), LbctlError> {
    let mut stream = admin
        .watch_drain(pb::WatchDrainRequest {
            name: name.to_owned(),
        })
        .await?
        .into_inner();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last: Option<(u32, u32)> = None;
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next()).await;
        let progress = match next {
            Err(_elapsed) => {
                return Err(LbctlError::DrainTimeout {
                    name: name.to_owned(),
                    active: last.map_or(0, |l| l.0),
                    after: timeout,
                })
            }
            Ok(None) => return Ok(()),
            Ok(Some(progress)) => progress?,
        };
        let now = (progress.active_conn, progress.inact_conn);
        if last != Some(now) {
            writeln!(
                out,
                "{name}: ActiveConn {} InActConn {}",
                progress.active_conn, progress.inact_conn
            )?;
            out.flush()?;
            last = Some(now);
        }
        if progress.active_conn == 0 {
            writeln!(out, "{name} is drained: no active connections")?;
            return Ok(());
        }
    }
}
