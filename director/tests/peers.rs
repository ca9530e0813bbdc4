//! Admin state across directors (issue 12): two directors in one test process, each on its
//! own in-memory IPVS table, naming each other as `[[peer]]`. A drain, undrain or weight
//! through either holds on both, survives either's restart, and the later write wins after
//! a partition.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use lb_ipvs::MemoryIpvs;
use lb_proto as pb;
use tokio::net::TcpListener;

/// Generous: a loaded machine runs four builds beside these tests.
const DEADLINE: Duration = Duration::from_secs(30);

/// The loopback test config named `me`, with one peer `peer` at `peer_url`.
fn text(dir: &Path, me: &str, peer: &str, peer_url: &str) -> String {
    format!(
        "name = \"{me}\"\npeer_interval = \"200ms\"\npeer_startup_wait = \"5s\"\n{}\n[[peer]]\nname = \"{peer}\"\nurl = \"{peer_url}\"\n",
        config_text(dir, "6s")
    )
}

struct Side {
    director: Option<TestDirector>,
    ipvs: Arc<MemoryIpvs>,
    dir: PathBuf,
    port: u16,
    text: String,
}

impl Side {
    fn director(&self) -> &TestDirector {
        self.director.as_ref().unwrap()
    }

    async fn stop(&mut self) {
        self.director.take().unwrap().stop().await.unwrap();
    }

    async fn start(&mut self) {
        let director =
            TestDirector::start_on(self.ipvs.clone(), &self.dir, &self.text, self.port).await;
        self.director = Some(director);
    }
}

/// Directors "a" and "b" naming each other, both started; llc5 registered with both.
async fn pair(root: &Path) -> (Side, Side) {
    let (la, lb) = (
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
    );
    let (pa, pb) = (
        la.local_addr().unwrap().port(),
        lb.local_addr().unwrap().port(),
    );
    let side = |name: &str, peer: &str, port: u16, peer_port: u16| {
        let dir = root.join(name);
        Side {
            text: text(&dir, name, peer, &format!("http://127.0.0.1:{peer_port}")),
            director: None,
            ipvs: Arc::new(MemoryIpvs::new()),
            dir,
            port,
        }
    };
    let (mut a, mut b) = (side("a", "b", pa, pb), side("b", "a", pb, pa));
    // b's port is closed while a starts, so a's pull at start fails at once instead of
    // waiting out peer_startup_wait on a bound port that nobody serves yet.
    drop(lb);
    a.director = Some(TestDirector::start_listening(a.ipvs.clone(), &a.dir, &a.text, la).await);
    // b starts once a serves; started together, each would wait peer_startup_wait for the
    // other (bounded, as README says, but slow for a test).
    a.director().status().await;
    b.start().await;
    for side in [&a, &b] {
        join(
            &mut side.director().registry().await,
            "llc5",
            "10.0.0.11",
            1,
        )
        .await;
    }
    // Both have exchanged once, so each knows the other answers.
    wait_exchanges(a.director(), "b", 0.0).await;
    wait_exchanges(b.director(), "a", 0.0).await;
    (a, b)
}

/// llc5 as the director's status shows it: (drained, weight override).
async fn llc5(director: &TestDirector) -> (bool, Option<u32>) {
    let status = director.status().await;
    let row = status
        .services
        .iter()
        .flat_map(|s| &s.realservers)
        .find(|r| r.name == "llc5")
        .expect("llc5 in the status");
    (row.drained, row.weight_override)
}

