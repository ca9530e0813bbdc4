//! An https director: the agent trusts the cluster CA of its `[tls]` and nobody else, and shows
//! its own certificate.
#![allow(clippy::unwrap_used)] // test helpers too: a panic is the failure report

mod support;

use std::sync::Arc;

use lb_realserver::config::TlsFiles;
use lb_realserver::rules::MemoryRules;
use lb_realserver::AgentState;
use lb_realserver::{AgentConfig, ReloadSource};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use support::{agent_config, spawn_agent, spawn_reloadable, FakeDirector, Options};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// A private CA: its PEM, and (cert, key) PEMs it signed for "localhost" and for "llc5".
struct Pki {
    ca: String,
    server: (String, String),
    agent: (String, String),
}

fn private_ca() -> Pki {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let sign = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca: ca.pem(),
        server: sign("localhost"),
        agent: sign("llc5"),
    }
}

/// An https director that, like the real one, requires a client certificate from `pki`'s CA.
fn https_director(chain: &MemoryRules, pki: &Pki) -> FakeDirector {
    let options = Options {
        tls: Some(
            ServerTlsConfig::new()
                .identity(Identity::from_pem(&pki.server.0, &pki.server.1))
                .client_ca_root(Certificate::from_pem(&pki.ca)),
        ),
        ..Options::default()
    };
    FakeDirector::start_with(Arc::new(chain.clone()), options)
}

/// The agent's `[tls]`: trusting `ca`, showing the certificate `pki` signed for llc5.
fn tls_files(dir: &tempfile::TempDir, ca: &str, pki: &Pki) -> TlsFiles {
    let write = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    TlsFiles::read(
        &write("ca.pem", ca),
        &write("llc5.pem", &pki.agent.0),
        &write("llc5.key", &pki.agent.1),
    )
    .unwrap()
}

#[tokio::test]
async fn registers_with_an_https_director_signed_by_the_configured_ca() {
    let pki = private_ca();
    let chain = MemoryRules::new();
    let director = https_director(&chain, &pki);
    let dir = tempfile::tempdir().unwrap();
    let mut config = agent_config(&director.https_url());
    config.tls = Some(tls_files(&dir, &pki.ca, &pki));

    let mut agent = spawn_agent(config, &chain);
    agent.registered().await;
    assert_eq!(director.registrations(), 1);
    agent.stop().await.0.unwrap();
}

#[tokio::test]
async fn refuses_a_director_whose_certificate_another_ca_signed() {
    let pki = private_ca();
    let other = private_ca();
    let chain = MemoryRules::new();
    let director = https_director(&chain, &pki);
    let dir = tempfile::tempdir().unwrap();
    let mut config = agent_config(&director.https_url());
    config.tls = Some(tls_files(&dir, &other.ca, &pki));

    let mut agent = spawn_agent(config, &chain);
    let state = agent
        .wait_for("the TLS failure", |s| {
            matches!(s, AgentState::DirectorUnreachable { .. })
        })
        .await;
    assert!(
        format!("{state:?}").contains("certificate"),
        "the log should say why: {state:?}"
    );
    assert_eq!(
        director.registrations(),
        0,
        "talked to an untrusted director"
    );
    agent.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_reload_with_new_tls_files_connects_with_them() {
    let pki = private_ca();
    let other = private_ca();
    let chain = MemoryRules::new();
    let director = https_director(&chain, &pki);
    let dir = tempfile::tempdir().unwrap();
    // Trusting the wrong CA at first: the director is unreachable.
    let files = tls_files(&dir, &other.ca, &pki);
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "director = \"{}\"\nname = \"llc5\"\naddress = \"10.0.0.11\"\n\
             [[service]]\nname = \"llc-ssh\"\n\
             [tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            director.https_url(),
            files.ca.path.display(),
            files.cert.path.display(),
            files.key.path.display()
        ),
    )
    .unwrap();
    let quick = agent_config(&director.https_url());
    let load = move || {
        AgentConfig::load(&path).map(|config| AgentConfig {
            retry: quick.retry,
            ..config
        })
    };
    let (reloads, requests) = lb_shared::reload::channel();
    let mut agent = spawn_reloadable(
        load.clone()().unwrap(),
        &chain,
        ReloadSource::new(requests, load),
    );
    agent
        .wait_for("the TLS failure", |s| {
            matches!(s, AgentState::DirectorUnreachable { .. })
        })
        .await;

    std::fs::write(&files.ca.path, &pki.ca).unwrap();
    assert_eq!(
        reloads.reload().await.unwrap(),
        "tls files changed: new connections use them"
    );
    agent.registered().await;
    assert_eq!(director.registrations(), 1);
    agent.stop().await.0.unwrap();
}
