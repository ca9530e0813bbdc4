//! An https director: the agent trusts the CA that `director_ca` names, and nobody else.
#![allow(clippy::unwrap_used)] // test helpers too: a panic is the failure report

mod support;

use std::sync::Arc;

use lb_realserver::config::DirectorCa;
use lb_realserver::rules::MemoryRules;
use lb_realserver::AgentState;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use support::{agent_config, spawn_agent, FakeDirector, Options};
use tonic::transport::{Identity, ServerTlsConfig};

/// A private CA and a certificate it signed for "localhost"; answers (CA PEM, server identity).
fn private_ca() -> (String, Identity) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (
        ca.pem(),
        Identity::from_pem(cert.pem(), key.serialize_pem()),
    )
}

fn https_director(chain: &MemoryRules, identity: Identity) -> FakeDirector {
    let options = Options {
        tls: Some(ServerTlsConfig::new().identity(identity)),
        ..Options::default()
    };
    FakeDirector::start_with(Arc::new(chain.clone()), options)
}

fn ca_file(dir: &tempfile::TempDir, pem: &str) -> DirectorCa {
    let path = dir.path().join("director-ca.pem");
    std::fs::write(&path, pem).unwrap();
    DirectorCa::read(path.to_str().unwrap()).unwrap()
}

#[tokio::test]
async fn registers_with_an_https_director_signed_by_the_configured_ca() {
    let (ca, identity) = private_ca();
    let chain = MemoryRules::new();
    let director = https_director(&chain, identity);
    let dir = tempfile::tempdir().unwrap();
    let mut config = agent_config(&director.https_url());
    config.director_ca = Some(ca_file(&dir, &ca));

    let mut agent = spawn_agent(config, &chain);
    agent.registered().await;
    assert_eq!(director.registrations(), 1);
    agent.stop().await.0.unwrap();
}

#[tokio::test]
async fn refuses_a_director_whose_certificate_another_ca_signed() {
    let (_, identity) = private_ca();
    let (other_ca, _) = private_ca();
    let chain = MemoryRules::new();
    let director = https_director(&chain, identity);
    let dir = tempfile::tempdir().unwrap();
    let mut config = agent_config(&director.https_url());
    config.director_ca = Some(ca_file(&dir, &other_ca));

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
