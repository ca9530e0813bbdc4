//! `lbctl`, the operator's CLI: what it asks the director, and how it prints the answers. The
//! binary only parses arguments and calls [`run`].

mod drain;
mod render;
mod several;
mod watch;

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

use lb_proto as pb;
use lb_shared::duration;
use lb_shared::tls::TlsFiles;

use crate::certs::{self, CertError};
use crate::config::DEFAULT_ADMIN_SOCKET;

pub use render::{render_json, render_json_line, render_table};
pub use watch::{parse_interval, MIN_INTERVAL};

pub const DEFAULT_DIRECTOR: &str = "http://127.0.0.1:7700";

#[derive(Debug, Parser)]
#[command(
    name = "lbctl",
    version,
    about = "Operate the LVS director: status, drain, weights",
    after_help = "Without --director or --socket, lbctl uses the director's admin socket \
                  (/run/lb-director/admin.sock) when it exists, else http://127.0.0.1:7700.",
    after_long_help = AFTER_HELP
)]
pub struct Cli {
    /// Director URL: http://HOST:7700, or https://HOST:7700 with --ca, --cert and --key.
    /// Repeat it (or give LBCTL_DIRECTOR=URL,URL) for several directors: status shows each
    /// one's view; drain, undrain and weight go to the first that answers.
    #[arg(long, env = "LBCTL_DIRECTOR", global = true, value_delimiter = ',')]
    pub director: Vec<String>,
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
    /// Give up on a director that has not answered a request after this long ("10s", "1m"):
    /// a director that accepts connections but is stuck must not hang a script.
    #[arg(long, env = "LBCTL_REQUEST_TIMEOUT", global = true, default_value = "10s", value_parser = duration::parse)]
    pub request_timeout: Duration,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The IPVS table of the director's services, like `ipvsadm -L -n`, with leases and overrides.
    Status {
        /// Print JSON instead of a table (with --watch: one JSON document per line).
        #[arg(long)]
        json: bool,
        /// Refresh until Ctrl-C: on a terminal the screen is redrawn, otherwise each refresh
        /// is printed under its own header.
        #[arg(long)]
        watch: bool,
        /// Seconds between refreshes ("2", or a duration such as "500ms", "1m").
        #[arg(long, value_name = "SECS", default_value = "2", value_parser = watch::parse_interval, requires = "watch")]
        interval: Duration,
    },
    /// Weight 0 on every service of a realserver (new sessions go elsewhere; open ones stay).
    Drain {
        /// The realserver's name, as `lbctl status` shows it.
        name: String,
        /// Wait until the realserver has no active connections: a live bar on a terminal,
        /// a line per change (and every 30s) otherwise. Exit 1 at --timeout.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this long ("90s", "30m", "8h").
        #[arg(long, default_value = "8h", value_parser = duration::parse, requires = "wait")]
        timeout: Duration,
    },
    /// Give a drained realserver its weight back.
    Undrain {
        /// The realserver's name, as `lbctl status` shows it.
        name: String,
    },
    /// Override a realserver's registered weight (0..=65535) on every service.
    Weight {
        /// The realserver's name, as `lbctl status` shows it.
        name: String,
        /// The weight on every service of the realserver; 0 takes new sessions away like a
        /// drain.
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
        /// Where the CA goes (e.g. /etc/lb/tls); the key is written mode 0600.
        dir: PathBuf,
        /// The CA certificate's common name.
        #[arg(long, default_value = "lb cluster CA")]
        common_name: String,
    },
    /// Create DIR/NAME.pem and DIR/NAME.key signed by the CA in DIR. NAME is the identity the
    /// director checks: a realserver's name, an admin's name, or the director's own name.
    Issue {
        /// The directory holding the CA (from `certs init`); the new files go there too.
        dir: PathBuf,
        /// The identity: a realserver's name, an admin's name, or the director's own name.
        name: String,
        /// Another DNS name the party is reached at (repeatable).
        #[arg(long)]
        dns: Vec<String>,
        /// An IP address the party is reached at, e.g. the director's DIP (repeatable).
        #[arg(long)]
        ip: Vec<IpAddr>,
    },
}

// Headings ("Files:") become man page sections; keep each entry on its own indented line.
const AFTER_HELP: &str = "\
Finding the director:
  --socket PATH, else --director URL (or LBCTL_DIRECTOR), else the admin socket
  /run/lb-director/admin.sock when it exists (on the director host, as root),
  else http://127.0.0.1:7700. An https:// director needs --ca, --cert and --key.

Several directors:
  --director URL --director URL (or LBCTL_DIRECTOR=URL,URL): status shows each
  director's view with its name and role, which one is active, and where their
  drains, weights and tables differ; drain, undrain and weight go to the first
  director that answers (the directors pass it on to each other).

