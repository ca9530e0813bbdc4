//! The director's mutual-TLS acceptor. tonic's own TLS takes one configuration when the server
//! is built, so new certificate files would need a restart; this acceptor holds the current
//! configuration behind a lock that [`TlsAcceptor::replace`] swaps. New connections use the
//! newest; established ones keep the session they made.
//!
//! Each handshake runs in its own task with a deadline: a client that connects and says nothing
//! (or a slow one) holds only its own task, never the accept loop.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use lb_shared::tls::{server_config, TlsError, TlsFiles};
use rustls::pki_types::CertificateDer;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;
use tracing::{debug, info, warn};

/// How long a client may take to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Finished handshakes waiting for the server to take them; the server takes them as fast as
/// they come, so this only smooths bursts.
const READY_QUEUE: usize = 64;

/// A pause after a failed accept (say, out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves mutual TLS with a configuration that can be replaced while it runs.
pub struct TlsAcceptor {
    /// Read once per handshake; written only by `replace`, so a plain lock is enough.
    config: RwLock<Arc<ServerConfig>>,
    handshake_timeout: Duration,
}

impl TlsAcceptor {
    /// An acceptor serving `files`: this party's certificate and key, client certificates
    /// required and verified against the CA, ALPN `h2`.
    pub fn new(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
        Ok(TlsAcceptor {
            config: RwLock::new(Arc::new(server_config(files)?)),
            handshake_timeout: HANDSHAKE_TIMEOUT,
        })
    }

    /// The same acceptor with another handshake deadline (tests use a short one).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> TlsAcceptor {
        self.handshake_timeout = timeout;
        self
    }

    /// Serves `files` to every connection from now on. They are checked completely first: on
    /// an error the configuration in use stays.
    pub fn replace(&self, files: &TlsFiles) -> Result<(), TlsError> {
        let config = Arc::new(server_config(files)?);
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
        info!(cert = %files.cert.path.display(), "TLS certificate replaced; new connections use it");
        Ok(())
    }

    fn current(&self) -> Arc<ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The connections of `listener` that finished a handshake, for tonic's
    /// `serve_with_incoming_shutdown`. A failed or timed-out handshake is logged and skipped;
    /// the stream ends when `shutdown` is cancelled (or when the server drops it, which also
    /// closes the listening socket).
    pub fn incoming(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> impl Stream<Item = Result<TlsConnection, io::Error>> {
        let (ready, stream) = mpsc::channel(READY_QUEUE);
        tokio::spawn(self.accept_loop(listener, ready, shutdown));
        ReceiverStream::new(stream)
    }

    async fn accept_loop(
        self: Arc<Self>,
        listener: TcpListener,
        ready: mpsc::Sender<Result<TlsConnection, io::Error>>,
        shutdown: CancellationToken,
    ) {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ready.closed() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    let handshake = self.clone().handshake(tcp, peer, ready.clone());
                    let shutdown = shutdown.clone();
                    // Watching `shutdown` here too drops this task's sender at once, so the
                    // stream ends without waiting for slow handshakes.
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = shutdown.cancelled() => {}
                            _ = handshake => {}
                        }
                    });
                }
                Err(error) => {
                    warn!(%error, "accepting a TCP connection failed; retrying");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }

    async fn handshake(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        ready: mpsc::Sender<Result<TlsConnection, io::Error>>,
    ) {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.current());
        let stream = match tokio::time::timeout(self.handshake_timeout, acceptor.accept(tcp)).await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                // A TLS-level refusal (no certificate, an unknown CA) is worth a warning; a
                // connection closed before speaking TLS is a port scan or a health check.
                let refused = error
                    .get_ref()
                    .is_some_and(|inner| inner.is::<rustls::Error>());
                if refused {
                    warn!(%peer, %error, "TLS handshake refused");
                } else {
                    debug!(%peer, %error, "TLS handshake failed");
                }
                return;
            }
            Err(_) => {
                debug!(%peer, timeout = ?self.handshake_timeout, "TLS handshake timed out");
                return;
            }
        };
        let certificates = stream
            .get_ref()
            .1
            .peer_certificates()
            .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        let connection = TlsConnection {
            stream,
            peer: TlsPeer {
                addr: peer,
                certificates: Arc::new(certificates),
            },
        };
        // Err only when the server stopped taking connections: this one just closes.
        let _ = ready.send(Ok(connection)).await;
    }
}

/// Who is at the other end of a [`TlsConnection`]: what tonic puts in each request's
/// extensions, and what `access::Caller::of` reads.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    pub addr: SocketAddr,
    /// The client's certificate chain, its own certificate first (verified against the CA).
    pub certificates: Arc<Vec<CertificateDer<'static>>>,
}

/// A connection whose TLS handshake finished.
pub struct TlsConnection {
    stream: TlsStream<TcpStream>,
    peer: TlsPeer,
}

impl Connected for TlsConnection {
    type ConnectInfo = TlsPeer;

    fn connect_info(&self) -> TlsPeer {
        self.peer.clone()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
