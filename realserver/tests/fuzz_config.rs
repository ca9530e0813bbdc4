//! Fuzzing of the agent's config reader (`AgentConfig::parse`, issue 6): any text and any
//! document in the config's shape is read or refused with problems that name key paths,
//! never a panic or a hang; an accepted config written out again reads back the same, and
//! the agent can use every value it accepted. A few hundred cases per property in
//! `cargo test`; `PROPTEST_CASES` raises it.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

#[path = "../../shared/tests/fuzz_config_support/mod.rs"]
mod fuzz_config_support;

use std::path::Path;
use std::sync::OnceLock;

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
    "director_ca",
    "name",
    "address",
    "rule_check_interval",
    "deregister_timeout",
    "service",
    "weight",
];

/// Files `director_ca` may name: a PEM certificate, a file that is none, a directory, and
/// devices, which are no files at all (/dev/zero never ends).
struct CaFiles {
    dir: tempfile::TempDir,
}

fn ca_files() -> &'static CaFiles {
    static FILES: OnceLock<CaFiles> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        std::fs::write(dir.path().join("ca.pem"), pem).unwrap();
        std::fs::write(dir.path().join("ca.der"), [0x30, 0x82, 0x01]).unwrap();
        CaFiles { dir }
    })
}

fn ca_path() -> impl Strategy<Value = Value> {
    let dir = ca_files().dir.path();
    let path = |name: &str| dir.join(name).display().to_string();
    let good = vec![path("ca.pem")];
    let bad = vec![
        path("ca.der"),
        path("missing.pem"),
        dir.display().to_string(),
        "/dev/null".to_owned(),
        "/dev/zero".to_owned(),
        String::new(),
    ];
    prop_oneof![
        3 => proptest::sample::select(good),
        1 => proptest::sample::select(bad),
    ]
    .prop_map(Value::String)
}

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
    let director = pick(
        &[
            "http://129.129.190.53:7700",
            "https://lb.example:7700",
            "http://[2001:db8::2]:7700",
            "https://10.0.0.2",
        ],
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
    (
        option::weighted(0.98, director),
        option::weighted(0.2, ca_path()),
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
            |(director, ca, name, address, rule_check, deregister, services, extra)| {
                let mut root = extra;
                set(&mut root, "director", director);
                set(&mut root, "director_ca", ca);
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
    root.insert("director".into(), string(config.director.to_string()));
    if let Some(ca) = &config.director_ca {
        root.insert("director_ca".into(), string(ca.path.clone()));
    }
    root.insert("name".into(), string(config.name.clone()));
    root.insert("address".into(), string(config.address.to_string()));
    let rule_check = duration::format(config.rule_check_interval);
    root.insert("rule_check_interval".into(), string(rule_check));
    let deregister = duration::format(config.deregister_timeout);
    root.insert("deregister_timeout".into(), string(deregister));
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
        text in prop_oneof![edited(EXAMPLE), any::<String>()]
    ) {
        check(&text, text.parse().ok().as_ref());
    }

    #[test]
    fn any_document_is_read_or_refused_with_problems_at_its_keys(document in document()) {
        check(&toml::to_string(&document).unwrap(), Some(&document));
    }

    /// Durations and the CA file get a property of their own: in a whole random document a
    /// bad one is rarely the only problem, so an accepted one the agent cannot use would hide.
    #[test]
    fn any_duration_or_ca_file_in_the_example_is_usable_or_refused_by_name(
        rule_check in duration_text(),
        deregister in duration_text(),
        ca in ca_path(),
    ) {
        let text = EXAMPLE
            .replace("http://129.129.190.53:7700", "https://129.129.190.53:7700")
            .replace("# director_ca = \"/etc/lb/director-ca.pem\"", &format!("director_ca = {ca}"))
            .replace("# rule_check_interval = \"5s\"", &format!("rule_check_interval = {rule_check}"))
            .replace("# deregister_timeout = \"3s\"", &format!("deregister_timeout = {deregister}"));
        check(&text, Some(&text.parse().unwrap()));
    }
}

#[test]
fn the_example_config_reads_back_the_same() {
    check(EXAMPLE, Some(&EXAMPLE.parse().unwrap()));
}

#[test]
fn inputs_that_once_failed_are_refused_or_usable() {
    for text in regression_texts(env!("CARGO_MANIFEST_DIR")) {
        check(&text, Some(&text.parse().unwrap()));
    }
}

#[test]
fn a_device_as_director_ca_is_refused_without_reading_it() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions/config/director_ca_dev_zero.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let error = parse_within_deadline(&text).unwrap_err().to_string();
    assert!(
        error.contains("director_ca = \"/dev/zero\": is not a regular file"),
        "{error}"
    );
}
