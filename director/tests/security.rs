//! Mutual TLS, identity-bound registration, admin authorization and hostile input, over
//! loopback against a director started through its library entry point.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::Arc;

use common::*;
use lb_director::certs;
use lb_ipvs::MemoryIpvs;
use lb_proto as pb;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::Code;

/// A cluster CA with certificates for the director (127.0.0.1), llc5, llc6, llc7 (unlisted)
/// and the admin "ops", and a director config that uses them.
fn tls_setup(dir: &Path) -> String {
    let pki = dir.join("pki");
    certs::init_ca(&pki, "test CA").unwrap();
    certs::issue(&pki, "llclb1", &[], &["127.0.0.1".parse().unwrap()]).unwrap();
    for name in ["llc5", "llc6", "llc7", "llc8", "ops"] {
        certs::issue(&pki, name, &[], &[]).unwrap();
    }
    let base = config_text(dir, "6s");
    format!(
        "admins = [\"ops\"]\n{base}\n[tls]\nca = \"{p}/ca.pem\"\ncert = \"{p}/llclb1.pem\"\nkey = \"{p}/llclb1.key\"\n\n\
         [[realserver]]\nname = \"llc5\"\naddress = \"10.0.0.11\"\nsource = \"127.0.0.1\"\n\n\
         [[realserver]]\nname = \"llc6\"\naddress = \"10.0.0.0/24\"\nsource = \"127.0.0.0/8\"\n\n\
         [[realserver]]\nname = \"llc8\"\naddress = \"10.0.0.18\"\n",
        p = pki.display()
    )
}

/// A TLS channel to the director as `who` (None: no client certificate at all).
async fn as_party(
    director: &TestDirector,
    dir: &Path,
    who: Option<&str>,
) -> Result<Channel, tonic::transport::Error> {
    let pki = dir.join("pki");
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
    Channel::from_shared(format!("https://{}", director.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
}

async fn registry_as(
    director: &TestDirector,
    dir: &Path,
    who: &str,
) -> pb::registry_client::RegistryClient<Channel> {
    pb::registry_client::RegistryClient::new(as_party(director, dir, Some(who)).await.unwrap())
}

async fn admin_as(
    director: &TestDirector,
    dir: &Path,
    who: &str,
) -> pb::admin_client::AdminClient<Channel> {
    pb::admin_client::AdminClient::new(as_party(director, dir, Some(who)).await.unwrap())
}

async fn start_tls(dir: &Path) -> TestDirector {
    let text = tls_setup(dir);
    let director = TestDirector::start_with(Arc::new(MemoryIpvs::new()), dir, &text).await;
    // Wait until it serves (over the admin socket, which needs no certificate).
    let socket = dir.join("admin.sock");
    for _ in 0..250 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    director
}

#[tokio::test]
async fn a_caller_without_a_client_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let director = start_tls(dir.path()).await;
    let refused = match as_party(&director, dir.path(), None).await {
        Err(_) => true,
        Ok(channel) => pb::admin_client::AdminClient::new(channel)
            .status(pb::StatusRequest {})
            .await
            .is_err(),
    };
    assert!(refused, "a client without a certificate got an answer");
    // Plaintext to a TLS port gets nothing either.
    let plain = Channel::from_shared(director.url())
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        assert!(pb::admin_client::AdminClient::new(channel)
            .status(pb::StatusRequest {})
            .await
            .is_err());
    }
    director.stop().await.unwrap();
}

