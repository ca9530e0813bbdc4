//! `lbctl`, the operator's CLI: what it asks the director, and how it prints the answers. The
//! binary only parses arguments and calls [`run`].

mod render;

use std::io::Write;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

use lb_proto as pb;
use lb_shared::duration;

pub use render::{render_json, render_table};

pub const DEFAULT_DIRECTOR: &str = "http://127.0.0.1:7700";

#[derive(Debug, Parser)]
#[command(
    name = "lbctl",
    version,
    about = "Operate the LVS director: status, drain, weights"
)]
pub struct Cli {
    /// Director to talk to.
    #[arg(long, env = "LBCTL_DIRECTOR", default_value = DEFAULT_DIRECTOR, global = true)]
    pub director: String,
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
}

#[derive(Debug, thiserror::Error)]
pub enum LbctlError {
    #[error("{0:?} is not a director URL: write for example http://10.0.0.2:7700")]
    BadUrl(String),
    #[error("cannot reach the director at {url}: {reason}")]
    Unreachable { url: String, reason: String },
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

async fn connect(url: &str) -> Result<Channel, LbctlError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|_| LbctlError::BadUrl(url.to_owned()))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(30));
    endpoint
        .connect()
        .await
        .map_err(|e| LbctlError::Unreachable {
            url: url.to_owned(),
            reason: causes(&e),
        })
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
    let channel = connect(&cli.director).await?;
    let mut admin = pb::admin_client::AdminClient::new(channel);
    match cli.command {
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
