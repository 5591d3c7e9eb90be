//! TLS: reading the `tls-cert-file`, `tls-key-file` and `tls-ca-cert-file` PEM files once at
//! start, and turning them into what the two listeners and the peer channels need:
//! - the RESP TLS port's acceptor (rustls, ring provider), which asks for a client
//!   certificate as `tls-auth-clients` says and checks it against the CA;
//! - with `tls-replication yes`, tonic's server and client TLS settings for node-to-node
//!   gRPC: every node presents its certificate and requires one signed by the CA.
//!
//! Every file is parsed here, before anything listens, so a missing file, a file without a
//! certificate or key, or a key that does not belong to the certificate stops the node with
//! an error naming the option and the file, instead of failing at the first handshake.
//! Error texts never include the files' contents.
//!
//! The simulator's network has no TLS (madsim-tonic ignores TLS settings), so a simulated
//! build refuses TLS options with [`TlsError::Unsupported`], and [`Acceptor`] and
//! [`PeerTls`] are empty types there.

#[cfg(not(madsim))]
use std::path::Path;
use std::path::PathBuf;

use crate::config::TlsConfig;

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or does not hold what the option needs.
    #[error("{option} {path}: {reason}")]
    File {
        /// The option naming the file.
        option: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The certificate, key and CA do not make a usable TLS configuration.
    #[error("TLS configuration: {0}")]
    Setup(String),
    /// TLS was configured in a build that cannot serve it (the simulator).
    #[error("TLS is not available in the simulated build")]
    Unsupported,
}

/// The TLS material of a node, read and checked at start.
#[derive(Default)]
pub struct NodeTls {
    /// The RESP TLS port's acceptor, when `tls-port` is set.
    pub resp: Option<Acceptor>,
    /// Node-to-node TLS, when `tls-replication yes`.
    pub peers: Option<PeerTls>,
}

/// Accepts TLS connections on the RESP TLS port.
#[cfg(not(madsim))]
pub type Acceptor = tokio_rustls::TlsAcceptor;
/// Accepts TLS connections on the RESP TLS port (none exist in a simulated build).
#[cfg(madsim)]
#[derive(Clone)]
pub enum Acceptor {}

/// Node-to-node TLS: what the gRPC server presents and requires, and what the peer
/// channels present and trust.
#[cfg(not(madsim))]
#[derive(Clone)]
pub struct PeerTls {
    /// The gRPC server's settings: this node's certificate, client certificates required
    /// and checked against the CA.
    pub server: tonic::transport::ServerTlsConfig,
    /// The peer channels' settings: the CA to check a peer's certificate by, and this
    /// node's certificate to present.
    pub client: tonic::transport::ClientTlsConfig,
}

/// Node-to-node TLS (none exists in a simulated build).
#[cfg(madsim)]
#[derive(Clone)]
pub enum PeerTls {}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls")
    }
}

/// Reads and checks the files `config` names and builds what is switched on. Without
/// `tls-port` and `tls-replication`, reads nothing.
pub fn load(config: &TlsConfig) -> Result<NodeTls, TlsError> {
    if config.port.is_none() && !config.replication {
        return Ok(NodeTls::default());
    }
    load_files(config)
}

#[cfg(madsim)]
fn load_files(_config: &TlsConfig) -> Result<NodeTls, TlsError> {
    Err(TlsError::Unsupported)
}

