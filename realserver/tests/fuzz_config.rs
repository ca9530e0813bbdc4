//! Fuzzing of the agent's config reader (`AgentConfig::parse`, issue 6): any text and any
//! document in the config's shape is read or refused with problems that name key paths,
//! never a panic or a hang; an accepted config written out again reads back the same, and
//! the agent can use every value it accepted. A few hundred cases per property in
//! `cargo test`; `PROPTEST_CASES` raises it.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

#[path = "../../shared/tests/fuzz_config_support/mod.rs"]
mod fuzz_config_support;

use std::path::Path;

use fuzz_config_support::*;
use lb_realserver::config::ConfigError;
use lb_realserver::AgentConfig;
use lb_shared::duration;
use proptest::option;
use proptest::prelude::*;
use toml::{Table, Value};

const PATH: &str = "/etc/lb/agent.toml";
const EXAMPLE: &str = include_str!("../../deploy/agent.example.toml");
const REGRESSIONS: &str = "tests/proptest-regressions/fuzz_config.txt";
const KNOWN: &[&str] = &[
    "director",
    "directors",
    "tls",
    "ca",
    "cert",
    "key",
    "name",
    "address",
    "rule_check_interval",
    "deregister_timeout",
    "metrics_listen",
    "service",
    "weight",
];

/// One `[[service]]`, from a small pool of names so that duplicates happen.
fn service() -> impl Strategy<Value = Value> {
    let weight = prop_oneof![
        30 => mostly((0i64..=65535).prop_map(Value::Integer), KNOWN),
        1 => proptest::sample::select(vec![-1i64, 65536, i64::MAX]).prop_map(Value::Integer),
    ];
    (
        option::weighted(
            0.98,
            pick(&["llc-ssh", "web", "dns", "ntp"], &["bad name", ""], KNOWN),
        ),
        option::of(weight),
        extra(KNOWN),
    )
        .prop_map(|(name, weight, extra)| {
            let mut service = extra;
            set(&mut service, "name", name);
            set(&mut service, "weight", weight);
            Value::Table(service)
        })
}

/// An agent config, each key mostly valid and sometimes missing or of another kind. The
/// name is always there or always valid: without it the agent falls back to this machine's
/// hostname, which the test does not control.
fn document() -> impl Strategy<Value = Table> {
    // The scheme decides whether [tls] belongs: mostly they agree.
    let http = pick(
        &["http://129.129.190.53:7700", "http://[2001:db8::2]:7700"],
        &[
            "ftp://x",
            "http://",
            "http://h/path",
            "http://h?q",
            "nowhere",
            "http://h:99999",
        ],
        KNOWN,
    );
    let https = pick(
        &["https://lb.example:7700", "https://10.0.0.2"],
        &["https://"],
        KNOWN,
    );
    let tls = || mostly(tls_table("llc5.pem", "llc5.key", KNOWN), KNOWN);
    let director_and_tls = prop_oneof![
        (http, option::weighted(0.05, tls())),
        (https, option::weighted(0.95, tls())),
    ];
    // Sometimes a `directors` list as well or instead, with duplicates and too many.
    let listed = pick(
        &[
            "http://10.0.0.2:7700",
            "http://10.0.0.3:7700",
            "https://10.0.0.4:7700",
        ],
        &["ftp://x", "nowhere"],
        KNOWN,
    );
    let directors = option::weighted(
        0.3,
        (
            mostly(
                proptest::collection::vec(listed, 0..10).prop_map(Value::Array),
                KNOWN,
            ),
            any::<bool>(),
        ),
    );
    (
        (option::weighted(0.98, director_and_tls), directors),
        pick(
            &["llc5", "llc6", "rs-1.example"],
            &["bad name", "-x"],
            KNOWN,
        ),
        option::weighted(
            0.98,
            pick(
                &["129.129.190.175", "2001:db8::11"],
                &["0.0.0.0", "ff02::1", "x"],
                KNOWN,
            ),
        ),
        option::of(mostly(duration_text(), KNOWN)),
        option::of(mostly(duration_text(), KNOWN)),
        option::weighted(
            0.98,
            mostly(
                proptest::collection::vec(service(), 1..4).prop_map(Value::Array),
                KNOWN,
            ),
        ),
        extra(KNOWN),
    )
        .prop_map(
            |(
                (director_and_tls, directors),
                name,
                address,
                rule_check,
                deregister,
                services,
                extra,
            )| {
                let mut root = extra;
                let (director, tls) = director_and_tls.unzip();
                set(&mut root, "director", director);
                if let Some((list, instead)) = directors {
                    if instead {
                        root.remove("director");
                    }
                    root.insert("directors".into(), list);
                }
                set(&mut root, "tls", tls.flatten());
                root.insert("name".into(), name);
                set(&mut root, "address", address);
                set(&mut root, "rule_check_interval", rule_check);
                set(&mut root, "deregister_timeout", deregister);
                set(&mut root, "service", services);
                root
            },
        )
}

