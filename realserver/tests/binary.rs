//! The lb-agent binary's promises that need no root: bad config exits 64 listing every problem
//! before anything is touched.

use std::process::Command;

fn lb_agent(config: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lb-agent"))
        .arg("--config")
        .arg(config)
        .env("LB_LOG", "info")
        .output()
        .unwrap_or_else(|e| panic!("cannot run lb-agent: {e}"))
}

#[test]
fn a_bad_config_exits_64_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        "director = \"udp://10.0.0.2\"\nname = \"llc 5\"\n[[service]]\nweight = 70000\n",
    )
    .unwrap();
    let output = lb_agent(&path);
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "has 5 problem(s)",
        r#"director = "udp://10.0.0.2": must start with http:// or https://"#,
        r#"name = "llc 5": contains ' '"#,
        "address: is required",
        "service[0].name: is required",
        "service[0].weight = 70000: must be between 0 and 65535",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} missing from:\n{stderr}"
        );
    }
}

#[test]
fn a_missing_config_file_exits_64_naming_it() {
    let output = lb_agent(std::path::Path::new("/nonexistent/lb/agent.toml"));
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot read config file /nonexistent/lb/agent.toml"),
        "{stderr}"
    );
}
