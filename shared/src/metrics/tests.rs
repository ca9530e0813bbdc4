#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use super::*;

fn registry() -> Registry {
    let mut registry = Registry::default();
    let counter = Counter::<u64>::default();
    counter.inc_by(3);
    registry.register("lb_things", "Things \"seen\".", counter);
    let gauge = Gauge::<i64>::default();
    gauge.set(7);
    registry.register("lb_level", "A level.", gauge);
    let histogram = Histogram::new([0.1, 1.0]);
    histogram.observe(0.5);
    registry.register("lb_took_seconds", "How long.", histogram);
    registry
}

#[test]
fn listen_key_takes_an_address_or_nothing() {
    assert_eq!(
        parse_listen("127.0.0.1:9770").unwrap(),
        Some("127.0.0.1:9770".parse().unwrap())
    );
    assert_eq!(parse_listen("").unwrap(), None);
    let error = parse_listen("9770").unwrap_err();
    assert!(error.contains("127.0.0.1:9770"), "{error}");
}

#[test]
fn text_format_names_counters_by_their_total() {
    let text = encode(&registry(), Format::Text);
    assert!(text.contains("# TYPE lb_things_total counter\n"), "{text}");
    assert!(text.contains("# HELP lb_things_total Things"), "{text}");
    assert!(text.contains("lb_things_total 3\n"), "{text}");
    assert!(text.contains("# TYPE lb_level gauge\n"), "{text}");
    assert!(!text.contains("# EOF"), "{text}");
    let open = encode(&registry(), Format::OpenMetrics);
    assert!(open.contains("# TYPE lb_things counter\n"), "{open}");
    assert!(open.ends_with("# EOF\n"), "{open}");
}

#[test]
fn samples_parse_labels_with_escapes() {
    let parsed = Samples::parse(
        "# TYPE x gauge\nx{a=\"1\",b=\"q\\\"uote\\\\\"} 2.5\ny 1\nz_bucket{le=\"+Inf\"} 4\n",
    )
    .unwrap();
    assert_eq!(parsed.value("x", &[("b", "q\"uote\\")]), Some(2.5));
    assert_eq!(parsed.value("y", &[]), Some(1.0));
    assert_eq!(parsed.value("z_bucket", &[("le", "+Inf")]), Some(4.0));
    assert_eq!(parsed.types.get("x").map(String::as_str), Some("gauge"));
}

#[tokio::test]
async fn serves_get_metrics_and_nothing_else() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, Arc::new(registry()), shutdown.clone()));

    let (status, body) = scrape(addr, "GET", "/metrics").await.unwrap();
    assert_eq!(status, 200);
    let parsed = Samples::parse(&body).unwrap();
    assert_eq!(parsed.value("lb_things_total", &[]), Some(3.0));
    assert_eq!(parsed.value("lb_took_seconds_count", &[]), Some(1.0));
    // A query string is still /metrics.
    assert_eq!(scrape(addr, "GET", "/metrics?x=1").await.unwrap().0, 200);
    assert_eq!(scrape(addr, "GET", "/").await.unwrap().0, 404);
    assert_eq!(scrape(addr, "GET", "/metrics/x").await.unwrap().0, 404);
    assert_eq!(scrape(addr, "POST", "/metrics").await.unwrap().0, 405);

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A client that shuts down its side after the request (nc) still gets the answer.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    stream.shutdown().await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.0 200 OK"), "{reply}");
    assert!(reply.contains("lb_things_total 3"), "{reply}");

    // Headers past the bound are refused, not buffered.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = stream.write_all(huge.as_bytes()).await;
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(!reply.contains(" 200 "), "{reply}");

    shutdown.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
