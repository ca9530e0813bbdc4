//! The `[tls]` section every component shares: `ca`, `cert`, `key` (PEM files), read and checked
//! when the config is loaded, so a wrong path or a bad file is a config error naming the key,
//! not a failure at the first connection or after the kernel was touched.

mod server;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use server::{server_config, FileError, TlsError, TlsKey, TlsProblem, ALPN_H2};

use crate::config::Section;

/// A PEM file's path and contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemFile {
    pub path: PathBuf,
    pub pem: Vec<u8>,
}

/// Mutual TLS material: the CA that signs every party of the cluster, and this party's own
/// certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PemFile,
    pub cert: PemFile,
    pub key: PemFile,
}

impl TlsFiles {
    /// Reads `[tls]` from `parent`, if present; every bad key is recorded as a problem. The
    /// files are checked as the director will use them (see [`server_config`]): the agent's
    /// certificate, key and CA must hold together just the same.
    pub fn read_section(parent: &Section<'_>) -> Option<Option<TlsFiles>> {
        let Some(tls) = parent.table("tls") else {
            return Some(None);
        };
        let ca = tls.required("ca", |p| read_pem(p, "CERTIFICATE"));
        let cert = tls.required("cert", |p| read_pem(p, "CERTIFICATE"));
        let key = tls.required("key", |p| read_pem(p, "PRIVATE KEY"));
        let files = TlsFiles {
            ca: ca?,
            cert: cert?,
            key: key?,
        };
        if let Err(error) = server_config(&files) {
            for problem in error.problems {
                let value = toml::Value::String(problem.path.to_string_lossy().into_owned());
                tls.problem(
                    problem.key.name(),
                    &value.to_string(),
                    problem.error.to_string(),
                );
            }
            return None;
        }
        Some(Some(files))
    }

    /// Reads the three files named on a command line (lbctl).
    pub fn read(ca: &Path, cert: &Path, key: &Path) -> Result<TlsFiles, String> {
        let named = |path: &Path, label| {
            read_pem(&path.to_string_lossy(), label).map_err(|e| format!("{}: {e}", path.display()))
        };
        Ok(TlsFiles {
            ca: named(ca, "CERTIFICATE")?,
            cert: named(cert, "CERTIFICATE")?,
            key: named(key, "PRIVATE KEY")?,
        })
    }
}

/// Far more than a certificate, a key or a CA bundle needs (a host's whole trust store is
/// about 200 KiB); a larger file is not what the key means.
const MAX_PEM_LEN: u64 = 1024 * 1024;

/// Reads a PEM file and checks it holds a block whose label ends in `label` ("CERTIFICATE",
/// "PRIVATE KEY" which also matches "EC PRIVATE KEY" and "RSA PRIVATE KEY").
pub fn read_pem(path: &str, label: &str) -> Result<PemFile, String> {
    let path = PathBuf::from(path);
    if !path.is_absolute() {
        return Err("must be an absolute path".into());
    }
    let cannot = |e: std::io::Error| format!("cannot read it: {e}");
    // A device such as /dev/zero never ends and a FIFO may never start: reading either took
    // all memory or hung the start (found by fuzzing). Only a regular file is read.
    if !std::fs::metadata(&path).map_err(cannot)?.is_file() {
        return Err("is not a regular file".into());
    }
    let mut pem = Vec::new();
    std::fs::File::open(&path)
        .and_then(|file| file.take(MAX_PEM_LEN + 1).read_to_end(&mut pem))
        .map_err(cannot)?;
    if pem.len() as u64 > MAX_PEM_LEN {
        return Err(format!(
            "is larger than {} KiB: not a PEM file",
            MAX_PEM_LEN / 1024
        ));
    }
    let text = String::from_utf8_lossy(&pem);
    let holds = text.lines().any(|line| {
        line.strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
            .is_some_and(|found| found.ends_with(label))
    });
    if !holds {
        return Err(format!("holds no PEM {label} block"));
    }
    Ok(PemFile { path, pem })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_files_are_checked_for_their_kind() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(read_pem(cert.to_str().unwrap(), "CERTIFICATE").is_ok());
        assert!(read_pem(key.to_str().unwrap(), "PRIVATE KEY").is_ok());
        assert_eq!(
            read_pem(key.to_str().unwrap(), "CERTIFICATE").unwrap_err(),
            "holds no PEM CERTIFICATE block"
        );
        assert!(read_pem("relative.pem", "CERTIFICATE").is_err());
        assert!(read_pem("/nonexistent/x.pem", "CERTIFICATE")
            .unwrap_err()
            .starts_with("cannot read it"));
    }
}
