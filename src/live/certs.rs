//! Live TLS material: the certificate, its key and the client CA can change
//! while the server runs.
//!
//! The certificate and key sit behind a [`CertResolver`] (a
//! `ResolvesServerCert` over an `ArcSwap<CertifiedKey>`), so rotating them
//! keeps the rustls `ServerConfig` (and its session tickets). A change of the
//! client CA or of `min_version` builds a new `ServerConfig` around the same
//! resolver; the accept loop takes the current one for every handshake. This
//! swaps the client verifier whole, which keeps the CA names that rustls sends
//! in its certificate request correct (a delegating verifier could not borrow
//! them through a swap). Nothing changes unless all new material loads.

use crate::config::TlsSettings;
use crate::tls::{self, TlsError};
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use tokio_rustls::TlsAcceptor;

/// Serves whatever certificate is current to every new handshake.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// What the verifier was built from; a change means a new `ServerConfig`.
#[derive(PartialEq, Eq)]
struct VerifierInputs {
    settings: TlsSettings,
    ca_pem: Option<Vec<u8>>,
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsChange {
    /// SHA-256 fingerprint of the new leaf certificate, when it changed.
    pub new_cert: Option<String>,
    /// True when the client CA or protocol versions changed.
    pub verifier: bool,
}

/// The TLS configuration new handshakes use.
pub struct TlsState {
    resolver: Arc<CertResolver>,
    config: ArcSwap<ServerConfig>,
    inputs: Mutex<VerifierInputs>,
}

impl TlsState {
    /// Load the material named by `settings`.
    pub fn new(settings: &TlsSettings) -> Result<TlsState, TlsError> {
        let resolver = Arc::new(CertResolver {
            current: ArcSwap::from_pointee(tls::certified_key(settings)?),
        });
        let inputs = inputs_of(settings)?;
        let config = tls::server_config_with(settings, resolver.clone())?;
        Ok(TlsState {
            resolver,
            config: ArcSwap::from_pointee(config),
            inputs: Mutex::new(inputs),
        })
    }

    /// An acceptor with the configuration in force now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.load_full())
    }

    /// SHA-256 fingerprint (hex) of the certificate served now.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.resolver.current.load())
    }

    /// Load the material again. On any error nothing changes: the old
    /// certificate and verifier stay in force.
    pub fn reload(&self, settings: &TlsSettings) -> Result<TlsChange, TlsError> {
        let key = tls::certified_key(settings)?;
        let inputs = inputs_of(settings)?;
        // One reload at a time: the watcher is the only caller, this only guards the inputs.
        let mut current = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        let new_config = if *current != inputs {
            Some(tls::server_config_with(settings, self.resolver.clone())?)
        } else {
            None
        };
        let mut change = TlsChange::default();
        let old = self.resolver.current.load();
        if old.cert != key.cert {
            change.new_cert = Some(fingerprint(&key));
            self.resolver.current.store(Arc::new(key));
        }
        if let Some(config) = new_config {
            self.config.store(Arc::new(config));
            *current = inputs;
            change.verifier = true;
        }
        Ok(change)
    }
}

fn inputs_of(settings: &TlsSettings) -> Result<VerifierInputs, TlsError> {
    let ca_pem = match &settings.client_ca {
        Some(p) => Some(
            std::fs::read(p)
                .map_err(|e| TlsError::File(p.clone(), format!("cannot read client CA: {e}")))?,
        ),
        None => None,
    };
    Ok(VerifierInputs {
        settings: settings.clone(),
        ca_pem,
    })
}

fn fingerprint(key: &CertifiedKey) -> String {
    let leaf = key.cert.first().map(|c| c.as_ref()).unwrap_or_default();
    Sha256::digest(leaf)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
