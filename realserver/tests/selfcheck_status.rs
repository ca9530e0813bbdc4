//! The self-check's verdict in systemd's STATUS line, read from a NOTIFY_SOCKET of our own.
//! A test binary of its own: NOTIFY_SOCKET is the process's environment, which no other test
//! may share.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod support;

use std::time::Duration;

use support::selfcheck::{agent_checking, check, Answer, Service, LIMIT};
use tokio::net::UnixDatagram;

/// The next STATUS= line systemd would get that `wanted` accepts.
async fn status_where(socket: &UnixDatagram, wanted: impl Fn(&str) -> bool) -> String {
    let mut buf = vec![0u8; 4096];
    let read = async {
        loop {
            let n = socket.recv(&mut buf).await.unwrap();
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            let status = message
                .lines()
                .find_map(|line| line.strip_prefix("STATUS="))
                .map(str::to_owned);
            if let Some(status) = status.filter(|s| wanted(s)) {
                return status;
            }
        }
    };
    tokio::time::timeout(LIMIT, read)
        .await
        .expect("the status line within the limit")
}

#[tokio::test]
async fn the_status_line_names_a_service_that_is_down_until_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    std::env::set_var("NOTIFY_SOCKET", &path);

    let service = Service::start(Answer::Silent).await;
    let (_director, agent) = agent_checking(
        service.addr.port(),
        Some(check("ssh")),
        Duration::from_secs(30),
    )
    .await;
    let down = status_where(&socket, |s| s.contains("down")).await;
    assert!(down.starts_with("registered with 127.0.0.1:"), "{down}");
    assert!(
        down.ends_with(" as llc5, weight 1, llc-ssh down: no SSH banner within 80ms"),
        "{down}"
    );

    service.answer(Answer::Banner);
    let up = status_where(&socket, |s| s.starts_with("registered")).await;
    assert!(up.ends_with(" as llc5, weight 1"), "{up}");
    agent.stop().await.0.unwrap();
}
