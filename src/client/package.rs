//! `distpoint fetch --package`: a whole published package. The package
//! manifest (`PREFIX/?manifest`, exact bytes, or `--manifest FILE_OR_URL`)
//! is checked first, against the package hash (`--expect`, SHA-256 of those
//! bytes) and/or the publisher's Ed25519 signature (`PREFIX/?signature`, or
//! `FILE_OR_URL.sig`); only then is any file fetched, each verified chunk by
//! chunk against its entry, from the prefix and every `--mirror PREFIX`.
//! A mirror dropped for a bad chunk (or for good network reasons) is not
//! asked for the package's later files either.

use super::fetch::{self, FetchOptions};
use super::fetch_error::FetchError;
use super::manifest_origin::{self, Origin};
use super::release::{self, Memory, Taken};
use crate::integrity::keys::PublicKey;
use crate::integrity::manifest::parse_digest;
use crate::integrity::{hex, sha256, PackageManifest};
use crate::objstore::StoreUrl;
use crate::transfer::{Client, ClientOptions, DropReason, RateLimit, SourceReport, Target};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Characters left as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What to fetch.
#[derive(Debug, Clone)]
pub struct PackageOptions {
    /// The package's URL prefix (the path's own URL).
    pub url_prefix: String,
    /// More prefixes serving the same package (plain servers will do, and
    /// `s3://BUCKET/PREFIX` where `publish --to` uploaded it).
    pub mirrors: Vec<String>,
    /// `--manifest FILE_OR_URL`: the package manifest from elsewhere.
    pub manifest_from: Option<String>,
    /// Folder to write the files into.
    pub output: PathBuf,
    /// The package hash (hex SHA-256 of `manifest.json`), told out of band.
    pub expect: Option<String>,
    /// The publisher's public key (SubjectPublicKeyInfo PEM).
    pub publisher_key: Option<PathBuf>,
    /// `--min-sequence`: the lowest release accepted.
    pub min_sequence: Option<u64>,
    /// Connections per source and file.
    pub connections: usize,
    /// A limit for all of the package's traffic.
    pub rate: Option<Arc<RateLimit>>,
    /// Show progress bars.
    pub progress: bool,
    /// TLS, credentials, protocols.
    pub client: ClientOptions,
}

/// The outcome of a package fetch.
#[derive(Debug, Clone)]
pub struct PackageReport {
    /// SHA-256 of the manifest bytes (hex).
    pub package_hash: String,
    /// The manifest's release number.
    pub sequence: u64,
    /// Whether the publisher's signature was checked.
    pub signature_checked: bool,
    /// Files written (relative paths).
    pub files: Vec<String>,
    /// Total bytes of the files.
    pub bytes: u64,
    /// Content bytes received in this run.
    pub bytes_fetched: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Per prefix, summed over the files (the reason of its first drop).
    pub sources: Vec<SourceReport>,
}

impl PackageReport {
    /// The result line.
    pub fn to_text(&self) -> String {
        let dropped = self.sources.iter().filter(|s| s.dropped.is_some()).count();
        format!(
            "package {} (sequence {}): {} files, {} bytes verified{}{}, {:.2} s",
            self.package_hash,
            self.sequence,
            self.files.len(),
            self.bytes,
            if self.signature_checked {
                ", signature checked"
            } else {
                ""
            },
            if self.sources.len() > 1 {
                format!(", {} sources ({dropped} dropped)", self.sources.len())
            } else {
                String::new()
            },
            self.elapsed.as_secs_f64()
        )
    }

    /// The `--json` summary.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "ok": true,
            "package_hash": self.package_hash,
            "sequence": self.sequence,
            "signature_checked": self.signature_checked,
            "files": self.files,
            "bytes": self.bytes,
            "bytes_fetched": self.bytes_fetched,
            "seconds": self.elapsed.as_secs_f64(),
            "sources": self.sources.iter().map(SourceReport::to_json).collect::<Vec<_>>(),
        })
        .to_string()
    }
}

/// A relative path from a manifest, safe to join below the output folder.
fn safe_relative(rel: &str) -> Option<PathBuf> {
    // The client's own folder (the release memory) is not the package's.
    if rel.split('/').next() == Some(release::STATE_DIR) {
        return None;
    }
    let mut out = PathBuf::new();
    for seg in rel.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." || seg.contains(['\\', '\0']) {
            return None;
        }
        out.push(seg);
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// The checks before any file: the package hash and the signature.
struct Checked {
    package: PackageManifest,
    hash: String,
    signature_checked: bool,
}

