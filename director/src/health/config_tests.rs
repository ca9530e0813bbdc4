use std::path::Path;

use lb_shared::config::{self, ConfigError};

use super::*;

/// Reads `[[service]]` tables holding only `protocol` and `[service.check]`.
fn read(text: &str) -> Result<Vec<CheckConfig>, Vec<String>> {
    let result = config::parse(Path::new("director.toml"), text, |root| {
        root.tables("service")
            .iter()
            .map(|s| {
                let protocol = s.optional("protocol", str::parse::<Protocol>)?;
                read_check(s, CheckedService::Port(protocol.unwrap_or(Protocol::Tcp)))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .collect()
    });
    result.map_err(|e| match e {
        ConfigError::Invalid { problems, .. } => problems.iter().map(|p| p.to_string()).collect(),
        other => vec![other.to_string()],
    })
}

fn one(text: &str) -> CheckConfig {
    read(text).expect("a valid check").remove(0)
}

fn problems(check: &str) -> Vec<String> {
    read(&format!("[[service]]\n[service.check]\n{check}\n")).expect_err("a bad check")
}

#[test]
fn without_a_check_tcp_services_get_a_connect_and_others_none() {
    let tcp = one("[[service]]\nprotocol = \"tcp\"\n");
    assert_eq!(
        tcp,
        CheckConfig {
            port: None,
            kind: CheckKind::Tcp,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            fall: 3,
            rise: 2,
        }
    );
    for protocol in ["udp", "sctp"] {
        let check = one(&format!("[[service]]\nprotocol = \"{protocol}\"\n"));
        assert_eq!(check.kind, CheckKind::None);
    }
    // An empty table is the defaults too.
    assert_eq!(one("[[service]]\n[service.check]\n"), tcp);
}

#[test]
fn every_key_is_read() {
    let check = one(
        "[[service]]\n[service.check]\ntype = \"ssh\"\ninterval = \"5s\"\ntimeout = \"500ms\"\nfall = 1\nrise = 4\n",
    );
    assert_eq!(
        check,
        CheckConfig {
            port: None,
            kind: CheckKind::Ssh,
            interval: Duration::from_secs(5),
            timeout: Duration::from_millis(500),
            fall: 1,
            rise: 4,
        }
    );
    let udp = one("[[service]]\nprotocol = \"udp\"\n[service.check]\ntype = \"none\"\n");
    assert_eq!(udp.kind, CheckKind::None);
}

#[test]
fn each_bad_value_names_its_key() {
    let cases: &[(&str, &str)] = &[
        (
            "type = \"http\"",
            "service[0].check.type = \"http\": unknown check type: use tcp, ssh or none",
        ),
        (
            "type = 1",
            "service[0].check.type = 1: must be a string (in double quotes)",
        ),
        (
            "interval = \"2\"",
            "service[0].check.interval = \"2\": \"2\" has no unit: write for example \"500ms\", \"6s\" or \"2m\"",
        ),
        (
            "interval = \"10ms\"",
            "service[0].check.interval = \"10ms\": must be at least 100ms",
        ),
        (
            "interval = \"2h\"",
            "service[0].check.interval = \"2h\": must be at most 1h",
        ),
        (
            "timeout = \"0s\"",
            "service[0].check.timeout = \"0s\": must be at least 10ms",
        ),
        (
            "timeout = \"2s\"",
            "service[0].check.timeout = \"2s\": must be shorter than interval (2s)",
        ),
        (
            "interval = \"500ms\"",
            "service[0].check.timeout = \"1s\": must be shorter than interval (500ms)",
        ),
        (
            "fall = 0",
            "service[0].check.fall = 0: must be between 1 and 1000",
        ),
        (
            "fall = \"3\"",
            "service[0].check.fall = \"3\": must be a whole number",
        ),
        (
            "rise = 0",
            "service[0].check.rise = 0: must be between 1 and 1000",
        ),
        (
            "rise = 1001",
            "service[0].check.rise = 1001: must be between 1 and 1000",
        ),
        (
            "kind = \"ssh\"",
            "service[0].check.kind = \"ssh\": unknown key: remove it or check its spelling",
        ),
    ];
    for (check, expected) in cases {
        assert_eq!(problems(check), vec![expected.to_string()], "{check}");
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    assert_eq!(
        problems("type = \"x\"\ninterval = \"0s\"\ntimeout = \"x\"\nfall = 0\nrise = -1"),
        vec![
            "service[0].check.type = \"x\": unknown check type: use tcp, ssh or none",
            "service[0].check.interval = \"0s\": must be at least 100ms",
            "service[0].check.timeout = \"x\": \"x\" does not start with a number: write for example \"6s\"",
            "service[0].check.fall = 0: must be between 1 and 1000",
            "service[0].check.rise = -1: must be between 1 and 1000",
        ]
    );
}

#[test]
fn a_connect_check_on_udp_or_sctp_is_refused() {
    let found = read("[[service]]\nprotocol = \"udp\"\n[service.check]\ntype = \"ssh\"\n")
        .expect_err("ssh on udp");
    assert_eq!(
        found,
        vec!["service[0].check.type = \"ssh\": a udp service cannot be checked with ssh (a TCP connection): use none"]
    );
}

#[test]
fn a_check_that_is_not_a_table_is_a_problem() {
    let found = read("[[service]]\ncheck = \"ssh\"\n").expect_err("not a table");
    assert_eq!(found, vec!["service[0].check = \"ssh\": must be a table"]);
}
