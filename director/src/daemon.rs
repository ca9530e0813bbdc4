//! `lb-director` as a library: start-up in a safe order, the resync loop, the gRPC server, and
//! graceful shutdown. The binary and the tests run this same code; tests pass in-memory backends
//! and a listener on 127.0.0.1:0.

use std::sync::Arc;

use std::path::Path;

use tokio::net::{TcpListener, UnixListener};
use tokio::time::Instant;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tracing::{info, warn, Instrument};

use lb_ipvs::IpvsBackend;
use lb_proto as pb;
use lb_shared::notify;

use crate::access::Access;
use crate::config::DirectorConfig;
use crate::control::{ControlError, Director};
use crate::grpc::{AdminService, RegistryService};
use crate::host::{AddressBackend, HostSetup, OwnedVip};

/// Largest gRPC message accepted: a registration or an admin call is a few hundred bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("first reconcile failed, nothing was changed in the IPVS table: {0}")]
    FirstPass(#[source] ControlError),
    #[error("listener: {0}")]
    Listener(#[source] std::io::Error),
    #[error("admin socket {path}: {source}")]
    AdminSocket {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Runs the director until `shutdown` is cancelled. Start-up order: state file (a corrupt one
/// stops here, before the kernel is touched), host setup (VIPs, sysctls), the first reconcile
/// (adopts what the kernel holds, applies only the difference), then readiness and the gRPC
/// server. Stopping leaves the IPVS table and the VIPs in place: IPVS keeps forwarding while the
/// director restarts.
pub async fn run<I: IpvsBackend, A: AddressBackend>(
    config: Arc<DirectorConfig>,
    listener: TcpListener,
    ipvs: I,
    host: HostSetup<A>,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let director = Arc::new(Director::new(config.clone(), ipvs)?);
    let host = Arc::new(host);
    set_up_host(&host, &config, &director.previous_vips()).await;
    let first = director.reconcile().await.map_err(RunError::FirstPass)?;
    info!(
        applied = first.applied,
        failed = first.failed,
        "first reconcile done"
    );
    director.save_owned()?;

    let resync = tokio::spawn(
        resync_loop(director.clone(), host, shutdown.clone())
            .instrument(tracing::info_span!("resync")),
    );
    let access = Arc::new(Access {
        tls: config.tls.is_some(),
        admins: config.admins.clone(),
        realservers: config.realservers.clone(),
        own_uid: nix::unistd::geteuid().as_raw(),
    });
    let addr = listener.local_addr().map_err(RunError::Listener)?;
    if config.tls.is_none() && !addr.ip().is_loopback() {
        warn!(%addr, "insecure = true: gRPC without TLS; anyone who reaches this address can register a realserver or drain one");
    }
    let admin_socket = match &config.admin_socket {
        Some(path) => Some((bind_admin_socket(path)?, path.clone())),
        None => None,
    };

    notify::spawn_watchdog(shutdown.clone());
    notify::ready();
    notify::status(&format!(
        "serving on {addr}{}, {} service(s)",
        if config.tls.is_some() {
            " (mutual TLS)"
        } else {
            ""
        },
        config.services.len()
    ));
    info!(%addr, tls = config.tls.is_some(), "serving gRPC");

    let mut tcp = Server::builder();
    if let Some(tls) = &config.tls {
        tcp = tcp.tls_config(
            ServerTlsConfig::new()
                .identity(Identity::from_pem(&tls.cert.pem, &tls.key.pem))
                .client_ca_root(Certificate::from_pem(&tls.ca.pem)),
        )?;
    }
    let tcp = serve(tcp, &director, &access)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.cancelled());
    let result = match admin_socket {
        None => tcp.await,
        Some((socket, path)) => {
            info!(path = %path.display(), "admin socket for lbctl (root only)");
            let local = serve(Server::builder(), &director, &access).serve_with_incoming_shutdown(
                UnixListenerStream::new(socket),
                shutdown.cancelled(),
            );
            let result = tokio::try_join!(tcp, local).map(|_| ());
            let _ = std::fs::remove_file(&path);
            result
        }
    };
    notify::stopping();
    shutdown.cancel();
    let _ = resync.await;
    info!("stopped; the IPVS table and the VIPs stay as they are");
    Ok(result?)
}

/// Puts the VIPs and sysctls in place. A failure (say, a missing interface) is logged loudly and
/// retried at every resync; it does not stop the director, whose IPVS table keeps the service
/// up for whatever still works.
async fn set_up_host<A: AddressBackend>(
    host: &HostSetup<A>,
    config: &DirectorConfig,
    previous: &[OwnedVip],
) {
    match host.apply(&config.service_vips(), previous).await {
        Ok(changes) if changes.is_empty() => {}
        Ok(changes) => info!(?changes, "host set up"),
        Err(error) => {
            tracing::error!(%error, "host setup incomplete; retrying at every resync");
            notify::status(&format!("degraded: {error}"));
        }
    }
}

/// The two gRPC services on one server, with bounded messages and streams per connection so a
/// hostile client cannot make the director allocate without limit.
fn serve<I: IpvsBackend>(
    server: Server,
    director: &Arc<Director<I>>,
    access: &Arc<Access>,
) -> tonic::transport::server::Router {
    server
        .concurrency_limit_per_connection(32)
        .max_concurrent_streams(64)
        .add_service(
            pb::registry_server::RegistryServer::new(RegistryService::new(
                director.clone(),
                access.clone(),
            ))
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            pb::admin_server::AdminServer::new(AdminService::new(director.clone(), access.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
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

/// Repairs drift every `resync_interval` (the IPVS table, the VIPs and the sysctls), and wakes
/// early when a lease is due to expire.
async fn resync_loop<I: IpvsBackend, A: AddressBackend>(
    director: Arc<Director<I>>,
    host: Arc<HostSetup<A>>,
    shutdown: CancellationToken,
) {
    let interval = director.config().resync_interval;
    let mut next_resync = Instant::now() + interval;
    loop {
        let wake = director
            .next_expiry()
            .map_or(next_resync, |expiry| expiry.min(next_resync));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = director.leases_changed() => continue,
            _ = tokio::time::sleep_until(wake) => {}
        }
        if Instant::now() >= next_resync {
            set_up_host(&host, director.config(), &[]).await;
            next_resync = Instant::now() + interval;
        }
        director.reconcile_logged().await;
    }
}
