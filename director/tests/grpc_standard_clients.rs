//! The standard gRPC services (health, reflection) as an independent client sees them: Python's
//! grpcio, grpcio-health-checking and grpcio-reflection from PyPI, running
//! `tests/python/health_reflection.py` against a director on loopback, with and without
//! mutual TLS, and on the admin socket.
//!
//! deploy/test.sh installs the client in a venv (`target/python-grpc`) and sets
//! `LB_REQUIRE_PYTHON_GRPC=1`, so a missing client fails the run there; elsewhere these tests
//! say loudly that they skipped.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use lb_director::certs;
use lb_ipvs::MemoryIpvs;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/python/health_reflection.py"
);

/// Long enough for a loaded machine; conditions are polled, never slept on.
const DEADLINE: Duration = Duration::from_secs(60);

/// The Python with grpcio: `LB_PYTHON`, else the venv deploy/test.sh makes in the target
/// directory, else `python3`. None (after a loud message) when none has the packages, unless
/// `LB_REQUIRE_PYTHON_GRPC=1`, which makes that a failure.
fn python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../python-grpc/bin/python");
    let candidates = std::env::var_os("LB_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([venv, PathBuf::from("python3")]);
    for python in candidates {
        let ok = std::process::Command::new(&python)
            .args([
                "-c",
                "import grpc, grpc_health.v1.health_pb2, grpc_reflection.v1alpha.reflection_pb2",
            ])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(python);
        }
    }
    let how = "python3 -m venv target/python-grpc && target/python-grpc/bin/pip install \
               -r director/tests/python/requirements.txt";
    if std::env::var("LB_REQUIRE_PYTHON_GRPC").as_deref() == Ok("1") {
        panic!("LB_REQUIRE_PYTHON_GRPC=1 but no Python has grpcio, grpcio-health-checking and grpcio-reflection: {how}");
    }
    // Written to the process's stderr, not through eprintln!, which the test harness
    // captures and hides for a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: no Python with grpcio, grpcio-health-checking and grpcio-reflection; \
         the standard-client tests did not run. Install with: {how}\n"
    );
    None
}

/// How the client reaches the director: the address or socket, and TLS files if any.
struct Target {
    address: String,
    tls: Vec<String>,
}

impl Target {
    fn tcp(director: &TestDirector) -> Target {
        Target {
            address: director.addr.to_string(),
            tls: Vec::new(),
        }
    }

    fn admin_socket(director: &TestDirector) -> Target {
        Target {
            address: format!("unix:{}", director.state_dir.join("admin.sock").display()),
            tls: Vec::new(),
        }
    }

    /// Mutual TLS as `who` (a certificate of the test CA); None: no client certificate.
    fn tls(director: &TestDirector, pki: &Path, who: Option<&str>) -> Target {
        let mut tls = vec![
            "--ca".to_owned(),
            pki.join("ca.pem").display().to_string(),
            "--server-name".to_owned(),
            "llclb1".to_owned(),
        ];
        if let Some(who) = who {
            for (flag, ext) in [("--cert", "pem"), ("--key", "key")] {
                tls.push(flag.to_owned());
                tls.push(pki.join(format!("{who}.{ext}")).display().to_string());
            }
        }
        Target {
            address: director.addr.to_string(),
            tls,
        }
    }

    fn command(&self, python: &Path, mode: &[&str]) -> Command {
        let mut command = Command::new(python);
        command
            .arg(SCRIPT)
            .arg(&self.address)
            .args(&self.tls)
            .args(mode)
            .kill_on_drop(true);
        command
    }

    async fn run(&self, python: &Path, mode: &[&str]) -> Output {
        let run = self.command(python, mode).output();
        tokio::time::timeout(DEADLINE, run)
            .await
            .expect("the Python client hung")
            .unwrap()
    }

