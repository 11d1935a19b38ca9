//! Publisher key files given on the command line, with errors that name the
//! flag and the file and say what was found instead of what was wanted.

use super::Failure;
use distpoint::integrity::keys::{PrivateKey, PublicKey};
use rustls::pki_types::pem::{PemObject, SectionKind};
use std::fmt;
use std::path::Path;

/// What the first PEM block of a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Nothing,
    Damaged,
    PublicKey,
    PrivateKey,
    Certificate,
    Other,
}

impl Found {
    fn of(bytes: &[u8]) -> Found {
        match <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes).next() {
            None => Found::Nothing,
            Some(Err(_)) => Found::Damaged,
            Some(Ok((SectionKind::PublicKey, _))) => Found::PublicKey,
            Some(Ok((
                SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey,
                _,
            ))) => Found::PrivateKey,
            Some(Ok((SectionKind::Certificate, _))) => Found::Certificate,
            Some(Ok(_)) => Found::Other,
        }
    }
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Found::Nothing => "no PEM block",
            Found::Damaged => "a damaged PEM block",
            Found::PublicKey => "a public key",
            Found::PrivateKey => "a private key",
            Found::Certificate => "a certificate",
            Found::Other => "another kind of PEM block",
        })
    }
}

fn read(flag: &str, path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::usage(format!("{flag} {}: {e}", path.display())))
}

/// Load the Ed25519 private key `flag` names (`publish --key`).
pub fn private_key(flag: &str, path: &Path) -> Result<PrivateKey, Failure> {
    let bytes = read(flag, path)?;
    PrivateKey::from_pem(&bytes).map_err(|e| {
        let what = match Found::of(&bytes) {
            Found::PublicKey => "this is a public key; sign with the private key \
                                 (`publish --gen-key FILE` writes it to FILE, the public key to FILE.pub)"
                .to_string(),
            Found::PrivateKey => format!(
                "{e}: an Ed25519 PKCS#8 key is needed, as `publish --gen-key` or \
                 `openssl genpkey -algorithm ed25519` writes it"
            ),
            other => format!("expected an Ed25519 private key (PEM), found {other}"),
        };
        Failure::usage(format!("{flag} {}: {what}", path.display()))
    })
}

/// Load the Ed25519 public key `flag` names (`fetch --publisher-key`).
pub fn public_key(flag: &str, path: &Path) -> Result<PublicKey, Failure> {
    let bytes = read(flag, path)?;
    PublicKey::from_pem(&bytes).map_err(|e| {
        let what = match Found::of(&bytes) {
            Found::PrivateKey => "this is a private key; give the publisher's public key \
                                  (FILE.pub from `publish --gen-key FILE`) and keep the private key \
                                  off client machines"
                .to_string(),
            Found::PublicKey => format!("{e}: an Ed25519 public key is needed"),
            other => format!("expected an Ed25519 public key (PEM), found {other}"),
        };
        Failure::usage(format!("{flag} {}: {what}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_pem_block_is_named() {
        let key = PrivateKey::generate().unwrap();
        assert_eq!(Found::of(key.to_pem().as_bytes()), Found::PrivateKey);
        let public = key.public().unwrap().to_pem();
        assert_eq!(Found::of(public.as_bytes()), Found::PublicKey);
        assert_eq!(Found::of(b"garbage"), Found::Nothing);
        assert_eq!(
            Found::of(b"-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----\n"),
            Found::Damaged
        );
    }
}
