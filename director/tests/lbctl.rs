//! The real lbctl binary against a running director.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use lb_ipvs::MemoryIpvs;

async fn lbctl(director: &str, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_lbctl"));
    cmd.env_remove("LBCTL_DIRECTOR")
        .arg("--director")
        .arg(director)
        .args(args);
    cmd.output().await.unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn status_shows_the_table_in_ipvsadm_words_and_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    join(&mut registry, "llc6", "10.0.0.12", 1).await;
    director.connections("10.0.0.11", 2, 1);

    let out = lbctl(&director.url(), &["drain", "llc6"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "llc6 drained: weight 0, established sessions continue\n"
    );

    let out = lbctl(&director.url(), &["status"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[2], "TCP  10.0.0.100:22 rr llc-ssh");
    let words = |line: &str| {
        line.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        words(lines[3]),
        [
            "->",
            "10.0.0.11:22",
            "llc5",
            "Route",
            "1",
            "2",
            "1",
            "alive",
            "-",
            "-"
        ]
    );
    assert_eq!(
        words(lines[4]),
        [
            "->",
            "10.0.0.12:22",
            "llc6",
            "Route",
            "0",
            "0",
            "0",
            "alive",
            "drained",
            "-"
        ]
    );

    let out = lbctl(&director.url(), &["status", "--json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let service = &json["services"][0];
    assert_eq!(service["vip"], "10.0.0.100");
    assert_eq!(service["port"], 22);
    assert_eq!(service["protocol"], "tcp");
    assert_eq!(service["scheduler"], "rr");
    let llc5 = &service["realservers"][0];
    assert_eq!(llc5["name"], "llc5");
    assert_eq!(llc5["weight"], 1);
    assert_eq!(llc5["active_conn"], 2);
    assert_eq!(llc5["inact_conn"], 1);
    assert_eq!(llc5["lease"], "alive");
    assert_eq!(
        llc5["health"],
        serde_json::Value::Null,
        "no check, no health"
    );
    assert_eq!(service["realservers"][1]["drained"], true);
    director.stop().await.unwrap();
}

#[tokio::test]
async fn weight_and_undrain_change_the_kernel_weight() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;

    let out = lbctl(&director.url(), &["weight", "llc5", "4"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(director.weight("10.0.0.11").await, Some(4));
    assert!(lbctl(&director.url(), &["drain", "llc5"])
        .await
        .status
        .success());
    assert_eq!(director.weight("10.0.0.11").await, Some(0));
    let out = lbctl(&director.url(), &["undrain", "llc5"]).await;
    assert_eq!(stdout(&out), "llc5 undrained\n");
    assert_eq!(
        director.weight("10.0.0.11").await,
        Some(4),
        "the override outlives the drain"
    );
    director.stop().await.unwrap();
}

#[tokio::test]
async fn drain_wait_returns_once_active_connections_end() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    director.connections("10.0.0.11", 1, 0);

    let url = director.url();
    let waiter = tokio::spawn(async move { lbctl(&url, &["drain", "llc5", "--wait"]).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!waiter.is_finished(), "returned while a session was open");
    director.connections("10.0.0.11", 0, 1);
    let out = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("drain --wait did not return after the session ended")
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("llc5: ActiveConn 1 InActConn 0 ("), "{text}");
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with("llc5 is drained: no active connections (after "),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "no terminal codes in a pipe: {text:?}"
    );

    director.connections("10.0.0.11", 3, 0);
    let out = lbctl(
        &director.url(),
        &["drain", "llc5", "--wait", "--timeout", "1s"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("timed out after 1s waiting for llc5 to drain (3 active"),
        "{}",
        stderr(&out)
    );
    director.stop().await.unwrap();
}

#[tokio::test]
async fn mistakes_fail_with_a_clear_message_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    let before = director.table().await;

    let out = lbctl(&director.url(), &["drain", "nosuchhost"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "lbctl: no realserver named nosuchhost\n");

    let out = lbctl(&director.url(), &["weight", "llc5", "-1"]).await;
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(stderr(&out).contains("weight"), "{}", stderr(&out));
    let out = lbctl(&director.url(), &["weight", "llc5", "65536"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(director.table().await, before);

    // Nothing listens on port 1 of loopback.
    let out = lbctl("http://127.0.0.1:1", &["status"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("lbctl: cannot reach the director at http://127.0.0.1:1"),
        "{}",
        stderr(&out)
    );
    director.stop().await.unwrap();
}

#[tokio::test]
async fn the_director_is_found_through_lbctl_director_when_no_flag_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    let _ = director.channel().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lbctl"))
        .env("LBCTL_DIRECTOR", director.url())
        .args(["status", "--json"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    director.stop().await.unwrap();
}

/// lbctl over two directors: each one's view under its header, the differences between them
/// and the exit status that says so; admin commands go to the first director that answers.
#[tokio::test]
async fn status_over_two_directors_shows_each_view_and_their_differences() {
    let root = tempfile::tempdir().unwrap();
    let start = |name: &str| {
        let dir = root.path().join(name);
        let text = format!("name = \"{name}\"\n{}", config_text(&dir, "6s"));
        async move { TestDirector::start_with(Arc::new(MemoryIpvs::new()), &dir, &text).await }
    };
    let (a, b) = (start("llclb1").await, start("llclb2").await);
    for director in [&a, &b] {
        join(&mut director.registry().await, "llc5", "10.0.0.11", 1).await;
    }
    let both = format!("{},{}", a.url(), b.url());
    let several = |args: &'static [&'static str]| {
        let both = both.clone();
        async move {
            let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_lbctl"));
            cmd.env("LBCTL_DIRECTOR", &both).args(args);
            cmd.output().await.unwrap()
        }
    };

    let out = several(&["status"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("== llclb1 ({}): SINGLE ==\n", a.url())),
        "{text}"
    );
    assert!(
        text.contains(&format!("== llclb2 ({}): SINGLE ==\n", b.url())),
        "{text}"
    );
    assert!(text.contains("Views agree"), "{text}");

    // These two are not peers: a drain through one stays there, and status says so.
    let out = lbctl(&a.url(), &["drain", "llc5"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = several(&["status"]).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Differences:\n  llc5: drained on llclb1, not drained on llclb2\n"),
        "{text}"
    );
    assert!(stderr(&out).contains("views differ"), "{}", stderr(&out));
    let out = several(&["status", "--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["directors"][0]["name"], "llclb1");
    assert_eq!(json["directors"][1]["role"], "single");
    assert_eq!(
        json["differences"][0],
        "llc5: drained on llclb1, not drained on llclb2"
    );

    // An admin command skips a director that cannot be reached.
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_lbctl"));
    cmd.env_remove("LBCTL_DIRECTOR")
        .args(["--director", "http://127.0.0.1:1", "--director"])
        .arg(b.url())
        .args(["drain", "llc5"]);
    let out = cmd.output().await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("trying the next director"),
        "{}",
        stderr(&out)
    );
    assert_eq!(several(&["status"]).await.status.code(), Some(0));

    b.stop().await.unwrap();
    let out = several(&["status"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("UNREACHABLE"), "{text}");
    assert!(text.contains("== llclb1 ("), "{text}");
    assert!(stderr(&out).contains("1 of 2 directors did not answer"));
    a.stop().await.unwrap();
}

/// A director whose process is stuck: the kernel takes its connections, nothing answers.
async fn stuck_director() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

/// Bounds a test on lbctl against a stuck director: lbctl hanging is the bug it looks for.
async fn within_a_minute(run: impl std::future::Future<Output = Output>) -> Output {
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("lbctl hung on a director that does not answer")
}

#[tokio::test]
async fn a_director_that_never_answers_fails_the_request_at_request_timeout() {
    let stuck = stuck_director().await;
    let out = within_a_minute(lbctl(&stuck, &["--request-timeout", "1s", "status"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "lbctl: the director at {stuck} accepted the connection but did not answer within \
             1s (--request-timeout): it may be overloaded or stuck; its journal (journalctl -u \
             lb-director) says more\n"
        )
    );
    let out = within_a_minute(lbctl(&stuck, &["--request-timeout", "1s", "drain", "llc5"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let out = lbctl(&stuck, &["--request-timeout", "soon", "status"]).await;
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(
        stderr(&out).contains("--request-timeout"),
        "{}",
        stderr(&out)
    );
}

/// One stuck director of two: status shows the other's view and says one did not answer;
/// an admin command goes to the other.
#[tokio::test]
async fn a_stuck_director_of_two_does_not_hold_up_status_or_a_drain() {
    let dir = tempfile::tempdir().unwrap();
    let good = TestDirector::start(Arc::new(MemoryIpvs::new()), dir.path(), "6s").await;
    join(&mut good.registry().await, "llc5", "10.0.0.11", 1).await;
    let stuck = stuck_director().await;
    let both = format!("{stuck},{}", good.url());
    let run = |args: &'static [&'static str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_lbctl"));
        cmd.env("LBCTL_DIRECTOR", &both)
            .env("LBCTL_REQUEST_TIMEOUT", "1s")
            .args(args);
        async move { within_a_minute(async { cmd.output().await.unwrap() }).await }
    };

    let out = run(&["status"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stdout(&out).contains("llc5"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("did not answer within 1s"),
        "{}",
        stdout(&out)
    );

    let out = run(&["drain", "llc5"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("did not answer within 1s (--request-timeout)")
            && stderr(&out).contains("trying the next director"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        good.weight("10.0.0.11").await,
        Some(0),
        "drained on the director that answers"
    );
    good.stop().await.unwrap();
}
