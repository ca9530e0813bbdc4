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

#[test]
fn json_logs_are_one_object_per_line_and_a_bad_format_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, "name = \"llc 5\"\n").unwrap();
    let run = |args: &[&str], format: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lb-agent"));
        command.arg("--config").arg(&path).args(args);
        command.env("LB_LOG", "info").env_remove("LB_LOG_FORMAT");
        if let Some(format) = format {
            command.env("LB_LOG_FORMAT", format);
        }
        command.output().unwrap()
    };
    for output in [run(&["--log-format", "json"], None), run(&[], Some("json"))] {
        assert_eq!(output.status.code(), Some(64));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let events: Vec<serde_json::Value> = stderr
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect();
        assert!(
            events.iter().any(|e| e["level"] == "ERROR"
                && e["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("name = \"llc 5\": contains ' '"))),
            "{stderr}"
        );
    }
    for output in [run(&["--log-format", "xml"], None), run(&[], Some("xml"))] {
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("[possible values: text, json]"), "{stderr}");
    }
}
