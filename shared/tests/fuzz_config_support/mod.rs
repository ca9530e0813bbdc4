//! What the config fuzz tests of lb-shared, lb-director and lb-agent share (the other crates
//! include this file by path): TOML documents built from strategies, hostile edits of config
//! text, and the check that every reported problem names a key path of the document.

// Each test binary uses its own part of this module; a panic is the failure report.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lb_shared::config::{ConfigError, Problem};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use toml::{Table, Value};

/// proptest's settings for the fuzz tests: the case count from `PROPTEST_CASES` (256 when it
/// is unset), failures saved in `file` (relative to the crate) to be replayed first next time.
pub fn config(file: &'static str) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(file))),
        ..ProptestConfig::default()
    }
}

/// A key as an operator might write one: a word the readers know, or another plain word
/// (a typo, an unknown key).
pub fn key(known: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(known).prop_map(str::to_owned),
        1 => "[a-z_][a-z0-9_-]{0,8}",
    ]
}

/// A scalar of every TOML type, with the edges of each: empty and odd strings, integers
/// around the ranges the readers check, floats with NaN and infinities.
pub fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[ -~]{0,16}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
        (-70_000i64..70_000).prop_map(Value::Integer),
        any::<i64>().prop_map(Value::Integer),
        any::<f64>().prop_map(Value::Float),
        any::<bool>().prop_map(Value::Boolean),
        Just(Value::Datetime("1979-05-27T07:32:00Z".parse().unwrap())),
    ]
}

/// Any TOML value: scalars, arrays of them and tables, three levels deep.
pub fn value(known: &'static [&'static str]) -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 32, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key(known), inner, 0..6)
                .prop_map(|entries| Value::Table(entries.into_iter().collect())),
        ]
    })
}

/// A table with keys the readers know (and some they do not) holding any value.
pub fn table(known: &'static [&'static str]) -> impl Strategy<Value = Table> {
    proptest::collection::btree_map(key(known), value(known), 0..10)
        .prop_map(|entries| entries.into_iter().collect())
}

/// `valid` most of the time, any other value now and then (a wrong type, a bad string). A
/// config has a dozen keys or more, so each must be valid often for a whole config to be: one key in thirty is not.
pub fn mostly(
    valid: impl Strategy<Value = Value> + 'static,
    known: &'static [&'static str],
) -> BoxedStrategy<Value> {
    prop_oneof![30 => valid, 1 => value(known)].boxed()
}

/// A string from `valid` most of the time, from `invalid` or any value now and then.
pub fn pick(
    valid: &'static [&'static str],
    invalid: &'static [&'static str],
    known: &'static [&'static str],
) -> BoxedStrategy<Value> {
    let string = |choices| proptest::sample::select(choices).prop_map(|s: &str| s.to_owned());
    prop_oneof![
        30 => string(valid).prop_map(Value::String),
        1 => string(invalid).prop_map(Value::String),
        1 => value(known),
    ]
    .boxed()
}

/// Mostly nothing, now and then keys and values of any kind (unknown keys, typos).
pub fn extra(known: &'static [&'static str]) -> impl Strategy<Value = Table> {
    prop_oneof![30 => Just(Table::new()), 1 => table(known)]
}

/// Durations every duration key takes.
const USUAL_DURATIONS: &[&str] = &["1s", "2s", "5s", "6s", "30s", "1m", "5m", "1h", "24h"];

/// The largest durations each unit can write, and the first ones past them.
const EDGE_DURATIONS: &[&str] = &[
    "18446744073709551615ms",
    "18446744073709551615s",
    "18446744073709551616s",
    "307445734561825860m",
    "307445734561825861m",
    "5124095576030431h",
    "5124095576030432h",
    "9223372036854775807s",
    "0s",
    "0ms",
];

/// Durations as an operator writes them, good and bad: every unit, zero, numbers past what
/// `u64` holds and past what the clock can add, missing units, signs, spaces.
pub fn duration_text() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => proptest::sample::select(USUAL_DURATIONS).prop_map(str::to_owned),
        4 => ("[1-9][0-9]{0,3}", proptest::sample::select(&["ms", "s", "m", "h"][..]))
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        1 => ("[0-9]{12,22}", proptest::sample::select(&["ms", "s", "m", "h"][..]))
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        1 => proptest::sample::select(EDGE_DURATIONS).prop_map(str::to_owned),
        1 => "[0-9 .+-]{0,6}[a-z]{0,4}",
    ]
    .prop_map(Value::String)
}

/// Puts `value` under `key` when there is one (a key left out of the file).
pub fn set(table: &mut Table, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        table.insert(key.to_owned(), value);
    }
}

/// One hostile edit of config text.
#[derive(Debug, Clone)]
pub enum Edit {
    Insert { at: usize, text: String },
    Remove { at: usize, len: usize },
    Duplicate { at: usize, len: usize },
}