async fn checked_manifest(
    opts: &PackageOptions,
    client: &Client,
    base: &Target,
) -> Result<Checked, FetchError> {
    let expect = match &opts.expect {
        Some(e) => Some(parse_digest(&e.to_ascii_lowercase()).ok_or_else(|| {
            FetchError::Usage(format!(
                "--expect {e:?}: not a 64-digit SHA-256 hex package hash"
            ))
        })?),
        None => None,
    };
    let key = match &opts.publisher_key {
        Some(p) => Some(
            PublicKey::load(p)
                .map_err(|e| FetchError::Usage(format!("--publisher-key {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let origin = match &opts.manifest_from {
        Some(from) => Origin::parse(from)?,
        None => Origin::Server(base.with_path(&format!("{}?manifest", base.path()))),
    };
    // The credentials go only to the package's own server.
    let anonymous = client.without_credentials();
    let client = match &origin {
        Origin::Url(t) if t.authority != base.authority => &anonymous,
        _ => client,
    };
    let bytes = manifest_origin::bytes(client, &origin)
        .await?
        .ok_or_else(|| match &origin {
            Origin::Url(t) | Origin::Server(t) => FetchError::Http {
                url: t.url.clone(),
                status: 404,
            },
            other => FetchError::Usage(format!("--manifest {}: no such file", other.describe())),
        })?;
    let hash = sha256(&bytes);
    if let Some(want) = expect {
        if want != hash {
            return Err(FetchError::integrity(format!(
                "{}: package hash {} does not match --expect {}; no file was requested",
                origin.describe(),
                hex(&hash),
                hex(&want)
            )));
        }
    }
    if let Some(key) = &key {
        let at = origin
            .signature()
            .expect("a fetched manifest has a signature place");
        let sig = manifest_origin::bytes(client, &at).await?.ok_or_else(|| {
            FetchError::integrity(format!("{}: the package is not signed", at.describe()))
        })?;
        if !key.verify(&bytes, &sig) {
            return Err(FetchError::integrity(format!(
                "{}: the signature does not verify with the publisher key",
                at.describe()
            )));
        }
    }
    if expect.is_none() && key.is_none() {
        eprintln!(
            "distpoint: no --expect or --publisher-key given: trusting the package manifest from {} (package {})",
            origin.describe(),
            hex(&hash)
        );
    }
    let package: PackageManifest = serde_json::from_slice(&bytes).map_err(|e| {
        FetchError::integrity(format!(
            "{}: invalid package manifest: {e}",
            origin.describe()
        ))
    })?;
    Ok(Checked {
        package,
        hash: hex(&hash),
        signature_checked: key.is_some(),
    })
}

/// A prefix's figures over the package, and whether it is still asked.
struct Prefix {
    url: String,
    report: SourceReport,
    banned: bool,
}

impl Prefix {
    fn add(&mut self, r: &SourceReport) {
        let t = &mut self.report;
        t.bytes += r.bytes;
        t.chunks += r.chunks;
        t.refused += r.refused;
        t.requests += r.requests;
        t.protocol = t.protocol.or(r.protocol);
        if let Some(reason) = &r.dropped {
            // A source that served bad bytes, or that is gone, is not asked
            // for later files; one that lacks a file (404) or has another
            // version of it still may be.
            self.banned |= reason.is_integrity()
                || matches!(reason, DropReason::GaveUp { .. } | DropReason::Tls(_));
            // The reason's message names the file's URL.
            t.dropped.get_or_insert_with(|| reason.clone());
        }
    }
}

/// Fetch and verify a whole package into `opts.output`.
pub async fn run(opts: &PackageOptions) -> Result<PackageReport, FetchError> {
    let t0 = Instant::now();
    let parse = |p: &str| Target::parse(&format!("{}/", p.trim_end_matches('/')));
    let base = parse(&opts.url_prefix)?;
    let mut prefixes = std::iter::once(&opts.url_prefix)
        .chain(&opts.mirrors)
        .map(|p| {
            if StoreUrl::is_store_url(p) {
                StoreUrl::parse(p).map_err(|e| FetchError::Usage(format!("--mirror: {e}")))?;
            } else {
                parse(p)?;
            }
            Ok(Prefix {
                url: p.trim_end_matches('/').to_string(),
                report: SourceReport {
                    name: p.trim_end_matches('/').to_string(),
                    ..Default::default()
                },
                banned: false,
            })
        })
        .collect::<Result<Vec<_>, FetchError>>()?;
    let client = Client::new(&opts.client)?;
    let checked = checked_manifest(opts, &client, &base).await?;
    let prefix = prefixes[0].url.clone();
    let mut memory = Memory::load(&opts.output).map_err(|e| {
        FetchError::Usage(format!(
            "{}: cannot read the releases taken: {e}",
            opts.output.display()
        ))
    })?;
    memory
        .check(
            &prefix,
            &checked.package,
            &checked.hash,
            opts.min_sequence,
            std::time::SystemTime::now(),
        )
        .map_err(|r| {
            FetchError::integrity(format!(
                "{prefix}: package {}: {r}; no file was requested",
                checked.hash
            ))
        })?;
    std::fs::create_dir_all(&opts.output).map_err(|e| {
        FetchError::Usage(format!(
            "{}: cannot create folder: {e}",
            opts.output.display()
        ))
    })?;
    let mut report = PackageReport {
        sequence: checked.package.sequence(),
        package_hash: checked.hash,
        signature_checked: checked.signature_checked,
        files: Vec::new(),
        bytes: 0,
        bytes_fetched: 0,
        elapsed: Duration::ZERO,
        sources: Vec::new(),
    };
    for rel in checked.package.files.keys() {
        let bad = |m: String| FetchError::integrity(format!("{}: {m}", opts.url_prefix));
        let local = safe_relative(rel).ok_or_else(|| bad(format!("unsafe file name {rel:?}")))?;
        let manifest = checked
            .package
            .file(rel)
            .expect("listed")
            .map_err(|e| bad(format!("{rel}: {e}")))?;
        let path = opts.output.join(&local);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                FetchError::Usage(format!("{}: cannot create folder: {e}", parent.display()))
            })?;
        }
        let encoded: Vec<String> = rel
            .split('/')
            .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
            .collect();
        let asked: Vec<usize> = (0..prefixes.len())
            .filter(|&i| !prefixes[i].banned)
            .collect();
        let mut urls = asked
            .iter()
            .map(|&i| match StoreUrl::is_store_url(&prefixes[i].url) {
                // An object key is the relative path itself, not a URL path.
                true => format!("{}/{rel}", prefixes[i].url),
                false => format!("{}/{}", prefixes[i].url, encoded.join("/")),
            });
        let Some(url) = urls.next() else {
            return Err(FetchError::Unavailable {
                message: format!("{rel}: every source was dropped for an earlier file"),
                sources: prefixes.into_iter().map(|p| p.report).collect(),
            });
        };
        let result = fetch::run(&FetchOptions {
            url,
            mirrors: urls.collect(),
            manifest_from: None,
            output: path,
            expect: None,
            connections: opts.connections,
            rate: opts.rate.clone(),
            progress: opts.progress,
            client: opts.client.clone(),
            login_authority: Some(base.authority.clone()),
            manifest: Some(manifest),
        })
        .await;
        let sources = match &result {
            Ok(file) => file.sources.as_slice(),
            Err(e) => e.sources(),
        };
        for (&i, r) in asked.iter().zip(sources) {
            prefixes[i].add(r);
        }
        let file = result?;
        report.bytes += file.size;
        report.bytes_fetched += file.bytes_fetched;
        report.files.push(rel.clone());
    }
    memory
        .record(
            &prefix,
            Taken {
                sequence: report.sequence,
                package_hash: report.package_hash.clone(),
            },
        )
        .map_err(|e| {
            FetchError::Usage(format!(
                "{}: cannot record the release taken: {e}",
                opts.output.display()
            ))
        })?;
    report.sources = prefixes.into_iter().map(|p| p.report).collect();
    report.elapsed = t0.elapsed();
    Ok(report)
}

/// Where a package file lands, for callers that list them.
pub fn local_path(output: &Path, rel: &str) -> Option<PathBuf> {
    safe_relative(rel).map(|r| output.join(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_cannot_leave_the_output_folder() {
        assert_eq!(
            local_path(Path::new("/o"), "a/b.bin"),
            Some(PathBuf::from("/o/a/b.bin"))
        );
        for bad in [
            ".distpoint/sequences.json",
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "",
            "a\\b",
            ".",
        ] {
            assert_eq!(safe_relative(bad), None, "{bad}");
        }
        assert_eq!(
            utf8_percent_encode("a b#?.bin", SEGMENT).to_string(),
            "a%20b%23%3F.bin"
        );
    }
}