Exit status:
  0    done (drain --wait: the realserver has no active connection left)
  1    refused, unreachable, no answer within --request-timeout, or drain --wait
       gave up at --timeout or lost the director
  2    usage error
  3    status over several directors: some did not answer (the others are shown)
  4    status over several directors: all answered, their views differ
  130  Ctrl-C during drain --wait (the realserver stays drained)

See also:
  lb-director(8), lb-agent(8), ipvsadm(8)";

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
        if let Some(url) = self.director.first() {
            return Target::Url(url.clone());
        }
        if Path::new(DEFAULT_ADMIN_SOCKET).exists() {
            return Target::Socket(PathBuf::from(DEFAULT_ADMIN_SOCKET));
        }
        Target::Url(DEFAULT_DIRECTOR.to_owned())
    }

    /// Every director given, in order; the one [`Cli::target`] finds when none is.
    pub fn targets(&self) -> Vec<Target> {
        if self.socket.is_some() || self.director.len() < 2 {
            return vec![self.target()];
        }
        self.director.iter().cloned().map(Target::Url).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LbctlError {
    #[error("{0:?} is not a director URL: write for example http://10.0.0.2:7700")]
    BadUrl(String),
    #[error("cannot reach the director at {target}: {reason}")]
    Unreachable { target: Target, reason: String },
    #[error("the director at {target} accepted the connection but did not answer within {} (--request-timeout): it may be overloaded or stuck; its journal (journalctl -u lb-director) says more", duration::format(*.after))]
    NoAnswer { target: Target, after: Duration },
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
    #[error("the director ended the watch before {name} was drained ({active} active connection(s) left); it stays drained: wait again with lbctl drain {name} --wait")]
    WatchEnded { name: String, active: u32 },
    #[error("{0}")]
    Interrupted(String),
    #[error("{unreachable} of {of} directors did not answer")]
    SomeUnreachable { unreachable: usize, of: usize },
    #[error("none of the {of} directors answered")]
    NoneAnswered { of: usize },
    #[error("the directors' views differ in {0} place(s): see Differences")]
    ViewsDiffer(usize),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

impl LbctlError {
    /// The exit status: 130 for Ctrl-C (as a shell reports a SIGINT), 1 for everything else.
    /// Usage errors (2) never get here: clap exits with them itself.
    pub fn exit_code(&self) -> u8 {
        match self {
            LbctlError::Interrupted(_) => 130,
            LbctlError::SomeUnreachable { .. } => 3,
            LbctlError::ViewsDiffer(_) => 4,
            _ => 1,
        }
    }

    /// A director that cannot be reached or answers "unavailable" (restarting, stopping):
    /// worth asking again later, where a refusal or a bad flag is not.
    fn is_transient(&self) -> bool {
        match self {
            LbctlError::Unreachable { .. } | LbctlError::NoAnswer { .. } => true,
            LbctlError::Refused(status) => matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
            ),
            _ => false,
        }
    }
}

/// Where lbctl writes what the operator reads, and whether that is a terminal (which gets a
/// live progress bar and a redrawn screen instead of lines).
pub struct Output<W> {
    pub out: W,
    pub terminal: bool,
}

impl Output<std::io::Stdout> {
    /// Stdout, unlocked: the progress bar draws to it from its own thread. `TERM=dumb` counts
    /// as no terminal, since it cannot move the cursor.
    pub fn stdout() -> Self {
        use std::io::IsTerminal;
        let dumb = std::env::var_os("TERM").is_some_and(|term| term == "dumb");
        Output {
            out: std::io::stdout(),
            terminal: std::io::stdout().is_terminal() && !dumb,
        }
    }
}

/// Ctrl-C (SIGINT), listened for from now on: made before the first thing is printed, so an
/// operator's Ctrl-C never meets the default handler halfway through a redraw.
fn interrupts() -> std::io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
}

