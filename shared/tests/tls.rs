//! `[tls]` files are checked when the config is read, each problem on its own key: a certificate
//! that does not parse, a key of another pair, a CA with nothing usable, a certificate out of
//! its dates. A good set builds the server configuration the director serves with.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::path::Path;

use lb_shared::config::{self, ConfigError, Problem};
use lb_shared::tls::{server_config, TlsFiles};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use time::{Duration, OffsetDateTime};

/// A CA and, in `dir`, `ca.pem`, `leaf.pem` and `leaf.key` it signed (valid from `from` days to
/// `until` days from now), plus `other.key` of another pair.
fn write_set(dir: &Path, from: i64, until: i64) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["llclb1".to_owned()]).unwrap();
    let now = OffsetDateTime::now_utc();
    params.not_before = now + Duration::days(from);
    params.not_after = now + Duration::days(until);
    let leaf = params.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("leaf.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("leaf.key"), key.serialize_pem()).unwrap();
    let other = KeyPair::generate().unwrap();
    std::fs::write(dir.join("other.key"), other.serialize_pem()).unwrap();
    // Well-formed PEM around bytes that are no certificate.
    std::fs::write(
        dir.join("garbage.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
}

/// Reads `[tls]` with the three files named from `dir`.
fn read(dir: &Path, ca: &str, cert: &str, key: &str) -> Result<Option<TlsFiles>, Vec<Problem>> {
    let d = dir.display();
    let text = format!("[tls]\nca = \"{d}/{ca}\"\ncert = \"{d}/{cert}\"\nkey = \"{d}/{key}\"\n");
    match config::parse(
        Path::new("/etc/lb/test.toml"),
        &text,
        TlsFiles::read_section,
    ) {
        Ok(files) => Ok(files),
        Err(ConfigError::Invalid { problems, .. }) => Err(problems),
        Err(other) => panic!("not a problem list: {other}"),
    }
}

fn only_problem(result: Result<Option<TlsFiles>, Vec<Problem>>) -> Problem {
    let mut problems = result.unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    problems.remove(0)
}

#[test]
fn a_good_set_builds_a_server_config_with_h2() {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), -1, 30);
    let files = read(dir.path(), "ca.pem", "leaf.pem", "leaf.key")
        .unwrap()
        .unwrap();
    let config = server_config(&files).unwrap();
    assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
}

#[test]
fn a_key_of_another_pair_is_a_problem_of_tls_key() {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), -1, 30);
    let p = only_problem(read(dir.path(), "ca.pem", "leaf.pem", "other.key"));
    assert_eq!(p.key, "tls.key");
    assert!(
        p.message
            .starts_with("is not usable with the certificate in"),
        "{p}"
    );
}

#[test]
fn a_certificate_that_does_not_parse_is_a_problem_of_its_key() {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), -1, 30);
    let p = only_problem(read(dir.path(), "ca.pem", "garbage.pem", "leaf.key"));
    assert_eq!(p.key, "tls.cert");
    assert!(
        p.message
            .starts_with("certificate 1 does not parse as X.509"),
        "{p}"
    );
    let p = only_problem(read(dir.path(), "garbage.pem", "leaf.pem", "leaf.key"));
    assert_eq!(p.key, "tls.ca");
}

#[test]
fn every_bad_file_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), -1, 30);
    let problems = read(dir.path(), "garbage.pem", "garbage.pem", "ca.pem").unwrap_err();
    let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
    // The key file holds no PEM key block at all: the label check names it before parsing.
    assert_eq!(keys, ["tls.key"], "{problems:?}");
    std::fs::write(
        dir.path().join("bad.key"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let problems = read(dir.path(), "garbage.pem", "garbage.pem", "bad.key").unwrap_err();
    let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["tls.ca", "tls.cert", "tls.key"], "{problems:?}");
}

#[test]
fn a_certificate_out_of_its_dates_says_the_dates() {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), -30, -1);
    let p = only_problem(read(dir.path(), "ca.pem", "leaf.pem", "leaf.key"));
    assert_eq!(p.key, "tls.cert");
    assert!(
        p.message
            .starts_with("certificate 1 has expired: it was valid from "),
        "{p}"
    );
    assert!(p.message.contains(" until "), "{p}");

    write_set(dir.path(), 2, 30);
    let p = only_problem(read(dir.path(), "ca.pem", "leaf.pem", "leaf.key"));
    assert_eq!(p.key, "tls.cert");
    assert!(
        p.message.starts_with("certificate 1 is not valid yet"),
        "{p}"
    );
}
