//! Issue 12's agent side: one lb-agent registered with two real lb-directors (library entry
//! points over in-memory IPVS tables, plaintext on loopback), as the HA pair llclb1/llclb2
//! runs. Both tables hold the realserver; one director away (or hung) changes nothing on the
//! other; it is rejoined when it returns; a stop leaves both; a reload adds and removes one.
//! Real time with a 1 s lease; every wait is on a condition with a generous deadline.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lb_director::testing::TestDirector;
use lb_ipvs::MemoryIpvs;
use lb_realserver::config::{AgentConfig, DirectorUrl};
use lb_realserver::rules::{MemoryRules, RuleChange};
use lb_realserver::ReloadSource;
use lb_shared::metrics::{scrape, Samples};
use support::{agent_config, spawn_serving, RunningAgent};

const RIP: &str = "10.0.0.11";
/// Far longer than any step takes, even on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` until it holds, for up to [`DEADLINE`].
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = tokio::time::Instant::now();
    while started.elapsed() < DEADLINE {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within {DEADLINE:?}: {what}");
}

async fn start_director(dir: &Path, name: &str) -> TestDirector {
    TestDirector::start(Arc::new(MemoryIpvs::new()), &dir.join(name), "1s").await
}

fn agent_for(urls: &[String]) -> AgentConfig {
    let mut config = agent_config(&urls[0]);
    config.directors = urls
        .iter()
        .map(|url| DirectorUrl::parse(url).unwrap())
        .collect();
    config
}

/// The agent with its metrics on a port of its own, reloading from `config` when asked.
async fn spawn(
    config: AgentConfig,
    chain: &MemoryRules,
) -> (
    RunningAgent,
    SocketAddr,
    Arc<Mutex<AgentConfig>>,
    lb_shared::reload::ReloadHandle,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let current = Arc::new(Mutex::new(config.clone()));
    let (reloads, requests) = lb_shared::reload::channel();
    let source = {
        let current = Arc::clone(&current);
        ReloadSource::new(requests, move || Ok(current.lock().unwrap().clone()))
    };
    let agent = spawn_serving(config, chain, source, Some(listener));
    (agent, addr, current, reloads)
}

/// `lb_agent_registered{director=url}` at one scrape.
async fn registered(metrics: SocketAddr, url: &str) -> Option<f64> {
    let (status, body) = scrape(metrics, "GET", "/metrics").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let url = DirectorUrl::parse(url).unwrap().to_string();
    Samples::parse(&body)
        .unwrap()
        .value("lb_agent_registered", &[("director", &url)])
}

/// How often a rule went into the chain.
fn added(chain: &MemoryRules) -> usize {
    chain
        .journal()
        .iter()
        .filter(|c| matches!(c, RuleChange::Added(_)))
        .count()
}

