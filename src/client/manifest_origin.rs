//! Where a fetch's manifest comes from: the distpoint server's own
//! `?manifest`, `--manifest FILE_OR_URL` (then the sources may be plain
//! servers), or a package manifest already checked. The bytes are only
//! trusted once they match `--expect` (or a publisher's signature).

use super::fetch_error::FetchError;
use crate::integrity::FileManifest;
use crate::transfer::document::{self, DOCUMENT_LIMIT};
use crate::transfer::{Client, Target};
use std::path::PathBuf;

/// A manifest's origin.
#[derive(Debug, Clone)]
pub enum Origin {
    /// Known and verified already (a file of a checked package).
    Given(FileManifest),
    /// A local file.
    File(PathBuf),
    /// A URL the user gave.
    Url(Target),
    /// The distpoint server's own document (`URL?manifest`, `PREFIX/?manifest`).
    Server(Target),
}

impl Origin {
    /// `--manifest FILE_OR_URL`: an `https://` URL, or else a file.
    pub fn parse(from: &str) -> Result<Origin, FetchError> {
        if from.starts_with("https://") {
            return Ok(Origin::Url(Target::parse(from)?));
        }
        if from.contains("://") {
            return Err(FetchError::Usage(format!(
                "--manifest {from}: only https:// URLs (or a file) are supported"
            )));
        }
        Ok(Origin::File(PathBuf::from(from)))
    }

    /// The server's own manifest of the file at `file`.
    pub fn of_file(file: &Target) -> Origin {
        Origin::Server(file.with_path(&format!("{}?manifest", file.path())))
    }

    /// How messages name it.
    pub fn describe(&self) -> String {
        match self {
            Origin::Given(_) => "the package manifest".to_string(),
            Origin::File(p) => p.display().to_string(),
            Origin::Url(t) | Origin::Server(t) => t.url.clone(),
        }
    }

    /// Where its signature is: `?signature` beside a server's package
    /// manifest, `NAME.sig` beside a file or URL (as `publish` writes it).
    pub fn signature(&self) -> Option<Origin> {
        match self {
            Origin::Given(_) => None,
            Origin::File(p) => {
                let mut s = p.as_os_str().to_owned();
                s.push(".sig");
                Some(Origin::File(s.into()))
            }
            Origin::Url(t) => Some(Origin::Url(
                t.with_path(&format!("{}.sig", t.path_and_query)),
            )),
            Origin::Server(t) => Some(Origin::Server(
                t.with_path(&format!("{}?signature", t.path())),
            )),
        }
    }
}

/// The raw bytes of a document; `None` when the server says `404` (or the
/// file does not exist).
pub async fn bytes(client: &Client, origin: &Origin) -> Result<Option<Vec<u8>>, FetchError> {
    match origin {
        Origin::Given(m) => Ok(Some(m.to_json().into_bytes())),
        Origin::File(p) => match std::fs::read(p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(FetchError::Usage(format!(
                "{}: cannot read: {e}",
                p.display()
            ))),
        },
        Origin::Url(t) | Origin::Server(t) => {
            match document::get(client, t, DOCUMENT_LIMIT).await {
                Ok(w) => {
                    let not_json = w
                        .headers
                        .get(http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| !v.contains("json"));
                    let server_manifest = matches!(origin, Origin::Server(_))
                        && t.path_and_query.ends_with("?manifest");
                    if server_manifest && not_json {
                        return Err(FetchError::integrity(format!(
                            "{}: the answer is not a manifest (this is not a distpoint server?): \
                         give the manifest with --manifest FILE_OR_URL",
                            t.url
                        )));
                    }
                    Ok(Some(w.body))
                }
                Err(document::DocumentError::Status { status, .. })
                    if status == http::StatusCode::NOT_FOUND =>
                {
                    Ok(None)
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// The file manifest from `origin`.
pub async fn load(client: &Client, origin: &Origin) -> Result<FileManifest, FetchError> {
    if let Origin::Given(m) = origin {
        return Ok(m.clone());
    }
    let Some(raw) = bytes(client, origin).await? else {
        return Err(match origin {
            Origin::File(p) => {
                FetchError::Usage(format!("--manifest {}: no such file", p.display()))
            }
            Origin::Url(t) | Origin::Server(t) => FetchError::Http {
                url: t.url.clone(),
                status: 404,
            },
            Origin::Given(_) => unreachable!("handled above"),
        });
    };
    FileManifest::from_json(&String::from_utf8_lossy(&raw))
        .map_err(|e| FetchError::integrity(format!("{}: invalid manifest: {e}", origin.describe())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_and_know_where_their_signature_is() {
        let o = Origin::parse("https://127.0.0.1:1/p/.distpoint/manifest.json").unwrap();
        assert!(matches!(&o, Origin::Url(_)));
        assert_eq!(
            o.signature().unwrap().describe(),
            "https://127.0.0.1:1/p/.distpoint/manifest.json.sig"
        );
        let f = Origin::parse("dir/manifest.json").unwrap();
        assert_eq!(f.signature().unwrap().describe(), "dir/manifest.json.sig");
        assert!(Origin::parse("http://h/m.json").is_err());
        let s = Origin::Server(Target::parse("https://127.0.0.1:1/pkg/?manifest").unwrap());
        assert_eq!(
            s.signature().unwrap().describe(),
            "https://127.0.0.1:1/pkg/?signature"
        );
        let file = Target::parse("https://127.0.0.1:1/pub/a.bin").unwrap();
        assert_eq!(
            Origin::of_file(&file).describe(),
            "https://127.0.0.1:1/pub/a.bin?manifest"
        );
    }
}
