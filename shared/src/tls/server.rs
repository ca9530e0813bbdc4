//! The one place that turns `[tls]` files into a rustls server configuration. The config
//! loaders call it to validate, so a certificate that does not parse, a key of another pair or
//! a CA file with nothing usable is a config error naming its key before anything is touched;
//! the director's acceptor calls it to serve, at start and at every certificate rotation.

use std::fmt;
use std::path::PathBuf;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::time::ASN1Time;

use super::{PemFile, TlsFiles};

/// The ALPN protocol gRPC speaks; clients that offer only something else are refused.
pub const ALPN_H2: &[u8] = b"h2";

/// Which `[tls]` key a problem belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsKey {
    Ca,
    Cert,
    Key,
}

impl TlsKey {
    /// The key's name in `[tls]`.
    pub fn name(self) -> &'static str {
        match self {
            TlsKey::Ca => "ca",
            TlsKey::Cert => "cert",
            TlsKey::Key => "key",
        }
    }
}

/// What is wrong with one of the files; the message leaves out the path, which the config
/// problem and [`TlsError`] already show.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("holds no PEM CERTIFICATE block")]
    NoCertificate,
    #[error("certificate {index} is not valid PEM: {source}")]
    Pem {
        index: usize,
        #[source]
        source: pem::Error,
    },
    #[error("certificate {index} does not parse as X.509: {source}")]
    Certificate {
        index: usize,
        #[source]
        source: x509_parser::nom::Err<x509_parser::error::X509Error>,
    },
    #[error("certificate {index} has expired: it was valid from {not_before} until {not_after}")]
    Expired {
        index: usize,
        not_before: ASN1Time,
        not_after: ASN1Time,
    },
    #[error(
        "certificate {index} is not valid yet: it is valid from {not_before} until {not_after}"
    )]
    NotYetValid {
        index: usize,
        not_before: ASN1Time,
        not_after: ASN1Time,
    },
    #[error("certificate {index} cannot be a trust anchor: {source}")]
    Anchor {
        index: usize,
        #[source]
        source: rustls::Error,
    },
    #[error("holds no usable CA certificate: {0}")]
    NoAnchor(#[source] VerifierBuilderError),
    #[error("holds no usable private key (PKCS#8, SEC1 or PKCS#1 PEM): {0}")]
    KeyPem(#[source] pem::Error),
    #[error("is not a private key rustls can use: {0}")]
    Key(#[source] rustls::Error),
    #[error("is not usable with the certificate in {}: {source}", cert.display())]
    Mismatch {
        cert: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// One problem, with the key and file it belongs to.
#[derive(Debug)]
pub struct TlsProblem {
    pub key: TlsKey,
    pub path: PathBuf,
    pub error: FileError,
}

impl fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tls.{} {}: {}",
            self.key.name(),
            self.path.display(),
            self.error
        )
    }
}

/// Every problem found in the three files (at least one), so an operator fixes them in one go.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct TlsError {
    pub problems: Vec<TlsProblem>,
}

/// Builds the server side of mutual TLS from `files`: the certificate chain and its key, client
/// certificates required and verified against the CA, ALPN `h2`. Every file is checked on its
/// own first (each certificate parses, the leaf is within its dates), so one call reports
/// everything that is wrong.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let mut problems = Vec::new();
    let mut note = |key, file: &PemFile, errors: Vec<FileError>| {
        problems.extend(errors.into_iter().map(|error| TlsProblem {
            key,
            path: file.path.clone(),
            error,
        }))
    };
    let roots = certificates(&files.ca, false).and_then(anchors);
    let chain = certificates(&files.cert, true);
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    // Loaded here as well as by rustls below, so that a broken key is reported on its own key
    // and not as a mismatch, together with whatever else is wrong.
    let key = PrivateKeyDer::from_pem_slice(&files.key.pem)
        .map_err(FileError::KeyPem)
        .and_then(
            |key| match provider.key_provider.load_private_key(key.clone_key()) {
                Ok(_) => Ok(key),
                Err(e) => Err(FileError::Key(e)),
            },
        )
        .map_err(|e| vec![e]);
    let verifier = roots.and_then(|roots| {
        WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .map_err(|e| vec![FileError::NoAnchor(e)])
    });
    let (verifier, chain, key) = match (verifier, chain, key) {
        (Ok(verifier), Ok(chain), Ok(key)) => (verifier, chain, key),
        (verifier, chain, key) => {
            note(TlsKey::Ca, &files.ca, verifier.err().unwrap_or_default());
            note(TlsKey::Cert, &files.cert, chain.err().unwrap_or_default());
            note(TlsKey::Key, &files.key, key.err().unwrap_or_default());
            return Err(TlsError { problems });
        }
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain, key)
        });
    match config {
        Ok(mut config) => {
            config.alpn_protocols = vec![ALPN_H2.to_vec()];
            Ok(config)
        }
        // The versions cannot fail with ring's provider: what remains is a key rustls cannot
        // use, or one of another pair than the certificate.
        Err(source) => {
            let cert = files.cert.path.clone();
            note(
                TlsKey::Key,
                &files.key,
                vec![FileError::Mismatch { cert, source }],
            );
            Err(TlsError { problems })
        }
    }
}

/// The certificates of a PEM file, each parsed; with `leaf_dates`, the first must be valid now.
fn certificates(
    file: &PemFile,
    leaf_dates: bool,
) -> Result<Vec<CertificateDer<'static>>, Vec<FileError>> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for (index, item) in CertificateDer::pem_slice_iter(&file.pem).enumerate() {
        let index = index + 1;
        let der = match item {
            Ok(der) => der,
            Err(source) => {
                errors.push(FileError::Pem { index, source });
                continue;
            }
        };
        match X509Certificate::from_der(&der) {
            Err(source) => errors.push(FileError::Certificate { index, source }),
            Ok((_, cert)) if leaf_dates && index == 1 => {
                if let Err(e) = within_dates(index, &cert) {
                    errors.push(e);
                }
            }
            Ok(_) => {}
        }
        found.push(der);
    }
    if found.is_empty() && errors.is_empty() {
        errors.push(FileError::NoCertificate);
    }
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(errors)
    }
}

fn within_dates(index: usize, cert: &X509Certificate<'_>) -> Result<(), FileError> {
    let validity = cert.validity();
    let (not_before, not_after) = (validity.not_before, validity.not_after);
    let now = ASN1Time::now();
    if now < not_before {
        Err(FileError::NotYetValid {
            index,
            not_before,
            not_after,
        })
    } else if now > not_after {
        Err(FileError::Expired {
            index,
            not_before,
            not_after,
        })
    } else {
        Ok(())
    }
}

fn anchors(ca: Vec<CertificateDer<'static>>) -> Result<RootCertStore, Vec<FileError>> {
    let mut roots = RootCertStore::empty();
    for (index, der) in ca.into_iter().enumerate() {
        roots.add(der).map_err(|source| {
            vec![FileError::Anchor {
                index: index + 1,
                source,
            }]
        })?;
    }
    Ok(roots)
}
