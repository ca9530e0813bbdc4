//! lb-agent against the real lb-director (both through their library entry points, the
//! director over the in-memory IPVS table, the agents over in-memory rule chains), with mutual
//! TLS as deployed: registration order, leases kept by heartbeats, deregistration on stop, and
//! agents that come back by themselves after a director restart.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lb_director::certs;
use lb_director::testing::{config_text, TestDirector};
use lb_ipvs::MemoryIpvs;
use lb_realserver::config::{AgentConfig, DirectorUrl, TlsFiles};
use lb_realserver::rules::MemoryRules;
use lb_realserver::AgentState;
use support::{agent_config, spawn_agent};

/// The cluster CA with certificates for the director (127.0.0.1), llc5 and llc6, and the
/// director's config using them.
fn pki(dir: &Path) -> String {
    let pki = dir.join("pki");
    certs::init_ca(&pki, "test CA").unwrap();
    certs::issue(&pki, "llclb1", &[], &["127.0.0.1".parse().unwrap()]).unwrap();
    certs::issue(&pki, "llc5", &[], &[]).unwrap();
    certs::issue(&pki, "llc6", &[], &[]).unwrap();
    format!(
        "{}\n[tls]\nca = \"{p}/ca.pem\"\ncert = \"{p}/llclb1.pem\"\nkey = \"{p}/llclb1.key\"\n\n\
         [[realserver]]\nname = \"llc5\"\naddress = \"10.0.0.11\"\nsource = \"127.0.0.1\"\n\n\
         [[realserver]]\nname = \"llc6\"\naddress = \"10.0.0.12\"\nsource = \"127.0.0.1\"\n",
        config_text(dir, "1s"),
        p = pki.display()
    )
}

fn agent(director: &TestDirector, dir: &Path, name: &str, address: &str) -> AgentConfig {
    let pki = dir.join("pki");
    let mut config = agent_config(&format!("https://127.0.0.1:{}", director.addr.port()));
    config.directors =
        vec![DirectorUrl::parse(&format!("https://127.0.0.1:{}", director.addr.port())).unwrap()];
    config.name = name.into();
    config.address = address.parse().unwrap();
    config.tls = Some(
        TlsFiles::read(
            &pki.join("ca.pem"),
            &pki.join(format!("{name}.pem")),
            &pki.join(format!("{name}.key")),
        )
        .unwrap(),
    );
    config
}

#[tokio::test]
async fn agents_join_over_mutual_tls_keep_their_leases_and_leave_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let text = pki(dir.path());
    let director = TestDirector::start_with(Arc::new(MemoryIpvs::new()), dir.path(), &text).await;
    let (chain5, chain6) = (MemoryRules::new(), MemoryRules::new());
    let mut llc5 = spawn_agent(agent(&director, dir.path(), "llc5", "10.0.0.11"), &chain5);
    let mut llc6 = spawn_agent(agent(&director, dir.path(), "llc6", "10.0.0.12"), &chain6);
    llc5.registered().await;
    llc6.registered().await;
    director
        .wait_for("both realservers at weight 1", |t| {
            t.len() == 2 && t.iter().all(|d| d.destination.weight == 1)
        })
        .await;
    assert_eq!(
        chain5.lines().len(),
        1,
        "one REDIRECT rule on llc5: {:?}",
        chain5.lines()
    );
    assert!(
        chain5.lines()[0].contains("-d 10.0.0.100/32 -p tcp -m tcp --dport 22"),
        "{:?}",
        chain5.lines()
    );

    // Three lease TTLs: the heartbeats keep both in the table.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(director
        .table()
        .await
        .iter()
        .all(|d| d.destination.weight == 1));

    // llc5 stops: deregistered (then removed, being idle), its rule gone, a clean exit.
    let (result, _) = llc5.stop().await;
    result.unwrap();
    assert!(
        chain5.lines().is_empty(),
        "rule left behind: {:?}",
        chain5.lines()
    );
    director
        .wait_for("llc5 removed, llc6 kept", |t| {
            t.len() == 1 && t[0].destination.addr.to_string() == "10.0.0.12"
        })
        .await;
    llc6.stop().await.0.unwrap();
    director.stop().await.unwrap();
}

#[tokio::test]
async fn agents_register_again_by_themselves_after_a_director_restart() {
    let dir = tempfile::tempdir().unwrap();
    let text = pki(dir.path());
    let ipvs = Arc::new(MemoryIpvs::new());
    let director = TestDirector::start_with(ipvs.clone(), dir.path(), &text).await;
    let port = director.addr.port();
    let chain = MemoryRules::new();
    let mut llc5 = spawn_agent(agent(&director, dir.path(), "llc5", "10.0.0.11"), &chain);
    let first = llc5.registered().await;
    director
        .wait_for("llc5 in the table", |t| t.len() == 1)
        .await;
    let table = director.table().await;
    director.stop().await.unwrap();

    // The same port, so the agent's configured URL reaches the new director.
    let director = TestDirector::start_on(ipvs.clone(), dir.path(), &text, port).await;
    assert_eq!(
        director.table().await,
        table,
        "the restart changed the table"
    );
    let state = llc5
        .wait_for(
            "a new lease",
            |s| matches!(s, AgentState::Registered { lease_id, .. } if *lease_id != first),
        )
        .await;
    assert!(matches!(state, AgentState::Registered { .. }));
    assert_eq!(
        chain.lines().len(),
        1,
        "the rule stayed through the restart"
    );
    // Past the adoption grace period the agent's lease, not the adoption, keeps it in.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(director.table().await, table);
    llc5.stop().await.0.unwrap();
    director.stop().await.unwrap();
}
