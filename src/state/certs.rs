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
//!
//! A connection's client certificate was verified once, at its handshake. So
//! that a client CA change also reaches keep-alive connections, each
//! verifier has a generation token, cancelled when it is replaced; a
//! connection identified by a certificate then re-checks its chain against
//! the new verifier and closes if it is no longer trusted.

use crate::tls::{self, TlsError, TlsSettings};
use arc_swap::ArcSwap;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

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

/// One client verifier and the token cancelled when it is replaced.
pub struct Generation {
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    /// Cancelled when a new verifier replaces this one.
    pub replaced: CancellationToken,
}

impl Generation {
    /// True if `chain` (leaf first) verifies as a client certificate now.
    pub fn trusts(&self, chain: &[CertificateDer<'static>]) -> bool {
        let (Some(verifier), Some((leaf, rest))) = (&self.verifier, chain.split_first()) else {
            return false;
        };
        verifier
            .verify_client_cert(leaf, rest, UnixTime::now())
            .is_ok()
    }
}

/// The TLS configuration new handshakes use.
pub struct TlsState {
    resolver: Arc<CertResolver>,
    config: ArcSwap<ServerConfig>,
    generation: ArcSwap<Generation>,
    inputs: Mutex<VerifierInputs>,
}

impl TlsState {
    /// Load the material named by `settings`.
    pub fn new(settings: &TlsSettings) -> Result<TlsState, TlsError> {
        let resolver = Arc::new(CertResolver {
            current: ArcSwap::from_pointee(tls::certified_key(settings)?),
        });
        let inputs = inputs_of(settings)?;
        let verifier = tls::client_verifier(settings)?;
        let config = tls::server_config_from(settings, verifier.clone(), resolver.clone())?;
        Ok(TlsState {
            resolver,
            config: ArcSwap::from_pointee(config),
            generation: ArcSwap::from_pointee(Generation {
                verifier,
                replaced: CancellationToken::new(),
            }),
            inputs: Mutex::new(inputs),
        })
    }

    /// An acceptor with the configuration in force now, and the generation of
    /// its client verifier.
    pub fn acceptor(&self) -> (TlsAcceptor, Arc<Generation>) {
        // Generation first: a reload stores the config before the generation,
        // so this pairing is never older on the generation side (at worst a
        // connection re-checks its certificate once for nothing).
        let generation = self.generation.load_full();
        (TlsAcceptor::from(self.config.load_full()), generation)
    }

    /// The client verifier in force now.
    pub fn generation(&self) -> Arc<Generation> {
        self.generation.load_full()
    }

    /// SHA-256 fingerprint (hex) of the certificate served now.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.resolver.current.load())
    }

    /// `notAfter` of the certificate served now, Unix seconds.
    pub fn not_after(&self) -> Option<i64> {
        let key = self.resolver.current.load();
        tls::not_after(key.cert.first()?)
    }

    /// Load the material again. On any error nothing changes: the old
    /// certificate and verifier stay in force.
    pub fn reload(&self, settings: &TlsSettings) -> Result<TlsChange, TlsError> {
        let key = tls::certified_key(settings)?;
        let inputs = inputs_of(settings)?;
        // One reload at a time: the watcher is the only caller, this only guards the inputs.
        let mut current = crate::sync::lock(&self.inputs);
        let new_config = if *current != inputs {
            let verifier = tls::client_verifier(settings)?;
            let config =
                tls::server_config_from(settings, verifier.clone(), self.resolver.clone())?;
            Some((config, verifier))
        } else {
            None
        };
        let mut change = TlsChange::default();
        let old = self.resolver.current.load();
        if old.cert != key.cert {
            change.new_cert = Some(fingerprint(&key));
            self.resolver.current.store(Arc::new(key));
        }
        if let Some((config, verifier)) = new_config {
            self.config.store(Arc::new(config));
            let old = self.generation.swap(Arc::new(Generation {
                verifier,
                replaced: CancellationToken::new(),
            }));
            old.replaced.cancel();
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
