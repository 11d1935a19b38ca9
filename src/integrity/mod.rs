//! Integrity: chunk manifests, hashing and (later) verification on send.
//!
//! SPEC.md "Integrity" is the contract: a file is cut into `chunk_size`
//! chunks, each hashed with SHA-256; `root = SHA-256(d1 || … || dn)` over
//! the raw digests is what a client is told out of band.

pub mod manifest;

pub use manifest::{hex, Digest, FileManifest, ManifestError, PackageEntry, PackageManifest};
