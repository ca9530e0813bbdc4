//! lbctl's live output: `drain --wait` progress and `status --watch`, on a pipe (plain lines)
//! and on a real pseudo-terminal (a bar, a redrawn screen), and Ctrl-C.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use std::io::Read;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use lb_ipvs::MemoryIpvs;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// Generous: the machine running the tests may be busy.
const DEADLINE: Duration = Duration::from_secs(30);

/// A running lbctl and everything it wrote to stdout so far.
struct Lbctl {
    child: Child,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Lbctl {
    fn command(director: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lbctl"));
        cmd.env_remove("LBCTL_DIRECTOR")
            .env("TERM", "xterm")
            .arg("--director")
            .arg(director)
            .args(args)
            .stderr(Stdio::piped());
        cmd
    }

    /// lbctl with stdout on a pipe.
    fn on_pipe(director: &str, args: &[&str]) -> Lbctl {
        let mut child = Self::command(director, args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap().into_owned_fd().unwrap();
        Lbctl {
            child,
            seen: collect(std::fs::File::from(stdout)),
        }
    }

    /// lbctl with stdout on a pseudo-terminal of 120 columns.
    fn on_terminal(director: &str, args: &[&str]) -> Lbctl {
        let size = nix::pty::Winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).unwrap();
        let child = Self::command(director, args)
            .stdout(Stdio::from(pty.slave))
            .spawn()
            .unwrap();
        // Our copy of the slave is closed now, so the master reads EOF (EIO) when lbctl exits.
        Lbctl {
            child,
            seen: collect(std::fs::File::from(pty.master)),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    async fn wait_for_text(&self, what: &str, check: impl Fn(&str) -> bool) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !check(&self.text()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "lbctl never showed {what}; it wrote: {:?}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn interrupt(&self) {
        let pid = i32::try_from(self.child.id().unwrap()).unwrap();
        kill(Pid::from_raw(pid), Signal::SIGINT).unwrap();
    }

    /// Exit status and stderr.
    async fn finish(mut self) -> (Option<i32>, String) {
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("lbctl did not exit")
            .unwrap();
        let mut stderr = String::new();
        let mut pipe = self.child.stderr.take().unwrap();
        pipe.read_to_string(&mut stderr).await.unwrap();
        (status.code(), stderr)
    }
}

/// Reads `file` to its end on a thread of its own, keeping everything read.
fn collect(mut file: std::fs::File) -> Arc<Mutex<Vec<u8>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // A pty master reads EIO once the last slave is closed: that is its end of file.
        while let Ok(n @ 1..) = file.read(&mut buf) {
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    seen
}

async fn director_with_llc5(dir: &std::path::Path, active: u32) -> TestDirector {
    let director = TestDirector::start(Arc::new(MemoryIpvs::new()), dir, "6s").await;
    let mut registry = director.registry().await;
    join(&mut registry, "llc5", "10.0.0.11", 1).await;
    director.connections("10.0.0.11", active, 0);
    director
}

#[tokio::test]
async fn drain_wait_on_a_terminal_shows_a_live_bar_then_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let director = director_with_llc5(dir.path(), 2).await;
    let lbctl = Lbctl::on_terminal(&director.url(), &["drain", "llc5", "--wait"]);
    lbctl
        .wait_for_text("the bar with two sessions", |t| {
            t.contains("llc5: 2 of 2 sessions left, 0 inactive [ ")
                && t.contains("(timeout in 7h59m")
        })
        .await;
    director.connections("10.0.0.11", 1, 1);
    lbctl
        .wait_for_text("the bar moving to one session", |t| {
            t.contains("1 of 2 sessions left, 1 inactive [=====")
        })
        .await;
    director.connections("10.0.0.11", 0, 1);
    lbctl
        .wait_for_text("the result", |t| {
            t.contains("llc5 is drained: no active connections (after ")
        })
        .await;
    let text = lbctl.text();
    let (code, stderr) = lbctl.finish().await;
    assert_eq!(code, Some(0), "{stderr}");
    // Every redraw fits the terminal's 120 columns (no wrapped line to clear above).
    for line in text.split(['\r', '\n']) {
        assert!(line.chars().count() <= 120 + 8, "too wide: {line:?}");
    }
    assert!(
        !text.contains("\x1b[1A"),
        "a redraw spanned two lines: {text:?}"
    );
    director.stop().await.unwrap();
}

#[tokio::test]
async fn drain_wait_on_a_pipe_prints_lines_and_ctrl_c_stops_waiting_with_130() {
    let dir = tempfile::tempdir().unwrap();
    let director = director_with_llc5(dir.path(), 3).await;
    let lbctl = Lbctl::on_pipe(&director.url(), &["drain", "llc5", "--wait"]);
    lbctl
        .wait_for_text("a progress line", |t| {
            t.contains("llc5: ActiveConn 3 InActConn 0 (")
        })
        .await;
    lbctl.interrupt();
    let text = lbctl.text();
    let (code, stderr) = lbctl.finish().await;
    assert_eq!(code, Some(130), "{stderr}");
    assert_eq!(
        stderr,
        "lbctl: stopped waiting; llc5 stays drained (3 active connection(s) left)\n"
    );
    assert!(!text.contains('\x1b'), "{text:?}");
    assert_eq!(director.weight("10.0.0.11").await, Some(0), "still drained");
    director.stop().await.unwrap();
}

#[tokio::test]
async fn drain_wait_timeout_on_a_terminal_clears_the_bar_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let director = director_with_llc5(dir.path(), 1).await;
    let lbctl = Lbctl::on_terminal(
        &director.url(),
        &["drain", "llc5", "--wait", "--timeout", "2s"],
    );
    let (code, stderr) = lbctl.finish().await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("lbctl: timed out after 2s waiting for llc5 to drain (1 active"),
        "{stderr}"
    );
    director.stop().await.unwrap();
}

