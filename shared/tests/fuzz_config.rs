//! Fuzzing of the config loader every daemon uses (`lb_shared::config::parse`, issue 6): any
//! text and any TOML document must come back as a value or as a list of problems that each
//! name a key path, never as a panic; a valid document read twice gives the same value. The
//! reader here also takes a `[tls]` section, whose files every component reads.
//! A few hundred cases per property in `cargo test`; `PROPTEST_CASES` raises it.

mod fuzz_config_support;

use std::path::Path;
use std::time::Duration;

use fuzz_config_support::*;
use lb_shared::config::{self, ConfigError, Section};
use lb_shared::domain::parse_name;
use lb_shared::duration;
use lb_shared::tls::TlsFiles;
use proptest::option;
use proptest::prelude::*;
use toml::{Table, Value};

const PATH: &str = "/etc/lb/fuzz.toml";
const KNOWN: &[&str] = &[
    "name", "port", "enabled", "when", "list", "sub", "items", "weight", "tls", "ca", "cert", "key",
];

/// What [`read`] takes out of a section: one key of each kind `Section` reads.
#[derive(Debug, Clone, PartialEq)]
struct Read {
    name: Option<String>,
    port: u16,
    enabled: bool,
    when: Option<Duration>,
    list: Vec<String>,
    sub: Option<Box<Read>>,
    items: Vec<(String, u32)>,
    tls: Option<TlsFiles>,
}

/// Reads every key before giving up on any, as the daemons' readers do: a key left unread
/// would be reported as unknown.
fn read(section: &Section<'_>, depth: u8) -> Option<Read> {
    let name = section.optional("name", parse_name);
    let port = section.integer::<u16>("port", 1..=65535, Some(7700));
    let enabled = section.boolean("enabled", false);
    let when = section.optional("when", duration::parse);
    let list = section.strings("list", parse_name);
    let sub = match depth {
        0..2 => section.table("sub").map(|t| read(&t, depth + 1)),
        _ => None,
    };
    let items: Vec<_> = section
        .tables("items")
        .iter()
        .map(|item| {
            let name = item.required("name", parse_name);
            let weight = item.integer::<u32>("weight", 0..=65535, None);
            Some((name?, weight?))
        })
        .collect();
    let tls = TlsFiles::read_section(section);
    Some(Read {
        name: name?,
        port: port?,
        enabled: enabled?,
        when: when?,
        list,
        sub: match sub {
            Some(inner) => Some(Box::new(inner?)),
            None => None,
        },
        items: items.into_iter().collect::<Option<_>>()?,
        tls: tls?,
    })
}

fn parse(text: &str) -> Result<Read, ConfigError> {
    config::parse(Path::new(PATH), text, |root| read(root, 0))
}

fn name() -> impl Strategy<Value = Value> {
    "[a-z0-9][a-z0-9.-]{0,12}".prop_map(Value::String)
}

/// A document in the shape [`read`] expects, each key mostly valid and sometimes missing,
/// plus now and then keys and values of any kind.
fn document() -> impl Strategy<Value = Table> {
    let item = (
        option::of(mostly(name(), KNOWN)),
        option::of(mostly((0i64..70_000).prop_map(Value::Integer), KNOWN)),
    )
        .prop_map(|(name, weight)| {
            let mut item = Table::new();
            set(&mut item, "name", name);
            set(&mut item, "weight", weight);
            Value::Table(item)
        });
    let section = (
        option::of(mostly(name(), KNOWN)),
        option::of(mostly((0i64..70_000).prop_map(Value::Integer), KNOWN)),
        option::of(mostly(any::<bool>().prop_map(Value::Boolean), KNOWN)),
        option::of(mostly(duration_text(), KNOWN)),
        option::of(mostly(
            proptest::collection::vec(name(), 0..4).prop_map(Value::Array),
            KNOWN,
        )),
        option::of(mostly(
            proptest::collection::vec(item, 0..4).prop_map(Value::Array),
            KNOWN,
        )),
        option::weighted(0.3, mostly(tls_table("llc5.pem", "llc5.key", KNOWN), KNOWN)),
        prop_oneof![4 => Just(Table::new()), 1 => table(KNOWN)],
    )
        .prop_map(|(name, port, enabled, when, list, items, tls, extra)| {
            let mut section = extra;
            set(&mut section, "name", name);
            set(&mut section, "port", port);
            set(&mut section, "enabled", enabled);
            set(&mut section, "when", when);
            set(&mut section, "list", list);
            set(&mut section, "items", items);
            set(&mut section, "tls", tls);
            section
        });
    (section.clone(), option::of(section)).prop_map(|(mut root, sub)| {
        set(&mut root, "sub", sub.map(Value::Table));
        root
    })
}

const SEED: &str = r#"
name = "llc5"
port = 22
enabled = true
when = "6s"
list = ["a", "b"]
[sub]
name = "inner"
[[items]]
name = "x"
weight = 3
"#;

proptest! {
    #![proptest_config(config("tests/proptest-regressions/fuzz_config.txt"))]

    #[test]
    fn any_text_is_read_or_refused_with_named_problems(
        text in prop_oneof![edited(SEED), any::<String>()]
    ) {
        if let Err(error) = parse(&text) {
            check_error(&error, PATH, text.parse().ok().as_ref());
        }
    }

    #[test]
    fn any_document_is_read_or_refused_with_problems_at_its_keys(document in document()) {
        let text = toml::to_string(&document).unwrap();
        match parse(&text) {
            Ok(value) => {
                // The document written out again by the TOML library reads the same.
                let again: toml::Table = text.parse().unwrap();
                prop_assert_eq!(parse(&toml::to_string(&again).unwrap()).unwrap(), value);
            }
            Err(ConfigError::Syntax { message, .. }) => {
                prop_assert!(false, "the TOML library's own output is not TOML: {message}\n{text}");
            }
            Err(error) => check_error(&error, PATH, Some(&document)),
        }
    }
}

#[test]
fn the_seed_reads_back_completely() {
    let value = parse(SEED).unwrap();
    assert_eq!(value.name.as_deref(), Some("llc5"));
    assert_eq!(value.when, Some(Duration::from_secs(6)));
    assert_eq!(value.items, vec![("x".to_owned(), 3)]);
    assert_eq!(value.sub.unwrap().name.as_deref(), Some("inner"));
}

#[test]
fn a_device_as_a_pem_file_is_refused_without_reading_it() {
    // /dev/zero never ends: reading it took all memory (found by fuzzing the agent's config).
    let text = "[tls]\nca = \"/dev/zero\"\ncert = \"/dev/zero\"\nkey = \"/dev/zero\"\n";
    let error = parse(text).unwrap_err().to_string();
    for key in ["ca", "cert", "key"] {
        let expected = format!("tls.{key} = \"/dev/zero\": is not a regular file");
        assert!(error.contains(&expected), "{error}");
    }
}