/// Issue 10: a stolen certificate used from another host, claiming its realserver's address,
/// is refused: the address registered must be the one the connection comes from.
#[tokio::test]
async fn a_registration_must_come_from_the_address_it_claims() {
    let dir = tempfile::tempdir().unwrap();
    let director = start_tls(dir.path()).await;
    let mut llc8 = registry_as(&director, dir.path(), "llc8").await;
    let err = llc8
        .register(register_request("llc8", "10.0.0.18", 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message()
            .contains("llc8 registers address 10.0.0.18 but connects from 127.0.0.1"),
        "{}",
        err.message()
    );
    assert!(director.table().await.is_empty());
    let s = director.scrape().await;
    assert_eq!(
        s.value("lb_refusals_total", &[("reason", "wrong_source")]),
        Some(1.0)
    );
    director.stop().await.unwrap();
}

#[tokio::test]
async fn an_agent_registers_only_under_its_own_name_from_its_listed_address() {
    let dir = tempfile::tempdir().unwrap();
    let director = start_tls(dir.path()).await;

    let mut llc6 = registry_as(&director, dir.path(), "llc6").await;
    let err = llc6
        .register(register_request("llc5", "10.0.0.11", 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message()
            .contains("the client certificate is for llc6, not llc5"),
        "{}",
        err.message()
    );

    let mut llc5 = registry_as(&director, dir.path(), "llc5").await;
    let err = llc5
        .register(register_request("llc5", "10.0.0.99", 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(
        err.message(),
        "llc5 may register from 10.0.0.11 only, not from 10.0.0.99"
    );

    let mut llc7 = registry_as(&director, dir.path(), "llc7").await;
    let err = llc7
        .register(register_request("llc7", "10.0.0.13", 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().starts_with("llc7 is not a listed realserver"));
    assert!(
        director.table().await.is_empty(),
        "a refused registration changed the table"
    );
    // Each refusal counted by its reason (issue 11's lb_refusals_total).
    let s = director.scrape().await;
    for reason in ["wrong_certificate", "wrong_address", "unlisted_realserver"] {
        assert_eq!(
            s.value("lb_refusals_total", &[("reason", reason)]),
            Some(1.0),
            "{reason}"
        );
    }
    assert_eq!(
        s.value("lb_registrations_total", &[("result", "refused")]),
        Some(3.0)
    );

    // The right certificate from the right address joins, within its listed network too.
    join(&mut llc5, "llc5", "10.0.0.11", 1).await;
    let lease6 = join(&mut llc6, "llc6", "10.0.0.12", 1).await;
    assert_eq!(director.table().await.len(), 2);

    // Nobody else may use a lease, even knowing its id.
    let err = llc5
        .deregister(pb::DeregisterRequest {
            lease_id: lease6.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(director.weight("10.0.0.12").await, Some(1));
    llc6.heartbeat(pb::HeartbeatRequest {
        lease_id: lease6,
        health: Vec::new(),
    })
    .await
    .unwrap();
    director.stop().await.unwrap();
}

#[tokio::test]
async fn only_admins_change_the_table_and_anyone_authenticated_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let director = start_tls(dir.path()).await;
    let mut llc5 = registry_as(&director, dir.path(), "llc5").await;
    join(&mut llc5, "llc5", "10.0.0.11", 1).await;

    let mut agent_as_admin = admin_as(&director, dir.path(), "llc5").await;
    let err = agent_as_admin
        .drain(pb::DrainRequest {
            name: "llc5".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().starts_with("cert:llc5 is not an admin"),
        "{}",
        err.message()
    );
    assert_eq!(director.weight("10.0.0.11").await, Some(1));
    let status = agent_as_admin
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.services[0].realservers.len(),
        1,
        "status is read-only: allowed"
    );

    let mut ops = admin_as(&director, dir.path(), "ops").await;
    ops.drain(pb::DrainRequest {
        name: "llc5".into(),
    })
    .await
    .unwrap();
    assert_eq!(director.weight("10.0.0.11").await, Some(0));
    director.stop().await.unwrap();
}

fn lbctl_on_socket(socket: &Path, args: &[&str], uid: Option<u32>) -> std::process::Output {
    // Another user may not be able to reach the build tree (a checkout under a 0700
    // directory): run a copy of lbctl from a directory everyone can enter.
    let bin = socket.parent().unwrap().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let lbctl = bin.join("lbctl");
    if !lbctl.exists() {
        std::fs::copy(env!("CARGO_BIN_EXE_lbctl"), &lbctl).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = std::process::Command::new(&lbctl);
    cmd.env_remove("LBCTL_DIRECTOR")
        .arg("--socket")
        .arg(socket)
        .args(args);
    if let Some(uid) = uid {
        cmd.uid(uid);
    }
    cmd.output().unwrap()
}

#[tokio::test]
async fn the_admin_socket_admits_root_and_refuses_everyone_else() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the_admin_socket_admits_root_and_refuses_everyone_else: skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let director = start_tls(dir.path()).await;
    let mut llc5 = registry_as(&director, dir.path(), "llc5").await;
    join(&mut llc5, "llc5", "10.0.0.11", 1).await;
    let socket = dir.path().join("admin.sock");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let out = tokio::task::spawn_blocking({
        let socket = socket.clone();
        move || lbctl_on_socket(&socket, &["drain", "llc5"], None)
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(director.weight("10.0.0.11").await, Some(0));

    // A user who can reach the socket file at all (someone loosened its mode) is still refused.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = tokio::task::spawn_blocking({
        let socket = socket.clone();
        move || lbctl_on_socket(&socket, &["undrain", "llc5"], Some(65534))
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "lbctl: the admin socket is for root only (you are uid 65534)\n"
    );
    assert_eq!(
        director.weight("10.0.0.11").await,
        Some(0),
        "the undrain went through"
    );
    director.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_and_malformed_requests_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc6", "10.0.0.12", 1).await;
    let before = director.table().await;

    let huge = "x".repeat(200 * 1024);
    let err = registry
        .register(register_request(&huge, "10.0.0.11", 1))
        .await
        .unwrap_err();
    assert_ne!(err.code(), Code::Ok);
    let many = pb::RegisterRequest {
        name: "llc5".into(),
        address: "10.0.0.11".into(),
        services: (0..10_000)
            .map(|i| pb::ServiceWeight {
                service: format!("s{i}"),
                weight: 1,
            })
            .collect(),
    };
    assert!(registry.register(many).await.is_err());
    let err = registry
        .heartbeat(pb::HeartbeatRequest {
            lease_id: "ffffffffffffffffffffffffffffffff".into(),
            health: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "an unknown lease is cheap to refuse"
    );
    assert_eq!(director.table().await, before);
    // The director still serves after all that.
    registry
        .register(register_request("llc5", "10.0.0.11", 1))
        .await
        .unwrap();
    director.stop().await.unwrap();
}