async fn joined(director: &TestDirector) -> bool {
    director.weight(RIP).await == Some(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_director_away_changes_nothing_on_the_other_and_is_rejoined() {
    let dir = tempfile::tempdir().unwrap();
    let a = start_director(dir.path(), "llclb1").await;
    let b = start_director(dir.path(), "llclb2").await;
    let (url_a, url_b) = (a.url(), b.url());
    let chain = MemoryRules::new();
    let (agent, metrics, _, _) = spawn(agent_for(&[url_a.clone(), url_b.clone()]), &chain).await;
    until("llc5 in both tables at weight 1", || async {
        joined(&a).await && joined(&b).await
    })
    .await;
    assert_eq!(
        chain.lines().len(),
        1,
        "one REDIRECT rule for both: {:?}",
        chain.lines()
    );
    assert_eq!(added(&chain), 1, "installed once: {:?}", chain.journal());
    until("registered with both", || async {
        registered(metrics, &url_a).await == Some(1.0)
            && registered(metrics, &url_b).await == Some(1.0)
    })
    .await;

    // llclb1 goes away: its session notices, llclb2's keeps the lease at weight 1 throughout
    // (three lease TTLs and more: only heartbeats keep it).
    let port_a = a.addr.port();
    let ipvs_a = a.ipvs.clone();
    a.stop().await.unwrap();
    until("llclb1's session sees it away", || async {
        registered(metrics, &url_a).await == Some(0.0)
    })
    .await;
    let away = tokio::time::Instant::now();
    while away.elapsed() < Duration::from_secs(4) {
        assert_eq!(
            b.weight(RIP).await,
            Some(1),
            "llclb2's table changed while llclb1 was away"
        );
        assert_eq!(registered(metrics, &url_b).await, Some(1.0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        chain.lines().len(),
        1,
        "the rule stayed: {:?}",
        chain.lines()
    );

    // llclb1 returns on the same port: the agent registers with it again by itself, and its
    // lease (not the adoption of the old table) keeps the destination in.
    let a = TestDirector::start_on(
        ipvs_a,
        &dir.path().join("llclb1"),
        &lb_director::testing::config_text(&dir.path().join("llclb1"), "1s"),
        port_a,
    )
    .await;
    until("registered with llclb1 again", || async {
        registered(metrics, &url_a).await == Some(1.0)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(joined(&a).await, "llclb1 lost llc5 after its restart");
    assert!(joined(&b).await);
    assert_eq!(
        added(&chain),
        1,
        "the rejoin touched the rule: {:?}",
        chain.journal()
    );

    // A stop leaves both directors: deregistered, and (idle) removed from both tables.
    agent.stop().await.0.unwrap();
    assert!(
        chain.lines().is_empty(),
        "rule left behind: {:?}",
        chain.lines()
    );
    until("llc5 gone from both tables", || async {
        a.weight(RIP).await.is_none() && b.weight(RIP).await.is_none()
    })
    .await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_director_never_delays_the_other() {
    let dir = tempfile::tempdir().unwrap();
    // Accepts connections and never answers: every call to it runs into its timeout.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_url = format!("http://{}", hung.local_addr().unwrap());
    let b = start_director(dir.path(), "llclb2").await;
    let chain = MemoryRules::new();
    let (agent, metrics, _, _) = spawn(agent_for(&[hung_url.clone(), b.url()]), &chain).await;
    until("llc5 in llclb2's table", || async { joined(&b).await }).await;
    // Past several lease TTLs with the hung director's calls timing out meanwhile.
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        assert_eq!(b.weight(RIP).await, Some(1), "llclb2 lost llc5");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(registered(metrics, &hung_url).await, Some(1.0));
    agent.stop().await.0.unwrap();
    until("llc5 gone from llclb2", || async {
        b.weight(RIP).await.is_none()
    })
    .await;
    drop(hung);
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_a_director_and_removes_one() {
    let dir = tempfile::tempdir().unwrap();
    let a = start_director(dir.path(), "llclb1").await;
    let b = start_director(dir.path(), "llclb2").await;
    let (url_a, url_b) = (a.url(), b.url());
    let chain = MemoryRules::new();
    let (agent, metrics, current, reloads) =
        spawn(agent_for(std::slice::from_ref(&url_a)), &chain).await;
    until("llc5 in llclb1's table", || async { joined(&a).await }).await;
    assert!(b.weight(RIP).await.is_none());

    *current.lock().unwrap() = agent_for(&[url_a.clone(), url_b.clone()]);
    let summary = reloads.reload().await.unwrap();
    assert_eq!(
        summary,
        format!("director {} added", DirectorUrl::parse(&url_b).unwrap())
    );
    until("llc5 in llclb2's table too", || async { joined(&b).await }).await;
    assert!(
        joined(&a).await,
        "llclb1's lease was disturbed by the reload"
    );

    *current.lock().unwrap() = agent_for(std::slice::from_ref(&url_b));
    let summary = reloads.reload().await.unwrap();
    assert_eq!(
        summary,
        format!("director {} removed", DirectorUrl::parse(&url_a).unwrap())
    );
    until("llc5 deregistered from llclb1", || async {
        a.weight(RIP).await.is_none()
    })
    .await;
    assert_eq!(
        registered(metrics, &url_a).await,
        None,
        "llclb1's series stayed"
    );
    let kept = tokio::time::Instant::now();
    while kept.elapsed() < Duration::from_secs(2) {
        assert_eq!(b.weight(RIP).await, Some(1), "llclb2's lease was disturbed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        chain.lines().len(),
        1,
        "the rule stays for llclb2: {:?}",
        chain.lines()
    );

    agent.stop().await.0.unwrap();
    until("llc5 gone from llclb2", || async {
        b.weight(RIP).await.is_none()
    })
    .await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_one_director_refuses_changes_nothing_on_either() {
    use lb_ipvs::{IpvsBackend, ServiceKey};
    let dir = tempfile::tempdir().unwrap();
    let a = start_director(dir.path(), "llclb1").await;
    // llclb2 alone has a "web" service: it takes the new registration, llclb1 refuses it.
    let web = "\n[[service]]\nname = \"web\"\nvip = \"10.0.0.100\"\nport = 80\nprotocol = \"tcp\"\n\
               scheduler = \"rr\"\nforward = \"dr\"\ninterface = \"eth0\"\n[service.check]\ntype = \"none\"\n";
    let b_dir = dir.path().join("llclb2");
    let b_text = format!("{}{web}", lb_director::testing::config_text(&b_dir, "1s"));
    let b = TestDirector::start_with(Arc::new(MemoryIpvs::new()), &b_dir, &b_text).await;
    let (url_a, url_b) = (a.url(), b.url());
    let chain = MemoryRules::new();
    let (agent, metrics, current, reloads) =
        spawn(agent_for(&[url_a.clone(), url_b.clone()]), &chain).await;
    until("llc5 in both tables", || async {
        joined(&a).await && joined(&b).await
    })
    .await;

    let mut with_web = agent_for(&[url_a.clone(), url_b.clone()]);
    with_web
        .services
        .push(lb_realserver::config::ServiceConfig {
            name: "web".into(),
            weight: 1,
        });
    *current.lock().unwrap() = with_web;
    let refused = reloads.reload().await.unwrap_err();
    assert!(
        refused.starts_with(&format!(
            "{}: the director refused the new registration",
            a.addr
        )),
        "{refused}"
    );
    // llclb2 got the running config back: its web service ends up without llc5, and both
    // keep llc5 on ssh with the one rule.
    let web_key = ServiceKey::Addr {
        protocol: lb_shared::domain::Protocol::Tcp,
        addr: lb_director::testing::VIP.parse().unwrap(),
        port: 80,
    };
    until("llclb2's web service without llc5", || async {
        b.ipvs
            .destinations(&web_key)
            .await
            .map(|d| d.is_empty())
            .unwrap_or(true)
    })
    .await;
    until("registered with both", || async {
        registered(metrics, &url_a).await == Some(1.0)
            && registered(metrics, &url_b).await == Some(1.0)
    })
    .await;
    assert!(joined(&a).await && joined(&b).await);
    assert_eq!(
        chain.lines().len(),
        1,
        "only the ssh rule: {:?}",
        chain.lines()
    );

    agent.stop().await.0.unwrap();
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
