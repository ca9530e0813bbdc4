use super::*;

const SEED: &str = r#"
director = "http://129.129.190.53:7700"
name = "llc5"
address = "129.129.190.175"
[[service]]
name = "llc-ssh"
weight = 1
"#;

fn parse_as(hostname: &str, text: &str) -> Result<AgentConfig, ConfigError> {
    let hostname = hostname.to_owned();
    config::parse(Path::new("agent.toml"), text, |root| {
        read(root, || Ok(hostname))
    })
}

/// The problems an operator would read, one line each.
fn problems(text: &str) -> Vec<String> {
    match parse_as("llc5", text) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { problems, .. }) => {
            problems.iter().map(ToString::to_string).collect()
        }
        Err(other) => vec![other.to_string()],
    }
}

/// `SEED` with the line starting with `key =` replaced by `line` (or removed if empty).
fn seed_with(key: &str, line: &str) -> String {
    let mut found = false;
    let text = SEED
        .lines()
        .map(|l| {
            if !found && l.starts_with(&format!("{key} =")) {
                found = true;
                line
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(found, "SEED has no {key}");
    text
}

#[test]
fn the_seed_realserver_reads_with_defaults() {
    let config = parse_as("ignored", SEED).unwrap();
    assert_eq!(config.directors[0].authority(), "129.129.190.53:7700");
    assert!(!config.directors[0].is_https());
    assert_eq!(config.name, "llc5");
    assert_eq!(config.address, "129.129.190.175".parse::<IpAddr>().unwrap());
    assert_eq!(
        config.services,
        vec![ServiceConfig {
            name: "llc-ssh".into(),
            weight: 1
        }]
    );
    assert_eq!(config.weight_of("llc-ssh"), Some(1));
    assert_eq!(config.weight_of("other"), None);
    assert_eq!(config.rule_check_interval, Duration::from_secs(5));
    assert_eq!(config.deregister_timeout, Duration::from_secs(3));
}

#[test]
fn optional_keys_are_read() {
    let text = format!(
        "{SEED}\n[[service]]\nname = \"llc-x\"\nweight = 0\n[[service]]\nname = \"llc-y\"\n"
    )
    .replace(
        "address =",
        "rule_check_interval = \"500ms\"\nderegister_timeout = \"1s\"\naddress =",
    );
    let config = parse_as("llc5", &text).unwrap();
    assert_eq!(config.rule_check_interval, Duration::from_millis(500));
    assert_eq!(config.deregister_timeout, Duration::from_secs(1));
    assert_eq!(config.weight_of("llc-x"), Some(0));
    assert_eq!(config.weight_of("llc-y"), Some(1), "weight defaults to 1");
}

#[test]
fn name_defaults_to_the_hostname() {
    let config = parse_as("llc6.psi.ch", &seed_with("name", "")).unwrap();
    assert_eq!(config.name, "llc6.psi.ch");
}

#[test]
fn an_unusable_hostname_asks_for_a_name() {
    let err = parse_as("bad host", &seed_with("name", "")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("name: is not set and the hostname \"bad host\" contains ' '"),
        "{text}"
    );
}

#[test]
fn each_bad_field_is_named_with_its_value() {
    let cases = [
        (
            "director",
            r#"director = "ftp://10.0.0.2:7700""#,
            r#"director = "ftp://10.0.0.2:7700": must start with http:// or https://"#,
        ),
        (
            "director",
            r#"director = "10.0.0.2:7700""#,
            r#"director = "10.0.0.2:7700": must start with http:// or https://"#,
        ),
        (
            "director",
            r#"director = "http://10.0.0.2:7700/lb""#,
            r#"director = "http://10.0.0.2:7700/lb": must not have a path"#,
        ),
        (
            "director",
            r#"director = "http:// bad""#,
            r#"director = "http:// bad": is not a URL"#,
        ),
        (
            "director",
            "director = 7700",
            "director = 7700: must be a string",
        ),
        ("director", "", "director: is required"),
        (
            "name",
            r#"name = "llc 5""#,
            r#"name = "llc 5": contains ' '"#,
        ),
        (
            "name",
            r#"name = "-llc5""#,
            r#"name = "-llc5": must start with a letter or digit"#,
        ),
        (
            "address",
            r#"address = "129.129.190""#,
            r#"address = "129.129.190": is not an IP address"#,
        ),
        (
            "address",
            r#"address = "0.0.0.0""#,
            r#"address = "0.0.0.0": must be a unicast address"#,
        ),
        ("address", "", "address: is required"),
        (
            "weight",
            "weight = 65536",
            "service[0].weight = 65536: must be between 0 and 65535",
        ),
        (
            "weight",
            "weight = -1",
            "service[0].weight = -1: must be between 0 and 65535",
        ),
        (
            "weight",
            r#"weight = "1""#,
            r#"service[0].weight = "1": must be a whole number"#,
        ),
        (
            "name = \"llc-ssh\"",
            r#"name = "llc ssh""#,
            r#"service[0].name = "llc ssh": contains ' '"#,
        ),
    ];
    for (key, line, expected) in cases {
        // The service's name line is the second `name =` line: replace it by its full text.
        let text = if key.starts_with("name = ") {
            SEED.replace(key, line)
        } else {
            seed_with(key, line)
        };
        let found = problems(&text);
        assert_eq!(found.len(), 1, "{line}: {found:?}");
        assert!(found[0].starts_with(expected), "{line}: got {found:?}");
    }
}

#[test]
fn durations_must_be_positive_durations() {
    let text = SEED.replace(
        "address =",
        "rule_check_interval = \"0s\"\nderegister_timeout = \"3\"\naddress =",
    );
    assert_eq!(
        problems(&text),
        vec![
            r#"rule_check_interval = "0s": must be longer than 0s"#.to_string(),
            r#"deregister_timeout = "3": "3" has no unit: write for example "500ms", "6s" or "2m""#
                .to_string(),
        ]
    );
}

#[test]
fn services_are_required_and_unique() {
    let no_service = "director = \"http://10.0.0.2:7700\"\naddress = \"10.0.0.11\"\n";
    let found = problems(no_service);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("service: at least one [[service]] is required"));

    let twice = format!("{SEED}\n[[service]]\nname = \"llc-ssh\"\nweight = 2\n");
    assert_eq!(
        problems(&twice),
        vec![r#"service[1].name = "llc-ssh": is listed twice: give each service once"#]
    );

    let missing_name = format!("{SEED}\n[[service]]\nweight = 2\n");
    assert_eq!(
        problems(&missing_name),
        vec!["service[1].name: is required"]
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
director = "udp://x"
name = "a/b"
address = "::"
rule_check_intervall = "5s"
[[service]]
name = ""
weight = 70000
colour = "blue"
"#;
    assert_eq!(
        problems(text),
        vec![
            r#"director = "udp://x": must start with http:// or https://"#,
            r#"name = "a/b": contains '/': use letters, digits, '-', '_' and '.' only"#,
            r#"address = "::": must be a unicast address"#,
            r#"service[0].name = "": must not be empty"#,
            "service[0].weight = 70000: must be between 0 and 65535",
            r#"service[0].colour = "blue": unknown key: remove it or check its spelling"#,
            r#"rule_check_intervall = "5s": unknown key: remove it or check its spelling"#,
        ]
    );
}

#[test]
fn the_shipped_example_is_valid() {
    // Its [tls] names files under /etc/lb/tls: make real ones elsewhere and point there.
    let pki = tempfile::tempdir().unwrap();
    lb_director::certs::init_ca(pki.path(), "test CA").unwrap();
    lb_director::certs::issue(pki.path(), "llc5", &[], &[]).unwrap();
    let text = include_str!("../../../deploy/agent.example.toml")
        .replace("/etc/lb/tls", pki.path().to_str().unwrap());
    let config = parse_as("ignored", &text).unwrap();
    assert!(config.directors[0].is_https());
    assert!(config.tls.is_some());
    assert_eq!(config.name, "llc5");
    assert_eq!(config.directors[0].authority(), "129.129.190.53:7700");
    assert_eq!(config.address.to_string(), "129.129.190.175");
    assert_eq!(config.weight_of("llc-ssh"), Some(1));

    // Its commented-out `directors` line, written in place of `director`, holds too.
    let ha = text
        .replace("director = \"https://129.129.190.53:7700\"\n", "")
        .replace("# directors = [", "directors = [");
    let config = parse_as("ignored", &ha).unwrap();
    assert_eq!(config.directors.len(), 2);
    assert!(config.directors.iter().all(DirectorUrl::is_https));
}

#[test]
fn an_https_director_needs_tls_files_and_http_takes_none() {
    // Real files: the loader checks that certificate, key and CA hold together.
    let pki = tempfile::tempdir().unwrap();
    lb_director::certs::init_ca(pki.path(), "test CA").unwrap();
    lb_director::certs::issue(pki.path(), "llc5", &[], &[]).unwrap();
    let ca = pki.path().join("ca.pem");
    let cert = pki.path().join("llc5.pem");
    let key = pki.path().join("llc5.key");
    let https = "https://lb.example:7700";
    let config = parse_as("llc5", &format!(
        "director = \"{https}\"\naddress = \"10.0.0.11\"\n[[service]]\nname = \"llc-ssh\"\n[tls]\nca = {a:?}\ncert = {c:?}\nkey = {k:?}\n",
        a = ca.display().to_string(),
        c = cert.display().to_string(),
        k = key.display().to_string()
    ))
    .unwrap();
    assert!(config.directors[0].is_https());
    assert_eq!(config.directors[0].authority(), "lb.example:7700");
    assert!(config
        .tls
        .unwrap()
        .cert
        .pem
        .starts_with(b"-----BEGIN CERTIFICATE"));

    let found = problems(&format!(
        "director = \"{https}\"\naddress = \"10.0.0.11\"\n[[service]]\nname = \"llc-ssh\"\n"
    ));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("tls: an https:// director needs [tls]"),
        "{found:?}"
    );

    let found = problems(&format!(
        "director = \"http://10.0.0.2:7700\"\naddress = \"10.0.0.11\"\n[[service]]\nname = \"llc-ssh\"\n[tls]\nca = {c:?}\ncert = {c:?}\nkey = {c:?}\n",
        c = cert.display().to_string()
    ));
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].ends_with("holds no PEM PRIVATE KEY block"),
        "{found:?}"
    );
    assert_eq!(found[1], "tls: is only used with an https:// director");
}

#[test]
fn metrics_listen_defaults_to_loopback_and_can_be_off() {
    let config = parse_as("llc5", SEED).unwrap();
    assert_eq!(
        config.metrics_listen,
        Some("127.0.0.1:9771".parse().unwrap())
    );
    let off = parse_as("llc5", &format!("metrics_listen = \"\"\n{SEED}")).unwrap();
    assert_eq!(off.metrics_listen, None);
    assert_eq!(
        problems(&format!("metrics_listen = \"localhost\"\n{SEED}")),
        vec!["metrics_listen = \"localhost\": is not an address and port: write for example \"127.0.0.1:9770\", or \"\" to serve no metrics"]
    );
}

#[test]
fn directors_lists_every_director_and_director_stays_one() {
    let two = seed_with(
        "director",
        r#"directors = ["http://10.0.0.2:7700", "http://10.0.0.3:7700"]"#,
    );
    let config = parse_as("llc5", &two).unwrap();
    let authorities: Vec<&str> = config.directors.iter().map(|d| d.authority()).collect();
    assert_eq!(authorities, ["10.0.0.2:7700", "10.0.0.3:7700"]);
    let one = parse_as("llc5", SEED).unwrap();
    assert_eq!(one.directors.len(), 1);
}

#[test]
fn each_bad_director_in_the_list_is_named_by_its_index() {
    let cases = [
        (
            r#"directors = ["http://10.0.0.2:7700", "ftp://10.0.0.3:7700"]"#,
            vec![r#"directors[1] = "ftp://10.0.0.3:7700": must start with http:// or https://"#],
        ),
        (
            r#"directors = ["http://10.0.0.2:7700", "http://10.0.0.2:7700"]"#,
            vec![
                r#"directors[1] = "http://10.0.0.2:7700": is listed twice: give each director once"#,
            ],
        ),
        (
            r#"directors = []"#,
            vec!["directors = []: must list at least one director URL"],
        ),
        (
            r#"directors = "http://10.0.0.2:7700""#,
            vec![r#"directors = "http://10.0.0.2:7700": must be a list of strings"#],
        ),
        (
            r#"directors = ["http://10.0.0.2:7700", 7700]"#,
            vec!["directors[1] = 7700: must be a string (in double quotes)"],
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(problems(&seed_with("director", line)), expected, "{line}");
    }
    let nine: Vec<String> = (1..=9)
        .map(|i| format!("\"http://10.0.0.{i}:7700\""))
        .collect();
    let found = problems(&seed_with(
        "director",
        &format!("directors = [{}]", nine.join(", ")),
    ));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("directors = [") && found[0].ends_with("lists 9 directors: at most 8"),
        "{found:?}"
    );
}

#[test]
fn director_and_directors_exclude_each_other() {
    let both = format!("directors = [\"http://10.0.0.3:7700\"]\n{SEED}");
    assert_eq!(
        problems(&both),
        vec!["directors: cannot be set together with director: keep one of them"]
    );
    let neither = seed_with("director", "");
    assert_eq!(
        problems(&neither),
        vec!["director: is required: the director's URL, or directors = [URL, ...] for several"]
    );
}

#[test]
fn one_https_director_in_the_list_needs_tls() {
    let mixed = seed_with(
        "director",
        r#"directors = ["http://10.0.0.2:7700", "https://10.0.0.3:7700"]"#,
    );
    let found = problems(&mixed);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("tls: an https:// director needs [tls]"),
        "{found:?}"
    );
}
