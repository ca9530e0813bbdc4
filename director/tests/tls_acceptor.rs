//! The director's own TLS acceptor over loopback, serving the real gRPC services: certificates
//! replaced while it runs (new connections see the new one, open ones keep working), a bad
//! replacement refused, a silent client that blocks nobody, a client without a certificate
//! refused, callers known by their certificate.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use lb_director::certs;
use lb_director::config::DirectorConfig;
use lb_director::director::Director;
use lb_director::grpc::{AdminService, RegistryService};
use lb_director::tls::TlsAcceptor;
use lb_proto as pb;
use lb_shared::tls::{TlsFiles, TlsKey};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity, Server};
use tonic::Code;

/// A CA in `dir/name` with certificates for the director (as "llclb1" at 127.0.0.1, and once
/// more as "lb2" also named llclb1, for a rotation under the same CA), llc5 and ops.
fn pki(dir: &Path, name: &str) -> PathBuf {
    let pki = dir.join(name);
    certs::init_ca(&pki, name).unwrap();
    let local = ["127.0.0.1".parse().unwrap()];
    certs::issue(&pki, "llclb1", &[], &local).unwrap();
    certs::issue(&pki, "lb2", &["llclb1".into()], &local).unwrap();
    for party in ["llc5", "ops"] {
        certs::issue(&pki, party, &[], &[]).unwrap();
    }
    pki
}

fn files(pki: &Path, cert: &str, key: &str) -> TlsFiles {
    TlsFiles::read(
        &pki.join("ca.pem"),
        &pki.join(format!("{cert}.pem")),
        &pki.join(format!("{key}.key")),
    )
    .unwrap()
}

struct Served {
    addr: SocketAddr,
    acceptor: Arc<TlsAcceptor>,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

/// The real registry and admin services behind `acceptor`, as the daemon serves them.
async fn serve(dir: &Path, acceptor: TlsAcceptor) -> Served {
    let text = format!(
        "admins = [\"ops\"]\n{}\n[[realserver]]\nname = \"llc5\"\naddress = \"10.0.0.11\"\n",
        config_text(dir, "6s")
    );
    let config = Arc::new(DirectorConfig::parse(Path::new("test.toml"), &text).unwrap());
    let director = Arc::new(Director::new(config).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = Arc::new(acceptor);
    let shutdown = CancellationToken::new();
    let router = Server::builder()
        .add_service(pb::registry_server::RegistryServer::new(
            RegistryService::new(director.clone()),
        ))
        .add_service(pb::admin_server::AdminServer::new(AdminService::new(
            director,
            shutdown.clone(),
        )));
    let incoming = acceptor.clone().incoming(listener, shutdown.clone());
    let server = tokio::spawn(
        router.serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned()),
    );
    Served {
        addr,
        acceptor,
        shutdown,
        server,
    }
}

impl Served {
    async fn stop(self) {
        self.shutdown.cancel();
        self.server.await.unwrap().unwrap();
    }
}

/// CA "a" in `dir`, and the services behind an acceptor showing its llclb1 certificate.
async fn start(dir: &Path) -> (PathBuf, Served) {
    let a = pki(dir, "a");
    let acceptor = TlsAcceptor::new(&files(&a, "llclb1", "llclb1")).unwrap();
    (a.clone(), serve(dir, acceptor).await)
}

/// A tonic channel trusting `pki`'s CA, as `who` (None: without a client certificate).
async fn channel(
    addr: SocketAddr,
    pki: &Path,
    who: Option<&str>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(
            std::fs::read(pki.join("ca.pem")).unwrap(),
        ))
        .domain_name("llclb1");
    if let Some(who) = who {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(pki.join(format!("{who}.pem"))).unwrap(),
            std::fs::read(pki.join(format!("{who}.key"))).unwrap(),
        ));
    }
    Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
}

async fn status(channel: &Channel) -> Result<(), tonic::Status> {
    pb::admin_client::AdminClient::new(channel.clone())
        .status(pb::StatusRequest {})
        .await
        .map(drop)
}

/// The certificate the director shows a new connection, through a plain rustls client that
/// trusts `pki`'s CA and presents ops's certificate.
async fn shown_certificate(
    addr: SocketAddr,
    pki: &Path,
) -> std::io::Result<CertificateDer<'static>> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(pki.join("ca.pem")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let chain = vec![CertificateDer::from_pem_file(pki.join("ops.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(pki.join("ops.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("llclb1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    Ok(tls.get_ref().1.peer_certificates().unwrap()[0].clone())
}

fn certificate(pki: &Path, name: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(pki.join(format!("{name}.pem"))).unwrap()
}

