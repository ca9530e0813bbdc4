//! The lb-director binary's own contract: bad config exits 64 listing every problem, before it
//! binds or touches anything; a kernel without IPVS is a clear error.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::process::Command;

fn director(config: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("director.toml");
    std::fs::write(&path, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_lb-director"))
        .arg("--config")
        .arg(&path)
        .env("LB_LOG", "info")
        .output()
        .unwrap()
}

#[test]
fn bad_config_exits_64_with_every_problem() {
    let out = director("listen = \"x\"\nlease_ttl = \"6\"\n[[service]]\nname = \"a b\"\nvip = \"1.2.3\"\nport = 22\ninterface = \"eth0\"\n");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for words in [
        "has 4 problem(s)",
        "listen = \"x\"",
        "lease_ttl = \"6\"",
        "service[0].name",
        "service[0].vip",
    ] {
        assert!(err.contains(words), "{words:?} missing from: {err}");
    }
}

#[test]
fn a_missing_config_file_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_lb-director"))
        .args(["--config", "/nonexistent/director.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cannot read config file /nonexistent/director.toml"));
}

#[test]
fn a_kernel_without_ipvs_is_a_clear_error() {
    if std::path::Path::new("/proc/net/ip_vs").exists() {
        eprintln!("skipped: this kernel has IPVS (the lab covers the real path)");
        return;
    }
    let out = director("listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\nstate_dir = \"/tmp/lb-director-test-noipvs\"\n[[service]]\nname = \"s\"\nvip = \"10.0.0.100\"\nport = 22\ninterface = \"eth0\"\n");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("IPVS is not available in this kernel: load ip_vs"),
        "{err}"
    );
}
