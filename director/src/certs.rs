//! `lbctl certs`: a small private CA for the cluster's mutual TLS, so nobody writes openssl
//! incantations by hand. `init` makes the CA in a directory; `issue` signs a certificate whose
//! DNS name is the party's name (what the director checks: an agent's name, an admin's name)
//! plus any extra DNS names and IP addresses the party is reached at (the director's).

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} already exists: remove it first to replace it")]
    Exists { path: PathBuf },
    #[error("making the certificate for {name}: {source}")]
    Generate {
        name: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("{name:?} is not a usable name: {reason}")]
    Name { name: String, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes a new file, refusing to overwrite (a replaced CA would orphan every certificate).
fn write_new(path: &Path, contents: &str, mode: u32) -> Result<(), CertError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                CertError::Exists {
                    path: path.to_owned(),
                }
            } else {
                CertError::Io {
                    path: path.to_owned(),
                    source: e,
                }
            }
        })?;
    file.write_all(contents.as_bytes()).map_err(io(path))
}

fn generate(name: &str) -> impl FnOnce(rcgen::Error) -> CertError + '_ {
    move |source| CertError::Generate {
        name: name.to_owned(),
        source,
    }
}

/// Makes `DIR/ca.pem` and `DIR/ca.key` (mode 0600), valid for ten years.
pub fn init_ca(dir: &Path, common_name: &str) -> Result<Vec<PathBuf>, CertError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(3650);
    let key = KeyPair::generate().map_err(generate(common_name))?;
    let ca = CertifiedIssuer::self_signed(params, key).map_err(generate(common_name))?;
    let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    write_new(&key_path, &ca.key().serialize_pem(), 0o600)?;
    write_new(&cert_path, &ca.pem(), 0o644)?;
    Ok(vec![cert_path, key_path])
}

/// Signs `DIR/NAME.pem` and `DIR/NAME.key` with the CA in `DIR`, for client and server use,
/// valid for two years. The first DNS name is `name` itself.
pub fn issue(
    dir: &Path,
    name: &str,
    dns: &[String],
    ips: &[IpAddr],
) -> Result<Vec<PathBuf>, CertError> {
    lb_shared::domain::validate_name(name).map_err(|reason| CertError::Name {
        name: name.to_owned(),
        reason,
    })?;
    let ca_cert_path = dir.join(CA_CERT);
    let ca_key_path = dir.join(CA_KEY);
    let ca_pem = std::fs::read_to_string(&ca_cert_path).map_err(io(&ca_cert_path))?;
    let ca_key_pem = std::fs::read_to_string(&ca_key_path).map_err(io(&ca_key_path))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(generate(name))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(generate(name))?;

    let mut names: Vec<String> = vec![name.to_owned()];
    names.extend(dns.iter().filter(|d| *d != name).cloned());
    let mut params = CertificateParams::new(names).map_err(generate(name))?;
    params
        .subject_alt_names
        .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(730);
    let key = KeyPair::generate().map_err(generate(name))?;
    let cert = params.signed_by(&key, &issuer).map_err(generate(name))?;
    let (cert_path, key_path) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    write_new(&key_path, &key.serialize_pem(), 0o600)?;
    write_new(&cert_path, &cert.pem(), 0o644)?;
    Ok(vec![cert_path, key_path])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_signs_named_certificates_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path(), "lb test CA").unwrap();
        let files = issue(dir.path(), "llclb1", &[], &["10.0.0.2".parse().unwrap()]).unwrap();
        assert_eq!(files[0], dir.path().join("llclb1.pem"));
        let pem = std::fs::read_to_string(&files[0]).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files[1]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "private keys are owner-only");
        assert!(matches!(
            init_ca(dir.path(), "again"),
            Err(CertError::Exists { .. })
        ));
        assert!(matches!(
            issue(dir.path(), "llclb1", &[], &[]),
            Err(CertError::Exists { .. })
        ));
        assert!(matches!(
            issue(dir.path(), "bad name", &[], &[]),
            Err(CertError::Name { .. })
        ));
    }
}