/// Text snippets that TOML and JSON parsers and the readers behind them trip over.
const NASTY: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "\"",
    "'''",
    "\"\"\"",
    "\n",
    "\\u0000",
    "#",
    ".",
    ",",
    "{",
    "}",
    "[service]\n",
    "[[service]]\n",
    "[timeouts]\n",
    "name = 1\n",
    "= =",
    "x.y.z = 1\n",
    "port = 99999999999999999999\n",
    "a = [[[[[[[[1]]]]]]]]\n",
    "a = {b = {c = {d = 1}}}\n",
    "\u{feff}",
    "\r\n",
    "\t",
    "nan",
    "inf",
    "1979-05-27",
    "0x",
    "1e999",
    // JSON, for the director's state file.
    "null",
    "\"version\": 2,",
    "\"\\ud800\"",
    "18446744073709551616",
    "-0",
    ":",
    "[[[[[[[[",
];

fn edit() -> impl Strategy<Value = Edit> {
    let text = prop_oneof![
        proptest::sample::select(NASTY).prop_map(str::to_owned),
        any::<String>(),
        "[ -~\n]{1,12}",
    ];
    prop_oneof![
        (any::<usize>(), text).prop_map(|(at, text)| Edit::Insert { at, text }),
        (any::<usize>(), 1usize..32).prop_map(|(at, len)| Edit::Remove { at, len }),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Edit::Duplicate { at, len }),
    ]
}

/// The nearest char boundary at or before `at % (len + 1)`.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

impl Edit {
    fn apply(&self, text: &mut String) {
        match self {
            Edit::Insert { at, text: piece } => {
                let at = boundary(text, *at);
                text.insert_str(at, piece);
            }
            Edit::Remove { at, len } => {
                let start = boundary(text, *at);
                let end = boundary(text, start + len).max(start);
                text.replace_range(start..end, "");
            }
            Edit::Duplicate { at, len } => {
                let start = boundary(text, *at);
                let end = boundary(text, start + len).max(start);
                let piece = text[start..end].to_owned();
                text.insert_str(end, &piece);
            }
        }
    }
}

/// `seed` with one to five hostile edits.
pub fn edited(seed: impl Into<String>) -> impl Strategy<Value = String> {
    let seed = seed.into();
    proptest::collection::vec(edit(), 1..=5).prop_map(move |edits| {
        let mut text = seed.clone();
        for e in &edits {
            e.apply(&mut text);
        }
        text
    })
}

/// Checks what a config reader said about `text`: a syntax error names the file; a list of
/// problems is not empty and each problem names a key path. With `document`, the text's own
/// table, each path must also lead somewhere in it: to the bad value, or, for a key that is
/// missing (or left to its default), to the table that lacks it.
pub fn check_error(error: &ConfigError, path: &str, document: Option<&Table>) {
    let shown = error.to_string();
    assert!(
        shown.contains(path),
        "the error does not name {path}: {shown}"
    );
    match error {
        ConfigError::Read { .. } => panic!("parsing text read a file: {shown}"),
        ConfigError::Syntax { message, .. } => assert!(!message.is_empty()),
        ConfigError::Invalid { problems, .. } => {
            assert!(!problems.is_empty(), "invalid, but no problem listed");
            for problem in problems {
                assert!(
                    !problem.key.is_empty(),
                    "a problem without a key: {problem}"
                );
                assert!(!problem.message.is_empty(), "a problem without a message");
                if let Some(document) = document {
                    assert_names_a_key_of(problem, document);
                }
            }
        }
    }
}

/// One step of a key path: `service[2]` is the key `service` and index 2.
fn steps(path: &str) -> Vec<(String, Option<usize>)> {
    split_path(path)
        .into_iter()
        .map(|step| {
            // A quoted key (the reader quotes keys that are not bare, such as "10.0.0.1") is
            // kept quoted: `key_in` matches it against the keys as Rust quotes them.
            if !step.starts_with('"') {
                if let Some((key, index)) = step.split_once('[') {
                    let index = index.trim_end_matches(']').parse().unwrap();
                    return (key.to_owned(), Some(index));
                }
            }
            (step, None)
        })
        .collect()
}

/// A key path split at the dots that are outside quotes.
fn split_path(path: &str) -> Vec<String> {
    let (mut steps, mut step, mut quoted, mut escaped) = (Vec::new(), String::new(), false, false);
    for c in path.chars() {
        match c {
            '.' if !quoted => steps.push(std::mem::take(&mut step)),
            '"' if !escaped => {
                quoted = !quoted;
                step.push(c);
            }
            _ => step.push(c),
        }
        escaped = c == '\\' && !escaped;
    }
    steps.push(step);
    steps
}