#[cfg(not(madsim))]
fn load_files(config: &TlsConfig) -> Result<NodeTls, TlsError> {
    use std::sync::Arc;

    use crate::config::TlsAuthClients;
    use rustls::server::WebPkiClientVerifier;

    let (cert_path, key_path) = match (&config.cert_file, &config.key_file) {
        (Some(cert), Some(key)) => (cert, key),
        // Config validation requires both; a caller that skipped it gets an error, not a panic.
        _ => {
            return Err(TlsError::Setup(
                "tls-cert-file and tls-key-file are both required".into(),
            ))
        }
    };
    let cert_pem = read("tls-cert-file", cert_path)?;
    let key_pem = read("tls-key-file", key_path)?;
    let certs = parse_certs("tls-cert-file", cert_path, &cert_pem)?;
    let key = parse_key(key_path, &key_pem)?;
    let ca = match &config.ca_cert_file {
        None => None,
        Some(path) => {
            let pem = read("tls-ca-cert-file", path)?;
            let roots = root_store(path, &pem)?;
            Some((pem, Arc::new(roots)))
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let builder = match (&ca, config.auth_clients) {
        (_, TlsAuthClients::No) => builder.with_no_client_auth(),
        (Some((_, roots)), auth) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
            let verifier = if auth == TlsAuthClients::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Setup(format!("tls-ca-cert-file: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        (None, _) => {
            return Err(TlsError::Setup(
                "tls-ca-cert-file is required unless tls-auth-clients is no".into(),
            ))
        }
    };
    // Also checks that the key belongs to the certificate.
    let server = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Setup(format!("tls-cert-file and tls-key-file: {e}")))?;
    let resp = config
        .port
        .is_some()
        .then(|| tokio_rustls::TlsAcceptor::from(Arc::new(server)));
    let peers = if config.replication {
        let Some((ca_pem, _)) = &ca else {
            return Err(TlsError::Setup(
                "tls-ca-cert-file is required with tls-replication".into(),
            ));
        };
        let identity = tonic::transport::Identity::from_pem(&cert_pem, &key_pem);
        let ca = tonic::transport::Certificate::from_pem(ca_pem);
        Some(PeerTls {
            server: tonic::transport::ServerTlsConfig::new()
                .identity(identity.clone())
                .client_ca_root(ca.clone())
                .client_auth_optional(false),
            client: tonic::transport::ClientTlsConfig::new()
                .ca_certificate(ca)
                .identity(identity),
        })
    } else {
        None
    };
    Ok(NodeTls { resp, peers })
}

#[cfg(not(madsim))]
fn read(option: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        option,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(not(madsim))]
fn parse_certs(
    option: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let file_error = |reason: String| TlsError::File {
        option,
        path: path.to_path_buf(),
        reason,
    };
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(file_error("holds no PEM certificate".into()));
    }
    Ok(certs)
}

#[cfg(not(madsim))]
fn parse_key(
    path: &Path,
    pem: &[u8],
) -> Result<rustls::pki_types::PrivateKeyDer<'static>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    // The parser's error names the PEM section at most, never key material.
    rustls::pki_types::PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::File {
        option: "tls-key-file",
        path: path.to_path_buf(),
        reason: format!("holds no usable PEM private key: {e}"),
    })
}

#[cfg(not(madsim))]
fn root_store(path: &Path, pem: &[u8]) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in parse_certs("tls-ca-cert-file", path, pem)? {
        roots.add(cert).map_err(|e| TlsError::File {
            option: "tls-ca-cert-file",
            path: path.to_path_buf(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use crate::config::TlsAuthClients;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    fn settings(cert: PathBuf, key: PathBuf, ca: Option<PathBuf>) -> TlsConfig {
        TlsConfig {
            port: Some(0),
            cert_file: Some(cert),
            key_file: Some(key),
            ca_cert_file: ca,
            auth_clients: TlsAuthClients::No,
            replication: false,
        }
    }

    #[test]
    fn bad_files_are_errors_naming_the_option() {
        let dir = tempfile::tempdir().expect("tempdir");
        let junk = write(dir.path(), "junk.pem", "not a certificate\n");
        let missing = dir.path().join("missing.pem");
        let error = load(&settings(missing.clone(), junk.clone(), None))
            .err()
            .expect("missing file refused");
        assert!(error.to_string().starts_with("tls-cert-file "), "{error}");
        let error = load(&settings(junk.clone(), junk.clone(), None))
            .err()
            .expect("junk refused");
        assert!(
            error.to_string().contains("holds no PEM certificate"),
            "{error}"
        );
        let mut with_ca = settings(junk.clone(), junk, None);
        with_ca.auth_clients = TlsAuthClients::Yes;
        assert!(load(&with_ca).is_err());
        // Nothing is read when TLS is off.
        assert!(load(&TlsConfig::default()).is_ok());
    }
}
