//! TLS: loading PEM material and building the rustls server configuration.
//!
//! TLS 1.2 minimum (or 1.3 only), ALPN `h2` then `http/1.1`, no 0-RTT (rustls
//! never accepts early data unless asked) and no renegotiation (rustls does
//! not implement it). Client certificates are optional and, when presented,
//! must chain to `client_ca`.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{RootCertStore, ServerConfig};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Minimum TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    V1_2,
    /// TLS 1.3 only.
    V1_3,
}

impl TlsVersion {
    /// Every value, in the order the config documents them.
    pub const ALL: &'static [TlsVersion] = &[TlsVersion::V1_2, TlsVersion::V1_3];

    /// The config spelling of `min_version` (the only place it is written).
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        }
    }
}

/// `[tls]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Certificate chain file (absolute).
    pub cert: PathBuf,
    /// Private key file (absolute).
    pub key: PathBuf,
    /// Client CA file (absolute), enabling client-certificate identities.
    pub client_ca: Option<PathBuf>,
    /// Minimum protocol version.
    pub min_version: TlsVersion,
    /// Make development certificates when the files are missing.
    pub dev_certs: bool,
}

impl TlsSettings {
    /// True when dev certificates are enabled and some file is still missing.
    pub fn dev_certs_missing(&self) -> bool {
        self.dev_certs
            && [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
                .into_iter()
                .flatten()
                .any(|p| !p.exists())
    }
}

/// Why TLS material could not be loaded. Never contains key bytes.
#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    File(PathBuf, String),
    /// rustls refused the combination (for example a key that does not match the certificate).
    Config(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::File(p, m) => write!(f, "{}: {m}", p.display()),
            TlsError::Config(m) => write!(f, "TLS configuration: {m}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// The process-wide crypto provider: ring (no C toolchain beyond cc, fast on x86_64).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Read a PEM certificate chain (at least one certificate).
pub fn load_cert_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path)
        .map_err(|e| TlsError::File(path.into(), format!("cannot read certificate: {e}")))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::File(path.into(), format!("invalid PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::File(path.into(), "no CERTIFICATE found".into()));
    }
    Ok(certs)
}

/// Read a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path)
        .map_err(|e| TlsError::File(path.into(), format!("cannot read private key: {e}")))?;
    // The parse error names the PEM problem, never the key material.
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| TlsError::File(path.into(), format!("no usable private key: {e}")))
}

/// Read the CA certificates client certificates must chain to.
pub fn load_client_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_cert_chain(path)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::File(path.into(), format!("unusable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// Load the certificate chain and key and check that they belong together.
pub fn certified_key(settings: &TlsSettings) -> Result<CertifiedKey, TlsError> {
    let chain = load_cert_chain(&settings.cert)?;
    let key = load_private_key(&settings.key)?;
    // `from_der` refuses a key that does not match the certificate; say so
    // in words, not by rustls' variant name.
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsError::Config(format!(
                "{}: this private key does not belong to the certificate in {} \
                 (their public keys differ)",
                settings.key.display(),
                settings.cert.display()
            ))
        }
        e => TlsError::Config(format!(
            "{} with {}: {e}",
            settings.cert.display(),
            settings.key.display()
        )),
    })
}

/// Build the rustls server configuration from validated settings.
pub fn server_config(settings: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let key = certified_key(settings)?;
    server_config_with(settings, Arc::new(SingleCertAndKey::from(key)))
}

/// The client-certificate verifier `client_ca` asks for, if any.
pub fn client_verifier(
    settings: &TlsSettings,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, TlsError> {
    let Some(ca) = &settings.client_ca else {
        return Ok(None);
    };
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(load_client_roots(ca)?), provider())
            // A client certificate is one way to authenticate, not a requirement:
            // Basic and anonymous paths must still work without one.
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Some(verifier))
}

/// Build the rustls server configuration with a given certificate resolver
/// (the live one swaps certificates without rebuilding this).
pub fn server_config_with(
    settings: &TlsSettings,
    resolver: Arc<dyn ResolvesServerCert>,
) -> Result<ServerConfig, TlsError> {
    server_config_from(settings, client_verifier(settings)?, resolver)
}

/// Build the rustls server configuration from its parts.
pub fn server_config_from(
    settings: &TlsSettings,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    resolver: Arc<dyn ResolvesServerCert>,
) -> Result<ServerConfig, TlsError> {
    let versions: &[&rustls::SupportedProtocolVersion] = match settings.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.max_early_data_size = 0;
    Ok(config)
}

/// The subject CN of a (verified) client certificate, if it has one.
pub fn subject_cn(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?.as_str().ok()?;
    (!cn.is_empty()).then(|| cn.to_string())
}

/// `notAfter` of a certificate, Unix seconds (`None` if it does not parse).
pub fn not_after(cert: &CertificateDer<'_>) -> Option<i64> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(parsed.validity().not_after.timestamp())
}
