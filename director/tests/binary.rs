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

/// Every line of `stderr` as a JSON object; panics naming the first line that is not one.
fn json_lines(stderr: &[u8]) -> Vec<serde_json::Value> {
    let text = String::from_utf8_lossy(stderr);
    assert!(!text.trim().is_empty(), "nothing was logged");
    text.lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .filter(serde_json::Value::is_object)
                .unwrap_or_else(|| panic!("not a JSON object: {line:?}\nin:\n{text}"))
        })
        .collect()
}

fn director_with(config: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("director.toml");
    std::fs::write(
        &path,
        config.replace("STATE", &dir.path().display().to_string()),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_lb-director"))
        .arg("--config")
        .arg(&path)
        .args(args)
        .env("LB_LOG", "info")
        .env_remove("LB_LOG_FORMAT")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn json_logs_are_one_object_per_line_even_for_a_bad_config() {
    let bad = "listen = \"x\"\n[[service]]\nname = \"a b\"\n";
    for (args, env) in [
        (&["--log-format", "json"][..], &[][..]),
        (&[][..], &[("LB_LOG_FORMAT", "json")][..]),
    ] {
        let out = director_with(bad, args, env);
        assert_eq!(out.status.code(), Some(64));
        let lines = json_lines(&out.stderr);
        let error = lines
            .iter()
            .find(|l| l["level"] == "ERROR")
            .expect("no error line");
        let message = error["fields"]["message"].as_str().unwrap();
        assert!(message.contains("problem(s)"), "{message}");
        assert!(message.contains("listen = \"x\""), "{message}");
    }
}

#[test]
fn json_logs_of_a_start_that_fails_on_the_kernel() {
    if std::path::Path::new("/proc/net/ip_vs").exists() {
        eprintln!("skipped: this kernel has IPVS (the lab covers the real path)");
        return;
    }
    let config = "listen = \"127.0.0.1:0\"\nstate_dir = \"STATE\"\n[[service]]\nname = \"s\"\nvip = \"10.0.0.100\"\nport = 22\ninterface = \"eth0\"\n";
    let out = director_with(config, &["--log-format", "json"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out.stderr);
    assert!(
        lines.iter().any(|l| l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("IPVS is not available"))),
        "{lines:#?}"
    );
}

#[test]
fn an_unknown_log_format_is_a_usage_error_naming_the_choices() {
    let good = "listen = \"127.0.0.1:0\"\n";
    for (args, env) in [
        (&["--log-format", "xml"][..], &[][..]),
        (&[][..], &[("LB_LOG_FORMAT", "xml")][..]),
    ] {
        let out = director_with(good, args, env);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid value 'xml'"), "{err}");
        assert!(err.contains("[possible values: text, json]"), "{err}");
    }
}
