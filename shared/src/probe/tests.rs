#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::*;

const TIMEOUT: Duration = Duration::from_secs(2);

/// A loopback server that answers one connection with `serve`; the test gets the address and
/// the server's result (for example what the probe sent it).
async fn server<F, Fut, T>(serve: F) -> (SocketAddr, oneshot::Receiver<T>)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let _ = tx.send(serve(stream).await);
    });
    (addr, rx)
}

/// A server that writes `bytes`, then returns everything the client sent until it closed.
async fn sends(bytes: &'static [u8]) -> (SocketAddr, oneshot::Receiver<Vec<u8>>) {
    server(move |mut stream| async move {
        stream.write_all(bytes).await.unwrap();
        let mut received = Vec::new();
        let _ = stream.read_to_end(&mut received).await;
        received
    })
    .await
}

#[test]
fn check_kinds_read_back() {
    for kind in ["tcp", "ssh", "none"] {
        assert_eq!(kind.parse::<CheckKind>().unwrap().to_string(), kind);
    }
    assert_eq!(
        "http".parse::<CheckKind>(),
        Err("unknown check type: use tcp, ssh or none".to_owned())
    );
}

#[tokio::test]
async fn an_ssh_banner_is_up_and_the_probe_sends_nothing() {
    for banner in [
        &b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"[..],
        b"SSH-1.99-Cisco-1.25\n",
    ] {
        let (addr, received) = sends(banner).await;
        probe(CheckKind::Ssh, addr, TIMEOUT).await.unwrap();
        // The server sees the connection closed without a byte from the probe.
        assert_eq!(received.await.unwrap(), b"");
    }
}

#[tokio::test]
async fn garbage_is_a_bad_banner_quoted_and_escaped() {
    let (addr, _) = sends(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    let failure = probe(CheckKind::Ssh, addr, TIMEOUT).await.unwrap_err();
    assert_eq!(failure.reason(), "bad banner");
    assert_eq!(
        failure.to_string(),
        "bad SSH banner \"HTTP/1.1 400 Bad Request\""
    );

    let (addr, _) = sends(b"\x1b[31mhello\tworld\xff\n").await;
    let failure = probe(CheckKind::Ssh, addr, TIMEOUT).await.unwrap_err();
    assert_eq!(
        failure.to_string(),
        "bad SSH banner \"\\u{1b}[31mhello\\tworld\u{fffd}\""
    );
}

#[tokio::test]
async fn garbage_without_a_newline_fails_before_the_timeout() {
    let (addr, _held) = server(|mut stream| async move {
        stream.write_all(b"220 smtp ready").await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let started = std::time::Instant::now();
    let failure = probe(CheckKind::Ssh, addr, TIMEOUT).await.unwrap_err();
    assert!(started.elapsed() < TIMEOUT);
    assert_eq!(failure.to_string(), "bad SSH banner \"220 smtp ready\"");
}

#[tokio::test]
async fn a_line_longer_than_the_bound_is_a_bad_banner() {
    static LONG: [u8; 1000] = {
        let mut bytes = [b'x'; 1000];
        let prefix = b"SSH-2.0-";
        let mut i = 0;
        while i < prefix.len() {
            bytes[i] = prefix[i];
            i += 1;
        }
        bytes
    };
    let (addr, _) = sends(&LONG).await;
    let failure = probe(CheckKind::Ssh, addr, TIMEOUT).await.unwrap_err();
    let expected = format!("bad SSH banner \"SSH-2.0-{}...\"", "x".repeat(32));
    assert_eq!(failure.to_string(), expected);
}

#[tokio::test]
async fn a_silent_server_is_no_banner_within_the_timeout() {
    let (addr, _held) = server(|stream| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(stream);
    })
    .await;
    let timeout = Duration::from_millis(300);
    let failure = probe(CheckKind::Ssh, addr, timeout).await.unwrap_err();
    assert_eq!(failure.reason(), "no banner");
    assert_eq!(failure.to_string(), "no SSH banner within 300ms");
    // A tcp check asks only for the connection.
    let (addr, _held) = server(|stream| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(stream);
    })
    .await;
    probe(CheckKind::Tcp, addr, timeout).await.unwrap();
}

#[tokio::test]
async fn a_server_that_closes_at_once_is_closed_before_banner() {
    let (addr, _) = server(|stream| async move { drop(stream) }).await;
    let failure = probe(CheckKind::Ssh, addr, TIMEOUT).await.unwrap_err();
    assert_eq!(failure.reason(), "closed");
    assert_eq!(
        failure.to_string(),
        "connection closed before the SSH banner"
    );
    // Half a banner, then gone: still closed, not a bad banner.
    let (addr, _) = server(|mut stream| async move {
        stream.write_all(b"SSH-2.0-Open").await.unwrap();
    })
    .await;
    let failure = probe(CheckKind::Ssh, addr, TIMEOUT).await.unwrap_err();
    assert!(matches!(failure, ProbeFailure::ClosedBeforeBanner));
}

#[tokio::test]
async fn a_closed_port_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    for kind in [CheckKind::Tcp, CheckKind::Ssh] {
        let failure = probe(kind, addr, TIMEOUT).await.unwrap_err();
        assert_eq!(failure.reason(), "refused");
        assert_eq!(failure.to_string(), "connection refused");
    }
    // No check: nothing is dialled.
    probe(CheckKind::None, addr, TIMEOUT).await.unwrap();
}
