//! `distpoint fetch --package`: a whole published package. The package
//! manifest (`URL_PREFIX/?manifest`, exact bytes) is checked first, against
//! the package hash (`--expect`, SHA-256 of those bytes) and/or the
//! publisher's Ed25519 signature (`URL_PREFIX/?signature`); only then is any
//! file fetched, each verified chunk by chunk against its entry.

use super::bench::read_all;
use super::endpoint::{Client, ClientOptions, Target};
use super::fetch::{self, FetchOptions};
use super::fetch_error::FetchError;
use super::ClientError;
use crate::integrity::keys::PublicKey;
use crate::integrity::manifest::parse_digest;
use crate::integrity::{hex, sha256, PackageManifest};
use http::StatusCode;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::path::{Path, PathBuf};
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
    /// Folder to write the files into.
    pub output: PathBuf,
    /// The package hash (hex SHA-256 of `manifest.json`), told out of band.
    pub expect: Option<String>,
    /// The publisher's public key (SubjectPublicKeyInfo PEM).
    pub publisher_key: Option<PathBuf>,
    /// Connections per file.
    pub connections: usize,
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
}

impl PackageReport {
    /// The result line.
    pub fn to_text(&self) -> String {
        format!(
            "package {}: {} files, {} bytes verified{}, {:.2} s",
            self.package_hash,
            self.files.len(),
            self.bytes,
            if self.signature_checked {
                ", signature checked"
            } else {
                ""
            },
            self.elapsed.as_secs_f64()
        )
    }

    /// The `--json` summary.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "ok": true,
            "package_hash": self.package_hash,
            "signature_checked": self.signature_checked,
            "files": self.files,
            "bytes": self.bytes,
            "bytes_fetched": self.bytes_fetched,
            "seconds": self.elapsed.as_secs_f64(),
        })
        .to_string()
    }
}

/// A relative path from a manifest, safe to join below the output folder.
fn safe_relative(rel: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for seg in rel.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." || seg.contains(['\\', '\0']) {
            return None;
        }
        out.push(seg);
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn integrity(message: String) -> FetchError {
    FetchError::Integrity {
        message,
        chunk: None,
        bytes_fetched: 0,
    }
}

/// GET a small document; `None` on 404.
async fn document(client: &Client, target: &Target) -> Result<Option<Vec<u8>>, FetchError> {
    let net = |e: ClientError| match e {
        ClientError::Config(m) => FetchError::Usage(m),
        other => FetchError::Network(format!("{}: {other}", target.url)),
    };
    let mut conn = client.connect(target).await.map_err(net)?;
    let req = Client::build(client.get(target, conn.protocol)).map_err(net)?;
    let (status, _, body) = read_all(conn.send(req).await.map_err(net)?, 256 << 20)
        .await
        .map_err(net)?;
    match status {
        StatusCode::OK => Ok(Some(body)),
        StatusCode::NOT_FOUND => Ok(None),
        s => Err(FetchError::Http {
            url: target.url.clone(),
            status: s.as_u16(),
        }),
    }
}

/// Fetch and verify a whole package into `opts.output`.
pub async fn run(opts: &PackageOptions) -> Result<PackageReport, FetchError> {
    let t0 = Instant::now();
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
    let prefix = opts.url_prefix.trim_end_matches('/');
    let base =
        Target::parse(&format!("{prefix}/")).map_err(|e| FetchError::Usage(e.to_string()))?;
    let client = Client::new(&opts.client).map_err(|e| FetchError::Usage(e.to_string()))?;
    let mt = base.with_path(&format!("{}?manifest", base.path()));
    let bytes = document(&client, &mt).await?.ok_or(FetchError::Http {
        url: mt.url.clone(),
        status: 404,
    })?;
    let hash = sha256(&bytes);
    if let Some(want) = expect {
        if want != hash {
            return Err(integrity(format!(
                "{}: package hash {} does not match --expect {}; no file was requested",
                mt.url,
                hex(&hash),
                hex(&want)
            )));
        }
    }
    if let Some(key) = &key {
        let st = base.with_path(&format!("{}?signature", base.path()));
        let sig = document(&client, &st)
            .await?
            .ok_or_else(|| integrity(format!("{}: the package is not signed", st.url)))?;
        if !key.verify(&bytes, &sig) {
            return Err(integrity(format!(
                "{}: the signature does not verify with the publisher key",
                st.url
            )));
        }
    }
    if expect.is_none() && key.is_none() {
        eprintln!(
            "distpoint: no --expect or --publisher-key given: trusting the server's package manifest (package {})",
            hex(&hash)
        );
    }
    let package: PackageManifest = serde_json::from_slice(&bytes)
        .map_err(|e| integrity(format!("{}: invalid package manifest: {e}", mt.url)))?;
    std::fs::create_dir_all(&opts.output).map_err(|e| {
        FetchError::Output(format!(
            "{}: cannot create folder: {e}",
            opts.output.display()
        ))
    })?;
    let mut report = PackageReport {
        package_hash: hex(&hash),
        signature_checked: key.is_some(),
        files: Vec::new(),
        bytes: 0,
        bytes_fetched: 0,
        elapsed: Duration::ZERO,
    };
    for rel in package.files.keys() {
        let local = safe_relative(rel)
            .ok_or_else(|| integrity(format!("{}: unsafe file name {rel:?}", mt.url)))?;
        let manifest = package
            .file(rel)
            .expect("listed")
            .map_err(|e| integrity(format!("{}: {rel}: {e}", mt.url)))?;
        let path = opts.output.join(&local);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                FetchError::Output(format!("{}: cannot create folder: {e}", parent.display()))
            })?;
        }
        let encoded: Vec<String> = rel
            .split('/')
            .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
            .collect();
        let file = fetch::run(&FetchOptions {
            url: format!("{prefix}/{}", encoded.join("/")),
            output: path,
            expect: None,
            connections: opts.connections,
            limit_rate: None,
            progress: opts.progress,
            client: opts.client.clone(),
            manifest: Some(manifest),
        })
        .await?;
        report.bytes += file.size;
        report.bytes_fetched += file.bytes_fetched;
        report.files.push(rel.clone());
    }
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
        for bad in ["../x", "a/../../x", "/etc/passwd", "a//b", "", "a\\b", "."] {
            assert_eq!(safe_relative(bad), None, "{bad}");
        }
        assert_eq!(
            utf8_percent_encode("a b#?.bin", SEGMENT).to_string(),
            "a%20b%23%3F.bin"
        );
    }
}