/// "12s", "2m05s", "1h02m05s": elapsed and remaining time as an operator reads it.
fn clock(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// A director that does not take the connection this soon is away.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The message of a request that ran into the channel's timeout (`Endpoint::timeout`): tonic
/// turns its `TimeoutExpired` into `Status::cancelled` with these words, and nothing else of
/// lbctl's cancels a request.
const TIMEOUT_EXPIRED: &str = "Timeout expired";

/// The answer to one request to `target`, with a request that timed out told apart from a
/// refusal: "Timeout expired" alone does not tell the operator what happened.
fn answer<T>(
    cli: &Cli,
    target: &Target,
    reply: Result<tonic::Response<T>, tonic::Status>,
) -> Result<T, LbctlError> {
    match reply {
        Ok(reply) => Ok(reply.into_inner()),
        Err(status)
            if status.code() == tonic::Code::Cancelled && status.message() == TIMEOUT_EXPIRED =>
        {
            Err(LbctlError::NoAnswer {
                target: target.clone(),
                after: cli.request_timeout,
            })
        }
        Err(status) => Err(LbctlError::Refused(status)),
    }
}

async fn connect(cli: &Cli) -> Result<Channel, LbctlError> {
    connect_to(cli, &cli.target()).await
}

async fn connect_to(cli: &Cli, target: &Target) -> Result<Channel, LbctlError> {
    let target = target.clone();
    let unreachable = |e: tonic::transport::Error| LbctlError::Unreachable {
        target: target.clone(),
        reason: causes(&e),
    };
    match &target {
        Target::Socket(path) => {
            // The URI is a placeholder: the connector below always dials the socket.
            let path = path.clone();
            Endpoint::from_static("http://admin.sock")
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(cli.request_timeout)
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
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(cli.request_timeout);
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
pub(crate) fn causes(error: &dyn std::error::Error) -> String {
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

/// Runs one lbctl command, writing what the operator reads to `output`.
pub async fn run(cli: Cli, output: &mut Output<impl Write>) -> Result<(), LbctlError> {
    match &cli.command {
        Command::Certs(certs) => return make_certs(certs, &mut output.out),
        Command::Status {
            json,
            watch: true,
            interval,
        } => return watch::watch_status(&cli, *json, *interval, output).await,
        Command::Status { json, .. } if cli.targets().len() > 1 => {
            return status_of_several(&cli, *json, &mut output.out).await
        }
        _ => {}
    }
    // An admin change through any director reaches the others through their peer exchange, so
    // the first director that answers will do; one that is away or stuck is skipped.
    let targets = cli.targets();
    let mut last = None;
    for target in &targets {
        match run_on(&cli, target, output).await {
            Err(error) if error.is_transient() && targets.len() > 1 => {
                eprintln!("lbctl: {error}; trying the next director");
                last = Some(error);
            }
            done => return done,
        }
    }
    Err(last.unwrap_or(LbctlError::NoneAnswered { of: targets.len() }))
}

/// One command (not `certs`, not status over several directors) asked of one director.
async fn run_on(
    cli: &Cli,
    target: &Target,
    output: &mut Output<impl Write>,
) -> Result<(), LbctlError> {
    let mut admin = pb::admin_client::AdminClient::new(connect_to(cli, target).await?);
    let out = &mut output.out;
    match &cli.command {
        Command::Certs(_) => {}
        Command::Status { json, .. } => {
            let status = answer(cli, target, admin.status(pb::StatusRequest {}).await)?;
            if *json {
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
            let request = pb::DrainRequest { name: name.clone() };
            let reply = answer(cli, target, admin.drain(request).await)?;
            writeln!(out, "{}", reply.message)?;
            out.flush()?;
            if *wait {
                let watch = pb::WatchDrainRequest { name: name.clone() };
                let stream = answer(cli, target, admin.watch_drain(watch).await)?;
                drain::wait_drained(stream, name, *timeout, output).await?;
            }
        }
        Command::Undrain { name } => {
            let request = pb::UndrainRequest { name: name.clone() };
            let reply = answer(cli, target, admin.undrain(request).await)?;
            writeln!(out, "{}", reply.message)?;
        }
        Command::Weight { name, weight } => {
            let request = pb::SetWeightRequest {
                name: name.clone(),
                weight: *weight,
            };
            let reply = answer(cli, target, admin.set_weight(request).await)?;
            writeln!(out, "{}", reply.message)?;
        }
    }
    Ok(())
}

/// `lbctl status` over several directors, asked at once.
async fn status_of_several(cli: &Cli, json: bool, out: &mut impl Write) -> Result<(), LbctlError> {
    let targets = cli.targets();
    let asks = targets.iter().map(|target| async move {
        let answer = async {
            let channel = connect_to(cli, target).await?;
            let mut admin = pb::admin_client::AdminClient::new(channel);
            answer(cli, target, admin.status(pb::StatusRequest {}).await)
        }
        .await;
        several::View {
            target: target.to_string(),
            answer: answer.map_err(|e| e.to_string()),
        }
    });
    let views = futures::future::join_all(asks).await;
    if json {
        writeln!(out, "{}", several::render_several_json(&views))?;
    } else {
        write!(out, "{}", several::render_several_table(&views))?;
    }
    let summary = several::summary(&views);
    if summary.answered == 0 {
        Err(LbctlError::NoneAnswered { of: views.len() })
    } else if summary.unreachable > 0 {
        Err(LbctlError::SomeUnreachable {
            unreachable: summary.unreachable,
            of: views.len(),
        })
    } else if summary.differences > 0 {
        Err(LbctlError::ViewsDiffer(summary.differences))
    } else {
        Ok(())
    }
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