async fn wait_llc5(director: &TestDirector, what: &str, want: (bool, Option<u32>)) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let have = llc5(director).await;
        if have == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: llc5 is {have:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_weight(director: &TestDirector, what: &str, want: u32) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while director.weight("10.0.0.11").await != Some(want) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: table {:?}",
            director.table().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many exchanges of `director` with `peer` worked so far.
async fn exchanges_ok(director: &TestDirector, peer: &str) -> f64 {
    director
        .scrape()
        .await
        .value(
            "lb_peer_exchanges_total",
            &[("peer", peer), ("result", "ok")],
        )
        .unwrap_or(0.0)
}

async fn wait_exchanges(director: &TestDirector, peer: &str, more_than: f64) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while exchanges_ok(director, peer).await <= more_than {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no exchange with {peer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An operator's drain, undrain or weight of llc5 through `director`'s admin socket.
async fn drain(director: &TestDirector) -> pb::AdminResponse {
    let request = pb::DrainRequest {
        name: "llc5".into(),
    };
    director
        .admin()
        .await
        .drain(request)
        .await
        .unwrap()
        .into_inner()
}

async fn undrain(director: &TestDirector) -> pb::AdminResponse {
    let request = pb::UndrainRequest {
        name: "llc5".into(),
    };
    director
        .admin()
        .await
        .undrain(request)
        .await
        .unwrap()
        .into_inner()
}

async fn set_weight(director: &TestDirector, weight: u32) -> pb::AdminResponse {
    let request = pb::SetWeightRequest {
        name: "llc5".into(),
        weight,
    };
    director
        .admin()
        .await
        .set_weight(request)
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_drain_through_a_holds_on_b_and_an_undrain_through_b_reaches_a() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = pair(root.path()).await;
    let reply = drain(a.director()).await;
    assert_eq!(reply.peers_confirmed, ["b"], "{}", reply.message);
    assert!(
        reply.message.contains("held by peer(s) b"),
        "{}",
        reply.message
    );
    wait_llc5(b.director(), "the drain on b", (true, None)).await;
    wait_weight(b.director(), "weight 0 on b", 0).await;

    undrain(b.director()).await;
    wait_llc5(a.director(), "the undrain on a", (false, None)).await;
    wait_weight(a.director(), "weight 1 on a", 1).await;

    set_weight(b.director(), 4).await;
    wait_llc5(a.director(), "the weight on a", (false, Some(4))).await;
    wait_weight(a.director(), "weight 4 on a", 4).await;

    let metrics = a.director().scrape().await;
    assert_eq!(
        metrics.value("lb_peer_reachable", &[("peer", "b")]),
        Some(1.0)
    );
    assert!(
        metrics
            .value("lb_peer_last_exchange_timestamp_seconds", &[("peer", "b")])
            .unwrap()
            > 0.0
    );
    for side in [a, b] {
        side.director.unwrap().stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_restart_of_either_keeps_the_drain_and_a_drain_made_while_a_was_down_holds() {
    let root = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(root.path()).await;
    drain(a.director()).await;
    wait_llc5(b.director(), "the drain on b", (true, None)).await;
    b.stop().await;
    b.start().await;
    wait_llc5(b.director(), "b after its restart", (true, None)).await;
    a.stop().await;
    a.start().await;
    wait_llc5(a.director(), "a after its restart", (true, None)).await;

    // a undrains, goes down; b drains while a is away: a's older state must not win.
    undrain(a.director()).await;
    wait_llc5(b.director(), "the undrain on b", (false, None)).await;
    a.stop().await;
    let reply = drain(b.director()).await;
    assert_eq!(reply.peers_pending, ["a"], "{}", reply.message);
    assert!(
        reply.message.contains("not yet on a"),
        "the answer says a lacks it: {}",
        reply.message
    );
    a.start().await;
    // The pull at start brought the drain in before the first pass.
    assert_eq!(llc5(a.director()).await, (true, None));
    wait_weight(a.director(), "weight 0 on a", 0).await;
    let seen = exchanges_ok(b.director(), "a").await;
    wait_exchanges(b.director(), "a", seen + 1.0).await;
    wait_exchanges(a.director(), "b", 1.0).await;
    assert_eq!(
        llc5(b.director()).await,
        (true, None),
        "b keeps its later drain"
    );
    for side in [a, b] {
        side.director.unwrap().stop().await.unwrap();
    }
}

#[tokio::test]
async fn after_a_partition_the_later_write_wins_on_both() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = pair(root.path()).await;
    // Cut the two apart: each names a peer URL where nothing answers.
    let cut =
        |side: &Side, peer: &str| text(&side.dir, side_name(side), peer, "http://127.0.0.1:1");
    fn side_name(side: &Side) -> &str {
        side.dir.file_name().unwrap().to_str().unwrap()
    }
    a.director().reload_with(&cut(&a, "b")).await.unwrap();
    b.director().reload_with(&cut(&b, "a")).await.unwrap();

    let a_drain = drain(a.director()).await;
    assert_eq!(a_drain.peers_confirmed, Vec::<String>::new());
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while a
        .director()
        .scrape()
        .await
        .value("lb_peer_reachable", &[("peer", "b")])
        != Some(0.0)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "b still counts as reachable"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Each side keeps and applies its own writes meanwhile.
    wait_weight(a.director(), "a applies its drain", 0).await;
    // Later, on b: a weight and an explicit undrain.
    set_weight(b.director(), 3).await;
    undrain(b.director()).await;
    wait_weight(b.director(), "b applies its weight", 3).await;
    assert_eq!(llc5(a.director()).await, (true, None));

    // They meet again.
    a.director().reload_with(&a.text).await.unwrap();
    b.director().reload_with(&b.text).await.unwrap();
    for side in [&a, &b] {
        wait_llc5(
            side.director(),
            "the later writes on both",
            (false, Some(3)),
        )
        .await;
        wait_weight(side.director(), "weight 3 on both", 3).await;
    }
    for side in [a, b] {
        side.director.unwrap().stop().await.unwrap();
    }
}

/// A TLS channel to a director at `addr` as `who` (a certificate of the test CA in `pki`).
async fn as_party(pki: &Path, addr: std::net::SocketAddr, who: &str) -> tonic::transport::Channel {
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
    let read = |f: String| std::fs::read(pki.join(f)).unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem".into())))
        .identity(Identity::from_pem(
            read(format!("{who}.pem")),
            read(format!("{who}.key")),
        ));
    Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// With [tls], peers talk mutual TLS with their own certificates; a configured realserver
/// (no agent) is drained on both; any other certificate is refused as a peer.
#[tokio::test]
async fn over_tls_only_a_listed_peer_certificate_may_exchange() {
    let root = tempfile::tempdir().unwrap();
    let pki = root.path().join("pki");
    lb_director::certs::init_ca(&pki, "test CA").unwrap();
    for name in ["a", "b"] {
        lb_director::certs::issue(&pki, name, &[], &["127.0.0.1".parse().unwrap()]).unwrap();
    }
    for name in ["ops", "c"] {
        lb_director::certs::issue(&pki, name, &[], &[]).unwrap();
    }
    let (la, lb) = (
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
    );
    let (aa, ab) = (la.local_addr().unwrap(), lb.local_addr().unwrap());
    let tls_text = |me: &str, peer: &str, peer_addr: std::net::SocketAddr| {
        let dir = root.path().join(me);
        format!(
            "admins = [\"ops\"]\n{}\n[[service.realserver]]\naddress = \"10.0.0.11\"\nname = \"llc5\"\n\n\
             [tls]\nca = \"{p}/ca.pem\"\ncert = \"{p}/{me}.pem\"\nkey = \"{p}/{me}.key\"\n\n\
             [[realserver]]\nname = \"llc6\"\naddress = \"10.0.0.12\"\n",
            text(&dir, me, peer, &format!("https://{peer_addr}")),
            p = pki.display()
        )
    };
    drop(lb);
    let a = TestDirector::start_listening(
        Arc::new(MemoryIpvs::new()),
        &root.path().join("a"),
        &tls_text("a", "b", ab),
        la,
    )
    .await;
    let _ = pb::admin_client::AdminClient::new(as_party(&pki, aa, "ops").await)
        .status(pb::StatusRequest {})
        .await
        .unwrap();
    let b = TestDirector::start_on(
        Arc::new(MemoryIpvs::new()),
        &root.path().join("b"),
        &tls_text("b", "a", aa),
        ab.port(),
    )
    .await;
    let admin = |addr| {
        let pki = pki.clone();
        async move { pb::admin_client::AdminClient::new(as_party(&pki, addr, "ops").await) }
    };
    wait_exchanges(&a, "b", 0.0).await;
    let reply = admin(aa)
        .await
        .drain(pb::DrainRequest {
            name: "llc5".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.peers_confirmed, ["b"], "{}", reply.message);
    wait_weight(&b, "the configured llc5 drained on b", 0).await;
    let status = admin(ab)
        .await
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.director, "b");

    // An admin's certificate is no peer's, nor is another director's that b does not list.
    for who in ["ops", "c"] {
        let mut peer = pb::peer_client::PeerClient::new(as_party(&pki, ab, who).await);
        let pull = peer
            .pull(pb::PeerPullRequest {
                after: String::new(),
                limit: 10,
            })
            .await
            .unwrap_err();
        assert_eq!(pull.code(), tonic::Code::PermissionDenied, "{who}");
        assert!(
            pull.message().contains("is not a peer director"),
            "{}",
            pull.message()
        );
        let undrain = pb::AdminRecord {
            realserver: "llc5".into(),
            drained: Some(false),
            drain_revision: Some(pb::AdminRevision {
                at_ms: u64::MAX,
                writer: who.into(),
            }),
            ..Default::default()
        };
        let push = peer
            .push(pb::PeerPushRequest {
                records: vec![undrain],
            })
            .await
            .unwrap_err();
        assert_eq!(push.code(), tonic::Code::PermissionDenied);
    }
    assert_eq!(
        b.weight("10.0.0.11").await,
        Some(0),
        "nothing taken from them"
    );
    let refusals = b
        .scrape()
        .await
        .value("lb_refusals_total", &[("reason", "not_peer")]);
    assert_eq!(refusals, Some(4.0));
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