#[tokio::test]
async fn status_watch_on_a_pipe_prints_each_refresh_and_ctrl_c_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let director = director_with_llc5(dir.path(), 0).await;
    let lbctl = Lbctl::on_pipe(
        &director.url(),
        &["status", "--watch", "--interval", "200ms"],
    );
    let header = format!("Every 200ms: lbctl status ({})", director.url());
    lbctl
        .wait_for_text("a refresh with the table", |t| {
            t.starts_with(&header) && t.contains("llc5") && t.contains("alive")
        })
        .await;
    director.connections("10.0.0.11", 4, 0);
    lbctl
        .wait_for_text("a later refresh with the new count", |t| {
            t.lines()
                .any(|l| l.contains("llc5") && l.split_whitespace().nth(5) == Some("4"))
        })
        .await;
    lbctl.interrupt();
    let text = lbctl.text();
    let (code, stderr) = lbctl.finish().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(text.matches(&header).count() >= 2, "{text}");
    assert!(
        text.contains("\n\nEvery 200ms"),
        "refreshes are set apart: {text}"
    );
    assert!(!text.contains('\x1b'), "{text:?}");
    director.stop().await.unwrap();
}

#[tokio::test]
async fn status_watch_on_a_terminal_redraws_and_json_watch_prints_a_line_per_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let director = director_with_llc5(dir.path(), 0).await;
    let lbctl = Lbctl::on_terminal(
        &director.url(),
        &["status", "--watch", "--interval", "200ms"],
    );
    lbctl
        .wait_for_text("two redrawn screens", |t| {
            t.matches("\x1b[H\x1b[2JEvery 200ms").count() >= 2
        })
        .await;
    lbctl.interrupt();
    assert_eq!(lbctl.finish().await.0, Some(0));

    let lbctl = Lbctl::on_pipe(
        &director.url(),
        &["status", "--watch", "--json", "--interval", "200ms"],
    );
    lbctl
        .wait_for_text("two JSON lines", |t| t.lines().count() >= 2)
        .await;
    lbctl.interrupt();
    let text = lbctl.text();
    assert_eq!(lbctl.finish().await.0, Some(0));
    for line in text.lines() {
        let json: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(json["services"][0]["realservers"][0]["name"], "llc5");
    }
    director.stop().await.unwrap();
}

#[tokio::test]
async fn status_watch_shows_an_unreachable_director_and_keeps_trying() {
    // Nothing listens on port 1 of loopback.
    let lbctl = Lbctl::on_pipe(
        "http://127.0.0.1:1",
        &["status", "--watch", "--interval", "200ms"],
    );
    lbctl
        .wait_for_text("the error twice", |t| {
            t.matches("lbctl: cannot reach the director at http://127.0.0.1:1")
                .count()
                >= 2
        })
        .await;
    lbctl.interrupt();
    assert_eq!(lbctl.finish().await.0, Some(0));
}

#[tokio::test]
async fn interval_needs_watch() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lbctl"))
        .args(["status", "--interval", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