fn lookup<'a>(document: &'a Table, steps: &[(String, Option<usize>)]) -> Option<&'a Value> {
    let ((first, index), rest) = steps.split_first()?;
    let mut value = key_in(document, first)?;
    if let Some(i) = index {
        value = value.as_array()?.get(*i)?;
    }
    match rest {
        [] => Some(value),
        rest => lookup(value.as_table()?, rest),
    }
}

/// The value of `key` in `table`, `key` bare or quoted as the reader writes a key that is not.
fn key_in<'a>(table: &'a Table, key: &str) -> Option<&'a Value> {
    table.get(key).or_else(|| {
        table
            .iter()
            .find(|(k, _)| format!("{k:?}") == key)
            .map(|(_, v)| v)
    })
}

fn assert_names_a_key_of(problem: &Problem, document: &Table) {
    let steps = steps(&problem.key);
    if lookup(document, &steps).is_some() {
        return;
    }
    // A missing key: its table must exist, and the key must indeed be absent.
    let (last, parent) = steps.split_last().unwrap();
    let table = if parent.is_empty() {
        Some(document)
    } else {
        lookup(document, parent).and_then(Value::as_table)
    };
    let table = table.unwrap_or_else(|| panic!("{problem}: no table holds this key"));
    assert!(
        last.1.is_none() && key_in(table, &last.0).is_none(),
        "{problem}"
    );
}

/// A daemon adds these durations of its config to the current time: none may overflow it.
pub fn assert_fits_the_clock(durations: &[(&str, Duration)]) {
    let now = Instant::now();
    for (key, duration) in durations {
        let fits = now.checked_add(*duration).is_some();
        assert!(
            fits,
            "{key} = {duration:?} was accepted but overflows the clock"
        );
    }
}

/// The config texts that once broke a reader: every file in `tests/fuzz-regressions/config/`
/// of the crate at `manifest_dir`.
pub fn regression_texts(manifest_dir: &str) -> Vec<String> {
    let dir = Path::new(manifest_dir).join("tests/fuzz-regressions/config");
    let texts: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    assert!(
        !texts.is_empty(),
        "no regression inputs in {}",
        dir.display()
    );
    texts
}

/// A directory of PEM files for `[tls]`, made once per test binary: the files the example
/// configs name (a CA, the director's and llc5's certificate and key, real ones since the
/// loader checks that they hold together), and one that holds no PEM block.
pub fn tls_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        for name in ["llclb1", "llc5"] {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![name.to_owned()])
                .unwrap()
                .signed_by(&key, &ca)
                .unwrap();
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        std::fs::write(dir.path().join("not.pem"), [0x30, 0x82, 0x01]).unwrap();
        dir
    })
    .path()
}

/// An example config with its `[tls]` files in [`tls_dir`] instead of /etc/lb/tls.
pub fn with_test_tls(example: &str) -> String {
    example.replace("/etc/lb/tls/", &format!("{}/", tls_dir().display()))
}

/// A path for a `[tls]` key: mostly `good` in [`tls_dir`], now and then a file of the wrong
/// kind, a missing one, a directory, a relative path, or a device (/dev/zero never ends).
pub fn pem_path(good: &'static str) -> impl Strategy<Value = Value> {
    let dir = tls_dir();
    let path = |name: &str| dir.join(name).display().to_string();
    let bad = vec![
        path("not.pem"),
        path("missing.pem"),
        path(if good.ends_with(".key") {
            "ca.pem"
        } else {
            "llc5.key"
        }),
        dir.display().to_string(),
        "relative.pem".to_owned(),
        "/dev/null".to_owned(),
        "/dev/zero".to_owned(),
        String::new(),
    ];
    prop_oneof![
        12 => Just(path(good)),
        1 => proptest::sample::select(bad),
    ]
    .prop_map(Value::String)
}

/// A `[tls]` table with `cert` and `key` of the given names (and the CA), keys mostly there.
pub fn tls_table(
    cert: &'static str,
    key: &'static str,
    known: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    (
        proptest::option::weighted(0.98, pem_path("ca.pem")),
        proptest::option::weighted(0.98, pem_path(cert)),
        proptest::option::weighted(0.98, pem_path(key)),
        extra(known),
    )
        .prop_map(|(ca, cert, key, extra)| {
            let mut tls = extra;
            set(&mut tls, "ca", ca);
            set(&mut tls, "cert", cert);
            set(&mut tls, "key", key);
            Value::Table(tls)
        })
}

/// `files` as a `[tls]` table, for writing an accepted config out again.
pub fn tls_value(files: &lb_shared::tls::TlsFiles) -> Value {
    let mut tls = Table::new();
    for (key, file) in [
        ("ca", &files.ca),
        ("cert", &files.cert),
        ("key", &files.key),
    ] {
        let path = file.path.to_str().unwrap().to_owned();
        tls.insert(key.to_owned(), Value::String(path));
    }
    Value::Table(tls)
}