    /// Runs a mode that must succeed; returns its output.
    async fn expect_ok(&self, python: &Path, mode: &[&str]) -> String {
        let out = self.run(python, mode).await;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{mode:?} against {} failed:\n{stdout}\n{}",
            self.address,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

/// Waits (through tonic's own health client, which is quick to call) until the director
/// reports `wanted`, so the Python client is then asked once.
async fn wait_for_status(director: &TestDirector, wanted: ServingStatus) {
    let mut health = HealthClient::new(director.channel().await);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        if status == wanted {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the director still reports {status:?}, not {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A director of the loopback test config (no TLS), once it reports SERVING.
async fn serving(ipvs: Arc<MemoryIpvs>, dir: &Path) -> TestDirector {
    let director = TestDirector::start(ipvs, dir, "6s").await;
    wait_for_status(&director, ServingStatus::Serving).await;
    director
}

#[tokio::test]
async fn reflection_and_check_on_the_insecure_loopback_port_and_the_admin_socket() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let director = serving(Arc::new(MemoryIpvs::new()), dir.path()).await;
    let out = Target::tcp(&director)
        .expect_ok(&python, &["probe", "--expect", "SERVING"])
        .await;
    for line in [
        "reflection v1: grpc.health.v1.Health grpc.reflection.v1.ServerReflection lb.v1.Admin lb.v1.Peer lb.v1.Registry",
        "reflection v1alpha: grpc.health.v1.Health grpc.reflection.v1alpha.ServerReflection lb.v1.Admin lb.v1.Peer lb.v1.Registry",
        "lb.v1.Admin/Status by reflection: fields ['services', 'role', 'director']",
        "check lb.v1.Registry: SERVING",
    ] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
    Target::admin_socket(&director)
        .expect_ok(&python, &["probe", "--expect", "SERVING"])
        .await;
    director.stop().await.unwrap();
}

/// A CA, the director's certificate (llclb1, 127.0.0.1) and "monitor", a cluster member that is
/// neither an admin nor a listed realserver: what a health checker on another host carries.
fn tls_config(dir: &Path) -> (String, PathBuf) {
    let pki = dir.join("pki");
    certs::init_ca(&pki, "test CA").unwrap();
    certs::issue(&pki, "llclb1", &[], &["127.0.0.1".parse().unwrap()]).unwrap();
    certs::issue(&pki, "monitor", &[], &[]).unwrap();
    let text = format!(
        "admins = [\"ops\"]\n{}\n[tls]\nca = \"{p}/ca.pem\"\ncert = \"{p}/llclb1.pem\"\nkey = \"{p}/llclb1.key\"\n\n\
         [[realserver]]\nname = \"llc5\"\naddress = \"10.0.0.11\"\n",
        config_text(dir, "6s"),
        p = pki.display()
    );
    (text, pki)
}

#[tokio::test]
async fn reflection_and_check_over_mutual_tls_need_a_cluster_certificate() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (text, pki) = tls_config(dir.path());
    let director = TestDirector::start_with(Arc::new(MemoryIpvs::new()), dir.path(), &text).await;
    // Served once the admin socket (no TLS) answers.
    let local = Target::admin_socket(&director);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !local
        .run(&python, &["check", "--expect", "SERVING"])
        .await
        .status
        .success()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never SERVING on the admin socket"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = Target::tls(&director, &pki, Some("monitor"))
        .expect_ok(&python, &["probe", "--expect", "SERVING"])
        .await;
    assert!(out.contains("check lb.v1.Admin: SERVING"), "{out}");
    // Without a client certificate, or in plaintext, the TLS port answers nothing.
    for refused in [Target::tls(&director, &pki, None), Target::tcp(&director)] {
        let out = refused
            .run(&python, &["check", "--expect", "SERVING"])
            .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !out.status.success() && stdout.contains("FAIL: UNAVAILABLE"),
            "a client without a certificate got: {stdout}"
        );
    }
    director.stop().await.unwrap();
}

#[tokio::test]
async fn not_serving_while_the_kernel_table_cannot_be_read() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ipvs = Arc::new(MemoryIpvs::new());
    let director = serving(ipvs.clone(), dir.path()).await;
    let target = Target::tcp(&director);
    // The next resync (every 200 ms in the test config) fails its read.
    ipvs.fail_reads(Some(libc::ENOBUFS));
    wait_for_status(&director, ServingStatus::NotServing).await;
    let out = target
        .expect_ok(&python, &["check", "--expect", "NOT_SERVING"])
        .await;
    assert!(out.contains("check (whole director): NOT_SERVING"), "{out}");
    ipvs.fail_reads(None);
    wait_for_status(&director, ServingStatus::Serving).await;
    target
        .expect_ok(&python, &["check", "--expect", "SERVING"])
        .await;
    director.stop().await.unwrap();
}

#[tokio::test]
async fn a_watch_sees_not_serving_when_the_stop_begins_and_does_not_hold_it_up() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let director = serving(Arc::new(MemoryIpvs::new()), dir.path()).await;
    let mut child = Target::tcp(&director)
        .command(&python, &["watch"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("the watch printed nothing")
            .unwrap()
            .unwrap_or_default()
    };
    assert_eq!(next_line().await, "status SERVING");
    tokio::time::timeout(DEADLINE, director.stop())
        .await
        .expect("an open health watch held the stop up")
        .unwrap();
    assert_eq!(next_line().await, "status NOT_SERVING");
    assert_eq!(next_line().await, "ended OK");
    assert!(child.wait().await.unwrap().success());
}

/// The protocol's answers for a name the director does not know, through tonic's client (no
/// Python needed): NOT_FOUND for Check, SERVICE_UNKNOWN on an open Watch.
#[tokio::test]
async fn an_unknown_name_is_not_found_for_check_and_service_unknown_for_watch() {
    let dir = tempfile::tempdir().unwrap();
    let director = serving(Arc::new(MemoryIpvs::new()), dir.path()).await;
    let mut health = HealthClient::new(director.channel().await);
    let unknown = || HealthCheckRequest {
        service: "no.such.Service".into(),
    };
    let error = health.check(unknown()).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::NotFound);
    assert!(
        error.message().contains("lb.v1.Registry"),
        "{}",
        error.message()
    );
    let mut watch = health.watch(unknown()).await.unwrap().into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::ServiceUnknown);
    tokio::time::timeout(DEADLINE, director.stop())
        .await
        .expect("a watch of an unknown name held the stop up")
        .unwrap();
    assert!(
        watch.message().await.unwrap().is_none(),
        "the watch did not end"
    );
}
