//! The client side: TLS settings and HTTP connections to a distribution
//! point, used by `fetch`, `bench` and the tests.

pub mod bench;
mod conn;
pub mod endpoint;
pub mod fetch;
pub mod fetch_error;
pub mod output;
pub mod package;
pub mod progress;
pub mod resume;
pub mod segments;
pub mod verify;

pub use conn::{ClientError, Conn, Protocol};
pub use endpoint::{Client, ClientOptions, Target};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::sync::Arc;

/// Build a rustls client configuration trusting `roots`, optionally
/// presenting a client certificate, offering `protocols` by ALPN.
pub fn client_config(
    roots: &[CertificateDer<'static>],
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    protocols: &[Protocol],
) -> Result<Arc<ClientConfig>, ClientError> {
    let mut store = RootCertStore::empty();
    for r in roots {
        store
            .add(r.clone())
            .map_err(|e| ClientError::Tls(format!("unusable CA certificate: {e}")))?;
    }
    let builder = ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(store);
    let mut config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| ClientError::Tls(format!("client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = protocols.iter().map(|p| p.alpn().to_vec()).collect();
    Ok(Arc::new(config))
}