/// `config` as a file, every key written out.
fn to_toml(config: &AgentConfig) -> String {
    let mut root = Table::new();
    let string = |s: String| Value::String(s);
    match config.directors.as_slice() {
        [one] => root.insert("director".into(), string(one.to_string())),
        several => root.insert(
            "directors".into(),
            Value::Array(several.iter().map(|d| string(d.to_string())).collect()),
        ),
    };
    if let Some(tls) = &config.tls {
        root.insert("tls".into(), tls_value(tls));
    }
    root.insert("name".into(), string(config.name.clone()));
    root.insert("address".into(), string(config.address.to_string()));
    let rule_check = duration::format(config.rule_check_interval);
    root.insert("rule_check_interval".into(), string(rule_check));
    let deregister = duration::format(config.deregister_timeout);
    root.insert("deregister_timeout".into(), string(deregister));
    let metrics = config.metrics_listen.map(|a| a.to_string());
    root.insert("metrics_listen".into(), string(metrics.unwrap_or_default()));
    let services = config.services.iter().map(|s| {
        let mut t = Table::new();
        t.insert("name".into(), string(s.name.clone()));
        t.insert("weight".into(), Value::Integer(i64::from(s.weight)));
        Value::Table(t)
    });
    root.insert("service".into(), Value::Array(services.collect()));
    toml::to_string(&root).unwrap()
}

fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
    AgentConfig::parse(Path::new(PATH), text)
}

/// What the agent does with an accepted config must not fail on its values: it adds the
/// rule check interval and the deregistration timeout to the current time.
fn assert_usable(config: &AgentConfig) {
    assert_fits_the_clock(&[
        ("rule_check_interval", config.rule_check_interval),
        ("deregister_timeout", config.deregister_timeout),
    ]);
}

/// Reads `text` on another thread, failing if that takes more than a few seconds: reading a
/// config is quick unless it reads from something that never ends.
fn parse_within_deadline(text: &str) -> Result<AgentConfig, ConfigError> {
    let (done, wait) = std::sync::mpsc::channel();
    let owned = text.to_owned();
    std::thread::spawn(move || {
        let _ = done.send(parse(&owned));
    });
    wait.recv_timeout(std::time::Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("reading the config did not finish ({e}):\n{text}"))
}

fn check(text: &str, document: Option<&Table>) {
    match parse_within_deadline(text) {
        Ok(config) => {
            assert_usable(&config);
            assert_eq!(
                parse(&to_toml(&config)).unwrap(),
                config,
                "written out again"
            );
        }
        Err(error) => check_error(&error, PATH, document),
    }
}

proptest! {
    #![proptest_config(config(REGRESSIONS))]

    #[test]
    fn any_text_is_read_or_refused_with_named_problems(
        text in prop_oneof![edited(with_test_tls(EXAMPLE)), any::<String>()]
    ) {
        check(&text, text.parse().ok().as_ref());
    }

    #[test]
    fn any_document_is_read_or_refused_with_problems_at_its_keys(document in document()) {
        check(&toml::to_string(&document).unwrap(), Some(&document));
    }

    /// Durations and the TLS files get a property of their own: in a whole random document
    /// a bad one is rarely the only problem, so an accepted one the agent cannot use would
    /// hide.
    #[test]
    fn any_duration_or_tls_file_in_the_example_is_usable_or_refused_by_name(
        rule_check in duration_text(),
        deregister in duration_text(),
        ca in pem_path("ca.pem"),
        cert in pem_path("llc5.pem"),
        key in pem_path("llc5.key"),
    ) {
        let dir = tls_dir().display().to_string();
        let text = with_test_tls(EXAMPLE)
            .replace(&format!("ca = \"{dir}/ca.pem\""), &format!("ca = {ca}"))
            .replace(&format!("cert = \"{dir}/llc5.pem\""), &format!("cert = {cert}"))
            .replace(&format!("key = \"{dir}/llc5.key\""), &format!("key = {key}"))
            .replace("# rule_check_interval = \"5s\"", &format!("rule_check_interval = {rule_check}"))
            .replace("# deregister_timeout = \"3s\"", &format!("deregister_timeout = {deregister}"));
        check(&text, Some(&text.parse().unwrap()));
    }
}

#[test]
fn the_example_config_reads_back_the_same() {
    let example = with_test_tls(EXAMPLE);
    check(&example, Some(&example.parse().unwrap()));
}

#[test]
fn inputs_that_once_failed_are_refused_or_usable() {
    for text in regression_texts(env!("CARGO_MANIFEST_DIR")) {
        check(&text, Some(&text.parse().unwrap()));
    }
}

#[test]
fn a_device_as_a_tls_file_is_refused_without_reading_it() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions/config/tls_files_dev_zero.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let error = parse_within_deadline(&text).unwrap_err().to_string();
    assert!(
        error.contains("tls.ca = \"/dev/zero\": is not a regular file"),
        "{error}"
    );
}
