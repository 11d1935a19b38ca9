//! The checks a package manifest from a source passes before any content
//! is asked for: the package hash (`upstream.expect`) and/or a signature by
//! one of the path's publisher keys, a valid manifest with safe file names,
//! not expired (5 minutes' skew), and no rollback against the version
//! served (a lower sequence, or the same sequence with other bytes).

use super::error::Refusal;
use crate::integrity::keys::PublicKey;
use crate::integrity::{hex, sha256, Digest, FileManifest, PackageManifest};
use crate::integrity::{MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// A package manifest that passed every check.
#[derive(Debug)]
pub struct Candidate {
    /// Its exact bytes (served as they are).
    pub bytes: Vec<u8>,
    /// Its raw signature, if the source has one.
    pub signature: Option<Vec<u8>>,
    /// The package hash (hex).
    pub hash: String,
    /// Its sequence.
    pub sequence: u64,
    /// Every file's manifest, by relative path.
    pub files: BTreeMap<String, FileManifest>,
}

/// What the replica vouches with, and what it serves now.
pub struct Trust<'a> {
    /// `upstream.expect`.
    pub expect: Option<Digest>,
    /// The path's publisher keys.
    pub keys: &'a [PublicKey],
    /// (package hash, sequence) of the version served, if any.
    pub served: Option<(&'a str, u64)>,
}

/// Check one source's manifest and signature.
pub fn check(
    bytes: Vec<u8>,
    signature: Option<Vec<u8>>,
    trust: &Trust<'_>,
    now: SystemTime,
) -> Result<Candidate, Refusal> {
    let hash = sha256(&bytes);
    if let Some(want) = trust.expect {
        if want != hash {
            return Err(Refusal::Hash { got: hex(&hash) });
        }
    }
    if !trust.keys.is_empty() {
        let sig = signature.as_deref().ok_or(Refusal::Unsigned)?;
        if !trust.keys.iter().any(|k| k.verify(&bytes, sig)) {
            return Err(Refusal::BadSignature);
        }
    }
    let manifest: PackageManifest =
        serde_json::from_slice(&bytes).map_err(|e| Refusal::Invalid(e.to_string()))?;
    if manifest.version != 1 {
        return Err(Refusal::Invalid(format!(
            "unsupported version {}",
            manifest.version
        )));
    }
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&manifest.chunk_size) {
        return Err(Refusal::Invalid(format!(
            "unsupported chunk_size {}",
            manifest.chunk_size
        )));
    }
    let mut files = BTreeMap::new();
    for rel in manifest.files.keys() {
        if !safe_relative(rel) {
            return Err(Refusal::Invalid(format!("unsafe file name {rel:?}")));
        }
        let m = manifest
            .file(rel)
            .expect("listed")
            .map_err(|e| Refusal::Invalid(format!("{rel}: {e}")))?;
        files.insert(rel.clone(), m);
    }
    let expires = manifest
        .expires_at()
        .map_err(|e| Refusal::Invalid(e.to_string()))?;
    if manifest
        .expired(now)
        .map_err(|e| Refusal::Invalid(e.to_string()))?
    {
        let at = expires.map(|t| humantime::format_rfc3339_seconds(t).to_string());
        return Err(Refusal::Expired(at.unwrap_or_default()));
    }
    let sequence = manifest.sequence();
    let hash = hex(&hash);
    if let Some((served_hash, served)) = trust.served {
        if sequence < served {
            return Err(Refusal::Rollback {
                offered: sequence,
                served,
            });
        }
        if sequence == served && served_hash != hash {
            return Err(Refusal::SameSequence(sequence));
        }
    }
    Ok(Candidate {
        bytes,
        signature,
        hash,
        sequence,
        files,
    })
}

/// A relative path that stays beneath the folder it is joined to, and
/// that the server would serve (no dotfile segment, no `.distpoint/`).
pub fn safe_relative(rel: &str) -> bool {
    !rel.is_empty()
        && rel
            .split('/')
            .all(|seg| !seg.is_empty() && !seg.starts_with('.') && !seg.contains(['\\', '\0']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(sequence: u64, expires: Option<&str>) -> Vec<u8> {
        let m = FileManifest::compute(&b"hello"[..], 4096).unwrap();
        let mut j = serde_json::json!({
            "version": 1, "chunk_size": 4096, "sequence": sequence,
            "files": {"a.txt": {"size": m.size, "sha256": hex(&m.sha256), "root": hex(&m.root),
                "chunks": m.chunks.iter().map(|c| hex(c)).collect::<Vec<_>>()}}
        });
        if let Some(e) = expires {
            j["expires"] = e.into();
        }
        serde_json::to_vec(&j).unwrap()
    }

    #[test]
    fn rollback_freeze_and_pinning_are_refused() {
        let now = SystemTime::now();
        let open = |served| Trust {
            expect: None,
            keys: &[],
            served,
        };
        let c = check(manifest(5, None), None, &open(None), now).unwrap();
        assert_eq!((c.sequence, c.files.len()), (5, 1));
        let served = c.hash.clone();
        let t = open(Some((&served, 5)));
        assert_eq!(
            check(manifest(5, None), None, &t, now).unwrap().hash,
            served
        );
        assert_eq!(
            check(manifest(4, None), None, &t, now).unwrap_err(),
            Refusal::Rollback {
                offered: 4,
                served: 5
            }
        );
        let other = manifest(5, Some("2999-01-01T00:00:00Z"));
        assert_eq!(
            check(other, None, &t, now).unwrap_err(),
            Refusal::SameSequence(5)
        );
        let old = manifest(6, Some("2020-01-01T00:00:00Z"));
        assert!(matches!(
            check(old, None, &t, now).unwrap_err(),
            Refusal::Expired(at) if at == "2020-01-01T00:00:00Z"
        ));
        // Within the 5 minutes' skew: still taken.
        let just = humantime::format_rfc3339_seconds(now - std::time::Duration::from_secs(60));
        assert!(check(manifest(7, Some(&just.to_string())), None, &t, now).is_ok());
        let pinned = Trust {
            expect: Some([0u8; 32]),
            keys: &[],
            served: None,
        };
        assert!(matches!(
            check(manifest(5, None), None, &pinned, now),
            Err(Refusal::Hash { .. })
        ));
        let key = crate::integrity::keys::PrivateKey::generate().unwrap();
        let keys = [key.public().unwrap()];
        let signed = Trust {
            expect: None,
            keys: &keys,
            served: None,
        };
        let bytes = manifest(5, None);
        assert_eq!(
            check(bytes.clone(), None, &signed, now).unwrap_err(),
            Refusal::Unsigned
        );
        assert_eq!(
            check(bytes.clone(), Some(vec![0; 64]), &signed, now).unwrap_err(),
            Refusal::BadSignature
        );
        let sig = key.sign(&bytes).unwrap().to_vec();
        assert!(check(bytes, Some(sig), &signed, now).is_ok());
        for bad in ["../x", ".distpoint/manifest.json", "a//b", "a/.hidden", ""] {
            assert!(!safe_relative(bad), "{bad}");
        }
        assert!(safe_relative("sub/dir/setup.exe"));
    }
}
