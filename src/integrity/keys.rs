//! Ed25519 publisher keys as OpenSSL writes them, and signatures over the
//! exact bytes of `manifest.json`.
//!
//! OpenSSL's `genpkey -algorithm ed25519` writes a PKCS#8 v1 `PRIVATE KEY`
//! (48 DER bytes: a fixed 16-byte header and the 32-byte seed) and `pkey
//! -pubout` a `PUBLIC KEY` SubjectPublicKeyInfo (44 DER bytes: a fixed 12-byte
//! header and the 32-byte key). Both encodings are fixed-length for Ed25519,
//! so they are matched byte for byte here rather than through a general ASN.1
//! parser; anything else is refused. Signing and verification use `ring`,
//! which rustls already links.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use std::fmt;
use std::path::Path;

/// DER prefix of an Ed25519 PKCS#8 v1 private key, before the 32-byte seed.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// DER prefix of an Ed25519 SubjectPublicKeyInfo, before the 32-byte key.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Length of a raw Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Why a key could not be used.
#[derive(Debug)]
pub enum KeyError {
    /// The file could not be read or written.
    Io(String, std::io::Error),
    /// Not a PEM block of the expected type.
    Pem(String),
    /// A PEM block of the right type holding something other than Ed25519.
    NotEd25519,
    /// The key bytes were refused by the crypto library.
    Rejected,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Io(path, e) => write!(f, "{path}: {e}"),
            KeyError::Pem(e) => write!(f, "not a PEM key: {e}"),
            KeyError::NotEd25519 => f.write_str("not an Ed25519 key"),
            KeyError::Rejected => f.write_str("invalid Ed25519 key"),
        }
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyError::Io(_, e) => Some(e),
            _ => None,
        }
    }
}

/// A publisher's public key (32 raw bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

/// A publisher's private key: the 32-byte seed. Never printed or logged.
pub struct PrivateKey([u8; 32]);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

fn pem_block(bytes: &[u8], label: &'static str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl PublicKey {
    /// Parse a SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, KeyError> {
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem)
            .map_err(|e| KeyError::Pem(e.to_string()))?;
        let raw = der
            .as_ref()
            .strip_prefix(&SPKI_PREFIX[..])
            .filter(|k| k.len() == 32)
            .ok_or(KeyError::NotEd25519)?;
        Ok(PublicKey(raw.try_into().expect("length checked")))
    }

    /// Read and parse a public key file.
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let pem = std::fs::read(path).map_err(|e| KeyError::Io(path.display().to_string(), e))?;
        PublicKey::from_pem(&pem)
    }

    /// The PEM form, as `openssl pkey -pubout` writes it.
    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        pem_block(&der, "PUBLIC KEY")
    }

    /// Whether `signature` is this key's signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, self.0)
            .verify(message, signature)
            .is_ok()
    }
}

impl PrivateKey {
    /// A new random key.
    pub fn generate() -> Result<PrivateKey, KeyError> {
        use ring::rand::SecureRandom;
        let mut seed = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| KeyError::Rejected)?;
        Ok(PrivateKey(seed))
    }

    /// Parse a PKCS#8 PEM (a `BEGIN PRIVATE KEY` block).
    pub fn from_pem(pem: &[u8]) -> Result<PrivateKey, KeyError> {
        let der =
            PrivatePkcs8KeyDer::from_pem_slice(pem).map_err(|e| KeyError::Pem(e.to_string()))?;
        let seed = der
            .secret_pkcs8_der()
            .strip_prefix(&PKCS8_PREFIX[..])
            .filter(|k| k.len() == 32)
            .ok_or(KeyError::NotEd25519)?;
        Ok(PrivateKey(seed.try_into().expect("length checked")))
    }

    /// Read and parse a private key file.
    pub fn load(path: &Path) -> Result<PrivateKey, KeyError> {
        let pem = std::fs::read(path).map_err(|e| KeyError::Io(path.display().to_string(), e))?;
        PrivateKey::from_pem(&pem)
    }

    /// The PEM form, as `openssl genpkey -algorithm ed25519` writes it.
    pub fn to_pem(&self) -> String {
        let mut der = PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        pem_block(&der, "PRIVATE KEY")
    }

    fn pair(&self) -> Result<ring::signature::Ed25519KeyPair, KeyError> {
        ring::signature::Ed25519KeyPair::from_seed_unchecked(&self.0)
            .map_err(|_| KeyError::Rejected)
    }

    /// The matching public key.
    pub fn public(&self) -> Result<PublicKey, KeyError> {
        use ring::signature::KeyPair;
        let pair = self.pair()?;
        let raw: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| KeyError::Rejected)?;
        Ok(PublicKey(raw))
    }

    /// The raw 64-byte signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], KeyError> {
        let sig = self.pair()?.sign(message);
        sig.as_ref().try_into().map_err(|_| KeyError::Rejected)
    }
}

/// `distpoint publish --gen-key FILE`: write the private key to `FILE`
/// (mode 0600, refusing to overwrite) and the public key to `FILE.pub`.
/// Returns the public key path.
pub fn generate_key_files(path: &Path) -> Result<std::path::PathBuf, KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key = PrivateKey::generate()?;
    let public = key.public()?;
    fn io(p: &Path) -> impl Fn(std::io::Error) -> KeyError + '_ {
        move |e| KeyError::Io(p.display().to_string(), e)
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(key.to_pem().as_bytes()).map_err(io(path))?;
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    let pub_path = std::path::PathBuf::from(pub_path);
    std::fs::write(&pub_path, public.to_pem()).map_err(io(&pub_path))?;
    Ok(pub_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_sign_and_verify() {
        let key = PrivateKey::generate().unwrap();
        let back = PrivateKey::from_pem(key.to_pem().as_bytes()).unwrap();
        let public = PublicKey::from_pem(key.public().unwrap().to_pem().as_bytes()).unwrap();
        assert_eq!(public, back.public().unwrap());
        let sig = back.sign(b"manifest bytes").unwrap();
        assert!(public.verify(b"manifest bytes", &sig));
        assert!(!public.verify(b"manifest byteS", &sig));
        assert!(!public.verify(b"manifest bytes", &sig[..63]));
    }

    #[test]
    fn openssl_shaped_pem_is_read() {
        // What `openssl genpkey -algorithm ed25519` writes, for the seed
        // 00 01 .. 1f: the PKCS#8 v1 prefix, then the 32-byte seed. Built here
        // rather than stored, so that no private key sits in the repository.
        use base64::Engine;
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend(0u8..32);
        let label = ["PRIVATE", "KEY"].join(" ");
        let pem = format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            base64::engine::general_purpose::STANDARD.encode(&der)
        );
        let key = PrivateKey::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(key.to_pem(), pem);
        assert!(PublicKey::from_pem(pem.as_bytes()).is_err());
    }
}