#[tokio::test]
async fn a_replaced_certificate_serves_new_connections_and_open_ones_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let (a, served) = start(dir.path()).await;
    let addr = served.addr;
    assert_eq!(
        shown_certificate(addr, &a).await.unwrap(),
        certificate(&a, "llclb1")
    );
    let open = channel(addr, &a, Some("ops")).await.unwrap();
    status(&open).await.unwrap();

    // Same CA, another certificate.
    served.acceptor.replace(&files(&a, "lb2", "lb2")).unwrap();
    assert_eq!(
        shown_certificate(addr, &a).await.unwrap(),
        certificate(&a, "lb2")
    );
    status(&open).await.unwrap();

    // A new CA: new clients must trust it; the connection made under the old one goes on.
    let b = pki(dir.path(), "b");
    served
        .acceptor
        .replace(&files(&b, "llclb1", "llclb1"))
        .unwrap();
    assert_eq!(
        shown_certificate(addr, &b).await.unwrap(),
        certificate(&b, "llclb1")
    );
    assert!(
        shown_certificate(addr, &a).await.is_err(),
        "the old CA still verifies"
    );
    status(&open).await.unwrap();
    status(&channel(addr, &b, Some("ops")).await.unwrap())
        .await
        .unwrap();

    served.stop().await;
}

#[tokio::test]
async fn a_bad_replacement_is_refused_and_the_certificate_in_use_stays() {
    let dir = tempfile::tempdir().unwrap();
    let (a, served) = start(dir.path()).await;
    let error = served
        .acceptor
        .replace(&files(&a, "lb2", "ops"))
        .unwrap_err();
    assert_eq!(error.problems.len(), 1, "{error}");
    assert_eq!(error.problems[0].key, TlsKey::Key);
    assert!(error.to_string().starts_with("tls.key "), "{error}");
    assert_eq!(
        shown_certificate(served.addr, &a).await.unwrap(),
        certificate(&a, "llclb1")
    );
    served.stop().await;
}

#[tokio::test]
async fn a_silent_client_blocks_nobody_and_is_dropped_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let a = pki(dir.path(), "a");
    let acceptor = TlsAcceptor::new(&files(&a, "llclb1", "llclb1"))
        .unwrap()
        .with_handshake_timeout(Duration::from_millis(500));
    let served = serve(dir.path(), acceptor).await;
    let mut silent = TcpStream::connect(served.addr).await.unwrap();
    let other = tokio::time::timeout(Duration::from_millis(400), async {
        status(&channel(served.addr, &a, Some("llc5")).await.unwrap()).await
    })
    .await
    .expect("a second client waited behind the silent one");
    other.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(3), silent.read(&mut buf))
        .await
        .expect("the silent client was never dropped");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    served.stop().await;
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_and_others_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let (a, served) = start(dir.path()).await;
    let refused = match channel(served.addr, &a, None).await {
        Err(_) => true,
        Ok(channel) => status(&channel).await.is_err(),
    };
    assert!(refused, "a client without a certificate got an answer");
    // A certificate from another CA is refused too.
    let other = pki(dir.path(), "other");
    let foreign = TlsFiles::read(
        &a.join("ca.pem"),
        &other.join("ops.pem"),
        &other.join("ops.key"),
    )
    .unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&foreign.ca.pem))
        .domain_name("llclb1")
        .identity(Identity::from_pem(&foreign.cert.pem, &foreign.key.pem));
    let refused = match Channel::from_shared(format!("https://{}", served.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
    {
        Err(_) => true,
        Ok(channel) => status(&channel).await.is_err(),
    };
    assert!(refused, "a certificate of another CA got an answer");
    status(&channel(served.addr, &a, Some("ops")).await.unwrap())
        .await
        .unwrap();
    served.stop().await;
}

#[tokio::test]
async fn callers_are_known_by_the_certificate_of_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (a, served) = start(dir.path()).await;
    let drain = |who: &'static str| {
        let a = a.clone();
        async move {
            let channel = channel(served.addr, &a, Some(who)).await.unwrap();
            pb::admin_client::AdminClient::new(channel)
                .drain(pb::DrainRequest {
                    name: "llc5".into(),
                })
                .await
        }
    };
    let denied = drain("llc5").await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        denied.message().starts_with("cert:llc5 is not an admin"),
        "{denied:?}"
    );
    let as_ops = drain("ops").await;
    assert!(
        !matches!(&as_ops, Err(s) if s.code() == Code::PermissionDenied),
        "{as_ops:?}"
    );
    served.stop().await;
}

#[tokio::test]
async fn the_stream_of_connections_ends_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let a = pki(dir.path(), "a");
    let acceptor = Arc::new(TlsAcceptor::new(&files(&a, "llclb1", "llclb1")).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let mut incoming = Box::pin(acceptor.incoming(listener, shutdown.clone()));
    // A handshake in progress does not hold the stream open.
    let _silent = TcpStream::connect(addr).await.unwrap();
    shutdown.cancel();
    let next = tokio::time::timeout(Duration::from_secs(2), incoming.next())
        .await
        .expect("the stream outlived the shutdown");
    assert!(next.is_none());
}
