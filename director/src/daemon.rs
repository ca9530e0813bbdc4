//! `lb-director` as a library: start-up in a safe order, the reconciler task, the gRPC servers,
//! reloads, and graceful shutdown. The binary and the tests run this same code; tests pass
//! in-memory backends and a listener on 127.0.0.1:0.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tracing::{info, warn, Instrument};

use lb_ipvs::IpvsBackend;
use lb_proto as pb;
use lb_shared::notify;
use lb_shared::reload::Reloads;

use crate::config::DirectorConfig;
use crate::director::{Director, DirectorError};
use crate::grpc::{AdminService, RegistryService};
use crate::grpc_standard::add_standard_services;
use crate::host::{AddressBackend, HostSetup};
use crate::reconciler::{PassError, Reconciler};
use crate::tls::TlsAcceptor;

mod reload;

/// Largest gRPC message accepted: a registration or an admin call is a few hundred bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A pass that runs longer than this stops the watchdog pings: systemd then restarts a
/// director whose kernel calls hang.
const PASS_STUCK_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Director(#[from] DirectorError),
    #[error("first reconcile failed, nothing was changed in the IPVS table: {0}")]
    FirstPass(#[source] PassError),
    #[error("listener: {0}")]
    Listener(#[source] std::io::Error),
    #[error("admin socket {path}: {source}")]
    AdminSocket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TLS files do not make a usable server configuration (checked before the kernel).
    #[error("{0}")]
    Tls(#[source] lb_shared::tls::TlsError),
    #[error("gRPC server: {0}")]
    Serve(#[source] tonic::transport::Error),
    /// The descriptor sets built into the binary do not decode: a build fault, not the host's.
    #[error("gRPC reflection: {0}")]
    Reflection(#[source] tonic_reflection::server::Error),
    #[error("the reconciler or the health monitor ended unexpectedly: {0}")]
    ReconcilerDied(String),
}

impl RunError {
    /// Whether the error is the operator's configuration (exit 64, like a config error).
    pub fn is_config(&self) -> bool {
        matches!(self, RunError::Tls(_))
    }
}

/// What the daemon starts from: the validated config, the file it came from (read again on
/// reload), the bound gRPC listener, and the bound metrics listener (None: `metrics_listen`
/// is "").
pub struct Startup {
    pub config: Arc<DirectorConfig>,
    pub config_path: PathBuf,
    pub listener: TcpListener,
    pub metrics: Option<TcpListener>,
}

/// Runs the director until `shutdown` is cancelled. Start-up order: state file (a corrupt one
/// stops here, before the kernel is touched), TLS and the admin socket, the first pass (adopts
/// what the kernel holds, sets up the VIPs, applies only the difference), then readiness and the
/// gRPC servers. Stopping leaves the IPVS table and the VIPs in place: IPVS keeps forwarding
/// while the director restarts.
pub async fn run<I: IpvsBackend, A: AddressBackend>(
    startup: Startup,
    ipvs: I,
    host: HostSetup<A>,
    shutdown: CancellationToken,
    reloads: Reloads,
) -> Result<(), RunError> {
    let Startup {
        config,
        config_path,
        listener,
        metrics,
    } = startup;
    let director = Arc::new(Director::new(config.clone())?);
    // Before the first pass, so unusable TLS files stop the start with the kernel untouched.
    let tls = match &config.tls {
        Some(files) => Some(Arc::new(TlsAcceptor::new(files).map_err(RunError::Tls)?)),
        None => None,
    };
    let addr = listener.local_addr().map_err(RunError::Listener)?;
    let admin_socket = match &config.admin_socket {
        Some(path) => Some((bind_admin_socket(path)?, path.clone())),
        None => None,
    };

    // Before the first pass: a restarted director takes its peers' newer drains first instead
    // of putting its own older admin state into the kernel (bounded by peer_startup_wait).
    crate::peers::sync::at_start(&director)
        .instrument(tracing::info_span!("peers"))
        .await;
    // A reload cannot change [ha] mode, so the host's ECMP settings are fixed here.
    let host = host.ecmp(config.ecmp);
    let (mut reconciler, monitor) = Reconciler::new(director.clone(), ipvs, host);
    let first = reconciler
        .first_pass()
        .instrument(tracing::info_span!("reconcile"))
        .await
        .map_err(RunError::FirstPass)?;
    info!(
        applied = first.applied,
        failed = first.failed,
        "first reconcile done"
    );
    let reconciler = tokio::spawn(
        reconciler
            .run(shutdown.clone())
            .instrument(tracing::info_span!("reconciler")),
    );
    let monitor = tokio::spawn(
        monitor
            .run(shutdown.clone())
            .instrument(tracing::info_span!("health")),
    );
    spawn_watchdog(&director, &shutdown);
    // Exchanges with the peers until the stop; it ends only then, so it is not supervised.
    tokio::spawn(
        crate::peers::sync::run(director.clone(), shutdown.clone())
            .instrument(tracing::info_span!("peers")),
    );

    if config.tls.is_none() && !addr.ip().is_loopback() {
        warn!(%addr, "insecure = true: gRPC without TLS; anyone who reaches this address can register a realserver or drain one");
    }
    if (config.ha.is_some() || config.ecmp) && config.peers.is_empty() {
        // Both tables stay complete without peers, but admin state would not: a drain made
        // here would not hold on the other director after a failover.
        warn!("[ha] without [[peer]]: drains, undrains and weights made through this director do not reach the other directors; list them in [[peer]] (deploy/ha's configs do)");
    }
    notify::ready();
    notify::status(&serving_status(&director.config(), &addr.to_string()));
    info!(%addr, tls = config.tls.is_some(), "serving gRPC");

    let grpc = serve(
        tls.clone(),
        listener,
        admin_socket,
        director.clone(),
        shutdown.clone(),
    );
    let metrics = serve_metrics(metrics, &director, &shutdown);
    let servers = async {
        let (served, ()) = tokio::join!(grpc, metrics);
        served
    };
    let reloading = reload::serve(
        director.clone(),
        tls,
        config_path,
        reloads,
        addr.to_string(),
    )
    .instrument(tracing::info_span!("reload"));
    let outcome = supervise(servers, reloading, [reconciler, monitor], &shutdown).await;
    notify::stopping();
    info!("stopped; the IPVS table and the VIPs stay as they are");
    outcome
}

/// Runs the servers and the reload loop until the stop. The reconciler and the health monitor
/// run until the stop too; either ending by itself is fatal (the daemon exits non-zero and
/// systemd restarts it), since a director that no longer reconciles or probes must not pretend.
async fn supervise(
    servers: impl std::future::Future<Output = Result<(), RunError>>,
    reloading: impl std::future::Future<Output = ()>,
    tasks: [JoinHandle<()>; 2],
    shutdown: &CancellationToken,
) -> Result<(), RunError> {
    tokio::pin!(servers);
    tokio::pin!(reloading);
    let mut tasks = futures::future::select_all(tasks);
    let ended = tokio::select! {
        result = &mut servers => Ended::Servers(result),
        () = &mut reloading => Ended::Servers(Ok(())),
        (joined, _, _) = &mut tasks => Ended::Task(joined),
    };
    // Read before cancelling: a task that ended without being asked to has died.
    let stop_was_asked = shutdown.is_cancelled();
    shutdown.cancel();
    // The servers drain their connections; the reconciler finishes its pass.
    match ended {
        Ended::Servers(result) => {
            let (_, _, rest) = tasks.await;
            futures::future::join_all(rest).await;
            result
        }
        Ended::Task(joined) => {
            let _ = servers.await;
            if stop_was_asked && joined.is_ok() {
                return Ok(());
            }
            let why = match joined {
                Ok(()) => "it returned before the stop".to_owned(),
                Err(e) => e.to_string(),
            };
            tracing::error!(%why, "a core task (reconciler or health monitor) ended: stopping so that systemd restarts the director");
            Err(RunError::ReconcilerDied(why))
        }
    }
}

enum Ended {
    Servers(Result<(), RunError>),
    Task(Result<(), tokio::task::JoinError>),
}

pub(crate) fn serving_status(config: &DirectorConfig, addr: &str) -> String {
    format!(
        "serving on {addr}{}, {} service(s)",
        if config.tls.is_some() {
            " (mutual TLS)"
        } else {
            ""
        },
        config.services.len()
    )
}

/// Pings the systemd watchdog while the reconciler makes progress: a pass stuck in the kernel
/// for [`PASS_STUCK_AFTER`] stops the pings.
fn spawn_watchdog(director: &Arc<Director>, shutdown: &CancellationToken) {
    let director = director.clone();
    notify::spawn_watchdog_while(shutdown.clone(), move || {
        director
            .passes()
            .busy_for()
            .is_none_or(|busy| busy < PASS_STUCK_AFTER)
    });
}

/// `GET /metrics` until the stop; nothing when `metrics_listen` is "". A scrape reads the last
/// pass's snapshot, never the kernel.
async fn serve_metrics(
    listener: Option<TcpListener>,
    director: &Arc<Director>,
    shutdown: &CancellationToken,
) {
    let Some(listener) = listener else { return };
    let registry = Arc::new(crate::metrics::registry(director.clone()));
    lb_shared::metrics::serve(listener, registry, shutdown.clone())
        .instrument(tracing::info_span!("metrics"))
        .await;
}

/// The gRPC port (mutual TLS through the reloadable acceptor when configured) and the admin
/// socket, until the stop.
async fn serve(
    tls: Option<Arc<TlsAcceptor>>,
    listener: TcpListener,
    admin_socket: Option<(UnixListener, PathBuf)>,
    director: Arc<Director>,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let router = routes(Server::builder(), &director, &shutdown)?;
    let local = match admin_socket {
        Some((socket, path)) => Some((
            routes(Server::builder(), &director, &shutdown)?,
            socket,
            path,
        )),
        None => None,
    };
    let tcp = async {
        match tls {
            Some(acceptor) => {
                router
                    .serve_with_incoming_shutdown(
                        acceptor.incoming(listener, shutdown.clone()),
                        shutdown.cancelled(),
                    )
                    .await
            }
            None => {
                router
                    .serve_with_incoming_shutdown(
                        TcpListenerStream::new(listener),
                        shutdown.cancelled(),
                    )
                    .await
            }
        }
    };
    let result = match local {
        None => tcp.await,
        Some((local, socket, path)) => {
            info!(path = %path.display(), "admin socket for lbctl (root only)");
            let local = local.serve_with_incoming_shutdown(
                UnixListenerStream::new(socket),
                shutdown.cancelled(),
            );
            let result = tokio::try_join!(tcp, local).map(|_| ());
            let _ = std::fs::remove_file(&path);
            result
        }
    };
    result.map_err(RunError::Serve)
}

/// Our two gRPC services and the standard ones (health, reflection) on one server, with
/// bounded messages and streams per connection so a hostile client cannot make the director
/// allocate without limit.
fn routes(
    server: Server,
    director: &Arc<Director>,
    shutdown: &CancellationToken,
) -> Result<tonic::transport::server::Router, RunError> {
    let ours = server
        .concurrency_limit_per_connection(32)
        .max_concurrent_streams(64)
        .add_service(
            pb::registry_server::RegistryServer::new(RegistryService::new(director.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            pb::admin_server::AdminServer::new(AdminService::new(
                director.clone(),
                shutdown.clone(),
            ))
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            pb::peer_server::PeerServer::new(crate::peers::PeerService::new(director.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        );
    add_standard_services(ours, director, shutdown).map_err(RunError::Reflection)
}

/// Binds the admin socket with mode 0600: only its owner (the director) and root can connect,
/// and the handlers check the peer's uid again.
fn bind_admin_socket(path: &Path) -> Result<UnixListener, RunError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let fail = |source| RunError::AdminSocket {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    // A socket left by a previous run (a crash) would make bind fail; anything else is not ours.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path).map_err(fail)?;
        }
    }
    let listener = UnixListener::bind(path).map_err(fail)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    Ok(listener)
}
